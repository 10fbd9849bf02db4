"""Bring a LabelSet (read by core/formats) into a project: check, copy, write in one edit.

The import is a job: a generator that yields :class:`Progress` and returns an
:class:`ImportSummary`. Problems with single images or boxes go into the report and are skipped
(``strict=True`` turns any error into an :class:`ImportFormatError` before anything is written).
A failing or cancelled import leaves the project as it was: copied files are removed again and
the database is written in a single transaction at the very end.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from . import config
from .class_names import class_name_problem
from .errors import ImageLoadError, ImportFormatError
from .formats.common import check_box, parse_number, safe_relpath
from .images import file_sha256, verify_image
from .labels import BoxRecord, ImageRecord, LabelSet, Report
from .leftovers import incoming_name
from .progress import Progress
from .store import Project, now_iso

LinkMode = Literal["copy", "link"]
MAX_NAME_BYTES = 200  # per path part: 255 on common file systems, less the temp/duplicate suffixes
_STOP_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # these stop the whole import
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass(slots=True)
class ImportSummary:
    """What an import did. ``report`` lists every skipped record (error) and every fix-up (warning)."""

    images_added: int = 0
    images_labeled_existing: int = 0  # already in the project (same content); their boxes were added
    images_skipped: int = 0
    boxes_added: int = 0
    boxes_skipped: int = 0
    classes_added: list[str] = field(default_factory=list)
    report: Report = field(default_factory=Report)


@dataclass(slots=True)
class _Planned:
    record: ImageRecord
    sha256: str
    width: int
    height: int
    boxes: list[BoxRecord]
    dest_rel: str | None  # project-relative path for a new image; None when attaching to an existing one
    existing_id: int | None = None


def _unique_dest(rel: PurePosixPath, taken: set[str], root: Path) -> str:
    """``images/<rel>``, with ``_2``, ``_3`` … appended to the stem when that name is taken."""
    candidate = f"{config.IMAGES_DIRNAME}/{rel.as_posix()}"
    n = 1
    # case-insensitive: on Windows/macOS "A.png" and "a.png" are the same file
    while candidate.casefold() in taken or (root / candidate).exists():
        n += 1
        candidate = f"{config.IMAGES_DIRNAME}/{rel.with_name(f'{rel.stem}_{n}{rel.suffix}').as_posix()}"
    taken.add(candidate.casefold())
    return candidate


def import_labelset(
    project: Project,
    labels: LabelSet,
    *,
    report: Report | None = None,
    mode: LinkMode = "copy",
    strict: bool = False,
    contain: Path | None = None,
) -> Generator[Progress, None, ImportSummary]:
    """Check, copy and write ``labels`` into ``project``; yields Progress, returns ImportSummary.

    ``report``: entries from the reader (kept in the summary). ``mode``: 'copy' the files into
    ``images/``, or 'link' them (hard link; falls back to a copy across file systems). ``contain``:
    images whose real path (links followed) is outside this folder are skipped.
    """
    contain = None if contain is None else Path(contain).resolve()
    if mode not in ("copy", "link"):
        raise ValueError(f"mode must be 'copy' or 'link', got {mode!r}")
    summary = ImportSummary(report=report if report is not None else Report())
    rep = summary.report
    total = len(labels.images)
    yield Progress("check", 0, total, "checking images")

    conn = project.connection
    taken = {row[0].casefold() for row in conn.execute("SELECT path FROM images")}
    labeled_ids = {row[0] for row in conn.execute("SELECT DISTINCT image_id FROM boxes")}
    seen_hash: dict[str, str] = {}
    planned: list[_Planned] = []
    for i, record in enumerate(labels.images):
        if i % 50 == 0 and i:
            yield Progress("check", i, total, record.file_name)
        plan = _plan_image(project, record, rep, seen_hash=seen_hash, taken=taken, labeled_ids=labeled_ids,
                           contain=contain)
        if plan is None:
            summary.images_skipped += 1
            summary.boxes_skipped += len(record.boxes)
        else:
            summary.boxes_skipped += len(record.boxes) - len(plan.boxes)
            planned.append(plan)
    yield Progress("check", total, total, "checked")

    if strict and rep.errors:
        shown = "\n".join(f"  {e}" for e in rep.errors[:10])
        more = f"\n  … and {len(rep.errors) - 10} more" if len(rep.errors) > 10 else ""
        raise ImportFormatError(
            f"import stopped (--strict): {len(rep.errors)} problem(s), nothing was imported:\n{shown}{more}\n"
            "Fix these records or import without --strict to skip them."
        )

    # Copies go to temporary names and are renamed into place after the commit: a crash before it
    # leaves only temp files, one after it leaves temp files a committed row names; whoever next takes
    # the project's writer lock deletes the first and finishes the second (core/leftovers.py).
    created: list[tuple[Path, Path]] = []  # (temp, final)
    done = False
    try:
        new = [p for p in planned if p.dest_rel is not None]
        kept: list[_Planned] = []
        for i, plan in enumerate(new):
            if i % 50 == 0:
                yield Progress("copy", i, len(new), plan.record.file_name)
            assert plan.record.source is not None and plan.dest_rel is not None  # set by _plan_image
            target = project.root / plan.dest_rel
            temp = incoming_name(target)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                _place(plan.record.source, temp, mode=mode)
            except OSError as exc:
                temp.unlink(missing_ok=True)
                if exc.errno in _STOP_ERRNOS:  # the disk, not this file: stop, nothing is written
                    raise ImportFormatError(f"cannot copy {plan.record.file_name} into {project.root}: "
                                            f"{exc.strerror or exc}. Free some space and import again; "
                                            "nothing was imported.") from exc
                rep.error(plan.record.file_name, "file", f"cannot copy the file ({exc.strerror or exc}); image skipped")
                summary.images_skipped += 1
                summary.boxes_skipped += len(plan.boxes)
                continue
            created.append((temp, target))
            kept.append(plan)
        planned = [p for p in planned if p.dest_rel is None] + kept
        yield Progress("copy", len(new), len(new), "files in place")
        yield Progress("write", 0, 1, "writing the project database")
        _write(project, labels, planned, summary)
        done = True  # committed: from here on the copied files belong to the project
        for temp, target in created:
            os.replace(temp, target)
        yield Progress("write", 1, 1, "done")
    finally:
        if not done:
            for temp, _ in created:
                temp.unlink(missing_ok=True)
    return summary


def _plan_image(
    project: Project,
    record: ImageRecord,
    rep: Report,
    *,
    seen_hash: dict[str, str],
    taken: set[str],
    labeled_ids: set[int],
    contain: Path | None = None,
) -> _Planned | None:
    name = record.file_name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = name.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        rep.error(shown, "file_name", "the file name is not valid text in any encoding labeltool can store "
                  "(bytes from another system's code page); rename the file and import it again; image skipped")
        return None
    try:
        rel = PurePosixPath(safe_relpath(name))
    except ValueError as exc:
        rep.error(name, "file_name", f"{exc}; image skipped")
        return None
    too_long = next((part for part in rel.parts if len(part.encode("utf-8")) > MAX_NAME_BYTES), None)
    if too_long is not None:
        rep.error(name, "file_name", f"a name in the path has {len(too_long.encode('utf-8'))} bytes; at most "
                  f"{MAX_NAME_BYTES} can be stored on every file system. Rename it; image skipped")
        return None
    if record.source is None or not record.source.exists():
        rep.error(name, "file_name", f"image file not found ({record.source}); image skipped")
        return None
    if contain is not None and not _inside(record.source, contain):
        rep.error(name, "file_name", f"the file is outside the dataset folder {contain} (reached through "
                  f"{'a link' if record.source.is_symlink() else 'a path in the dataset file'}: "
                  f"{record.source.resolve()}); image skipped. Pass --allow-outside to import it anyway")
        return None
    try:
        info = verify_image(record.source)
        digest = file_sha256(record.source)
    except ImageLoadError as exc:
        rep.error(name, "image", f"{exc.reason}; image skipped")
        return None
    except OSError as exc:
        rep.error(name, "image", f"cannot read the file ({exc.strerror or exc}); image skipped")
        return None
    if digest in seen_hash:
        rep.error(name, "image", f"same content as {seen_hash[digest]} earlier in this import; duplicate skipped")
        return None
    seen_hash[digest] = name
    if record.width is not None and record.height is not None and (record.width, record.height) != (
        info.width,
        info.height,
    ):
        rep.warning(
            name,
            "width/height",
            f"declared size {record.width}x{record.height} differs from the image's {info.width}x{info.height}"
            + (" (EXIF rotation?)" if (record.height, record.width) == (info.width, info.height) else "")
            + "; boxes were checked against the real size — review them",
        )
    boxes = []
    for j, box in enumerate(record.boxes):
        problem = class_name_problem(box.label)
        if problem is not None:
            rep.error(name, f"boxes[{j}]", f"{problem}; box skipped. Rename the class in the dataset file "
                      f"(labeltool classes can rename classes already in a project)")
            continue
        try:
            coords = [parse_number(v) for v in (box.x1, box.y1, box.x2, box.y2)]
        except ValueError as exc:
            rep.error(name, f"boxes[{j}]", f"{exc}; box skipped")
            continue
        checked = check_box(box.label, *coords, width=info.width, height=info.height, report=rep,
                            file=name, field=f"boxes[{j}]")
        if checked is not None:
            boxes.append(checked)
    existing = project.image_by_sha256(digest)
    if existing is not None:
        if existing.id in labeled_ids and boxes:
            rep.warning(
                name, "image", f"already in the project as {existing.path} with labels; its {len(boxes)} box(es) "
                "were not added again"
            )
            boxes = []
        elif not boxes:
            rep.warning(name, "image", f"already in the project as {existing.path}; skipped")
        return _Planned(record, digest, existing.width, existing.height, boxes, None, existing.id)
    dest = _unique_dest(rel, taken, project.root)
    return _Planned(record, digest, info.width, info.height, boxes, dest)


def _inside(path: Path, folder: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(folder)
    except (OSError, RuntimeError):  # a link loop
        return False


def _place(source: Path, target: Path, *, mode: LinkMode) -> None:
    if mode == "link":
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # other file system or no hard links there: fall back to a copy
    shutil.copy2(source, target)


def _write(project: Project, labels: LabelSet, planned: list[_Planned], summary: ImportSummary) -> None:
    """One edit: new classes, new images and all boxes."""
    wanted = list(labels.classes) + sorted({b.label for p in planned for b in p.boxes} - set(labels.classes))
    for name in wanted:
        problem = class_name_problem(name)
        if problem is not None:  # boxes of it were skipped while planning
            summary.report.error("classes", repr(name)[:80], f"{problem}; class not added")
    wanted = [n for n in wanted if class_name_problem(n) is None]
    with project.edit(f"import {len(planned)} images") as e:
        class_ids = {c.name: c.id for c in project.classes()}
        position = max((c.position for c in project.classes()), default=-1) + 1
        for name in wanted:
            if name not in class_ids:
                class_ids[name] = e.insert(
                    "classes",
                    {"name": name, "color": config.CLASS_COLORS[position % len(config.CLASS_COLORS)],
                     "position": position},
                )
                summary.classes_added.append(name)
                position += 1
        ts = now_iso()
        for plan in planned:
            if plan.existing_id is None:
                split = _SPLIT_ALIASES.get((plan.record.split or "").lower())
                if plan.record.split and split is None:
                    summary.report.warning(plan.record.file_name, "split", f"unknown split {plan.record.split!r}; left unassigned")
                image_id = e.insert(
                    "images",
                    {"path": plan.dest_rel, "sha256": plan.sha256, "width": plan.width, "height": plan.height,
                     "split": split, "added_at": ts, "origin": str(plan.record.source),
                     "labeled": int(plan.record.labeled or bool(plan.boxes))},
                )
                summary.images_added += 1
            else:
                image_id = plan.existing_id
                if plan.boxes or plan.record.labeled:
                    e.update("images", image_id, labeled=1)
                if plan.boxes:
                    summary.images_labeled_existing += 1
            for box in plan.boxes:
                e.insert(
                    "boxes",
                    {"image_id": image_id, "class_id": class_ids[box.label],
                     "x1": box.x1, "y1": box.y1, "x2": box.x2, "y2": box.y2},
                )
                summary.boxes_added += 1
