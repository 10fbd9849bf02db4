"""Model commands: train, evaluate, predict, runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_OK
from .common import run_job as _run


def _print_result(args: argparse.Namespace, result: dict[str, Any]) -> None:
    print(json.dumps({"event": "result", **result}))


def cmd_train(args: argparse.Namespace) -> int:
    from labeltool.jobs.model import train_job

    options = {"preset": args.preset, "epochs": args.epochs, "minutes": args.minutes, "seed": args.seed,
               "weights_file": Path(args.weights) if args.weights else None, "allow_network": args.allow_download,
               "balanced": args.balanced, "device": args.device, "batch_size": args.batch_size, "lr": args.lr,
               "image_size": args.image_size, "derived": not args.no_derived, "init_from": args.init_from}
    if not args.json:
        budget = (f"{args.epochs} epochs" if args.epochs else
                  f"{args.minutes:g} minutes" if args.minutes else "the default budget (10 min on CPU)")
        print(f"training preset '{args.preset}' for {budget}; Ctrl+C cancels and leaves no run behind",
              file=sys.stderr)
    result = _run(train_job(Path(args.dir), **options), args)
    if args.json:
        _print_result(args, result)
        return EXIT_OK
    print_eval(result["eval"], result.get("previous"))
    print(f"\nrun {result['run_id']} saved in {result['run_dir']} ({result['epochs_done']} epochs, "
          f"{result['images_per_s']:.1f} images/s, {result['wall_s']:.0f} s); it is now the current model")
    return EXIT_OK


def print_eval(eval_dict: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """Per-class table; with ``previous`` (the model it replaced, on the same images) a Δ column."""
    from labeltool.ml.evaluate import EvalResult, format_eval_table

    print(f"\nvalidation mAP@.5 {eval_dict['map50']:.3f}   mAP@[.5:.95] {eval_dict['map50_95']:.3f}")
    prev = EvalResult.from_dict(previous) if previous else None
    print(format_eval_table(EvalResult.from_dict(eval_dict), previous=prev))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from labeltool.jobs.model import evaluate_job

    result = _run(evaluate_job(Path(args.dir), run_id=args.run, device=args.device), args)
    if args.json:
        _print_result(args, result)
    else:
        print(f"run {result['run_id']} on {result['n_images']} validation images")
        print_eval(result, result.get("previous"))
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from labeltool.jobs.model import predict_job

    result = _run(predict_job(Path(args.dir), run_id=args.run, unlabeled_only=args.unlabeled_only,
                              device=args.device), args)
    if args.json:
        _print_result(args, result)
    else:
        print(f"stored {result['boxes']} model boxes on {result['images']} images (run {result['run_id']}); "
              "they stay apart from your labels until you accept them")
        if result["classes_not_in_project"]:
            print(f"  classes the model knows but the project no longer has: {result['classes_not_in_project']}")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from labeltool.core.runs import current_run, list_runs
    from labeltool.core.store import Project

    with Project.open(args.dir) as project:
        runs, current = list_runs(project), current_run(project)
    if args.json:
        print(json.dumps([{"id": r.id, "created_at": r.created_at, "preset": r.preset, "path": r.path,
                           "snapshot_id": r.snapshot_id, "map50": r.metrics.get("map50"),
                           "map50_95": r.metrics.get("map50_95"), "current": current is not None and r.id == current.id}
                          for r in runs], indent=2))
        return EXIT_OK
    if not runs:
        print("no runs yet; train with `labeltool train DIR`")
    for r in runs:
        mark = "*" if current is not None and r.id == current.id else " "
        print(f"{mark} run {r.id:<4} {r.created_at[:19]}  {r.preset:<9} snapshot {r.snapshot_id:<4} "
              f"mAP@.5 {r.metrics.get('map50', 0):.3f}  {r.path}")
    return EXIT_OK
