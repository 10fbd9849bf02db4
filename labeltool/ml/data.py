"""Training/evaluation data: samples from a label snapshot, letterboxing, bbox-safe augmentation.

Letterbox: the image is scaled so its longest side equals ``size`` and padded at the bottom/right
to ``size x size`` with :data:`LETTERBOX_FILL`; boxes are scaled by the same factors. Model outputs
are mapped back with :func:`unletterbox_boxes`. The edge bundle's numpy preprocessing does the same.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from PIL import Image as PILImage

from labeltool.core.derived import flip_ok_by_class, is_derived_path
from labeltool.core.errors import ProjectError
from labeltool.core.images import load_image
from labeltool.core.queries import snapshot_classes, snapshot_labeled_images
from labeltool.core.store import Project

LETTERBOX_FILL = 114  # grey padding, the usual detector convention; the same in the edge bundle
MIN_VISIBILITY = 0.3  # a box cut by augmentation to less than this fraction of its area is dropped
REPEAT_THRESHOLD = 0.3  # class-balanced sampling: classes on fewer than this fraction of images repeat


@dataclass(frozen=True, slots=True)
class Sample:
    """One labeled image of a snapshot. ``boxes``: float32[N, 4] xyxy pixels of the original image;
    ``labels``: int64[N] class index 0..C-1 (position in the snapshot's class order).
    ``box_ids`` ties each box back to the project (for issues); None for unlabeled samples."""

    image_id: int
    path: Path
    boxes: np.ndarray
    labels: np.ndarray
    split: str | None
    width: int
    height: int
    box_ids: np.ndarray | None = None  # int64[N]: ids of the boxes in the project when snapshotted
    derived: bool = False  # an augmented/synthetic image (derived/...): training only, never validated on
    flip_ok: bool = True  # False when one of its classes is orientation-sensitive (no mirrored copies)


def snapshot_samples(project: Project, snapshot_id: int) -> tuple[list[str], list[Sample]]:
    """Class names (index order) and the labeled images of snapshot ``snapshot_id`` with their boxes."""
    classes = snapshot_classes(project, snapshot_id)
    if not classes:
        raise ProjectError("the project has no classes yet; import labels or add a class before training")
    index = {cid: i for i, (cid, _) in enumerate(classes)}
    boxes = project.snapshot_boxes(snapshot_id, with_ids=True)
    no_flip = {cid for cid, ok in flip_ok_by_class(project).items() if not ok}  # a setting: current, not snapshotted
    samples = []
    for im in snapshot_labeled_images(project, snapshot_id):
        rows = boxes.get(im.image_id, [])
        samples.append(
            Sample(
                image_id=im.image_id,
                path=im.path,
                boxes=np.array([r[2:] for r in rows], dtype=np.float32).reshape(-1, 4),
                labels=np.array([index[r[1]] for r in rows], dtype=np.int64),
                split=im.split,
                width=im.width,
                height=im.height,
                box_ids=np.array([r[0] for r in rows], dtype=np.int64),
                derived=is_derived_path(im.rel),
                flip_ok=not any(r[1] in no_flip for r in rows),
            )
        )
    return [name for _, name in classes], samples


def letterbox_scale(width: int, height: int, size: int) -> tuple[int, int]:
    """Resized ``(w, h)`` so that the longest side is ``size`` (aspect ratio kept, at least 1 px)."""
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def load_resized(path: Path, size: int, *, width: int, height: int) -> tuple[np.ndarray, float, float]:
    """The image (displayed size ``width x height``) as uint8[h, w, 3] with its longest side ``size``.

    Returns ``(array, sx, sy)``: the x and y scale factors from original to resized pixels.
    """
    img = load_image(path, max_side=size * 2)  # JPEG draft decoding keeps big files cheap
    new_w, new_h = letterbox_scale(width, height, size)
    if img.size != (new_w, new_h):
        img = img.resize((new_w, new_h), PILImage.Resampling.BILINEAR)
    return np.array(img, dtype=np.uint8), new_w / width, new_h / height


def pad_to_square(arr: np.ndarray, size: int) -> np.ndarray:
    """Pad uint8[h, w, 3] at the bottom/right to uint8[size, size, 3] with LETTERBOX_FILL."""
    h, w = arr.shape[:2]
    if (h, w) == (size, size):
        return arr
    out = np.full((size, size, 3), LETTERBOX_FILL, dtype=np.uint8)
    out[:h, :w] = arr
    return out


def unletterbox_boxes(boxes: np.ndarray, *, sx: float, sy: float, width: int, height: int) -> np.ndarray:
    """Map float[N, 4] boxes from letterboxed pixels back to the original image, clipped to it."""
    out = boxes.astype(np.float32, copy=True).reshape(-1, 4)
    out[:, [0, 2]] /= sx
    out[:, [1, 3]] /= sy
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


def train_transform(*, seed: int | None = None, flips: bool = True) -> A.Compose:
    """Default bbox-safe training augmentation for inspection images (on the letterboxed square).

    ``flips=False`` for images of orientation-sensitive classes (``Sample.flip_ok``)."""
    return A.Compose(
        [
            *([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)] if flips else []),
            A.Affine(scale=(0.85, 1.15), translate_percent=(-0.05, 0.05), rotate=(-5, 5), p=0.5,
                     border_mode=0, fill=LETTERBOX_FILL),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.RandomGamma(gamma_limit=(80, 120), p=0.3),
            A.GaussNoise(std_range=(0.01, 0.04), p=0.2),
        ],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=MIN_VISIBILITY,
                                 clip=True, filter_invalid_bboxes=True),
        seed=seed,
    )


class DetectionDataset(torch.utils.data.Dataset):
    """Samples as ``(image float32[3, S, S] in 0..1, target, meta)`` for torchvision's RetinaNet.

    ``target``: ``{"boxes": float32[N, 4] xyxy letterboxed px, "labels": int64[N]}``; ``meta``:
    ``{"image_id", "sx", "sy", "width", "height"}`` to map predictions back. Resized images are
    cached in memory (uint8, longest side S) so epochs after the first decode nothing.
    """

    def __init__(self, samples: Sequence[Sample], *, size: int, transform: A.Compose | None = None,
                 no_flip_transform: A.Compose | None = None) -> None:
        if size < 32:
            raise ValueError(f"size must be at least 32 px, got {size}")
        self.samples = list(samples)
        self.size = size
        self.transform = transform
        self.no_flip_transform = no_flip_transform  # for samples with flip_ok False (default: ``transform``)
        self._cache: dict[int, tuple[np.ndarray, float, float]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def resized(self, index: int) -> tuple[np.ndarray, float, float]:
        if index not in self._cache:
            s = self.samples[index]
            self._cache[index] = load_resized(s.path, self.size, width=s.width, height=s.height)
        return self._cache[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
        sample = self.samples[index]
        arr, sx, sy = self.resized(index)
        image = pad_to_square(arr, self.size)
        boxes = sample.boxes.copy()
        boxes[:, [0, 2]] *= sx
        boxes[:, [1, 3]] *= sy
        labels = sample.labels
        transform = self.transform
        if not sample.flip_ok and self.no_flip_transform is not None:
            transform = self.no_flip_transform
        if transform is not None:
            out = transform(image=image, bboxes=boxes, labels=labels)
            image = out["image"]
            boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
            labels = np.asarray(out["labels"], dtype=np.int64)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
        target = {"boxes": torch.from_numpy(boxes).float(), "labels": torch.from_numpy(labels).long()}
        meta = {"image_id": sample.image_id, "sx": sx, "sy": sy, "width": sample.width, "height": sample.height}
        return tensor, target, meta


def collate(batch: list[Any]) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]], list[dict[str, Any]]]:
    images, targets, metas = zip(*batch, strict=True)
    return list(images), list(targets), list(metas)


def repeat_factors(samples: Sequence[Sample], *, threshold: float = REPEAT_THRESHOLD) -> list[float]:
    """Per-image sampling weights for class-balanced training (repeat-factor sampling).

    A class on a fraction ``f`` of the images gets ``r = max(1, sqrt(threshold / f))``; an image
    gets the largest ``r`` of its classes (1 for defect-free images).
    """
    n = max(1, len(samples))
    images_with = Counter(c for s in samples for c in set(s.labels.tolist()))
    r_class = {c: max(1.0, math.sqrt(threshold / (k / n))) for c, k in images_with.items()}
    return [max((r_class[c] for c in set(s.labels.tolist())), default=1.0) for s in samples]


def relabel_samples(samples: Sequence[Sample], *, names: Sequence[str], target: Sequence[str]) -> list[Sample]:
    """Samples with labels re-indexed into ``target``'s class order (boxes of unknown classes dropped)."""
    index = {n: i for i, n in enumerate(target)}
    out = []
    for s in samples:
        keep = np.array([names[int(lab)] in index for lab in s.labels], dtype=bool)
        labels = np.array([index[names[int(lab)]] for lab in s.labels[keep]], dtype=np.int64)
        ids = None if s.box_ids is None else s.box_ids[keep]
        out.append(replace(s, boxes=s.boxes[keep], labels=labels, box_ids=ids))
    return out
