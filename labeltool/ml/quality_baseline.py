"""Baselines and inputs for measuring :mod:`labeltool.ml.quality`: cleanlab's own defaults on the same
predictions, cleanlab's public functions timed the naive way, and synthetic speed-benchmark inputs.
Used by ``bench/label_errors.py`` and the tests; the analysis itself does not need them.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .quality import Thresholds, _calibrate, _cleanlab_calls, _cleanlab_format, _validate, to_cleanlab_inputs


def cleanlab_default_image_scores(*, gt_boxes: Sequence[Any], gt_labels: Sequence[Any],
                                  pred_boxes: Sequence[Any], pred_scores: Sequence[Any],
                                  pred_labels: Sequence[Any], num_classes: int) -> np.ndarray:
    """Baseline: ``cleanlab.object_detection.rank.get_label_quality_scores`` with its defaults
    (thresholds 0.95 / 0.5, no own checks), verbose=False. Returns float[N], lower = worse."""
    from cleanlab.object_detection import rank

    labels, predictions = to_cleanlab_inputs(gt_boxes=gt_boxes, gt_labels=gt_labels, pred_boxes=pred_boxes,
                                             pred_scores=pred_scores, pred_labels=pred_labels,
                                             num_classes=num_classes)
    if not labels:
        return np.zeros(0)
    with contextlib.redirect_stdout(io.StringIO()):
        return np.asarray(rank.get_label_quality_scores(labels, predictions, verbose=False), dtype=np.float64)


def time_cleanlab_public(*, gt_boxes: Sequence[Any], gt_labels: Sequence[Any], pred_boxes: Sequence[Any],
                         pred_scores: Sequence[Any], pred_labels: Sequence[Any], num_classes: int,
                         thresholds: Thresholds | None = None) -> float:
    """Seconds for cleanlab's three public ``compute_*_box_scores`` called the naive way (no shared
    auxiliary inputs, so each redoes the matching), with the same thresholds as :func:`score_labels`
    (calibrated when None; calibration and format conversion are not timed)."""
    images = _validate(gt_boxes, gt_labels, pred_boxes, pred_scores, pred_labels, num_classes)
    th = thresholds if thresholds is not None else _calibrate(images)
    labels, predictions = _cleanlab_format(images, num_classes)
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        for fn, kwargs in _cleanlab_calls(th).values():
            fn(labels=labels, predictions=predictions, alpha=th.alpha, **kwargs)
    return time.perf_counter() - t


def benchmark_inputs(*, n_images: int = 1000, boxes_per_image: int = 10, preds_per_image: int = 100,
                     num_classes: int = 5, seed: int = 0) -> dict[str, Any]:
    """Synthetic inputs for a speed benchmark, as keyword arguments of :func:`score_labels`.

    512 x 512 images; per labeled box one jittered detection (score 0.3-0.9, same class except 10 %
    drawn at random) and a weaker, further-shifted same-class one; the rest of ``preds_per_image`` are background
    detections with a 0.05-0.3 noise score. Deterministic for a seed.
    """
    if boxes_per_image < 0 or 2 * boxes_per_image > preds_per_image:
        raise ValueError(f"preds_per_image ({preds_per_image}) must be >= 2 x boxes_per_image ({boxes_per_image})")
    rng = np.random.default_rng(seed)
    size = 512.0

    def boxes(n: int) -> np.ndarray:
        wh = rng.uniform(16, 80, (n, 2))
        xy = rng.uniform(0, size - wh)
        return np.concatenate([xy, xy + wh], axis=1)

    out: dict[str, Any] = {k: [] for k in ("gt_boxes", "gt_labels", "pred_boxes", "pred_scores", "pred_labels")}
    for _ in range(n_images):
        gb, gl = boxes(boxes_per_image), rng.integers(0, num_classes, boxes_per_image)
        scale = np.tile(gb[:, 2:] - gb[:, :2], 2)  # [L, 4]: w, h, w, h
        hit = np.clip(gb + rng.normal(0, 0.06, gb.shape) * scale, 0, size)
        ghost = np.clip(gb + rng.normal(0, 0.25, gb.shape) * scale, 0, size)
        hit_l = np.where(rng.random(boxes_per_image) < 0.1, rng.integers(0, num_classes, boxes_per_image), gl)
        n_bg = preds_per_image - 2 * boxes_per_image
        pb = np.concatenate([hit, ghost, boxes(n_bg)])
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 1.0)
        ps = np.concatenate([rng.uniform(0.3, 0.9, boxes_per_image), rng.uniform(0.05, 0.3, boxes_per_image),
                             0.05 + rng.exponential(0.05, n_bg).clip(0, 0.25)])
        pl = np.concatenate([hit_l, gl, rng.integers(0, num_classes, n_bg)])
        for key, value in zip(out, (gb, gl, pb, ps, pl), strict=True):
            out[key].append(value)
    out["num_classes"] = num_classes
    return out
