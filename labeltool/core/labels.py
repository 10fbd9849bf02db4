"""Format-neutral label records passed between importers/exporters and the project store.

Box format everywhere: absolute pixel ``x1, y1, x2, y2`` floats with ``0 <= x1 < x2 <= width`` and
``0 <= y1 < y2 <= height``, in the coordinates of the image as displayed (EXIF orientation applied).
Conversion to/from COCO xywh, YOLO normalised cxcywh and VOC integer corners happens only in
``core/formats``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class BoxRecord:
    """One labeled box. ``label`` is the class name; coordinates are xyxy float pixels."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(slots=True)
class ImageRecord:
    """One image with its boxes, as read from (or written to) an annotation format.

    ``file_name``: path relative to the dataset's image root, '/'-separated (also the path the image
    gets under the project's ``images/``). ``source``: absolute path of the file on disk when
    importing (``None`` when exporting). ``width``/``height``: as declared by the annotation file, or
    ``None`` when the format does not carry them (YOLO); the importer fills them from the image.
    ``split``: the split the format put the image in (YOLO ``data.yaml`` keys, VOC ``ImageSets``).
    """

    file_name: str
    source: Path | None = None
    width: int | None = None
    height: int | None = None
    boxes: list[BoxRecord] = field(default_factory=list)
    split: str | None = None  # "train" / "val" / "test" when the format says so, else None
    # True when the source says the image was annotated (a COCO/VOC entry, a YOLO label file), even
    # with no boxes (a defect-free part); False for a plain folder or a YOLO image without label file.
    labeled: bool = True


@dataclass(slots=True)
class LabelSet:
    """A whole dataset in neutral form. ``classes`` keeps the format's class order (id order)."""

    classes: list[str] = field(default_factory=list)
    images: list[ImageRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """One problem found while importing/exporting: where (file and field) and what was done."""

    severity: Severity
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f" [{self.field}]" if self.field else "")
        return f"{self.severity}: {where}: {self.message}"


@dataclass(slots=True)
class Report:
    """Accumulates report entries; ``errors`` are skipped records, ``warnings`` were fixed up."""

    entries: list[ReportEntry] = field(default_factory=list)

    def error(self, file: str | Path, field: str, message: str) -> None:
        self.entries.append(ReportEntry("error", str(file), field, message))

    def warning(self, file: str | Path, field: str, message: str) -> None:
        self.entries.append(ReportEntry("warning", str(file), field, message))

    @property
    def errors(self) -> list[ReportEntry]:
        return [e for e in self.entries if e.severity == "error"]

    @property
    def warnings(self) -> list[ReportEntry]:
        return [e for e in self.entries if e.severity == "warning"]

    def extend(self, other: Report) -> None:
        self.entries.extend(other.entries)
