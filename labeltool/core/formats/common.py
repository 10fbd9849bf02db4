"""Helpers shared by the format readers and writers: safe relative paths, number parsing, box checks,
image sizes, atomic writes and the export preamble.

Boxes are absolute pixel ``x1, y1, x2, y2`` floats (see ``core/labels.py``); every format converts
to/from that form here or in its own module.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from labeltool.core import config
from labeltool.core.errors import ExportError, ImageLoadError
from labeltool.core.images import iter_image_files, probe_image
from labeltool.core.labels import BoxRecord, ImageRecord, LabelSet, Report

_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_relpath(name: object) -> str:
    """Return ``name`` as a normalised '/'-separated relative path, or raise ``ValueError``.

    Refused (the file is then never opened): non-strings, empty names, absolute paths ('/x', '\\\\x'),
    drive letters ('C:x'), any '..' component (with '/' or '\\' separators) and NUL characters.
    Backslashes are treated as separators; '.' components and repeated separators are dropped.
    """
    if not isinstance(name, str):
        raise ValueError(f"file name must be a string, got {type(name).__name__} ({name!r})")
    if not name.strip():
        raise ValueError("file name is empty")
    if "\x00" in name:
        raise ValueError(f"file name {name!r} contains a NUL character")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        raise ValueError(f"file name {name!r} is an absolute path; only paths inside the dataset are allowed")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"file name {name!r} points outside the dataset folder ('..'); refused")
    if not parts:
        raise ValueError(f"file name {name!r} names no file")
    return "/".join(parts)


def parse_number(value: object) -> float:
    """A finite float from an int, float or numeric string; ``ValueError`` (reason in words) otherwise.

    ``bool`` and ``None`` are refused (JSON ``true`` is not a coordinate).
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise ValueError(f"{value!r} is not a number")
    if math.isnan(number):
        raise ValueError("value is NaN (not a number)")
    if math.isinf(number):
        raise ValueError("value is infinite")
    return number


def parse_size(value: object) -> int | None:
    """An image side in pixels: a positive whole number (int, integral float or string), else ``None``."""
    try:
        number = parse_number(value)
    except ValueError:
        return None
    if number <= 0 or number != int(number):
        return None
    return int(number)


def fmt_box(x1: float, y1: float, x2: float, y2: float) -> str:
    """'x1, y1, x2, y2' with up to 6 significant digits, for messages."""
    return ", ".join(f"{v:g}" for v in (x1, y1, x2, y2))


def check_box(
    label: str,
    x1: float,
    y1: float,
    x2: float,
    y2: float,
    *,
    width: int | None,
    height: int | None,
    report: Report,
    file: str,
    field: str,
    original: str = "",
) -> BoxRecord | None:
    """Validate one xyxy pixel box against a ``width`` x ``height`` image; return it (clipped) or ``None``.

    Errors (returns ``None``): zero/negative width or height, box entirely outside the image, a side
    shorter than ``config.MIN_BOX_SIDE_PX`` after clipping. Warning: the box reaches more than
    ``config.CLIP_TOLERANCE_PX`` outside the image (it is clipped; smaller overshoots are clipped
    silently). ``original`` describes the values as written in the file, for messages.
    """
    what = original or f"box ({fmt_box(x1, y1, x2, y2)})"
    if x2 <= x1 or y2 <= y1:
        report.error(
            file, field, f"{what} has zero or negative width/height ({x2 - x1:g} x {y2 - y1:g} px); skipped"
        )
        return None
    if width is not None and height is not None:
        if x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0:
            report.error(file, field, f"{what} lies entirely outside the {width}x{height} image; skipped")
            return None
        overshoot = max(-x1, -y1, x2 - width, y2 - height, 0.0)
        x1, y1 = max(x1, 0.0), max(y1, 0.0)
        x2, y2 = min(x2, float(width)), min(y2, float(height))
    else:
        overshoot = 0.0
    if x2 - x1 < config.MIN_BOX_SIDE_PX or y2 - y1 < config.MIN_BOX_SIDE_PX:
        clipped = " after clipping to the image" if overshoot > 0 else ""
        report.error(
            file,
            field,
            f"{what} is smaller than {config.MIN_BOX_SIDE_PX:g} px ({x2 - x1:g} x {y2 - y1:g} px{clipped}); "
            "skipped",
        )
        return None
    if overshoot > config.CLIP_TOLERANCE_PX:
        report.warning(
            file,
            field,
            f"{what} reaches {overshoot:.1f} px outside the {width}x{height} image; clipped to "
            f"({fmt_box(x1, y1, x2, y2)})",
        )
    return BoxRecord(label, float(x1), float(y1), float(x2), float(y2))


