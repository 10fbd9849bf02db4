"""Data commands: new, import, export, stats, demo-data, demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_OK
from .common import run_job as _run


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
                   mode="link" if args.link else "copy", allow_outside=args.allow_outside, wait_s=args.wait),
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


DEMO_OTHER_STEPS_MINUTES = 3.5  # import, scoring, review, augmentation, fine-tune, export + verify (measured)


def cmd_demo(args: argparse.Namespace) -> int:
    from labeltool.core.stats import project_stats
    from labeltool.core.store import Project
    from labeltool.jobs.demo import demo_job

    if not args.json and args.train_minutes > 0:
        budget = args.train_minutes + args.analyze_minutes
        print(f"demo: the whole loop on {args.images} generated images with {args.noise:.0%} label noise: train "
              f"{args.train_minutes:g} min → analyze the labels {args.analyze_minutes:g} min → review the top "
              f"{args.review} suspected errors → augment the weak classes → fine-tune {args.finetune_epochs} epochs"
              + ("" if args.no_export else " → export + verify an edge bundle")
              + f"; about {budget + DEMO_OTHER_STEPS_MINUTES:.0f} min in all on an idle 2-core CPU. The detector "
              "starts from the ImageNet EfficientNet-Lite0 backbone installed with labeltool (nothing to download).",
              file=sys.stderr)
    result = _run(demo_job(Path(args.dir), n_images=args.images, noise=args.noise, seed=args.seed,
                           train_minutes=args.train_minutes, analyze_minutes=args.analyze_minutes,
                           finetune_epochs=args.finetune_epochs, review=args.review,
                           export=not args.no_export, allow_download=not args.offline), args)
    with Project.open(result["project"]) as project:
        stats = project_stats(project)
    if args.json:
        print(json.dumps({"event": "result", **result, "stats": stats}))
    else:
        print_demo(result, stats)
    return EXIT_OK


def print_demo(result: dict[str, Any], stats: dict[str, Any]) -> None:
    """What ``labeltool demo`` prints at the end: each step's result, the before/after table, paths."""
    from .model import print_eval

    print(format_stats(stats))
    trained = result.get("train")
    if trained:
        start = {"random": "randomly initialised", "download": "pretrained (just downloaded)"}.get(
            trained["weights"]["kind"], "pretrained")
        print(f"\n1. first model: the {start} edge detector trained "
              f"{trained['epochs_done']} epochs ({trained['wall_s']:.0f} s) on the noisy labels:")
        print_eval(trained["eval"], None)
    analysis = result.get("analysis")
    if analysis:
        from .analysis import format_weak_classes

        print(f"\n2. label-quality analysis {analysis['analysis_id']} ({analysis['folds']}-fold, out-of-sample): "
              f"{analysis['counts']['recorded']} suspected label errors")
        for note in analysis["notes"]:
            print(f"NOTE: {note}")
        print()
        print(format_weak_classes(analysis["weak_classes"]))
    review = result.get("review")
    if review:
        print(_format_review(review, analysis))
    augment = result.get("augment")
    if augment:
        made = ", ".join(f"{r['class']} {r.get('before', '?')}→{r.get('after', '?')}" for r in augment["per_class"])
        print(f"\n4. augment set {augment.get('set_id', '?')}: {augment['images']} derived images for "
              f"{', '.join(augment.get('classes', [])) or 'the weak classes'} ({augment.get('chosen_by', '')}); "
              f"training images per class: {made}")
    finetune = result.get("finetune")
    if finetune:
        fixed = f"the labels with {review['accepted']} fixes" if review and review.get("accepted") else "the labels"
        print(f"\n5. fine-tuned the first model for {finetune['epochs_done']} more epochs ({finetune['wall_s']:.0f} s) "
              f"on {fixed} + {finetune['n_derived']} derived images. Before (first model) → after, "
              "both on the same validation images:")
        print_eval(finetune["eval"], finetune.get("previous"))
    if result.get("verify"):
        from .edge import format_verification

        print(f"\n6. edge bundle: {result['export']['bundle']} (+ .zip); verified against PyTorch on the "
              "validation images by running its infer.py without torch:")
        print(format_verification(result["verify"]))
    print(f"\ndemo dataset: {result['dataset']}  (injected label errors: {result['noise_record']})")
    print(f"demo project: {result['project']}")
    print(f"next: python app.py {result['project']}   ·   labeltool issues {result['project']}   ·   "
          f"labeltool report {result['project']} report.html")
    if result.get("export"):
        print(f"      labeltool deploy {result['export']['bundle']} /path/to/line-pc-share   (or ssh://user@host/dir)")


