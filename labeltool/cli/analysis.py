"""Label-quality commands: analyze, issues (list / accept / reject), report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from labeltool.core.issue_types import type_names

from .common import EXIT_OK
from .common import run_job as _run

FIX_WORDS = {"add_box": "add a '{cls}' box", "set_class": "change '{old}' to '{cls}'",
             "move_box": "snap the box", "delete_box": "delete the box"}


def cmd_analyze(args: argparse.Namespace) -> int:
    from labeltool.jobs.analysis import analyze_job

    result = _run(analyze_job(Path(args.dir), folds=args.folds, quick=args.quick, preset=args.preset,
                              minutes_per_fold=args.minutes_per_fold, epochs_per_fold=args.epochs_per_fold,
                              seed=args.seed, device=args.device,
                              weights_file=Path(args.weights) if args.weights else None,
                              image_size=args.image_size), args)
    if args.json:
        print(json.dumps({"event": "result", **result}))
        return EXIT_OK
    for note in result["notes"]:
        print(f"NOTE: {note}")
    th = result["thresholds"]
    print(f"analysis {result['analysis_id']} ({result['mode']}): {result['counts']['recorded']} suspected label "
          f"errors ({result['counts'].get('suppressed_rejected', 0)} you rejected before were not raised again)")
    print(f"thresholds used: confident score {th['high']:.2f}, low score {th['low']:.2f}, spurious support "
          f"{th['spurious']:.2f} — {th['source']}")
    _print_top_issues(Path(args.dir), limit=10)
    print()
    print(format_weak_classes(result["weak_classes"]))
    print(f"\nnext: labeltool issues {args.dir}   ·   labeltool report {args.dir} report.html")
    return EXIT_OK


def format_weak_classes(rows: list[dict[str, Any]]) -> str:
    """The weak-class table for a terminal."""
    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    head = f"{'class':<14}{'boxes':>6}{'images':>7}{'AP50':>6}{'quality':>8}  {'confused with':<14}recommendation"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['class']:<14}{r['boxes']:>6}{r['images']:>7}{num(r['ap50']):>6}{num(r['label_quality']):>8}  "
                     f"{(r['confused_with'] or '-'):<14}{r['recommendation']}")
    lines.append("")
    lines += [f"  {r['class']}: {r['reason']}" for r in rows if r["recommendation"] != "ok"]
    return "\n".join(lines)


IMPACT_HEADER = "biggest expected model gain first: gain = (1 - score) x the headroom (1 - out-of-sample AP) of the class"


def issue_listing(project_dir: Path, *, types: list[str] | None = None, classes: list[str] | None = None,
                  status: str | None = "open", order: str = "likely") -> tuple[list[dict[str, Any]], str | None]:
    """Issues of the latest analysis as JSON-able dicts (id, type, score, impact, image, box, suggested fix),
    and for the impact order a line saying what they are ordered by (the gain, or why not; else None)."""
    from labeltool.core.issue_order import issue_impacts, issue_queue
    from labeltool.core.queries import box_xyxy
    from labeltool.core.store import Project

    with Project.open(project_dir) as project:
        names = {c.id: c.name for c in project.classes()}
        queue = issue_queue(project, order=order, types=types, class_names=classes, status=status)
        found = queue.issues
        gain = queue.gains if queue.gains is not None else issue_impacts(None, found)  # no headroom: 1 - score
        header = (IMPACT_HEADER if queue.note is None else queue.note) if order == "impact" else None
        out = []
        for issue in found:
            image = project.image(issue.image_id)
            box = None
            if issue.box_id is not None:
                box = box_xyxy(project, issue.box_id)
            fix = dict(issue.fix)
            if "class_id" in fix:
                fix["class"] = names.get(fix["class_id"])
            old = names.get(issue.class_id) if issue.class_id is not None else None
            fix["words"] = FIX_WORDS[fix["action"]].format(cls=fix.get("class"), old=old)
            out.append({"id": issue.id, "type": issue.type, "score": round(issue.score, 4),
                        "impact": round(gain[issue.id], 4),
                        "image": image.path, "image_id": image.id, "box_id": issue.box_id, "box": box,
                        "class": old, "status": issue.status, "fix": fix})
    return out, header


def _print_top_issues(project_dir: Path, *, limit: int) -> None:
    rows, _ = issue_listing(project_dir)
    if not rows:
        print("no suspected label errors")
        return
    print(f"\ntop {min(limit, len(rows))} of {len(rows)} open issues (lowest score = most likely an error):")
    for r in rows[:limit]:
        print(f"  #{r['id']:<5} {r['type']:<10} {r['score']:.3f}  {r['image']:<32} {r['fix']['words']}")


def cmd_issues(args: argparse.Namespace) -> int:
    from labeltool.core.issues import accept_issues, reject_issues
    from labeltool.core.store import Project

    if args.action in ("accept", "reject"):
        if not args.ids:
            raise ValueError(f"give the issue ids to {args.action}, e.g. `labeltool issues DIR {args.action} 12 15`")
        with Project.open(args.dir) as project:
            (accept_issues if args.action == "accept" else reject_issues)(project, args.ids)
        print(f"{args.action}ed {len(args.ids)} issue(s); undo with Ctrl+Z in the GUI")
        return EXIT_OK
    if args.ids:
        raise ValueError("issue ids are only used with accept or reject")
    rows, header = issue_listing(Path(args.dir), types=args.type, classes=args.cls,
                                 status=None if args.status == "all" else args.status, order=args.order)
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return EXIT_OK
    if not rows:
        print("no issues match")
    elif args.order == "impact":
        print(header)
    for r in rows:
        gain = f"gain {r['impact']:.3f}  " if args.order == "impact" else ""
        print(f"#{r['id']:<5} {r['type']:<10} score {r['score']:.3f}  {gain}{r['status']:<9} {r['image']:<32} "
              f"{r['class'] or '':<12} {r['fix']['words']}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from labeltool.core.report import write_report
    from labeltool.core.store import Project

    with Project.open(args.dir) as project:
        out = write_report(project, Path(args.out), max_issues=args.max_issues)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return EXIT_OK


def add_parsers(add: Any) -> None:
    """Register analyze / issues / report on the main parser (``add(name, func, help)``)."""
    p = add("analyze", cmd_analyze, "find inconsistent labels and weak classes (cleanlab + own checks)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--folds", type=int, default=3, help="K for the out-of-sample predictions (default 3)")
    p.add_argument("--quick", action="store_true", help="reuse the current model in-sample (fast, less reliable)")
    p.add_argument("--preset", help="detector preset for the fold models (default: edge)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes-per-fold", type=float, help="default: 12 min in all on a CPU")
    budget.add_argument("--epochs-per-fold", type=int)
    p.add_argument("--weights", metavar="FILE", help="pretrained backbone weights for the fold models")
    p.add_argument("--image-size", type=int, help="override the preset's input size (px)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")

    p = add("issues", cmd_issues, "list the issue queue, or accept / reject issues by id")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("action", nargs="?", choices=("list", "accept", "reject"), default="list")
    p.add_argument("ids", nargs="*", type=int, metavar="ISSUE_ID")
    p.add_argument("--type", action="append", choices=type_names())
    p.add_argument("--class", dest="cls", action="append", metavar="C")
    p.add_argument("--status", default="open", choices=("open", "accepted", "rejected", "superseded", "all"))
    p.add_argument("--order", default="likely", choices=("likely", "impact"),
                   help="likely: most likely label errors first (default); impact: biggest expected model gain "
                        "first (likely errors in the classes the model finds worst)")
    p.add_argument("--json", action="store_true", help="one JSON object per issue")

    p = add("report", cmd_report, "write a self-contained HTML report (and JSON) of the latest analysis")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("out", metavar="OUT.html")
    p.add_argument("--max-issues", type=int, default=100)
