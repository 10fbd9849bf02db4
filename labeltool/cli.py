"""Command-line entry point: ``labeltool <command> …``.

Same jobs as the GUI. Long work shows a progress bar on stderr (or JSON lines on stdout with
``--json``). User errors exit with status 1 and a message that says what to do; no tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from labeltool.core.errors import LabeltoolError
from labeltool.core.progress import Progress

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class ProgressPrinter:
    """Renders Progress events: a one-line bar on a terminal, a line per stage otherwise, or JSON lines."""

    def __init__(self, *, json_lines: bool = False, stream: Any = None) -> None:
        self.json_lines = json_lines
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stage = ""
        self._t0 = time.monotonic()
        self._last_draw = 0.0

    def __call__(self, p: Progress) -> None:
        if self.json_lines:
            event = {"event": "progress", "stage": p.stage, "done": p.done, "total": p.total, "message": p.message}
            if p.metrics:
                event["metrics"] = p.metrics
            print(json.dumps(event), flush=True)
            return
        if p.stage != self._stage:
            if self._stage and self.tty:
                self.stream.write("\n")
            self._stage, self._t0 = p.stage, time.monotonic()
            if not self.tty:
                self.stream.write(f"[{p.stage}] {p.message}\n")
        now = time.monotonic()
        finished = p.total > 0 and p.done >= p.total
        if self.tty and (now - self._last_draw > 0.1 or finished):
            self._last_draw = now
            self.stream.write("\r" + self._line(p, now) + "\x1b[K")
        self.stream.flush()

    def _line(self, p: Progress, now: float) -> str:
        if p.total <= 0:
            return f"{p.stage:>8} {p.message[:60]}"
        frac = min(1.0, p.done / p.total)
        filled = int(frac * 30)
        elapsed = now - self._t0
        eta = f" ETA {elapsed / frac - elapsed:4.0f}s" if 0 < frac < 1 and elapsed > 1 else ""
        return f"{p.stage:>8} [{'#' * filled}{'.' * (30 - filled)}] {p.done}/{p.total}{eta} {p.message[:40]}"

    def close(self) -> None:
        if self.tty and self._stage and not self.json_lines:
            self.stream.write("\n")
            self.stream.flush()


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

    result = _run(demo_job(Path(args.dir), n_images=args.images, noise=args.noise, seed=args.seed), args)
    with Project.open(result["project"]) as project:
        stats = project_stats(project)
    if args.json:
        print(json.dumps({"event": "result", **result, "stats": stats}))
    else:
        print(format_stats(stats))
        print(f"\ndemo dataset: {result['dataset']}  (injected label errors: {result['noise_record']})")
        print(f"demo project: {result['project']}")
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

    p = add("demo", cmd_demo, "the main job on built-in demo data: generate data, create a project, show stats")
    p.add_argument("dir", metavar="DIR", nargs="?", default="labeltool-demo")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
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