def _format_review(review: dict[str, Any], analysis: dict[str, Any] | None) -> str:
    """Step 3 of the demo: what the reviewer (jobs/demo_review.py) accepted and rejected, by issue type."""
    from labeltool.jobs.analysis import WEAK_MODEL_MAP50

    if not review["taken"]:
        return "\n3. nothing to review: the analysis raised no suspected label errors."
    kinds = ", ".join(f"{t} {c['accepted']}/{c['accepted'] + c['rejected']}" for t, c in review["by_type"].items())
    skipped = [f"{review['stale']} no longer applied (an earlier fix had changed the image)" if review["stale"] else "",
               f"{review['no_truth']} on images the demo did not generate" if review["no_truth"] else ""]
    skipped_text = "; skipped " + " and ".join(x for x in skipped if x) if any(skipped) else ""
    on_errors = (f" {review['on_corrupted_images']} of the {review['taken']} were on an image with an injected "
                 "error (not always the error the fix addresses)." if "on_corrupted_images" in review else "")
    lines = [
        f"\n3. reviewed the top {review['taken']} suspected errors as you would in the window, looking at each "
        "image: the demo knows the true labels of the images it generated (dataset/annotations_clean.json), so it "
        "accepts a fix when it is right — a suggested box on a real defect is accepted and then dragged onto the "
        f"defect's edges — and rejects it otherwise. Accepted {review['accepted']} ({review['snapped']} "
        f"{'box' if review['snapped'] == 1 else 'boxes'} then adjusted; each an undoable edit), rejected {review['rejected']} (a later analysis will not raise "
        f"them again while the image's labels stay the same){skipped_text}."
        + (f" Right fixes / reviewed, per type: {kinds}." if kinds else "") + on_errors,
    ]
    if analysis and analysis.get("oof_map50", 1.0) < WEAK_MODEL_MAP50:
        lines.append(f"   The fold models were weak (held-out mAP@.5 {analysis['oof_map50']:.2f}), so many suspicions "
                     "were their own mistakes: with more analysis minutes per fold the top of the queue holds more "
                     "real errors.")
    for a in review["issues"][:10]:
        lines.append(f"  #{a['id']:<5} {a['type']:<10} {a['score']:.3f}  {a['image']:<28} {a['fix']}")
    if review["accepted"] > 10:
        lines.append(f"  … and {review['accepted'] - 10} more (`labeltool issues DIR --status accepted`)")
    return "\n".join(lines)


def cmd_classes(args: argparse.Namespace) -> int:
    """``labeltool classes DIR list|rename OLD NEW|merge SOURCE INTO|delete NAME [--with-boxes]``."""
    from labeltool.core.errors import EditError
    from labeltool.core.store import Project

    wanted = {"list": 0, "rename": 2, "merge": 2, "delete": 1}[args.action]
    if len(args.names) != wanted:
        usage = {"list": "no names", "rename": "OLD NEW", "merge": "SOURCE INTO", "delete": "NAME"}[args.action]
        print(f"error: classes {args.action} takes {usage}", file=sys.stderr)
        return 2
    with Project.open(args.dir) as project:
        by_name = {c.name: c for c in project.classes()}
        missing = [n for n in args.names[:1 if args.action == "rename" else wanted] if n not in by_name]
        if missing:
            print(f"error: no class {missing[0]!r} in {project.root}; classes: "
                  f"{', '.join(repr(n) for n in by_name) or 'none'}", file=sys.stderr)
            return 2
        try:
            if args.action == "rename":
                project.rename_class(by_name[args.names[0]].id, args.names[1])
                print(f"renamed {args.names[0]!r} to {args.names[1].strip()!r}")
            elif args.action == "merge":
                n = project.merge_classes(by_name[args.names[0]].id, by_name[args.names[1]].id)
                print(f"merged {args.names[0]!r} into {args.names[1]!r}: {n} boxes relabeled")
            elif args.action == "delete":
                n = project.delete_class(by_name[args.names[0]].id, with_boxes=args.with_boxes)
                print(f"deleted class {args.names[0]!r}" + (f" and its {n} boxes" if n else ""))
            else:
                for c in project.classes():
                    print(repr(c.name) if c.name != c.name.strip() or not c.name.isprintable() else c.name)
        except EditError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return EXIT_OK
