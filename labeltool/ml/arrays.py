"""Input checks for box arrays shared by evaluation and label-quality scoring."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_boxes(value: Any, what: str, i: int) -> np.ndarray:
    """``value`` as float64[N, 4] xyxy boxes (empty → shape (0, 4)); ValueError naming ``what[i]``."""
    a = np.asarray(value, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 4))
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"{what}[{i}] must have shape (N, 4) xyxy, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what}[{i}] has non-finite coordinates")
    if (a[:, 2] < a[:, 0]).any() or (a[:, 3] < a[:, 1]).any():
        raise ValueError(f"{what}[{i}] has a box with x2 < x1 or y2 < y1 (boxes must be xyxy)")
    return a


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes a float[N, 4] and b float[M, 4] -> float[N, M] (COCO's convention: no +1)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    wh = np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:]) - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
