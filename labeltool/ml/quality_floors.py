"""Class floors for the label-quality scores (:mod:`labeltool.ml.quality`): when a model misses many
real objects of a class, or invents many boxes of it, "unsupported" and "overlooked" say little about
that class's labels. Each class's share of such flags estimates how often the model is wrong for it;
its scores are lifted towards the flag boundary accordingly, keeping their order. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# A model that misses many real objects of a class leaves many correct boxes of it unsupported, so for
# that class "unsupported" says little. The share of a class's boxes that are unsupported estimates
# that miss rate (most labels are right); spurious scores of the class get a floor of
# flag x share / SPURIOUS_MAX_MISS: at or above that share the class gets no spurious flags at all.
SPURIOUS_MAX_MISS = 0.3
SPURIOUS_MIN_BOXES = 10  # classes with fewer labeled boxes use the share over all classes (no floor
# when the whole dataset has fewer: too few boxes to estimate a miss rate)
# The same for overlooked: a model that puts many confident boxes of a class where nothing is labeled
# mostly invents them (most objects are labeled). The share of a class's confident predictions
# (score >= "high") that cleanlab flags as overlooked estimates that false-positive rate; overlooked
# scores of the class get a floor of flag x share / OVERLOOKED_MAX_UNMATCHED (before the NMS that
# keeps one "add" per object). None turns the floor off.
OVERLOOKED_MAX_UNMATCHED: float | None = 0.5
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


def overlooked_floors(images: Sequence[tuple[np.ndarray, ...]], overlooked: list[np.ndarray], *, high: float,
                      flag: float) -> dict[int, float]:
    """Per predicted class, the floor for its overlooked scores: flag x (share of its confident
    predictions, score >= ``high``, that cleanlab flags as overlooked) / OVERLOOKED_MAX_UNMATCHED,
    capped at flag. ``overlooked``: per image, cleanlab's raw scores in input order (nan = not judged:
    the prediction overlaps a labeled box or is not confident). Empty when the floor is off."""
    if OVERLOOKED_MAX_UNMATCHED is None:
        return {}
    pl = np.concatenate([img[4] for img in images]) if images else np.zeros(0, int)
    ps = np.concatenate([img[3] for img in images]) if images else np.zeros(0)
    over = np.concatenate(overlooked) if overlooked else np.zeros(0)
    confident = ps >= high
    flagged = np.isfinite(over) & (over < flag)
    return class_floors(pl[confident], flagged[confident], min_count=OVERLOOKED_MIN_PREDICTIONS,
                         max_share=OVERLOOKED_MAX_UNMATCHED, flag=flag)
