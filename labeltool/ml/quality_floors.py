"""Class floors for the label-quality scores (:mod:`labeltool.ml.quality`): when a model misses many
real objects of a class, or invents many boxes of it, "unsupported" and "overlooked" say little about
that class's labels. Each class's share of such flags estimates how often the model is wrong for it;
its scores are lifted towards the flag boundary accordingly, keeping their order. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .arrays import box_iou

# A model that misses many real objects of a class leaves many correct boxes of it unsupported, so for
# that class "unsupported" says little. The share of a class's boxes that are unsupported estimates
# that miss rate (most labels are right); spurious scores of the class get a floor of
# flag x share / SPURIOUS_MAX_MISS: at or above that share the class gets no spurious flags at all.
SPURIOUS_MAX_MISS = 0.3
SPURIOUS_MIN_BOXES = 10  # classes with fewer labeled boxes use the share over all classes (no floor
# when the whole dataset has fewer: too few boxes to estimate a miss rate)
# The same for overlooked: a model that puts many confident boxes of a class where nothing is labeled
# mostly invents them (most objects are labeled). The share of a class's confident predictions
# (score >= "high") that sit on no labeled box estimates that false-positive rate; overlooked scores of
# the class get a floor of flag x share / OVERLOOKED_MAX_UNMATCHED (before the NMS that keeps one "add"
# per object). None turns the floor off. The share counts near misses (a box touching a labeled one at
# IoU < 0.5) as off-object: an earlier estimate, the share cleanlab itself flags, skipped every
# prediction touching a label and so missed a weak model's scatter. On the benchmark's 10-epoch fold
# predictions (held-out mAP@.5 ~0.06; 70 % of confident boxes off-object vs 15 % at 60 epochs) the
# top 10 % of images then held 28 instead of 16 of the 101 injected errors, box precision@k 0.30 -> 0.36,
# image AP 0.45 -> 0.51; 60-epoch predictions: 35 vs 34 errors, P@k 0.852 both, AP 0.891 -> 0.884.
# 0.7 (not 0.5) keeps a few "add" issues for a weak model: they were the only right fixes in the demo.
OVERLOOKED_MAX_UNMATCHED: float | None = 0.7
ON_OBJECT_IOU = 0.5  # a prediction this close to a labeled box (any class) is "on an object"
OVERLOOKED_MIN_PREDICTIONS = 10  # fewer confident predictions of a class: use the share over all classes


def spurious_floors(labels: list[np.ndarray], spurious: list[np.ndarray], flag: float) -> dict[int, float]:
    """Per class, the floor for its spurious scores: flag x (share of its boxes unsupported) /
    SPURIOUS_MAX_MISS, capped at flag (see SPURIOUS_MAX_MISS)."""
    gl = np.concatenate(labels) if labels else np.zeros(0, int)
    unsupported = (np.concatenate(spurious) < flag) if spurious else np.zeros(0, bool)
    return class_floors(gl, unsupported, min_count=SPURIOUS_MIN_BOXES, max_share=SPURIOUS_MAX_MISS, flag=flag)


def lift(scores: np.ndarray, floors: np.ndarray, flag: float) -> np.ndarray:
    """Scores below ``flag`` mapped from [0, flag) onto [floor, flag): a class's floor raises them all
    while keeping their order (a plain maximum would tie every flag of the class at the floor); scores
    at or above ``flag`` and nan stay as they are. On the benchmark's 60-epoch fold predictions this
    raised image precision@k from 0.830 (maximum) to 0.852 and box precision@k from 0.753 to 0.782."""
    below = scores < flag
    out = scores.astype(float).copy()
    out[below] = floors[below] + (flag - floors[below]) * np.clip(scores[below], 0.0, None) / flag
    return out


def class_floors(classes: np.ndarray, hit: np.ndarray, *, min_count: int, max_share: float,
                  flag: float) -> dict[int, float]:
    """Per class c of ``classes`` int[n]: flag x min(1, share of ``hit`` bool[n] within c / max_share);
    classes with fewer than ``min_count`` items use the share over all (0 when all are fewer)."""
    overall = float(hit.mean()) if hit.size >= min_count else 0.0
    floors = {}
    for c in np.unique(classes):
        mask = classes == c
        share = float(hit[mask].mean()) if mask.sum() >= min_count else overall
        floors[int(c)] = flag * min(1.0, share / max_share)
    return floors


def overlooked_floors(images: Sequence[tuple[np.ndarray, ...]], *, high: float, flag: float) -> dict[int, float]:
    """Per predicted class, the floor for its overlooked scores: flag x (share of its confident
    predictions, score >= ``high``, that sit on no labeled box: IoU < ON_OBJECT_IOU with every box of
    any class) / OVERLOOKED_MAX_UNMATCHED, capped at flag. ``images``: (gt boxes, gt labels, pred boxes,
    pred scores, pred labels) per image. Empty when the floor is off."""
    if OVERLOOKED_MAX_UNMATCHED is None or not images:
        return {}
    pl = np.concatenate([img[4] for img in images])
    confident = np.concatenate([img[3] for img in images]) >= high
    off = np.concatenate([box_iou(img[2], img[0]).max(axis=1) < ON_OBJECT_IOU if len(img[0])
                          else np.ones(len(img[2]), bool) for img in images])
    return class_floors(pl[confident], off[confident], min_count=OVERLOOKED_MIN_PREDICTIONS,
                        max_share=OVERLOOKED_MAX_UNMATCHED, flag=flag)
