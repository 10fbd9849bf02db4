"""Train/validation split stored in the project: stratified by image, stable, user-overridable.

Only labeled images without a split are assigned; images that already have one (from an import,
an earlier assignment or the user) keep it, so adding images never reshuffles the validation set.
Assignment order comes from a hash of each image's content and the seed, so it is reproducible.
Rare classes are served first so every class with at least two labeled images gets validation
images where possible. Derived (augmented) images under ``derived/`` are never assigned nor counted.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter

from .store import Project

DEFAULT_VAL_FRACTION = 0.2  # a fifth of the labeled images for validation: enough for per-class AP on ~50 images


def _order_key(sha256: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{sha256}".encode()).hexdigest()


def assign_splits(project: Project, *, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0) -> dict[str, int]:
    """Give every labeled image without a split 'train' or 'val' (one undoable edit).

    The targets count all labeled images (already assigned ones included): overall about
    ``val_fraction`` in val, and per class about ``val_fraction`` of its images (at least one when
    the class is on two or more images). Returns ``{"train": n, "val": n}`` newly assigned.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    conn = project.connection
    # derived (augmented) images are always 'train' and count for nothing here: validation targets
    # are a share of the real images
    labeled = conn.execute(
        "SELECT id, sha256, split FROM images WHERE labeled = 1 AND substr(path, 1, 8) != 'derived/'").fetchall()
    classes_of: dict[int, set[int]] = {i: set() for i, _, _ in labeled}
    for image_id, class_id in conn.execute("SELECT DISTINCT image_id, class_id FROM boxes"):
        if image_id in classes_of:
            classes_of[image_id].add(class_id)
    free = [i for _, i in sorted((_order_key(sha, seed), i) for i, sha, split in labeled if split is None)]
    if not free:
        return {"train": 0, "val": 0}
    split_of = {i: split for i, _, split in labeled}
    class_images = Counter(c for cs in classes_of.values() for c in cs)
    in_val = Counter(c for i, cs in classes_of.items() if split_of[i] == "val" for c in cs)
    val: set[int] = set()
    # rarest classes first: their few images decide whether the class can be validated at all
    for cls, n in sorted(class_images.items(), key=lambda kv: (kv[1], kv[0])):
        target = max(1, round(val_fraction * n)) if n >= 2 else 0
        for image_id in free:
            if in_val[cls] >= target:
                break
            if cls in classes_of[image_id] and image_id not in val:
                val.add(image_id)
                in_val.update(classes_of[image_id])
    total_val_target = math.floor(val_fraction * len(labeled) + 0.5)
    already_val = sum(1 for s in split_of.values() if s == "val")
    for image_id in free:  # fill the overall quota, defect-free images included
        if already_val + len(val) >= total_val_target:
            break
        val.add(image_id)
    with project.edit("assign train/val split") as e:
        for image_id in free:
            e.update("images", image_id, split="val" if image_id in val else "train")
    return {"train": len(free) - len(val), "val": len(val)}
