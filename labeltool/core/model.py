"""Rows of the project store as frozen dataclasses (the glossary's Image, Class, Box, Snapshot).

Box coordinates: absolute pixel ``x1, y1, x2, y2`` floats of the displayed image
(EXIF orientation applied), ``0 <= x1 < x2 <= width``, ``0 <= y1 < y2 <= height``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Class:
    """A label class. ``position`` orders classes for display and export (class ids 0..n-1)."""

    id: int
    name: str
    color: str  # '#rrggbb'
    position: int


@dataclass(frozen=True, slots=True)
class Image:
    """An image of the project. ``path`` is relative to the project folder ('/'-separated)."""

    id: int
    path: str
    sha256: str
    width: int
    height: int
    split: str | None  # 'train' / 'val' / 'test' / None (not assigned yet)
    added_at: str
    origin: str | None  # file name in the source it was imported from
    labeled: bool  # annotated (boxes, or checked and found defect-free)


@dataclass(frozen=True, slots=True)
class Box:
    """A human label box: xyxy float pixels on image ``image_id`` with class ``class_id``."""

    id: int
    image_id: int
    class_id: int
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable copy of the label state (classes, images with splits, boxes) at one moment."""

    id: int
    created_at: str
    note: str
    content_hash: str
    last_edit_id: int | None
    n_images: int
    n_boxes: int


@dataclass(frozen=True, slots=True)
class EditEntry:
    """One row of the edit log: a user action and how many rows it changed."""

    id: int
    ts: str
    user: str
    action: str
    state: str  # 'done' / 'undone' / 'dropped' (undone, then a new edit replaced the redo branch)
    target_id: int | None
    n_changes: int


@dataclass(frozen=True, slots=True)
class Run:
    """A finished training run: the model in ``path`` (relative to the project) and what it saw."""

    id: int
    created_at: str
    finished_at: str
    snapshot_id: int
    previous_id: int | None  # the current model when this run started (for before/after tables)
    preset: str
    path: str
    metrics: dict[str, Any]  # final validation metrics (EvalResult.to_dict() plus training figures)
    config: dict[str, Any]  # preset, hyperparameters, weights source, compute estimate


@dataclass(frozen=True, slots=True)
class Prediction:
    """A model box: xyxy float pixels with the score of run ``run_id``; never a human label itself."""

    id: int
    run_id: int
    image_id: int
    class_id: int
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    status: str  # 'open' / 'accepted' (turned into a human box) / 'rejected'

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True, slots=True)
class Analysis:
    """One label-quality analysis: the snapshot it analysed, how, and its weak-class summary."""

    id: int
    created_at: str
    snapshot_id: int  # the labels that were analysed
    run_id: int | None  # the model used ('quick' mode), None for K-fold
    mode: str  # 'kfold' (out-of-sample predictions) / 'quick' (the current model; less reliable)
    folds: int | None
    config: dict[str, Any]  # thresholds used etc.
    summary: dict[str, Any]  # 'weak_classes' table, counts, timings


@dataclass(frozen=True, slots=True)
class Issue:
    """A suspected label error with a suggested fix (a row of the review queue).

    ``type``: 'overlooked' (a box is missing), 'swap' (wrong class), 'badloc' (box badly placed),
    'spurious' (box on nothing), 'duplicate' (the same defect boxed twice). ``fix`` is one of
    ``{"action": "add_box", "class_id", "xyxy"}``, ``{"action": "set_class", "box_id", "class_id"}``,
    ``{"action": "move_box", "box_id", "xyxy"}``, ``{"action": "delete_box", "box_id"}`` (xyxy float
    pixels). ``score`` is 0..1, lower = more likely an error.
    """

    id: int
    analysis_id: int
    type: str
    image_id: int
    box_id: int | None  # the labeled box concerned; None for 'overlooked'
    class_id: int | None  # class of the box ('overlooked': the class to add)
    score: float
    fix: dict[str, Any]
    status: str  # 'open' / 'accepted' / 'rejected' / 'superseded' (a newer analysis replaced it)
    labels_hash: str  # hash of the image's boxes when analysed
    created_at: str
