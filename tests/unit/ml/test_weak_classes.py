"""The weak-class table's recommendations follow from counts, AP and label quality."""

from __future__ import annotations

import numpy as np

from labeltool.ml.evaluate import ClassMetrics, EvalResult
from labeltool.ml.quality import IssueCandidate, QualityResult, Thresholds
from labeltool.ml.weak_classes import weak_class_table


def _eval(aps: list[float | None], confusion: list[list[int]]) -> EvalResult:
    per_class = [ClassMetrics(name=n, n_gt=10, n_images=10, ap50=a, ap50_95=a, pr_recall=[], pr_precision=[])
                 for n, a in zip("abcd", aps, strict=False)]
    return EvalResult(map50=0.5, map50_95=0.3, per_class=per_class, class_names=list("abcd")[: len(aps)],
                      confusion=confusion, confusion_iou=0.5, confusion_score=0.3, n_images=10)


def test_recommendations() -> None:
    # class 0: many boxes, flagged a lot (swaps to class 1) -> relabel; class 1: fine -> ok;
    # class 2: consistent labels but low AP -> augment; class 3: 3 boxes -> collect more images
    gt_labels = [np.array([0] * 5 + [1] * 5 + [2] * 5)] * 8 + [np.array([3, 3, 3])]
    quality_vals = [np.ones(len(g)) for g in gt_labels]
    cands = [IssueCandidate("swap", i, 0, 0.1, 0, 1, None) for i in range(8)]
    th = Thresholds(high=0.5, low=0.2, alpha=0.9, spurious=0.1, duplicate_iou=0.7, flag=0.5, source="test")
    quality = QualityResult(th, [], quality_vals, np.ones(len(gt_labels)), cands, {})
    confusion = [[30, 8, 0, 0, 2], [0, 40, 0, 0, 0], [0, 0, 20, 0, 20], [0, 0, 0, 1, 2], [1, 1, 1, 1, 0]]
    rows = weak_class_table(class_names=list("abcd"), gt_labels=gt_labels,
                            evaluation=_eval([0.7, 0.8, 0.3, None], confusion), quality=quality)
    by = {r["class"]: r for r in rows}
    assert by["a"]["recommendation"] == "relabel" and by["a"]["confused_with"] == "b"
    assert "8 of its 40 boxes" in by["a"]["reason"]
    assert by["b"]["recommendation"] == "ok"
    assert by["c"]["recommendation"] == "augment" and "AP 0.30" in by["c"]["reason"]
    assert by["d"]["recommendation"] == "collect more images" and by["d"]["boxes"] == 3
    assert (by["a"]["boxes"], by["a"]["images"], by["d"]["images"]) == (40, 8, 1)
    weak_model = weak_class_table(class_names=list("abcd"), gt_labels=gt_labels, model_reliable=False,
                                  evaluation=_eval([0.7, 0.8, 0.3, None], confusion), quality=quality)
    assert [r["recommendation"] for r in weak_model] == ["not judged"] * 3 + ["collect more images"]
