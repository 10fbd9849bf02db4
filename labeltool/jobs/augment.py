"""The augmentation job: more training examples of weak classes, recorded as one augment set.

Targeted mode (the default) takes the classes the user names, or the ones the latest weak-class
report recommends augmenting ('augment' or 'collect more images'), and makes derived images until
each has its target number of training images (``core/augment_plan.py``): augmented copies with the
strong preset (``ml/augment.py``) and, with ``copy_paste``, composites of its defect crops on other
training images (``core/copy_paste.py``). Only training images are used as sources, so no
validation image reaches training through a copy.

Files are written to ``derived/.tmp-*`` and the set is recorded in one edit at the end, which
moves them to ``derived/<set id>/``; a cancelled or failed job removes the files and takes back the
train/validation split it assigned, so the project is as it was.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeltool.core.augment_plan import Plan, PlanItem, TrainImage, plan_targeted, plan_uniform
from labeltool.core.copy_paste import cut_crop, paste_crops
from labeltool.core.derived import (
    DERIVED_DIRNAME,
    NewDerived,
    flip_ok_by_class,
    is_derived_path,
    preview_set,
    record_set,
)
from labeltool.core.images import load_image
from labeltool.core.issues import latest_analysis
from labeltool.core.model import Class
from labeltool.core.progress import Progress
from labeltool.core.queries import class_images_outside_training
from labeltool.core.splits import assign_splits
from labeltool.core.store import Project

from . import Job, writing

DEFAULT_PRESET = "strong"
WEAK_RECOMMENDATIONS = ("augment", "collect more images")  # weak-class rows that augmentation can help
PNG_COMPRESS_LEVEL = 1  # derived images are PNG (lossless); level 1 is much faster than 6, files ~5 % larger
SOURCE_CACHE = 32  # decoded source images kept in memory while generating


def resolve_classes(project: Project, names: Sequence[str] | None) -> tuple[list[Class], str]:
    """The classes to augment and how they were chosen. Unknown names raise ValueError listing the known ones."""
    known = project.classes()
    by_name = {c.name: c for c in known}
    listing = ", ".join(c.name for c in known) or "none yet"
    if names:
        wanted = [n.strip() for n in names if n.strip()]
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise ValueError(f"unknown class{'es' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                             f"the project's classes are: {listing}")
        if not wanted:
            raise ValueError(f"no class names given; the project's classes are: {listing}")
        return [by_name[n] for n in dict.fromkeys(wanted)], "chosen by the user"
    analysis = latest_analysis(project)
    if analysis is None:
        raise ValueError("no classes given and no analysis to take the weak classes from: pass --classes A,B "
                         f"(the project's classes are: {listing}) or run `labeltool analyze` first")
    rows = analysis.summary.get("weak_classes", [])
    flagged = [r["class"] for r in rows if r.get("recommendation") in WEAK_RECOMMENDATIONS and r["class"] in by_name]
    if not flagged:
        raise ValueError(f"analysis {analysis.id} recommends augmenting no class; pass --classes A,B to pick "
                         f"some (the project's classes are: {listing})")
    return [by_name[n] for n in flagged], f"flagged by analysis {analysis.id}"


def training_images(project: Project) -> list[TrainImage]:
    """Real (not derived) labeled images of the training split, with their boxes."""
    boxes = project.all_boxes()
    return [TrainImage(im.id, im.path, im.width, im.height,
                       tuple((b.id, b.class_id, b.xyxy) for b in boxes.get(im.id, [])))
            for im in project.images(split="train") if im.labeled and not is_derived_path(im.path)]


def augment_job(project_dir: Path, **options: Any) -> Job[dict[str, Any]]:
    """Make and record one augment set; returns its id, counts per class and the preview files.

    ``mode='uniform'`` (comparisons, e.g. bench/augment.py) makes ``count`` augmented copies of any
    training images instead, ignoring classes.
    """
    return (yield from writing(project_dir, "an augmentation", _augment_job(project_dir, **options)))


def _augment_job(
    project_dir: Path, *, classes: Sequence[str] | None = None, per_class: int | None = None,
    copy_paste: bool = False, seed: int = 0, preview_dir: Path | None = None, mode: str = "targeted",
    count: int | None = None, preset: str = DEFAULT_PRESET,
) -> Job[dict[str, Any]]:
    from labeltool.ml.augment import PRESETS

    t0 = time.monotonic()
    if mode not in ("targeted", "uniform"):
        raise ValueError(f"mode must be 'targeted' or 'uniform', got {mode!r}")
    if mode == "uniform" and (count is None or count < 1):
        raise ValueError(f"uniform mode needs count >= 1, got {count!r}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    if preview_dir is not None:  # fail before the work, not after it
        Path(preview_dir).mkdir(parents=True, exist_ok=True)
    yield Progress("prepare", 0, 1, "choosing classes and source images")
    with Project.open(project_dir) as project:
        targets, chosen_by = resolve_classes(project, classes) if mode == "targeted" else ([], "uniform")
        assigned = assign_splits(project)
        split_edit = project.history(limit=1)[0].id if sum(assigned.values()) else None
        root = project.root
    tmp_dir = root / DERIVED_DIRNAME / f".tmp-{uuid.uuid4().hex[:8]}"
    try:
        with Project.open(project_dir) as project:
            images = training_images(project)
            plan = _plan(project, images, targets, mode=mode, count=count, per_class=per_class,
                         copy_paste=copy_paste, seed=seed)
            flip_ok = flip_ok_by_class(project)
            names = {c.id: c.name for c in project.classes()}
        yield Progress("prepare", 1, 1, f"{len(plan.items)} derived images to make from {len(images)} training images")
        if not plan.items:
            raise _NothingToDo(_nothing_message(plan, names))
        tmp_dir.mkdir(parents=True)
        made = yield from _generate(root, plan, images, flip_ok=flip_ok, preset=preset, tmp_dir=tmp_dir)
        params = {"mode": mode, "preset": preset, "copy_paste": copy_paste, "per_class": per_class,
                  "count": count, "chosen_by": chosen_by, "split_assigned": assigned,
                  "planned": {names[c]: row for c, row in plan.counts.items()},
                  "made": dict(Counter(m.kind for m in made))}
        yield Progress("save", 0, 1, "recording the set")
        with Project.open(project_dir) as project:
            set_id = record_set(project, kind=mode, classes=[c.name for c in targets], params=params, seed=seed,
                                tmp_dir=tmp_dir, items=made)
    except _NothingToDo as done:
        _take_back_split(project_dir, split_edit)
        return {"set_id": None, "images": 0, "message": str(done), "classes": [c.name for c in targets],
                "chosen_by": chosen_by, "per_class": _per_class_rows(plan, [], names), "preview": []}
    except BaseException:
        _take_back_split(project_dir, split_edit)
        raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    # no yield after the set is recorded: closing the job now must not look like a cancel
    preview: list[str] = []
    if preview_dir is not None:
        with Project.open(project_dir) as project:
            preview = [str(p) for p in preview_set(project, set_id, Path(preview_dir))]
    by_kind = Counter(m.kind for m in made)
    return {"set_id": set_id, "path": f"{DERIVED_DIRNAME}/{set_id}", "images": len(made), "mode": mode,
            "classes": [c.name for c in targets], "chosen_by": chosen_by, "by_kind": dict(by_kind),
            "pasted_crops": sum(len(m.transform.get("copy_paste", [])) for m in made),
            "copy_paste_fallbacks": sum(1 for m in made if m.transform.get("fallback")),
            "per_class": _per_class_rows(plan, made, names), "split_assigned": assigned, "preview": preview,
            "wall_s": round(time.monotonic() - t0, 1)}


class _NothingToDo(Exception):
    """Every targeted class already has its target number of images (not an error for the user)."""


def _plan(project: Project, images: list[TrainImage], targets: list[Class], *, mode: str, count: int | None,
          per_class: int | None, copy_paste: bool, seed: int) -> Plan:
    if mode == "uniform":
        return plan_uniform(images, n=int(count or 0), seed=seed)
    shown = Counter(c for im in images for c in im.classes)
    for cls in targets:
        if shown[cls.id] == 0:
            total, val = class_images_outside_training(project, cls.id)
            raise ValueError(
                f"class '{cls.name}' has no labeled training images to augment ({total} labeled image"
                f"{'s' if total != 1 else ''} show it, {val} of them in validation); label more images of it first")
    return plan_targeted(images, class_ids=[c.id for c in targets], per_class=per_class, copy_paste=copy_paste,
                         seed=seed)


def _nothing_message(plan: Plan, names: dict[int, str]) -> str:
    parts = [f"'{names[c]}' has {row['before']} training images (target {row['target']})" for c, row in plan.counts.items()]
    return "nothing to do: " + "; ".join(parts) + ". Give a higher --per-class to make more."


def _per_class_rows(plan: Plan, made: list[NewDerived], names: dict[int, str]) -> list[dict[str, Any]]:
    shown = Counter(c for m in made for c in {c for c, _ in m.boxes})
    return [{"class": names[c], "before": row["before"], "target": row["target"], "added": shown[c],
             "after": row["before"] + shown[c]} for c, row in plan.counts.items()]


def _take_back_split(project_dir: Path, split_edit: int | None) -> None:
    if split_edit is not None:  # take back the split it assigned, unless the user edited since
        with Project.open(project_dir) as project:
            project.undo(only=split_edit)


class _Sources:
    """Decoded training images (uint8[H, W, 3]), a few kept in memory."""

    def __init__(self, root: Path, images: dict[int, TrainImage]) -> None:
        self.root, self.images = root, images
        self._cache: dict[int, np.ndarray] = {}

    def array(self, image_id: int) -> np.ndarray:
        if image_id not in self._cache:
            if len(self._cache) >= SOURCE_CACHE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[image_id] = np.asarray(load_image(self.root / self.images[image_id].path), dtype=np.uint8)
        return self._cache[image_id]


def _generate(root: Path, plan: Plan, images: list[TrainImage], *, flip_ok: dict[int, bool], preset: str,
              tmp_dir: Path) -> Job[list[NewDerived]]:
    from PIL import Image as PILImage

    by_id = {im.id: im for im in images}
    sources = _Sources(root, by_id)
    made: list[NewDerived] = []
    for n, item in enumerate(plan.items, start=1):
        result = None
        if item.kind == "copy_paste":
            result = _composite(item, by_id, sources)
        if result is None:
            base = item.image_id if item.kind == "augment" else item.donors[0][0]
            result = _augmented(item, by_id[base], sources, flip_ok=flip_ok, preset=preset)
            if item.kind == "copy_paste":
                result[2]["fallback"] = "no free place for the crops: an augmented copy of a donor image instead"
        array, boxes, transform, kind, base_id = result
        stem = Path(by_id[base_id].path).stem[:40]
        name = f"{item.index:05d}-{stem}-{'paste' if kind == 'copy_paste' else 'aug'}.png"
        path = tmp_dir / name
        PILImage.fromarray(array).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        made.append(NewDerived(file_name=name, sha256=digest, width=array.shape[1], height=array.shape[0],
                               source_image_id=base_id, kind=kind, transform=transform, boxes=boxes,
                               origin=f"{kind} of {by_id[base_id].path}"))
        yield Progress("generate", n, len(plan.items), name)
    return made


_Result = tuple[np.ndarray, list[tuple[int, tuple[float, float, float, float]]], dict[str, Any], str, int]


def _clipped(boxes: np.ndarray, labels: np.ndarray, width: int, height: int) -> list[tuple[int, tuple[float, ...]]]:
    out = []
    for (x1, y1, x2, y2), c in zip(boxes.tolist(), labels.tolist(), strict=True):
        x1, x2 = min(max(0.0, x1), float(width)), min(max(0.0, x2), float(width))
        y1, y2 = min(max(0.0, y1), float(height)), min(max(0.0, y2), float(height))
        out.append((int(c), (x1, y1, x2, y2)))
    return out


def _augmented(item: PlanItem, source: TrainImage, sources: _Sources, *, flip_ok: dict[int, bool],
               preset: str) -> _Result:
    from labeltool.ml.augment import augment

    arr = sources.array(source.id)
    boxes = np.array([b for _, _, b in source.boxes], np.float32).reshape(-1, 4)
    labels = np.array([c for _, c, _ in source.boxes], np.int64)
    flips = all(flip_ok.get(c, True) for c in source.classes)
    aug = augment(arr, boxes, labels, preset=preset, flips=flips, seed=item.seed)
    h, w = aug.image.shape[:2]
    transform = {"sources": [source.id], "target_class": item.target_class, **aug.record}
    return aug.image, _clipped(aug.boxes, aug.labels, w, h), transform, "augment", source.id


def _composite(item: PlanItem, by_id: dict[int, TrainImage], sources: _Sources) -> _Result | None:
    """Crops of ``item.donors`` pasted onto ``item.image_id``, then photometric augmentation; None if none fit."""
    from labeltool.ml.augment import augment

    canvas = by_id[item.image_id]
    crops = []
    for donor_id, box_id in item.donors:
        donor = by_id[donor_id]
        box = next(b for bid, _, b in donor.boxes if bid == box_id)
        cls = next(c for bid, c, _ in donor.boxes if bid == box_id)
        others = [b for bid, _, b in donor.boxes if bid != box_id]
        crop = cut_crop(sources.array(donor_id), box, other_boxes=others, class_id=cls, source_image_id=donor_id)
        if crop is not None:
            crops.append(crop)
    existing = [b for _, _, b in canvas.boxes]
    pasted_image, pasted = paste_crops(sources.array(canvas.id), crops, boxes=existing,
                                       rng=np.random.default_rng(item.seed))
    if not pasted:
        return None
    boxes = np.array(existing + [p.box for p in pasted], np.float32).reshape(-1, 4)
    labels = np.array([c for _, c, _ in canvas.boxes] + [p.class_id for p in pasted], np.int64)
    aug = augment(pasted_image, boxes, labels, preset="photometric", flips=False, seed=item.seed)
    h, w = aug.image.shape[:2]
    used = list(dict.fromkeys([canvas.id, *(p.source_image_id for p in pasted)]))
    transform = {"sources": used, "target_class": item.target_class,
                 "copy_paste": [p.to_dict() for p in pasted], **aug.record}
    return aug.image, _clipped(aug.boxes, aug.labels, w, h), transform, "copy_paste", canvas.id
