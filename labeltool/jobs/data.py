"""Data jobs: import into a project (with a report written to the project's ``logs/``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labeltool.core import formats
from labeltool.core.formats.common import write_text_atomic
from labeltool.core.ingest import ImportSummary, LinkMode, import_labelset
from labeltool.core.progress import Progress
from labeltool.core.store import Project, now_iso

from . import Job, writing


def import_job(
    project_dir: Path, source: Path, *, fmt: str | None = None, strict: bool = False, mode: LinkMode = "copy",
    allow_outside: bool = False, wait_s: float = 0.0,
) -> Job[ImportSummary]:
    """Import ``source`` into the project at ``project_dir``; writes a full report to ``logs/``.

    Images outside the dataset's folder (a YOLO ``path:`` elsewhere, links out of it) are skipped unless
    ``allow_outside``. Holds the project's writer lock (``wait_s``: how long to wait for another writer).
    """
    Project.open(project_dir).close()  # first: a wrong project path fails before anything else
    return (yield from writing(project_dir, f"import of {source}", _import(
        project_dir, Path(source), fmt=fmt, strict=strict, mode=mode, allow_outside=allow_outside), wait_s=wait_s))


def dataset_root(source: Path) -> Path:
    """The folder a dataset's images must be in: the folder given, or the annotation file's folder
    (its parent when that is ``annotations/``, the COCO/CVAT layout with a sibling ``images/``)."""
    source = Path(source).resolve()
    if source.is_dir():
        return source
    return source.parent.parent if source.parent.name == "annotations" else source.parent


def _import(project_dir: Path, source: Path, *, fmt: str | None, strict: bool, mode: LinkMode,
            allow_outside: bool) -> Job[ImportSummary]:
    with Project.open(project_dir) as project:
        yield Progress("read", 0, 0, f"reading {source}")
        labels, report, _ = formats.read_source(Path(source), fmt=fmt)
        summary = yield from import_labelset(project, labels, report=report, mode=mode, strict=strict,
                                             contain=None if allow_outside else dataset_root(source))
        log_dir = project.root / "logs"
        log = log_dir / f"import-{now_iso().replace(':', '-')}.json"
        try:  # the import itself is committed; a report that cannot be written is only a warning
            write_text_atomic(log, json.dumps({"schema_version": 1, **summary_dict(summary, source=source)},
                                              indent=2))
        except OSError as exc:
            summary.report.warning(str(log), "", f"could not write the import report ({exc.strerror or exc})")
    return summary


def summary_dict(summary: ImportSummary, *, source: Path | None = None) -> dict[str, Any]:
    return {
        "source": None if source is None else str(source),
        "images_added": summary.images_added,
        "images_labeled_existing": summary.images_labeled_existing,
        "images_skipped": summary.images_skipped,
        "boxes_added": summary.boxes_added,
        "boxes_skipped": summary.boxes_skipped,
        "classes_added": summary.classes_added,
        "errors": [_entry(e) for e in summary.report.errors],
        "warnings": [_entry(e) for e in summary.report.warnings],
    }


def _entry(e: Any) -> dict[str, str]:
    return {"severity": e.severity, "file": e.file, "field": e.field, "message": e.message}
