"""Fix order: impact = likelihood x the headroom of the classes an issue touches."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest

from labeltool.core.fix_priority import HEADROOM_FLOOR, class_headroom, image_impacts, impact, rooms_of


class Cand(NamedTuple):  # the fields image_impacts reads from ml.quality.IssueCandidate
    image_index: int
    score: float
    label: int | None
    suggested_class: int | None


def test_headroom_is_one_minus_ap_with_a_floor_and_fills_missing_with_the_mean() -> None:
    h = class_headroom([0.9, 0.5, None, math.nan])
    assert h.tolist() == pytest.approx([0.1, 0.5, 0.3, 0.3])
    assert class_headroom([None, None]).tolist() == [1.0, 1.0]  # nothing known: every class counts fully
    assert class_headroom([1.0, -0.1]).tolist() == [HEADROOM_FLOOR, 1.0]  # a perfect class keeps the floor
    with pytest.raises(ValueError, match="one AP per class"):
        class_headroom([])


def test_a_likely_error_in_a_learnt_class_ranks_below_a_less_likely_one_in_the_weak_class() -> None:
    headroom = class_headroom([0.9, 0.5])
    sure_easy = impact(0.05, rooms_of((0, None), headroom))  # 0.95 x 0.1
    unsure_weak = impact(0.4, rooms_of((0, 1), headroom))  # a swap touching the weak class: 0.6 x 0.5
    assert sure_easy == pytest.approx(0.095) and unsure_weak == pytest.approx(0.3)
    assert unsure_weak > sure_easy
    with pytest.raises(ValueError, match="at least one class"):
        impact(0.1, rooms_of((None, None), headroom))
    with pytest.raises(ValueError, match="outside 0..1"):
        rooms_of((2,), headroom)


def test_image_impact_is_its_best_issue() -> None:
    headroom = class_headroom([0.9, 0.4])
    cands = [Cand(0, 0.2, 0, 1),  # swap into the weak class: 0.8 x 0.6
             Cand(0, 0.05, 0, None),  # box on nothing: 0.95 x 0.1
             Cand(2, 0.3, None, 0)]  # missing box: 0.7 x 0.1
    p = image_impacts(cands, 4, headroom)
    assert p.tolist() == pytest.approx([0.48, 0.0, 0.07, 0.0])
    assert np.argsort(-p, kind="stable").tolist()[:2] == [0, 2]