def read_image_info(path: Path) -> tuple[int, int, int]:
    """``(width, height, bands)`` of an image as displayed: EXIF orientations 5-8 swap width and height.

    Reads only the header (via ``core.images.probe_image``). Raises ``ValueError`` with the reason
    when the file is unreadable or not an image.
    """
    try:
        info = probe_image(path)
    except ImageLoadError as exc:
        raise ValueError(exc.reason) from exc
    return info.width, info.height, Image.getmodebands(info.mode)


def is_image_file(path: Path) -> bool:
    """True for a non-hidden file whose extension is in ``config.IMAGE_EXTENSIONS`` (any case)."""
    return path.suffix.lower() in config.IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(root: Path) -> list[Path]:
    """All image files under ``root``, recursively, sorted; hidden files/folders (".x") are skipped."""
    return iter_image_files(root) if Path(root).is_dir() else []


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` ('/'-separated) when it is inside it, else the full path."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")  # open() honours the umask
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def prepare_dest(dest: Path) -> Path:
    """Create the export folder ``dest``; ``ExportError`` when it is a file or a non-empty folder."""
    dest = Path(dest)
    if dest.exists():
        if not dest.is_dir():
            raise ExportError(f"{dest} is a file, not a folder. Pick an empty folder to export into.")
        if any(dest.iterdir()):
            raise ExportError(
                f"{dest} is not empty. Pick an empty folder (or a new folder name) to export into; "
                "nothing was written."
            )
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the export folder {dest}: {exc}. Pick another folder.") from exc
    return dest


def copy_image(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` with metadata (``shutil.copy2``); ``ExportError`` on failure.

    The copy is made writable for its owner (copy2 would carry over a read-only source's mode, and a
    read-only export folder cannot be cleaned up on Windows).
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        mode = target.stat().st_mode
        if not mode & stat.S_IWUSR:
            target.chmod(mode | stat.S_IWUSR)
    except OSError as exc:
        raise ExportError(f"cannot copy {source} to {target}: {exc}. Check free disk space.") from exc


@dataclass(slots=True)
class ExportImage:
    """An image checked for export: safe ``file_name``, existing ``source``, known size, valid boxes."""

    file_name: str
    source: Path
    width: int
    height: int
    split: str | None
    boxes: list[BoxRecord] = field(default_factory=list)
    labeled: bool = True


def check_classes(classes: list[str]) -> None:
    """``ValueError`` unless ``classes`` are unique, non-empty strings without line breaks."""
    seen: set[str] = set()
    for name in classes:
        if not isinstance(name, str) or not name.strip() or "\n" in name or "\r" in name:
            raise ValueError(f"class name {name!r} is not valid (empty or with a line break)")
        if name in seen:
            raise ValueError(f"class name {name!r} appears twice in the class list")
        seen.add(name)


def export_images(labels: LabelSet, report: Report) -> list[ExportImage]:
    """Check every image of ``labels`` for export; bad images/boxes are reported (file = file_name).

    Skipped with an error: unsafe or duplicate file names, missing source files, unreadable sizes,
    boxes with unknown classes or invalid coordinates. Boxes slightly outside the image are clipped.
    """
    check_classes(labels.classes)
    known = set(labels.classes)
    result: list[ExportImage] = []
    seen: set[str] = set()
    for rec in labels.images:
        out = _export_image(rec, known, seen, report)
        if out is not None:
            result.append(out)
    return result


def _export_image(rec: ImageRecord, known: set[str], seen: set[str], report: Report) -> ExportImage | None:
    try:
        name = safe_relpath(rec.file_name)
    except ValueError as exc:
        report.error(str(rec.file_name), "file_name", f"{exc}; image not exported")
        return None
    if name in seen:
        report.error(name, "file_name", "a second image has the same file name; it was not exported")
        return None
    seen.add(name)
    if rec.source is None or not Path(rec.source).is_file():
        report.error(name, "source", f"image file {rec.source} not found; image not exported")
        return None
    width, height = rec.width, rec.height
    if not width or not height:
        try:
            width, height, _ = read_image_info(Path(rec.source))
        except (OSError, ValueError) as exc:
            report.error(name, "source", f"cannot read the image size ({exc}); image not exported")
            return None
    out = ExportImage(name, Path(rec.source), int(width), int(height), rec.split, labeled=rec.labeled)
    for i, box in enumerate(rec.boxes):
        where = f"boxes[{i}]"
        if box.label not in known:
            report.error(name, where, f"class {box.label!r} is not in the class list; box not exported")
            continue
        try:
            coords = [parse_number(v) for v in (box.x1, box.y1, box.x2, box.y2)]
        except ValueError as exc:
            report.error(name, where, f"{exc}; box not exported")
            continue
        checked = check_box(box.label, *coords, width=out.width, height=out.height, report=report,
                            file=name, field=where)
        if checked is not None:
            out.boxes.append(checked)
    return out
