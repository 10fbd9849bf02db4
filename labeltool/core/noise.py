"""Label-noise injection with an exact record of every corruption (ground truth for label-quality checks).

Kinds (the issue types the analysis must find): ``swap`` (wrong class), ``drop`` (overlooked box),
``shift`` (badly located box: moved and/or rescaled, IoU with the clean box < 0.5) and ``spurious``
(a box where there is nothing: IoU 0 with every box of its image). Boxes are xyxy float pixels.

The noisy set is the clean set with, per image: the clean boxes in their order, a ``swap``/``shift``
box replaced by its record's ``after``, a ``drop`` box removed, then the ``spurious`` boxes appended
in record order. Records are ordered by image (clean order), then ``box_index``, spurious last.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

from labeltool.core import config as cfg
from labeltool.core.errors import ImportFormatError
from labeltool.core.labels import BoxRecord, ImageRecord, LabelSet

NOISE_KINDS: tuple[str, ...] = ("swap", "drop", "shift", "spurious")
_COORDS = ("x1", "y1", "x2", "y2")


def _box_to_dict(box: BoxRecord | None) -> dict[str, Any] | None:
    if box is None:
        return None
    return {"label": box.label, "x1": box.x1, "y1": box.y1, "x2": box.x2, "y2": box.y2}


def _box_from_dict(data: object, what: str) -> BoxRecord | None:
    if data is None:
        return None
    if not isinstance(data, Mapping) or not isinstance(data.get("label"), str):
        raise ValueError(f"{what} must be null or an object with a string 'label', got {data!r}")
    coords = [data.get(k) for k in _COORDS]
    if any(isinstance(v, bool) or not isinstance(v, Real) for v in coords):
        raise ValueError(f"{what} needs numeric x1, y1, x2, y2, got {data!r}")
    return BoxRecord(data["label"], *(float(v) for v in coords))


@dataclass(frozen=True, slots=True)
class NoiseRecord:
    """One corruption. ``box_index``: index of the affected box in the CLEAN image's ``boxes`` (None for
    spurious); ``before``: the clean box (None for spurious); ``after``: the noisy box (None for drop)."""

    kind: str
    file_name: str
    box_index: int | None
    before: BoxRecord | None
    after: BoxRecord | None

    def __post_init__(self) -> None:
        if self.kind not in NOISE_KINDS:
            raise ValueError(f"unknown noise kind {self.kind!r}; expected one of {NOISE_KINDS}")
        spurious, drop = self.kind == "spurious", self.kind == "drop"
        if (self.box_index is None) != spurious or (self.before is None) != spurious:
            raise ValueError(f"{self.kind} record for {self.file_name!r}: box_index/before must be "
                             f"{'None' if spurious else 'set'}")
        if (self.after is None) != drop:
            raise ValueError(f"{self.kind} record for {self.file_name!r}: after must be "
                             f"{'None' if drop else 'set'}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: kind, file_name, box_index, before/after as {label, x1, y1, x2, y2} or null."""
        return {"kind": self.kind, "file_name": self.file_name, "box_index": self.box_index,
                "before": _box_to_dict(self.before), "after": _box_to_dict(self.after)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NoiseRecord:
        """Inverse of ``to_dict``; raises ValueError naming the bad field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a noise record must be an object, got {data!r}")
        kind, name, index = data.get("kind"), data.get("file_name"), data.get("box_index")
        if not isinstance(kind, str) or not isinstance(name, str):
            raise ValueError(f"'kind' and 'file_name' must be strings, got {kind!r}, {name!r}")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
            raise ValueError(f"'box_index' must be null or an int >= 0, got {index!r}")
        return cls(kind, name, index, _box_from_dict(data.get("before"), "'before'"),
                   _box_from_dict(data.get("after"), "'after'"))


def _overlaps(a: BoxRecord, b: BoxRecord) -> bool:
    """True when the boxes share a positive area (IoU > 0)."""
    return min(a.x2, b.x2) > max(a.x1, b.x1) and min(a.y2, b.y2) > max(a.y1, b.y1)


def _iou(a: BoxRecord, b: BoxRecord) -> float:
    iw = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    ih = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = iw * ih
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def _make_box(label: str, x1: float, y1: float, x2: float, y2: float, w: int, h: int) -> BoxRecord | None:
    """Clip to the image, round to 1/100 px; None when a side ends up shorter than MIN_BOX_SIDE_PX."""
    x1, x2 = (round(float(min(max(v, 0.0), w)), 2) for v in (x1, x2))
    y1, y2 = (round(float(min(max(v, 0.0), h)), 2) for v in (y1, y2))
    if x2 - x1 < cfg.MIN_BOX_SIDE_PX or y2 - y1 < cfg.MIN_BOX_SIDE_PX:
        return None
    return BoxRecord(label, x1, y1, x2, y2)


def _shift_box(rng: np.random.Generator, box: BoxRecord, w: int, h: int) -> BoxRecord | None:
    """A moved and/or rescaled copy of ``box`` inside the image with IoU < NOISE_SHIFT_MAX_IOU, or None."""
    bw, bh = box.x2 - box.x1, box.y2 - box.y1
    for _ in range(cfg.NOISE_MAX_TRIES):
        mode = int(rng.integers(3))  # 0: move, 1: rescale, 2: both
        cx, cy, nw, nh = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2, bw, bh
        if mode >= 1:
            lo, hi = cfg.NOISE_SHIFT_SCALE_DOWN if rng.random() < 0.5 else cfg.NOISE_SHIFT_SCALE_UP
            s = rng.uniform(lo, hi)
            nw, nh = bw * s, bh * s
        if mode != 1:
            sx, sy = rng.choice([-1.0, 1.0], 2)
            cx += sx * rng.uniform(*cfg.NOISE_SHIFT_MOVE) * bw
            cy += sy * rng.uniform(*cfg.NOISE_SHIFT_MOVE) * bh
        cand = _make_box(box.label, cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2, w, h)
        if cand is not None and _iou(cand, box) < cfg.NOISE_SHIFT_MAX_IOU:
            return cand
    return None


def _check_args(labels: LabelSet, fraction: float, seed: int, kinds: Sequence[str]) -> tuple[str, ...]:
    if not isinstance(labels, LabelSet):
        raise TypeError(f"labels must be a LabelSet, got {type(labels).__name__}")
    if isinstance(fraction, bool) or not isinstance(fraction, Real):
        raise TypeError(f"fraction must be a number, got {fraction!r}")
    if not 0.0 <= float(fraction) <= 1.0:  # also rejects NaN
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if isinstance(kinds, str) or not isinstance(kinds, Sequence):
        raise TypeError(f"kinds must be a sequence of kind names, got {kinds!r}")
    if not kinds:
        raise ValueError(f"kinds must not be empty; choose from {NOISE_KINDS}")
    for k in kinds:
        if k not in NOISE_KINDS:
            raise ValueError(f"unknown noise kind {k!r}; expected one of {NOISE_KINDS}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds has duplicates: {tuple(kinds)!r}")
    seen: set[str] = set()
    for im in labels.images:
        if im.file_name in seen:
            raise ValueError(f"duplicate file_name {im.file_name!r}: records could not name the image")
        seen.add(im.file_name)
    return tuple(kinds)


def inject_noise(labels: LabelSet, *, fraction: float = 0.0, seed: int = 0, kinds: Sequence[str] = NOISE_KINDS,
                 fractions: Mapping[str, float] | None = None) -> tuple[LabelSet, list[NoiseRecord]]:
    """Corrupt ``fraction`` of the boxes of ``labels``; return ``(noisy copy, records)``.

    The number of corruptions is ``fraction * n_boxes`` rounded half up (at least 1 when ``fraction > 0`` and
    there are boxes), split as evenly as possible over ``kinds`` (the remainder goes to the first
    kinds in the given order). Each clean box is corrupted at most once; ``spurious`` adds boxes
    instead of changing one. ``shift`` and ``spurious`` need ``width``/``height`` on the images;
    ``swap`` needs a second class in ``labels.classes``. ``labels`` is not modified. Deterministic
    in ``seed``. Raises ValueError when the noise cannot be placed (e.g. boxes fill every image).

    ``fractions`` (e.g. ``{"swap": 0.05, "drop": 0.05, "shift": 0.05, "spurious": 0.03}``) sets the
    share of boxes per kind instead of ``fraction``/``kinds``.
    """
    if fractions is not None:
        kinds = tuple(fractions)
        fraction = min(1.0, float(sum(fractions.values())))
    kinds = _check_args(labels, fraction, seed, kinds)
    images = labels.images
    refs = [(i, j) for i, im in enumerate(images) for j in range(len(im.boxes))]
    count = 0 if fraction == 0 or not refs else max(1, math.floor(float(fraction) * len(refs) + 0.5))
    per_kind = {k: count // len(kinds) + (n < count % len(kinds)) for n, k in enumerate(kinds)}
    per_kind = {k: per_kind.get(k, 0) for k in NOISE_KINDS}
    if fractions is not None:
        if any(not 0.0 <= float(v) <= 1.0 for v in fractions.values()):
            raise ValueError(f"every fraction must be in [0, 1], got {dict(fractions)!r}")
        per_kind = {k: math.floor(float(fractions.get(k, 0.0)) * len(refs) + 0.5) for k in NOISE_KINDS}
    if per_kind["shift"] or per_kind["spurious"]:
        for im in images:
            if not im.width or not im.height:
                raise ValueError(f"{im.file_name}: width/height unknown; 'shift' and 'spurious' need them")
    if per_kind["swap"] and len(set(labels.classes)) < 2:
        raise ValueError(f"'swap' needs at least two classes in labels.classes, got {labels.classes!r}")

    rng = np.random.default_rng(seed)
    noisy: list[list[BoxRecord | None]] = [list(im.boxes) for im in images]  # None marks a dropped box
    changed: dict[tuple[int, int], NoiseRecord] = {}
    pool = deque(refs[k] for k in rng.permutation(len(refs)))

    shifted, skipped = 0, []
    while shifted < per_kind["shift"]:  # first, so boxes that cannot move stay available to swap/drop
        if not pool:
            raise ValueError(f"could not shift {per_kind['shift']} boxes: boxes fill their images")
        i, j = pool.popleft()
        im, box = images[i], images[i].boxes[j]
        new = _shift_box(rng, box, int(im.width or 0), int(im.height or 0))
        if new is None:
            skipped.append((i, j))
            continue
        noisy[i][j] = new
        changed[(i, j)] = NoiseRecord("shift", im.file_name, j, box, new)
        shifted += 1
    pool.extend(skipped)
    for kind in ("swap", "drop"):
        for _ in range(per_kind[kind]):
            i, j = pool.popleft()  # never empty: swap + drop + shift <= count <= len(refs)
            box = images[i].boxes[j]
            after = None
            if kind == "swap":
                others = sorted({c for c in labels.classes if c != box.label})
                after = BoxRecord(others[int(rng.integers(len(others)))], box.x1, box.y1, box.x2, box.y2)
            noisy[i][j] = after
            changed[(i, j)] = NoiseRecord(kind, images[i].file_name, j, box, after)

    classes = sorted(set(labels.classes)) or sorted({b.label for im in images for b in im.boxes})
    sizes = [(b.x2 - b.x1, b.y2 - b.y1) for im in images for b in im.boxes]
    extra: list[list[NoiseRecord]] = [[] for _ in images]
    for _ in range(per_kind["spurious"]):
        for _ in range(cfg.NOISE_MAX_TRIES):
            i = int(rng.integers(len(images)))
            im = images[i]
            w, h = int(im.width or 0), int(im.height or 0)
            bw, bh = np.asarray(sizes[int(rng.integers(len(sizes)))]) * rng.uniform(*cfg.NOISE_SPURIOUS_SCALE, 2)
            bw, bh = min(bw, w), min(bh, h)
            x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            label = classes[int(rng.integers(len(classes)))]
            cand = _make_box(label, x1, y1, x1 + bw, y1 + bh, w, h)
            occupied = [*im.boxes, *(b for b in noisy[i] if b is not None), *(r.after for r in extra[i])]
            if cand is not None and not any(_overlaps(cand, b) for b in occupied if b is not None):
                extra[i].append(NoiseRecord("spurious", im.file_name, None, None, cand))
                break
        else:
            raise ValueError("could not place a spurious box: no free area found in the images tried")

    out_images: list[ImageRecord] = []
    records: list[NoiseRecord] = []
    for i, im in enumerate(images):
        boxes = [b for b in noisy[i] if b is not None] + [r.after for r in extra[i] if r.after is not None]
        out_images.append(ImageRecord(file_name=im.file_name, source=im.source, width=im.width,
                                      height=im.height, boxes=boxes, split=im.split))
        records.extend(changed[(i, j)] for j in range(len(im.boxes)) if (i, j) in changed)
        records.extend(extra[i])
    return LabelSet(classes=list(labels.classes), images=out_images), records


def write_noise_record(records: list[NoiseRecord], path: Path, *, meta: dict[str, Any]) -> None:
    """Write ``{"schema_version", "meta", "records": [NoiseRecord.to_dict(), ...]}`` as JSON, atomically.

    ``meta`` is any JSON-able dict (e.g. seed, fraction, kinds, dataset name).
    """
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    for r in records:
        if not isinstance(r, NoiseRecord):
            raise TypeError(f"records must hold NoiseRecord objects, got {type(r).__name__}")
    text = json.dumps({"schema_version": cfg.NOISE_RECORD_SCHEMA_VERSION, "meta": meta,
                       "records": [r.to_dict() for r in records]}, indent=1, allow_nan=False)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_noise_record(path: Path) -> tuple[list[NoiseRecord], dict[str, Any]]:
    """Read a file written by ``write_noise_record``; returns ``(records, meta)``.

    Raises ImportFormatError naming the file when it is not a valid noise record or is newer than
    this version of labeltool understands.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportFormatError(f"{path}: cannot read noise record ({exc}). Regenerate it.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise ImportFormatError(f"{path}: not a noise record (no 'records' list). Regenerate it.")
    version, meta = data.get("schema_version"), data.get("meta", {})
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ImportFormatError(f"{path}: 'schema_version' must be an int >= 1, got {version!r}")
    if version > cfg.NOISE_RECORD_SCHEMA_VERSION:
        raise ImportFormatError(f"{path}: noise record schema {version} is newer than supported "
                                f"({cfg.NOISE_RECORD_SCHEMA_VERSION}); update labeltool.")
    if not isinstance(meta, dict):
        raise ImportFormatError(f"{path}: 'meta' must be an object, got {type(meta).__name__}")
    records = []
    for n, item in enumerate(data["records"]):
        try:
            records.append(NoiseRecord.from_dict(item))
        except ValueError as exc:
            raise ImportFormatError(f"{path}: records[{n}]: {exc}") from exc
    return records, meta
