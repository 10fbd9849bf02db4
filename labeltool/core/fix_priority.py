"""Fix order: which suspected label errors to fix first when there is time for only a few.

An issue's score says how *likely* a label is wrong. What the engineer wants from a fix is a better
model, and an error costs more where its class leaves more room: mAP@.5 is the mean of per-class APs,
so a class already at AP 0.97 can gain at most 0.03 while the weak class the model confuses with
others can gain half. The expected gain of a fix ("impact") is likelihood x headroom:

    impact(issue) = (1 - score) * max(headroom[c] for the classes c the issue touches)
    headroom[c]   = max(HEADROOM_FLOOR, 1 - AP50[c])

(the labeled class and the suggested one: a swap hurts both). AP50 is the analysis's own
out-of-sample AP, against the current labels. An image's impact is the highest of its issues'.
Measured on the relabel-budget benchmark (bench/label_errors.py --ranking): see CONTEXT.md.
numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

# A class the analysis found perfect (AP 1.0, e.g. in-sample quick checks) keeps a little weight, so its
# issues still rank among themselves and a near-certain one is not buried under unlikely ones elsewhere.
HEADROOM_FLOOR = 0.05


def class_headroom(ap50: Sequence[float | None]) -> np.ndarray:
    """max(HEADROOM_FLOOR, 1 - AP50) per class, at most 1. A class without AP (no labeled box in the
    analysis) gets the mean headroom of the others: nothing says it is learnt better or worse."""
    if len(ap50) == 0:
        raise ValueError("class_headroom needs one AP per class, got none")

    def known(a: float | None) -> bool:
        return a is not None and bool(np.isfinite(a))

    room = [1.0 - float(a) for a in ap50 if known(a)]  # type: ignore[arg-type]
    fill = float(np.mean(room)) if room else 1.0
    out = np.array([1.0 - float(a) if known(a) else fill for a in ap50], np.float64)  # type: ignore[arg-type]
    return np.clip(out, HEADROOM_FLOOR, 1.0)


def impact(score: float, rooms: Iterable[float]) -> float:
    """(1 - score) x the largest of ``rooms``, the headrooms of the classes the issue touches."""
    rooms = [float(r) for r in rooms]
    if not rooms:
        raise ValueError("an issue must touch at least one class (its label or its suggested class)")
    return float((1.0 - float(score)) * max(rooms))


def rooms_of(classes: Sequence[int | None], headroom: Sequence[float] | np.ndarray) -> list[float]:
    """The headrooms of ``classes`` (class indexes; None entries ignored)."""
    touched = [int(c) for c in classes if c is not None]
    for c in touched:
        if not 0 <= c < len(headroom):
            raise ValueError(f"class index {c} outside 0..{len(headroom) - 1}")
    return [float(headroom[c]) for c in touched]


def image_impacts(candidates: Sequence[Any], n_images: int, headroom: Sequence[float] | np.ndarray) -> np.ndarray:
    """float[n_images]: the highest issue impact per image (0 = nothing to fix). ``candidates``:
    :class:`labeltool.ml.quality.IssueCandidate` (image_index, score, label, suggested_class)."""
    out = np.zeros(n_images, np.float64)
    for c in candidates:
        out[c.image_index] = max(out[c.image_index], impact(c.score, rooms_of((c.label, c.suggested_class), headroom)))
    return out
