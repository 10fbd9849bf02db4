"""Command-line entry point: ``labeltool <command> …``.

Same jobs as the GUI. Long work shows a progress bar on stderr (or JSON lines on stdout with
``--json``). User errors exit with status 1 and a message that says what to do; no tracebacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from labeltool.core.errors import LabeltoolError
from labeltool.core.progress import Progress

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class ProgressPrinter:
    """Renders Progress events: a one-line bar on a terminal, plain lines otherwise, or JSON lines.

    Without a terminal (a pipe, a CI log) it prints a line when the stage changes and then at most
    every ``LOG_EVERY_S`` seconds, so long work still shows it is alive.
    """

    LOG_EVERY_S = 30.0
    FULL_MESSAGE_STAGES = ("model",)

    def __init__(self, *, json_lines: bool = False, stream: Any = None) -> None:
        self.json_lines = json_lines
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stage = ""
        self._first: dict[str, tuple[float, int]] = {}  # stage -> (time, done) when first seen
        self._last_draw = 0.0

    def __call__(self, p: Progress) -> None:
        if self.json_lines:
            event = {"event": "progress", "stage": p.stage, "done": p.done, "total": p.total, "message": p.message}
            if p.metrics:
                event["metrics"] = p.metrics
            print(json.dumps(event), flush=True)
            return
        if p.stage in self.FULL_MESSAGE_STAGES:  # e.g. which weights were used: shown whole, once
            self.close()
            self.stream.write(p.message + "\n")
            self.stream.flush()
            return
        now = time.monotonic()
        self._first.setdefault(p.stage, (now, p.done))
        changed = p.stage != self._stage
        if changed and self._stage and self.tty:
            self.stream.write("\n")
        self._stage = p.stage
        finished = p.total > 0 and p.done >= p.total
        if self.tty:
            if changed or finished or now - self._last_draw > 0.1:
                self._last_draw = now
                self.stream.write("\r" + self._line(p, now) + "\x1b[K")
        elif changed or now - self._last_draw > self.LOG_EVERY_S:
            self._last_draw = now
            self.stream.write(self._line(p, now).strip() + "\n")
        self.stream.flush()

    def _line(self, p: Progress, now: float) -> str:
        if p.total <= 0:
            return f"{p.stage:>8} {p.message[:70]}"
        frac = min(1.0, p.done / p.total)
        filled = int(frac * 30)
        t_first, done_first = self._first[p.stage]
        rate = (p.done - done_first) / max(1e-9, now - t_first)
        eta = f" ETA {(p.total - p.done) / rate:4.0f}s" if 0 < frac < 1 and rate > 0 and now - t_first > 1 else ""
        return f"{p.stage:>8} [{'#' * filled}{'.' * (30 - filled)}] {p.done}/{p.total}{eta} {p.message[:40]}"

    def close(self) -> None:
        if self.tty and self._stage and not self.json_lines:
            self.stream.write("\n")
            self.stream.flush()
        self._stage = ""


def _run(job: Any, args: argparse.Namespace) -> Any:
    from labeltool.jobs import drive

    printer = ProgressPrinter(json_lines=getattr(args, "json", False))
    try:
        return drive(job, printer)
    finally:
        printer.close()


# -- commands ------------------------------------------------------------------------------------
def cmd_new(args: argparse.Namespace) -> int:
    from labeltool.core.store import Project

    with Project.create(args.dir) as project:
        print(f"created project {project.root}")
        print(f"next: labeltool import {project.root} SOURCE --format coco|yolo|voc|folder")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from labeltool.jobs.data import import_job, summary_dict

    summary = _run(
        import_job(Path(args.dir), Path(args.source), fmt=args.format, strict=args.strict,
                   mode="link" if args.link else "copy"),
        args,
    )
    info = summary_dict(summary, source=Path(args.source))
    if args.json:
        print(json.dumps({"event": "result", **info}))
        return EXIT_OK
    print(
        f"imported {info['images_added']} new images, {info['boxes_added']} boxes"
        + (f" (+ labels for {info['images_labeled_existing']} images already in the project)"
           if info["images_labeled_existing"] else "")
        + (f"; new classes: {', '.join(info['classes_added'])}" if info["classes_added"] else "")
    )
    problems = summary.report.entries
    if problems:
        print(f"skipped {info['images_skipped']} images and {info['boxes_skipped']} boxes; "
              f"{len(summary.report.errors)} errors, {len(summary.report.warnings)} warnings:")
        for entry in problems[:20]:
            print(f"  {entry}")
        if len(problems) > 20:
            print(f"  … {len(problems) - 20} more: see {Path(args.dir).resolve() / 'logs'}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from labeltool.core.exporting import export_project
    from labeltool.core.store import Project

    with Project.open(args.dir) as project:
        report = export_project(project, Path(args.dest), fmt=args.format, include_unlabeled=args.include_unlabeled)
    for entry in report.entries:
        print(f"  {entry}")
    print(f"exported {args.format} to {Path(args.dest).resolve()}")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    from labeltool.core.stats import project_stats
    from labeltool.core.store import Project

    with Project.open(args.dir) as project:
        stats = project_stats(project)
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(format_stats(stats))
    return EXIT_OK


def format_stats(stats: dict[str, Any]) -> str:
    """Human-readable table of :func:`labeltool.core.stats.project_stats`."""
    lines = [
        f"project   {stats['project']}",
        f"images    {stats['images']}  (labeled {stats['labeled_images']}, of them "
        f"{stats['labeled_without_boxes']} without defects; unlabeled {stats['unlabeled_images']})",
        "splits    " + ", ".join(f"{k} {v}" for k, v in sorted(stats["splits"].items())),
        f"boxes     {stats['boxes']}",
        "",
        f"{'class':<20}{'boxes':>8}{'images':>8}",
    ]
    lines += [f"{c['name']:<20}{c['boxes']:>8}{c['images']:>8}" for c in stats["classes"]]
    size = stats["box_size"]
    if size["count"]:
        p = size["side_px_percentiles"]
        lines += [
            "",
            "box size  sqrt(w*h) px: " + "  ".join(f"p{k} {v}" for k, v in p.items()),
            f"          COCO small {size['small']}, medium {size['medium']}, large {size['large']}",
        ]
    return "\n".join(lines)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from labeltool.jobs.demo import demo_data_job

    result = _run(demo_data_job(Path(args.dest), n_images=args.images, noise=args.noise, seed=args.seed), args)
    if args.json:
        print(json.dumps({"event": "result", **result}))
    else:
        print(f"wrote {result['images']} images with {result['boxes']} boxes to {result['dest']}")
        print(f"  labels (with {result['noise_records']} injected errors): {result['annotations']}")
        print(f"  clean labels: {result['clean_annotations']}")
        print(f"  record of every injected error: {result['noise_record']}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from labeltool.core.stats import project_stats
    from labeltool.core.store import Project
    from labeltool.jobs.demo import demo_job

    if not args.json and args.train_minutes > 0:
        print(f"demo: generate {args.images} images, build a project, train {args.train_minutes:g} min, "
              "evaluate", file=sys.stderr)
    result = _run(demo_job(Path(args.dir), n_images=args.images, noise=args.noise, seed=args.seed,
                           train_minutes=args.train_minutes), args)
    with Project.open(result["project"]) as project:
        stats = project_stats(project)
    if args.json:
        print(json.dumps({"event": "result", **result, "stats": stats}))
    else:
        print(format_stats(stats))
        trained = result.get("train")
        if trained:
            print(f"\ntrained the '{trained['weights']['kind']}'-initialised edge model for "
                  f"{trained['epochs_done']} epochs ({trained['wall_s']:.0f} s):")
            _print_eval(trained["eval"], None)
        print(f"\ndemo dataset: {result['dataset']}  (injected label errors: {result['noise_record']})")
        print(f"demo project: {result['project']}")
        print(f"next: labeltool evaluate {result['project']}   ·   python app.py {result['project']}")
    return EXIT_OK


def _print_result(args: argparse.Namespace, result: dict[str, Any]) -> None:
    print(json.dumps({"event": "result", **result}))


def cmd_train(args: argparse.Namespace) -> int:
    from labeltool.jobs.model import train_job

    options = {"preset": args.preset, "epochs": args.epochs, "minutes": args.minutes, "seed": args.seed,
               "weights_file": Path(args.weights) if args.weights else None, "allow_network": args.allow_download,
               "balanced": args.balanced, "device": args.device, "batch_size": args.batch_size, "lr": args.lr,
               "image_size": args.image_size}
    if not args.json:
        budget = (f"{args.epochs} epochs" if args.epochs else
                  f"{args.minutes:g} minutes" if args.minutes else "the default budget (10 min on CPU)")
        print(f"training preset '{args.preset}' for {budget}; Ctrl+C cancels and leaves no run behind",
              file=sys.stderr)
    result = _run(train_job(Path(args.dir), **options), args)
    if args.json:
        _print_result(args, result)
        return EXIT_OK
    _print_eval(result["eval"], result.get("previous"))
    print(f"\nrun {result['run_id']} saved in {result['run_dir']} ({result['epochs_done']} epochs, "
          f"{result['images_per_s']:.1f} images/s, {result['wall_s']:.0f} s); it is now the current model")
    return EXIT_OK


def _print_eval(eval_dict: dict[str, Any], previous: dict[str, Any] | None) -> None:
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
        _print_eval(result, result.get("previous"))
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


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labeltool", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("new", cmd_new, "create an empty project folder")
    p.add_argument("dir", metavar="DIR")

    p = add("import", cmd_import, "import images and labels (COCO JSON, YOLO, Pascal VOC, or a plain image folder)")
    p.add_argument("dir", metavar="DIR", help="project folder")
    p.add_argument("source", metavar="SOURCE", help="COCO .json, YOLO data.yaml or folder, VOC folder, image folder")
    p.add_argument("--format", choices=("coco", "yolo", "voc", "folder"), help="default: detected from SOURCE")
    p.add_argument("--strict", action="store_true", help="stop without importing anything if any record is bad")
    p.add_argument("--link", action="store_true", help="hard-link images instead of copying (same disk only)")
    p.add_argument("--json", action="store_true", help="progress and result as JSON lines")

    p = add("export", cmd_export, "export the project's labels and images")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("dest", metavar="DEST", help="new or empty folder")
    p.add_argument("--format", choices=("coco", "yolo", "voc"), required=True)
    p.add_argument("--include-unlabeled", action="store_true", help="also export images nobody has labeled yet")

    p = add("stats", cmd_stats, "images, labeled/unlabeled, boxes per class, box sizes")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--json", action="store_true")

    p = add("demo-data", cmd_demo_data, "write a synthetic 'parts with defects' COCO dataset with injected label noise")
    p.add_argument("dest", metavar="DEST")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--noise", type=float, default=0.1, help="fraction of boxes to corrupt (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")

    p = add("train", cmd_train, "fine-tune the detector on the project's labels (the run becomes the current model)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--preset", default="edge", help="edge (default, MobileNetV3), balanced (ResNet-18), accurate (ResNet-50)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="train for N epochs (early stopping may end sooner)")
    budget.add_argument("--minutes", type=float, help="train for M minutes (default on CPU: 10)")
    p.add_argument("--weights", metavar="FILE", help="pretrained backbone weights (.safetensors); default: models/ then cache")
    p.add_argument("--allow-download", action="store_true", help="download pretrained weights when not found locally")
    p.add_argument("--balanced", action="store_true", help="class-balanced sampling (rare classes seen more often)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--image-size", type=int, help="override the preset's input size (px)")
    p.add_argument("--json", action="store_true", help="one JSON event per line")

    p = add("evaluate", cmd_evaluate, "score a run on the validation images (mAP, per-class AP, confusion)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--run", type=int, help="run id (default: the current model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")

    p = add("predict", cmd_predict, "store the model's boxes for the images (pre-labels), apart from your labels")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--run", type=int, help="run id (default: the current model)")
    p.add_argument("--unlabeled-only", action="store_true", help="only images nobody has labeled yet")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")

    p = add("runs", cmd_runs, "list training runs (* = current model)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--json", action="store_true")

    p = add("demo", cmd_demo, "the main job on built-in demo data: generate, import, train briefly, evaluate")
    p.add_argument("dir", metavar="DIR", nargs="?", default="labeltool-demo")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--train-minutes", type=float, default=4.0, help="training budget (0: skip training)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Libraries' log warnings (timm's "unexpected keys" etc.) would repeat what the CLI already says.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
    try:
        return int(args.func(args))
    except sqlite3.Error as exc:  # a query outside core's translated paths
        if os.environ.get("LABELTOOL_DEBUG"):
            raise
        print(f"error: project database: {exc}. The project may be damaged; restore project.db from a "
              "backup (project.db.bak-*) or re-import into a new project.", file=sys.stderr)
        return EXIT_ERROR
    except (LabeltoolError, ValueError, OSError) as exc:
        # LabeltoolError: user-facing by construction. ValueError: a public function rejected an
        # option value and named it. OSError: the disk said no (full, permissions, missing path).
        if os.environ.get("LABELTOOL_DEBUG"):
            raise
        message = str(exc)
        if isinstance(exc, OSError) and not isinstance(exc, LabeltoolError):
            message = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; the project is unchanged by the interrupted step", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
