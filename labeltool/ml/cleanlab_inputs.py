"""cleanlab ObjectLab's shared per-image ("auxiliary") inputs, built with numpy.

``cleanlab.object_detection.rank.compute_{overlooked,badloc,swap}_box_scores`` accept
``auxiliary_inputs``: one dict per image with the predictions split into boxes / classes / scores,
the labeled boxes, the label-by-prediction IoU and similarity matrices, and the dataset-wide
smallest non-zero similarity. cleanlab builds them in
``rank._get_valid_inputs_for_compute_scores`` with Python loops over every (label, prediction)
pair, twice (once for the dataset-wide minimum); that took ~70 % of :func:`labeltool.ml.quality.
score_labels`. :func:`build_auxiliary_inputs` computes the same dicts with numpy, operation for
operation, so the values are bit-identical (the tests compare both builders key by key);
:func:`cleanlab_auxiliary_inputs` is cleanlab's own builder, kept for comparison and benchmarks.

Similarity (cleanlab's definition): ``alpha * IoU + (1 - alpha) * exp(-EUC_FACTOR * centre
distance)``, computed as cleanlab does, ``(1 - alpha) * (1 - (1 - exp(...)))``: beyond ~370 px the
distance term rounds to exactly 0, so far-apart non-overlapping pairs get similarity 0 and do not
count for the minimum. numpy only; cleanlab is imported when a builder runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

AuxBuilder = Callable[[float, Sequence[dict[str, Any]], Sequence[Sequence[np.ndarray]]], list[dict[str, Any]]]


def _split_predictions(prediction: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cleanlab's ``_separate_prediction`` (its "single_pred" format): per-class arrays float[M_k, 5]
    ``[x1, y1, x2, y2, score]`` -> boxes float[M, 4], classes int[M], scores float[M], class by class.
    No predictions: three float arrays of shape (0,), as cleanlab returns them."""
    parts = [np.asarray(p, dtype=np.float64) for p in prediction]
    rows = [p for p in parts if len(p)]
    if not rows:
        return np.array([]), np.array([]), np.array([])
    boxes = np.concatenate([p[:, :4] for p in rows])
    scores = np.concatenate([p[:, -1] for p in rows])
    classes = np.repeat(np.arange(len(parts), dtype=np.int64), [len(p) for p in parts])
    return boxes, classes, scores


def _iou_matrix(lab: np.ndarray, pred: np.ndarray, epsilon: float) -> np.ndarray:
    """cleanlab's ``_get_overlap_matrix``: IoU float[L, M] with its ``epsilon``-clipped denominator
    and exactly 0 for pairs whose intersection is empty (touching boxes give 0 / union = 0)."""
    a, b = lab[:, None, :], pred[None, :, :]
    x_left, y_top = np.maximum(a[..., 0], b[..., 0]), np.maximum(a[..., 1], b[..., 1])
    x_right, y_bottom = np.minimum(a[..., 2], b[..., 2]), np.minimum(a[..., 3], b[..., 3])
    inter = (x_right - x_left) * (y_bottom - y_top)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    iou = inter / np.clip(area_a + area_b - inter, epsilon, None)
    return np.where((x_right < x_left) | (y_bottom < y_top), 0.0, iou)


def _closeness_matrix(lab: np.ndarray, pred: np.ndarray, euc_factor: float) -> np.ndarray:
    """cleanlab's ``_get_dist_matrix``: ``exp(-euc_factor * centre distance)`` float[L, M]. The distance
    goes through numpy's dot (as ``np.linalg.norm`` does; BLAS may fuse multiply-adds), not
    ``sqrt(dx**2 + dy**2)``, which can differ from it in the last bit."""
    diff = (lab[:, None, :2] + lab[:, None, 2:]) / 2 - (pred[None, :, :2] + pred[None, :, 2:]) / 2  # [L, M, 2]
    sq = np.matmul(diff[..., None, :], diff[..., :, None])[..., 0, 0]  # per pair: 1x2 @ 2x1 = numpy's dot
    return np.exp(-np.sqrt(sq) * euc_factor)


def build_auxiliary_inputs(alpha: float, labels: Sequence[dict[str, Any]],
                           predictions: Sequence[Sequence[np.ndarray]]) -> list[dict[str, Any]]:
    """Same result as ``cleanlab.object_detection.rank._get_valid_inputs_for_compute_scores(alpha,
    labels, predictions)``, vectorised per image.

    ``labels[i] = {"bboxes": float[L, 4], "labels": int[L]}`` (passed through as ``lab_bboxes`` /
    ``lab_labels``); ``predictions[i]`` = one array float[M_k, 5] per class. Per image: ``pred_bboxes``
    float[M, 4], ``pred_labels`` int[M], ``pred_label_probs`` float[M] (all float (0,) when M = 0),
    ``iou_matrix`` / ``similarity_matrix`` float[L, M], ``min_possible_similarity`` np.float64: the
    smallest non-zero similarity over all images (1.0 when there is none), the same in every dict.
    """
    from cleanlab.internal.constants import EPSILON, EUC_FACTOR

    if len(labels) != len(predictions):
        raise ValueError(f"labels has {len(labels)} images but predictions has {len(predictions)}")
    out: list[dict[str, Any]] = []
    min_sim = 1.0
    for label, prediction in zip(labels, predictions, strict=True):
        lab_bboxes, lab_labels = label["bboxes"], label["labels"]
        pred_bboxes, pred_labels, pred_probs = _split_predictions(prediction)
        lab = np.asarray(lab_bboxes, dtype=np.float64).reshape(-1, 4)
        pred = pred_bboxes.reshape(-1, 4)
        iou = _iou_matrix(lab, pred, EPSILON)
        dist = 1 - _closeness_matrix(lab, pred, EUC_FACTOR)
        sim = iou * alpha + (1 - alpha) * (1 - dist)
        nonzero = sim[sim != 0]
        if nonzero.size:
            min_sim = min(min_sim, float(nonzero.min()))
        out.append({"pred_labels": pred_labels, "pred_label_probs": pred_probs, "pred_bboxes": pred_bboxes,
                    "lab_labels": lab_labels, "lab_bboxes": lab_bboxes, "similarity_matrix": sim,
                    "iou_matrix": iou})
    for aux in out:
        aux["min_possible_similarity"] = np.float64(min_sim)
    return out


def cleanlab_auxiliary_inputs(alpha: float, labels: Sequence[dict[str, Any]],
                              predictions: Sequence[Sequence[np.ndarray]]) -> list[dict[str, Any]]:
    """cleanlab's own (pure-Python) builder, for comparison and benchmarks: slow, same result."""
    from cleanlab.object_detection import rank

    return rank._get_valid_inputs_for_compute_scores(alpha, list(labels), list(predictions))


BUILDERS: dict[str, AuxBuilder] = {"numpy": build_auxiliary_inputs, "cleanlab": cleanlab_auxiliary_inputs}
