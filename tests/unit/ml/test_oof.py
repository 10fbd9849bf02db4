"""Stratified folds for the out-of-sample predictions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from labeltool.ml.data import Sample
from labeltool.ml.oof import assign_folds


def sample(i: int, labels: list[int]) -> Sample:
    return Sample(i, Path(f"{i}.png"), np.zeros((len(labels), 4), np.float32), np.array(labels, np.int64),
                  None, 10, 10)


def test_folds_are_stratified_balanced_and_deterministic() -> None:
    samples = [sample(i, [0]) for i in range(30)] + [sample(30 + i, [1, 0]) for i in range(6)] + \
              [sample(40 + i, []) for i in range(4)]
    folds = assign_folds(samples, k=3, seed=0)
    assert folds == assign_folds(samples, k=3, seed=0)
    assert folds != assign_folds(samples, k=3, seed=1)
    sizes = Counter(folds)
    assert max(sizes.values()) - min(sizes.values()) <= 1
    rare = Counter(f for s, f in zip(samples, folds, strict=True) if 1 in s.labels.tolist())
    assert sorted(rare.values()) == [2, 2, 2]  # the rare class is in every fold
    empty = Counter(f for s, f in zip(samples, folds, strict=True) if len(s.labels) == 0)
    assert len(empty) >= 2  # defect-free images are spread too


def test_fold_count_is_validated() -> None:
    with pytest.raises(ValueError, match="folds must be between"):
        assign_folds([sample(0, [0])] * 5, k=1)
    with pytest.raises(ValueError, match="cannot be split into 4 folds"):
        assign_folds([sample(i, [0]) for i in range(3)], k=4)
