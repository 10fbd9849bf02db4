"""The weak-class report: per class, what is wrong and what to do about it, in plain words.

Inputs are the out-of-sample evaluation (per-class AP, confusion matrix) and the label-quality
scores. A class is a candidate for **relabel** when many of its boxes look inconsistent, for
**collect more images** when it has too few examples to learn from, and for **augment** when its
labels look fine but the model still does poorly on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .evaluate import EvalResult
from .quality import QualityResult

MIN_BOXES = 15  # below this many boxes a detector cannot learn a class reliably (few-shot territory)
FLAGGED_SHARE = 0.15  # relabel when more than this share of a class's boxes were flagged …
LOW_QUALITY = 0.6  # … or when its mean label quality is below this
LOW_AP_RATIO = 0.75  # augment when AP < this × the mean AP of the other classes
CONFUSED_SHARE = 0.1  # name a confusable class when this share of a class's boxes is predicted as it


def weak_class_table(
    *, class_names: Sequence[str], gt_labels: Sequence[np.ndarray], evaluation: EvalResult, quality: QualityResult,
    model_reliable: bool = True,
) -> list[dict[str, Any]]:
    """One row per class: class, boxes, images, ap50, label_quality, flagged, confused_with,
    confusion_share, recommendation ('relabel' | 'collect more images' | 'augment' | 'ok' |
    'not judged'), reason. With ``model_reliable=False`` (the analysis models found too few defects)
    only the box count is judged: low label quality would mostly reflect the model."""
    n_classes = len(class_names)
    boxes = Counter(int(c) for labels in gt_labels for c in labels)
    images = Counter(int(c) for labels in gt_labels for c in set(labels.tolist()))
    per_box_quality: dict[int, list[float]] = {c: [] for c in range(n_classes)}
    for labels, q in zip(gt_labels, quality.label_quality, strict=True):
        for c, v in zip(labels.tolist(), q.tolist(), strict=True):
            per_box_quality[int(c)].append(float(v))
    flagged = Counter(cand.label for cand in quality.candidates if cand.label is not None)
    swaps = Counter((cand.label, cand.suggested_class) for cand in quality.candidates if cand.type == "swap")
    ap = {i: evaluation.per_class[i].ap50 for i in range(n_classes)}
    confusion = np.asarray(evaluation.confusion, dtype=np.float64)
    rows = []
    for c, name in enumerate(class_names):
        n = boxes.get(c, 0)
        q = float(np.mean(per_box_quality[c])) if per_box_quality[c] else None
        others = [v for i, v in ap.items() if i != c and v is not None]
        mean_other = float(np.mean(others)) if others else None
        # most-confused other class: the confusion matrix row (GT c → predicted j), then swap suggestions
        row = confusion[c, :n_classes].copy() if confusion.size else np.zeros(n_classes)
        row[c] = 0
        for (lab, sug), k in swaps.items():
            if lab == c and sug is not None:
                row[sug] += k
        j = int(np.argmax(row)) if row.sum() > 0 else None
        share = float(row[j] / max(1, n)) if j is not None else 0.0
        confused = class_names[j] if j is not None and share >= CONFUSED_SHARE else None
        rec, reason = _recommend(name=name, n=n, ap=ap[c], quality=q, flagged=flagged.get(c, 0),
                                 mean_other=mean_other, confused=confused)
        if not model_reliable and rec != "collect more images":
            rec, reason = "not judged", ("the analysis models found too few defects to tell label errors from "
                                         "model errors; run a longer analysis or use pretrained weights")
        rows.append({"class": name, "boxes": n, "images": images.get(c, 0), "ap50": ap[c], "label_quality": q,
                     "flagged": flagged.get(c, 0), "confused_with": confused, "confusion_share": round(share, 3),
                     "recommendation": rec, "reason": reason})
    return rows


def _recommend(*, name: str, n: int, ap: float | None, quality: float | None, flagged: int,
               mean_other: float | None, confused: str | None) -> tuple[str, str]:
    if n < MIN_BOXES:
        return "collect more images", (
            f"only {n} '{name}' box{'es' if n != 1 else ''}: too few for the model to learn the class; "
            f"label at least {MIN_BOXES} (more is better)")
    if flagged / n > FLAGGED_SHARE or (quality is not None and quality < LOW_QUALITY):
        with_whom = f", most often confused with '{confused}'" if confused else ""
        return "relabel", (f"{flagged} of its {n} boxes look inconsistent{with_whom}; review them in the "
                           "issue queue before collecting more data")
    if ap is not None and mean_other is not None and ap < LOW_AP_RATIO * mean_other:
        return "augment", (f"its labels look consistent but the model finds it poorly (AP {ap:.2f} vs "
                           f"{mean_other:.2f} for the other classes); targeted augmentation or more varied "
                           "examples should help")
    return "ok", "labels look consistent and the model finds this class about as well as the others"
