"""Annotation formats: readers (format -> ``LabelSet`` + ``Report``) and writers (``LabelSet`` -> folder).

Formats: ``"coco"`` (COCO detection JSON), ``"yolo"`` (Ultralytics data.yaml + txt labels), ``"voc"``
(Pascal VOC XML), ``"folder"`` (plain images, read only). Boxes in the ``LabelSet`` are absolute pixel
``x1, y1, x2, y2`` floats; the conversion to each format's box form happens only in these modules.
Readers report bad records and skip them; they raise ``ImportFormatError`` only when the source cannot
be read at all. Writers refuse a non-empty destination with ``ExportError``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from labeltool.core.errors import ImportFormatError
from labeltool.core.formats.coco import read_coco, write_coco
from labeltool.core.formats.common import list_images
from labeltool.core.formats.folder import read_folder
from labeltool.core.formats.voc import read_voc, write_voc
from labeltool.core.formats.yolo import YAML_NAMES, read_yolo, write_yolo
from labeltool.core.labels import LabelSet, Report

FormatName = Literal["coco", "yolo", "voc", "folder"]

READERS: dict[str, Callable[[Path], tuple[LabelSet, Report]]] = {
    "coco": read_coco,
    "yolo": read_yolo,
    "voc": read_voc,
    "folder": read_folder,
}
WRITERS: dict[str, Callable[[LabelSet, Path], Report]] = {
    "coco": write_coco,
    "yolo": write_yolo,
    "voc": write_voc,
}


def _has_xml(root: Path) -> bool:
    for _dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(f.lower().endswith(".xml") and not f.startswith(".") for f in filenames):
            return True
    return False


def _json_files(root: Path) -> list[Path]:
    found = [p for p in root.glob("*.json") if not p.name.startswith(".")]
    if (root / "annotations").is_dir():
        found += [p for p in (root / "annotations").glob("*.json") if not p.name.startswith(".")]
    return sorted(found)


def detect_format(source: Path) -> FormatName:
    """Guess the format of ``source`` (a file or a folder) for the matching ``read_*`` function.

    ``"coco"``: a ``.json`` file, or a folder with exactly one ``.json`` (at the top or in
    ``annotations/``); ``"yolo"``: a ``.yaml``/``.yml`` file or a folder with ``data.yaml``; ``"voc"``:
    a folder with ``Annotations/`` or ``.xml`` files; ``"folder"``: a folder with only images.
    Raises ``ImportFormatError`` when the source is missing or ambiguous (saying what to pick).
    """
    source = Path(source)
    if source.is_file():
        suffix = source.suffix.lower()
        if suffix == ".json":
            return "coco"
        if suffix in (".yaml", ".yml"):
            return "yolo"
        raise ImportFormatError(
            f"{source.name} is not a COCO .json or YOLO data.yaml. For Pascal VOC or plain images pick the "
            "folder instead of a file."
        )
    if not source.is_dir():
        raise ImportFormatError(f"{source} does not exist. Pick an annotation file or a dataset folder.")
    if any((source / name).is_file() for name in YAML_NAMES):
        return "yolo"
    voc = (source / "Annotations").is_dir() or _has_xml(source)
    jsons = _json_files(source)
    if voc and jsons:
        raise ImportFormatError(
            f"{source} holds both Pascal VOC .xml files and .json files; pick the COCO .json file itself, "
            "or a folder with only the VOC files."
        )
    if voc:
        return "voc"
    if len(jsons) == 1:
        return "coco"
    if len(jsons) > 1:
        names = ", ".join(p.relative_to(source).as_posix() for p in jsons[:5])
        raise ImportFormatError(f"{source} holds several .json files ({names}); pick the COCO file to import.")
    if list_images(source):
        return "folder"
    raise ImportFormatError(
        f"{source} holds no images and no annotation files (COCO .json, YOLO data.yaml, VOC .xml)."
    )


def read_source(source: Path, *, fmt: str | None = None) -> tuple[LabelSet, Report, FormatName]:
    """Read ``source`` with the reader for ``fmt`` (``None``: :func:`detect_format`).

    A folder given for ``"coco"`` must hold exactly one ``.json`` (at the top or in ``annotations/``).
    Returns ``(labels, report, format)``.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise ImportFormatError(f"{source}: no such file or folder; check the path to import")
    name = detect_format(source) if fmt is None else fmt
    if name not in READERS:
        raise ValueError(f"import format must be one of {', '.join(READERS)}; got {fmt!r}")
    if name == "coco" and source.is_dir():
        jsons = _json_files(source)
        if len(jsons) != 1:
            raise ImportFormatError(
                f"{source} holds {len(jsons)} .json files; pick the COCO annotation file itself."
            )
        source = jsons[0]
    labels, report = READERS[name](source)
    return labels, report, name  # type: ignore[return-value]


__all__ = [
    "READERS",
    "WRITERS",
    "FormatName",
    "detect_format",
    "read_coco",
    "read_folder",
    "read_source",
    "read_voc",
    "read_yolo",
    "write_coco",
    "write_voc",
    "write_yolo",
]
