"""labeltool.ml.quality: cleanlab sub-scores with calibrated thresholds, own spurious/duplicate
checks, concrete fixes, ranking, validation. Small synthetic arrays; numpy + cleanlab, no torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cleanlab.object_detection import rank

from labeltool.ml import quality as q
from labeltool.ml import quality_baseline as qb
from labeltool.ml import quality_floors as qf
from labeltool.ml.cleanlab_inputs import build_auxiliary_inputs, cleanlab_auxiliary_inputs
from labeltool.ml.quality import IssueCandidate, Thresholds, calibrate_thresholds, score_labels


def B(*rows: list[float]) -> np.ndarray:
    """float[N, 4] xyxy boxes."""
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def L(*labels: int) -> np.ndarray:
    return np.array(labels, dtype=np.int64)


def S(*scores: float) -> np.ndarray:
    return np.array(scores, dtype=np.float64)


def data(images: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
         num_classes: int = 3) -> dict[str, Any]:
    """Keyword arguments of score_labels from (gt_boxes, gt_labels, pred_boxes, pred_scores, pred_labels)."""
    keys = ("gt_boxes", "gt_labels", "pred_boxes", "pred_scores", "pred_labels")
    out: dict[str, Any] = {k: [img[n] for img in images] for n, k in enumerate(keys)}
    out["num_classes"] = num_classes
    return out


def perfect(gb: np.ndarray, gl: np.ndarray, score: float = 0.9) -> tuple:
    return gb, gl, gb.copy(), np.full(len(gb), score), gl.copy()


def swap_input(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if k != "num_classes"}


def types_of(result: q.QualityResult) -> list[str]:
    return [c.type for c in result.candidates]


A, Bx, C = [10, 10, 60, 60], [100, 100, 160, 150], [200, 40, 260, 90]


def test_perfect_predictions_give_no_candidates() -> None:
    kw = data([perfect(B(A, Bx), L(0, 1)), perfect(B(C), L(2)), perfect(B(A, Bx, C), L(1, 1, 0), 0.97)])
    r = score_labels(**kw)
    assert r.candidates == []
    np.testing.assert_allclose(r.image_scores, 1.0)
    for lq, s in zip(r.label_quality, r.box_scores, strict=True):
        np.testing.assert_allclose(lq, 1.0)
        assert set(s) == {"overlooked", "swap", "badloc", "spurious", "duplicate"}
        assert np.isnan(s["overlooked"]).all()  # every prediction overlaps a label: not considered
    assert set(r.timings) >= {"shared_inputs", "overlooked", "badloc", "swap", "own_checks", "total"}


def test_dropped_label_is_overlooked_with_prediction_box_and_class() -> None:
    # predictions deliberately not sorted by class: cleanlab renumbers them class by class
    pb, ps, pl = B(C, A, Bx), S(0.9, 0.9, 0.9), L(2, 1, 0)
    kw = data([(B(A, Bx), L(1, 0), pb, ps, pl), perfect(B(A), L(0))])
    r = score_labels(**kw)
    top = r.candidates[0]
    assert (top.type, top.image_index, top.box_index) == ("overlooked", 0, None)
    assert top.suggested_class == 2 and top.suggested_box == tuple(map(float, C))
    assert top.prediction_index == 0
    assert types_of(r) == ["overlooked"]
    over = r.box_scores[0]["overlooked"]
    assert over[0] < r.thresholds.flag and np.isnan(over[1:]).all()
    assert r.image_scores[0] < r.thresholds.flag and r.image_scores[1] == pytest.approx(1.0)


def test_two_overlapping_unlabeled_predictions_give_one_add_candidate() -> None:
    c2 = [204, 42, 262, 92]  # IoU ~0.8 with C, another class, lower score
    kw = data([(B(A), L(0), B(A, c2, C), S(0.9, 0.7, 0.8), L(0, 1, 2))])
    r = score_labels(**kw)
    assert types_of(r) == ["overlooked"]
    assert r.candidates[0].suggested_box == tuple(map(float, C)) and r.candidates[0].suggested_class == 2
    assert (r.box_scores[0]["overlooked"][1:] < r.thresholds.flag).all()  # both scored, one suggested
    # a weak model's boxes a stride apart around one object (IoU 0.48 with each other): still one spot
    near = [221, 40, 281, 90]
    assert q.OVERLOOKED_NMS_IOU <= q._iou(B(C), B(near))[0, 0] < 0.5
    r = score_labels(**data([(B(A), L(0), B(A, near, C), S(0.9, 0.7, 0.8), L(0, 1, 2))]))
    assert types_of(r) == ["overlooked"] and r.candidates[0].suggested_box == tuple(map(float, C))


def test_swapped_class_suggests_the_predicted_class() -> None:
    kw = data([(B(A, Bx), L(0, 1), B(A, Bx), S(0.9, 0.9), L(2, 1))])
    r = score_labels(**kw)
    assert types_of(r) == ["swap"]
    c = r.candidates[0]
    assert (c.image_index, c.box_index, c.label, c.suggested_class) == (0, 0, 0, 2)
    labels, preds = q.to_cleanlab_inputs(**kw)  # same score as cleanlab's: its floor, min similarity
    th = r.thresholds
    raw = rank.compute_swap_box_scores(labels=labels, predictions=preds, alpha=th.alpha,
                                       high_probability_threshold=th.high, overlapping_label_check=False)[0]
    aux = rank._get_valid_inputs_for_compute_scores(th.alpha, labels, preds)
    assert c.score == raw[0] == aux[0]["min_possible_similarity"] > 0
    assert r.label_quality[0][0] < r.thresholds.flag and r.label_quality[0][1] == pytest.approx(1.0)


def test_no_swap_when_the_labeled_class_scores_higher_at_that_place() -> None:
    # RetinaNet scores classes independently: a weaker rival class on a correct box is no swap
    far = [150, 150, 200, 200]  # keeps cleanlab's dataset-wide min similarity (its swap floor) small
    kw = data([(B(A), L(0), B(A, A, far), S(0.95, 0.8, 0.07), L(0, 2, 1))])
    r = score_labels(**kw)
    assert r.candidates == []
    assert r.box_scores[0]["swap"][0] == 1.0


def test_swap_score_rises_as_the_labeled_class_nears_the_rival() -> None:
    # the model torn between two classes (own 0.85 x rival) is no swap; sure of the rival (own 0.1 x) is
    far = [150, 150, 200, 200]
    scores = {}
    for own in (0.08, 0.4, 0.68):
        kw = data([(B(A), L(0), B(A, A, far), S(own, 0.8, 0.07), L(0, 2, 1))] + [perfect(B(A), L(1), 0.5)] * 25)
        r = score_labels(**kw)
        scores[own] = r.box_scores[0]["swap"][0]
        assert r.box_scores[0]["swap"][0] >= min(1.0, r.thresholds.flag * own / 0.8 / q.SWAP_OWN_RATIO) - 1e-9
    assert scores[0.08] < 0.5 <= scores[0.68] and scores[0.08] < scores[0.4] < scores[0.68]
    kw = data([(B(A), L(0), B(A, A, far), S(0.08, 0.8, 0.07), L(0, 2, 1))] + [perfect(B(A), L(1), 0.5)] * 25)
    assert [(c.type, c.suggested_class) for c in score_labels(**kw).candidates] == [("swap", 2)]


def test_shifted_label_is_badloc_and_snaps_to_prediction() -> None:
    shifted = [37, 10, 87, 60]  # A moved 27 px right: IoU(A, shifted) = 23/77 ~ 0.30
    assert q._iou(B(A), B(shifted))[0, 0] == pytest.approx(0.3, abs=0.01)
    corner = [45, 45, 95, 95]  # a second, worse-placed same-class prediction (IoU 0.05): not the snap target
    kw = data([(B(A, Bx), L(1, 0), B(shifted, Bx, corner), S(0.9, 0.9, 0.6), L(1, 0, 1))])
    r = score_labels(**kw)
    assert types_of(r) == ["badloc"]  # not "spurious": a confident same-class prediction overlaps it
    c = r.candidates[0]
    assert (c.box_index, c.label, c.suggested_box, c.prediction_index) == (0, 1, tuple(map(float, shifted)), 0)
    assert c.score == pytest.approx(0.9 * 23 / 77 + 0.1 * np.exp(-2.7), abs=1e-3)  # cleanlab's similarity
    assert r.box_scores[0]["spurious"][0] == 1.0


def test_box_on_empty_background_is_spurious_and_invisible_to_cleanlab() -> None:
    ghost = [300, 300, 340, 340]
    kw = data([(B(A, ghost), L(0, 1), B(A, [305, 150, 345, 190]), S(0.9, 0.3), L(0, 1)), perfect(B(C), L(2))])
    r = score_labels(**kw)
    assert types_of(r) == ["spurious"]
    c = r.candidates[0]
    assert (c.image_index, c.box_index, c.label, c.suggested_box, c.suggested_class) == (0, 1, 1, None, None)
    assert r.box_scores[0]["spurious"][1] == 0.0  # no support at all
    # cleanlab alone (its defaults and our thresholds) rates the box perfect: the own check is needed
    labels, preds = q.to_cleanlab_inputs(**kw)
    th = r.thresholds
    for kwargs in ({}, {"alpha": th.alpha, "low_probability_threshold": th.low}):
        assert rank.compute_badloc_box_scores(labels=labels, predictions=preds, **kwargs)[0][1] == 1.0
    for kwargs in ({}, {"alpha": th.alpha, "high_probability_threshold": th.high}):
        assert rank.compute_swap_box_scores(labels=labels, predictions=preds, **kwargs)[0][1] == 1.0


def test_hard_real_object_keeps_some_support() -> None:
    th = q._calibrate([])  # fallback thresholds
    weak = 1.5 * th.spurious  # a hard object the model barely sees
    kw = data([(B(A, Bx), L(0, 1), B(A, [101, 101, 160, 150], [300, 300, 340, 340]), S(0.9, weak, 0.06),
                L(0, 1, 1)), ([], [], [], [], [])])
    r = score_labels(**kw, thresholds=th)
    sp = r.box_scores[0]["spurious"]
    assert sp[0] == 1.0 and th.flag < sp[1] < 1.0
    assert r.candidates == []


def test_labels_without_predictions_are_all_spurious() -> None:
    r = score_labels(**data([(B(A, Bx), L(0, 1), [], [], [])]))
    assert types_of(r) == ["spurious", "spurious"]
    assert [c.box_index for c in r.candidates] == [0, 1]


def test_spurious_flags_fade_when_the_model_misses_many_real_objects_of_the_class() -> None:
    def images(n_unsupported: int) -> dict[str, Any]:
        out = []
        for k in range(40):  # 40 images with one class-0 box each; the first n_unsupported are not detected
            box = B([10 + k, 10, 60 + k, 60])
            out.append((box, L(0), [] if k < n_unsupported else box.copy(), S() if k < n_unsupported else S(0.9),
                        L() if k < n_unsupported else L(0)))
        return data(out)

    th = q._calibrate([])
    few = score_labels(**images(2), thresholds=th)  # a good model: 2 of 40 unsupported (5 %)
    assert [(c.type, c.image_index) for c in few.candidates] == [("spurious", 0), ("spurious", 1)]
    floor = th.flag * (2 / 40) / qf.SPURIOUS_MAX_MISS
    assert [c.score for c in few.candidates] == pytest.approx([floor, floor])
    assert few.box_scores[0]["spurious"][0] == pytest.approx(floor)
    many = score_labels(**images(15), thresholds=th)  # 15 of 40 (38 %): the model, not the labels
    assert many.candidates == [] and many.box_scores[0]["spurious"][0] == th.flag
    assert qf.spurious_floors([L(0)] * 3, [S(0.0)] * 3, 0.5) == {0: 0.0}  # too few boxes to judge


def test_overlooked_flags_fade_when_the_model_invents_many_boxes_of_the_class() -> None:
    def images(n_invented: int) -> dict[str, Any]:
        out = []
        for k in range(40):  # 40 images with one class-0 box each, found by the model (0.9); the first
            box = B([10 + k, 10, 60 + k, 60])  # n_invented also get a confident class-1 box on empty ground
            ghost = B([150, 150, 190, 190])
            found = (np.concatenate([box, ghost]), S(0.9, 0.9), L(0, 1)) if k < n_invented else (box.copy(), S(0.9), L(0))
            out.append((box, L(0), *found))
        out.append((B([10, 100, 60, 150]), L(1), B([10, 100, 60, 150]), S(0.9), L(1)))  # class 1 exists
        return data(out)

    th = q._calibrate([])
    few = score_labels(**images(3), thresholds=th)  # 3 of 44 confident predictions are unlabeled (7 %)
    assert [(c.type, c.image_index) for c in few.candidates] == [("overlooked", i) for i in range(3)]
    floor = th.flag * (3 / 44) / qf.OVERLOOKED_MAX_UNMATCHED  # class 1 has < 10 confident predictions: overall
    assert [c.score for c in few.candidates] == pytest.approx([floor] * 3)
    assert few.box_scores[0]["overlooked"][1] == pytest.approx(floor) and np.isnan(few.box_scores[0]["overlooked"][0])
    many = score_labels(**images(30), thresholds=th)  # class 1: 30 of 31 confident boxes on nothing
    assert many.candidates == [] and many.box_scores[0]["overlooked"][1] == th.flag
    assert qf.overlooked_floors([], high=0.5, flag=0.5) == {}  # nothing to judge


def test_a_weak_models_near_misses_count_against_its_overlooked_flags() -> None:
    def images(near_miss: bool) -> dict[str, Any]:
        out = []
        for k in range(40):  # each image: one class-0 box; the model's confident class-0 box is on it or
            box = B([10 + k, 10, 60 + k, 60])  # beside it (IoU 0.33: touching, but not the same object)
            pred = B([35 + k, 10, 85 + k, 60]) if near_miss else box.copy()
            if k < 3:  # and, in three images, a confident class-0 box on empty ground
                out.append((box, L(0), np.concatenate([pred, B([150, 150, 190, 190])]), S(0.9, 0.9), L(0, 0)))
            else:
                out.append((box, L(0), pred, S(0.9), L(0)))
        out.append((B(), L(), B([100, 100, 140, 140]), S(0.9), L(0)))  # an image without labels: off-object
        return data(out)

    th = q._calibrate([])
    sharp = score_labels(**images(near_miss=False), thresholds=th)
    assert sorted(c.image_index for c in sharp.candidates if c.type == "overlooked") == [0, 1, 2, 40]
    # the same four unlabeled boxes from a model whose confident boxes mostly miss the labeled ones:
    # 44 of 44 are off-object, so the class's overlooked flags are silenced
    weak = score_labels(**images(near_miss=True), thresholds=th)
    assert [c for c in weak.candidates if c.type == "overlooked"] == []
    assert weak.box_scores[0]["overlooked"][1] == th.flag


def test_duplicate_boxes() -> None:
    dup = [10, 10, 60, 65.5]  # IoU with A = 2500 / 2775 = 0.90
    assert q._iou(B(A), B(dup))[0, 0] == pytest.approx(0.9, abs=1e-3)
    kw = data([(B(A, Bx, dup), L(0, 1, 0), B(A, Bx), S(0.9, 0.9), L(0, 1))])
    r = score_labels(**kw)
    assert types_of(r) == ["duplicate"]
    c = r.candidates[0]
    assert (c.box_index, c.other_box_index, c.label) == (2, 0, 0)
    assert c.score == pytest.approx(r.thresholds.flag * 0.1 / 0.3, rel=1e-2)
    assert r.box_scores[0]["duplicate"][:2].tolist() == [1.0, 1.0]


def test_duplicates_of_other_classes_only_when_stacked() -> None:
    stacked, near = [10, 10, 60, 61], [10, 10, 60, 65.5]  # IoU 0.98 (any class) / 0.90 (other class)
    # each box has its own weak (below "high") same-class prediction; the background prediction makes
    # cleanlab's dataset-wide min similarity small, so its stacked-box swap penalty
    # (overlapping_label_check, switched off here) would show up as swaps without a class to suggest
    pb = B(A, stacked, near, [150, 150, 200, 200])
    r = score_labels(**data([(B(A, stacked, near), L(0, 1, 2), pb, S(0.3, 0.3, 0.3, 0.07), L(0, 1, 2, 1))]))
    assert [(c.type, c.box_index, c.other_box_index) for c in r.candidates] == [("duplicate", 1, 0)]


def test_calibration_makes_overlooked_fire_for_mid_score_objects() -> None:
    rng = np.random.default_rng(0)
    images = [perfect(B(A), L(0), float(rng.uniform(0.4, 0.6))) for _ in range(30)]
    images.append((B(A), L(0), B(A, C), S(0.55, 0.5), L(0, 1)))  # C: unlabeled, score 0.5
    kw = data(images)
    th = calibrate_thresholds(**swap_input(kw))
    assert th.source.startswith("calibrated") and "n=31" in th.source
    assert 0.15 <= th.high <= 0.5 < 0.95 and th.low <= th.high and th.spurious <= th.low
    r = score_labels(**kw)
    assert r.thresholds == th
    assert [(c.type, c.image_index, c.suggested_class) for c in r.candidates] == [("overlooked", 30, 1)]
    # with cleanlab's default high threshold (0.95) the object stays invisible
    r95 = score_labels(**kw, thresholds=Thresholds(**{**th.to_dict(), "high": 0.95}))
    assert r95.candidates == []
    labels, preds = q.to_cleanlab_inputs(**kw)
    assert np.isnan(rank.compute_overlooked_box_scores(labels=labels, predictions=preds)[30]).all()


def test_calibration_falls_back_with_few_matches() -> None:
    th = calibrate_thresholds(**swap_input(data([perfect(B(A), L(0), 0.3)] * 5)))
    assert th.source.startswith("fallback") and "only 5" in th.source
    assert (th.high, th.low, th.spurious) == (q.FALLBACK_HIGH, q.FALLBACK_LOW, q.FALLBACK_SPURIOUS)


def test_calibration_clips_to_range() -> None:
    th = calibrate_thresholds(**swap_input(data([perfect(B(A), L(0), 0.999)] * 25)))
    assert th.high == 0.95 and th.low == 0.95 and th.spurious == pytest.approx(0.1998)
    th = calibrate_thresholds(**swap_input(data([perfect(B(A), L(0), 0.06)] * 25)))
    assert (th.high, th.low, th.spurious) == (0.15, 0.1, 0.08)
    scores = [0.12] * 5 + [0.9] * 20  # spurious (0.2 x 0.9) capped at low (p10 = 0.12)
    th = calibrate_thresholds(**swap_input(data([perfect(B(A), L(0), s) for s in scores])))
    assert (th.high, th.low, th.spurious) == pytest.approx((0.9, 0.12, 0.12))


def test_empty_images() -> None:
    empty: tuple = ([], [], [], [], [])
    r = score_labels(**data([empty]))
    assert r.candidates == [] and r.image_scores.tolist() == [1.0]
    assert r.box_scores[0]["swap"].shape == (0,) and r.box_scores[0]["overlooked"].shape == (0,)
    assert r.label_quality[0].shape == (0,)
    r = score_labels(**data([empty, perfect(B(A), L(0)), (np.zeros((0, 4)), L(), B(C), S(0.2), L(1))]))
    assert r.candidates == [] and r.image_scores.tolist() == pytest.approx([1.0, 1.0, 1.0])
    r = score_labels(**data([]))
    assert r.candidates == [] and r.image_scores.shape == (0,) and r.box_scores == []
    assert qb.cleanlab_default_image_scores(**data([])).shape == (0,)


@pytest.mark.parametrize(("change", "message"), [
    ({"pred_scores": [S(0.9)] * 2}, "pred_scores has 2 entries but gt_boxes has 1"),
    ({"gt_boxes": [np.zeros((1, 3))]}, r"gt_boxes\[0\] must have shape \(N, 4\)"),
    ({"pred_boxes": [B([5, 5, 1, 9])]}, r"pred_boxes\[0\] has a box with x2 < x1"),
    ({"gt_boxes": [B([0, 0, np.nan, 4])]}, r"gt_boxes\[0\] has non-finite"),
    ({"gt_labels": [L(5)]}, r"gt_labels\[0\] has label 5, outside 0..2"),
    ({"pred_labels": [L(-1)]}, r"pred_labels\[0\] has label -1"),
    ({"gt_labels": [L(0, 1)]}, r"gt_labels\[0\] must have shape \(1,\)"),
    ({"gt_labels": [np.array([0.5])]}, r"gt_labels\[0\] must hold integer"),
    ({"pred_scores": [S(1.5)]}, r"pred_scores\[0\] must be 1 scores in \[0, 1\]"),
    ({"num_classes": 0}, "num_classes must be a positive int"),
])
def test_input_validation(change: dict[str, Any], message: str) -> None:
    kw = {**data([perfect(B(A), L(0))]), **change}
    with pytest.raises(ValueError, match=message):
        score_labels(**kw)
    with pytest.raises(ValueError, match=message):
        q.to_cleanlab_inputs(**kw)


def test_threshold_validation_and_round_trip() -> None:
    th = q._calibrate([])
    assert Thresholds(**th.to_dict()) == th and th.to_dict()["flag"] == q.FLAG
    with pytest.raises(ValueError, match="Thresholds.high"):
        Thresholds(**{**th.to_dict(), "high": 1.5})
    with pytest.raises(ValueError, match="Thresholds.low"):
        Thresholds(**{**th.to_dict(), "low": 0.9, "high": 0.5})
    with pytest.raises(TypeError, match="thresholds must be"):
        score_labels(**data([perfect(B(A), L(0))]), thresholds=th.to_dict())  # type: ignore[arg-type]


def test_cleanlab_format() -> None:
    labels, preds = q.to_cleanlab_inputs(**data([(B(A), L(1), B(C, A), S(0.3, 0.8), L(2, 2))]))
    assert labels[0]["bboxes"].shape == (1, 4) and labels[0]["labels"].tolist() == [1]
    assert [p.shape for p in preds[0]] == [(0, 5), (0, 5), (2, 5)]
    assert preds[0][2][:, 4].tolist() == [0.3, 0.8] and preds[0][2][1, :4].tolist() == A


def test_shared_inputs_match_cleanlab_public_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qf, "OVERLOOKED_MAX_UNMATCHED", None)  # cleanlab's overlooked scores, unfloored
    kw = qb.benchmark_inputs(n_images=6, boxes_per_image=3, preds_per_image=14, num_classes=3, seed=3)
    kw["pred_scores"][0][0] = 0.99  # make sure overlooked/swap have something above "high"
    kw["pred_boxes"][1][-1] = [400, 400, 450, 450]
    kw["pred_scores"][1][-1] = 0.98
    th = score_labels(**kw).thresholds
    labels, preds = q.to_cleanlab_inputs(**kw)
    aux = rank._get_valid_inputs_for_compute_scores(th.alpha, labels, preds)
    shared = q._cleanlab_subscores(aux, th)
    public = {
        "overlooked": rank.compute_overlooked_box_scores(labels=labels, predictions=preds, alpha=th.alpha,
                                                         high_probability_threshold=th.high),
        "badloc": rank.compute_badloc_box_scores(labels=labels, predictions=preds, alpha=th.alpha,
                                                 low_probability_threshold=th.low),
        "swap": rank.compute_swap_box_scores(labels=labels, predictions=preds, alpha=th.alpha,
                                             high_probability_threshold=th.high, overlapping_label_check=False),
    }
    assert any((~np.isnan(o)).any() for o in public["overlooked"])
    assert any((s < 1).any() for s in public["swap"]) and any((b < 1).any() for b in public["badloc"])
    r = score_labels(**kw, thresholds=th)
    for name in public:
        for i in range(len(labels)):
            np.testing.assert_array_equal(shared[name][i], public[name][i])
    for i in range(len(labels)):
        order = np.argsort(kw["pred_labels"][i], kind="stable")  # cleanlab's order -> input order
        np.testing.assert_array_equal(r.box_scores[i]["overlooked"][order], public["overlooked"][i])
        np.testing.assert_array_equal(r.box_scores[i]["badloc"], np.nan_to_num(public["badloc"][i], nan=1.0))


def test_ranking_and_aggregates() -> None:
    dup = [10, 10, 60, 65.5]
    images = [(B(A, Bx), L(0, 1), B(A, Bx), S(0.9, 0.9), L(2, 1)),  # swap
              (B(A, dup, [300, 300, 340, 340]), L(0, 0, 1), B(A, C), S(0.9, 0.9), L(0, 2)),  # dup, spurious, over
              perfect(B(C), L(1))]
    r = score_labels(**data(images))
    scores = [c.score for c in r.candidates]
    assert scores == sorted(scores) and len(r.candidates) == 4
    assert {c.type for c in r.candidates} == {"swap", "duplicate", "spurious", "overlooked"}
    for i, s in enumerate(r.box_scores):
        expect = np.min([s[k] for k in ("swap", "badloc", "spurious", "duplicate")], axis=0)
        np.testing.assert_array_equal(r.label_quality[i], expect)
        assert r.image_scores[i] == pytest.approx(min([1.0, *expect, *s["overlooked"][~np.isnan(s["overlooked"])]]))
    per_image = {i: min(c.score for c in r.candidates if c.image_index == i) for i in (0, 1)}
    assert r.image_scores[:2].tolist() == pytest.approx([per_image[0], per_image[1]])
    assert r.image_scores[2] == pytest.approx(1.0)
    assert all(isinstance(c, IssueCandidate) for c in r.candidates)


def test_baseline_and_benchmark_helpers() -> None:
    kw = qb.benchmark_inputs(n_images=3, boxes_per_image=2, preds_per_image=8, num_classes=2, seed=1)
    again = qb.benchmark_inputs(n_images=3, boxes_per_image=2, preds_per_image=8, num_classes=2, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(kw["pred_boxes"], again["pred_boxes"], strict=True))
    assert [len(p) for p in kw["pred_scores"]] == [8, 8, 8] and kw["gt_boxes"][0].shape == (2, 4)
    base = qb.cleanlab_default_image_scores(**kw)
    labels, preds = q.to_cleanlab_inputs(**kw)
    np.testing.assert_allclose(base, rank.get_label_quality_scores(labels, preds, verbose=False))
    assert base.shape == (3,) and ((0 <= base) & (base <= 1)).all()
    assert qb.time_cleanlab_public(**kw) > 0
    with pytest.raises(ValueError, match="preds_per_image"):
        qb.benchmark_inputs(n_images=1, boxes_per_image=10, preds_per_image=5)


def test_chained_duplicates_point_at_the_kept_box() -> None:
    b1, b2 = [10, 10, 60, 63], [10, 10, 60, 66]  # IoU(A,b1)=.94, IoU(b1,b2)=.95, IoU(A,b2)=.89
    r = score_labels(**data([(B(A, b1, b2), L(0, 0, 0), B(A), S(0.9), L(0))]))
    assert [(c.type, c.box_index, c.other_box_index) for c in r.candidates] == [("duplicate", 1, 0),
                                                                                 ("duplicate", 2, 0)]


def test_neighbours_prediction_is_neither_snap_target_nor_swap_class() -> None:
    far = [150, 150, 200, 200]  # keeps cleanlab's min similarity small
    # X (class 0) is not detected; its neighbour Y (class 0) touches it and is detected
    x, y = [10, 10, 60, 60], [55, 10, 105, 60]  # IoU(X, Y) = 250 / 4750
    kw = data([(B(x, y), L(0, 0), B(y, far), S(0.9, 0.07), L(0, 1))])
    labels, preds = q.to_cleanlab_inputs(**kw)
    th = q._calibrate([])
    raw = rank.compute_badloc_box_scores(labels=labels, predictions=preds, alpha=th.alpha,
                                         low_probability_threshold=th.low)[0]
    assert raw[0] < 0.1  # cleanlab: "move X onto Y's detection"
    r = score_labels(**kw, thresholds=th)
    assert r.box_scores[0]["badloc"].tolist() == [1.0, raw[1]]
    assert [(c.type, c.box_index) for c in r.candidates] == [("spurious", 0)]  # nothing detected at X
    # X (class 0, weakly detected) overlaps Y (class 1, strongly detected): Y's class is not X's
    y = [10, 25, 60, 75]  # IoU(X, Y) = 0.54
    kw = data([(B(x, y), L(0, 1), B(x, y, far), S(0.6, 0.9, 0.07), L(0, 1, 1))])
    labels, preds = q.to_cleanlab_inputs(**kw)
    raw = rank.compute_swap_box_scores(labels=labels, predictions=preds, alpha=th.alpha,
                                       high_probability_threshold=th.high, overlapping_label_check=False)[0]
    assert raw[0] < th.flag  # cleanlab: "X should be class 1"
    r = score_labels(**kw, thresholds=th)
    assert r.candidates == [] and r.box_scores[0]["swap"][0] == 1.0


# numpy-built shared inputs vs cleanlab's own builder ------------------------------------------------

FAR = [1100, 1100, 1140, 1140]  # centre ~1540 px from A's: similarity exactly 0 (no IoU, distance term rounds off)


def edge_images() -> list[tuple]:
    """Images cleanlab's builder must agree on: empty, labels only, predictions only, one box, boxes far
    apart (> 370 px: similarity 0, left out of the minimum), touching (IoU 0), nested, zero-width,
    predictions of 4 classes in no particular order, one class with no prediction."""
    return [
        ([], [], [], [], []),
        (B(A, Bx), L(0, 3), [], [], []),
        (np.zeros((0, 4)), L(), B(C, A, Bx), S(0.3, 0.96, 0.1), L(3, 0, 3)),
        (B(A), L(1), B(A), S(0.9), L(1)),
        (B(A), L(2), B(FAR, [420, 10, 470, 60], [330, 10, 380, 60]), S(0.97, 0.6, 0.2), L(2, 0, 2)),  # 410 / 320 px
        (B(A, [60, 10, 110, 60]), L(0, 0), B([60, 10, 110, 60], [20, 20, 40, 40]), S(0.8, 0.5), L(0, 3)),
        (B(A, [30, 30, 30, 55]), L(3, 1), B([30, 30, 30, 55], A, [12, 12, 58, 58]), S(0.4, 0.9, 0.7), L(1, 2, 3)),
    ]


def random_images(seed: int, n: int = 12, size: float = 1200.0, num_classes: int = 4) -> list[tuple]:
    """Random counts (0-6 labels, 0-12 predictions), sizes and classes on a large canvas, plus jittered
    copies of labels among the predictions so that IoUs span 0..1."""
    rng = np.random.default_rng(seed)

    def boxes(k: int) -> np.ndarray:
        wh = rng.uniform(0, 150, (k, 2))
        xy = rng.uniform(0, size - wh)
        return np.concatenate([xy, xy + wh], axis=1)

    out = []
    for _ in range(n):
        gb, n_pred = boxes(int(rng.integers(0, 7))), int(rng.integers(0, 13))
        jitter = gb + rng.normal(0, 8, gb.shape)
        jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2])
        pb = np.concatenate([jitter, boxes(n_pred)])
        out.append((gb, rng.integers(0, num_classes, len(gb)), pb, rng.uniform(0.05, 1.0, len(pb)),
                    rng.integers(0, num_classes, len(pb))))
    return out


AUX_DATASETS = {
    "benchmark": lambda: qb.benchmark_inputs(n_images=8, boxes_per_image=5, preds_per_image=30, num_classes=4,
                                            seed=7),
    "edge_cases": lambda: data(edge_images(), num_classes=4),
    "random_multiclass": lambda: data(random_images(11), num_classes=4),
    "one_box": lambda: data([(B(A), L(0), B(Bx), S(0.5), L(0))], num_classes=1),
    "all_far_apart": lambda: data([(B(A), L(0), B(FAR), S(0.9), L(1)), ([], [], [], [], [])], num_classes=2),
    "no_predictions": lambda: data([(B(A, C), L(0, 1), [], [], []), (B(Bx), L(1), [], [], [])], num_classes=2),
    "no_labels": lambda: data([([], [], B(A, C), S(0.9, 0.2), L(1, 0)), ([], [], [], [], [])], num_classes=2),
}


def assert_same_aux(fast: list[dict], slow: list[dict]) -> None:
    """Every key, in cleanlab's order, with cleanlab's type, dtype and shape; values exact for boxes,
    classes and scores (copied), within 1e-12 relative for the computed IoU / similarity (zeros
    exactly: they decide what counts for the minimum similarity)."""
    assert len(fast) == len(slow)
    for f, s in zip(fast, slow, strict=True):
        assert list(f) == list(s)
        for key in s:
            fa, sa = np.asarray(f[key]), np.asarray(s[key])
            assert type(f[key]) is type(s[key]) and fa.dtype == sa.dtype and fa.shape == sa.shape, key
            if key in ("similarity_matrix", "iou_matrix", "min_possible_similarity"):
                np.testing.assert_allclose(fa, sa, rtol=1e-12, atol=0, err_msg=key)
            else:
                np.testing.assert_array_equal(fa, sa, err_msg=key)
    assert len({float(f["min_possible_similarity"]) for f in fast}) <= 1


@pytest.mark.parametrize("alpha", [0.9, 0.5])
@pytest.mark.parametrize("dataset", sorted(AUX_DATASETS))
def test_numpy_shared_inputs_match_cleanlab_builder(dataset: str, alpha: float) -> None:
    labels, preds = q.to_cleanlab_inputs(**AUX_DATASETS[dataset]())
    fast = build_auxiliary_inputs(alpha, labels, preds)
    slow = rank._get_valid_inputs_for_compute_scores(alpha, labels, preds)
    assert_same_aux(fast, slow)
    assert_same_aux(cleanlab_auxiliary_inputs(alpha, labels, preds), slow)
    mins = fast[0]["min_possible_similarity"]
    if dataset in ("all_far_apart", "no_predictions", "no_labels"):
        assert mins == 1.0  # no non-zero similarity anywhere
    else:
        assert 0 < mins < 1


def test_numpy_shared_inputs_edge_values() -> None:
    labels, preds = q.to_cleanlab_inputs(**data(edge_images(), num_classes=4))
    aux = build_auxiliary_inputs(0.9, labels, preds)
    assert [a["similarity_matrix"].shape for a in aux] == [(0, 0), (2, 0), (0, 3), (1, 1), (1, 3), (2, 2), (2, 3)]
    assert aux[1]["pred_bboxes"].shape == (0,) and aux[1]["pred_labels"].dtype == np.float64  # as cleanlab
    assert aux[2]["pred_labels"].tolist() == [0, 3, 3] and aux[2]["pred_label_probs"].tolist() == [0.96, 0.3, 0.1]
    assert aux[3]["iou_matrix"].tolist() == [[1.0]] and aux[3]["similarity_matrix"][0, 0] == pytest.approx(1.0)
    far = aux[4]  # class-sorted predictions: 0 at 410 px, then 2 at ~1540 px and at 320 px
    assert far["iou_matrix"].tolist() == [[0.0, 0.0, 0.0]]
    assert far["similarity_matrix"][0, :2].tolist() == [0.0, 0.0] and far["similarity_matrix"][0, 2] > 0
    assert aux[5]["iou_matrix"][0, 0] == 0.0 and aux[5]["iou_matrix"][1, 0] == 1.0  # touching / same box
    assert aux[6]["iou_matrix"][0, 2] == pytest.approx(46 * 46 / 2500)  # nested
    assert aux[6]["iou_matrix"][1, 0] == 0.0  # zero-width boxes: epsilon-clipped union, no nan
    assert build_auxiliary_inputs(0.9, [], []) == []
    with pytest.raises(ValueError, match="labels has 1 images but predictions has 0"):
        build_auxiliary_inputs(0.9, labels[:1], [])


def score_both_ways(kw: dict[str, Any], thresholds: Thresholds | None = None) -> tuple[q.QualityResult, ...]:
    return tuple(score_labels(**kw, thresholds=thresholds, shared_inputs=b) for b in ("numpy", "cleanlab"))


@pytest.mark.parametrize("fallback", [False, True])
def test_score_labels_identical_with_either_shared_inputs_builder(fallback: bool) -> None:
    kw = qb.benchmark_inputs(n_images=10, boxes_per_image=4, preds_per_image=16, num_classes=4, seed=2)
    kw["pred_scores"][0][-1] = 0.99  # a confident unlabeled prediction: overlooked
    dup = [10, 10, 60, 65.5]
    for img in [*edge_images(), (B(A, dup, [300, 300, 340, 340]), L(0, 0, 1), B(A, C), S(0.9, 0.9), L(0, 2)),
                (B(A, Bx), L(0, 1), B(A, Bx), S(0.9, 0.9), L(2, 1)), *random_images(5, n=6)]:
        for key, value in zip(("gt_boxes", "gt_labels", "pred_boxes", "pred_scores", "pred_labels"), img, strict=True):
            kw[key].append(value)
    fast, slow = score_both_ways(kw, q._calibrate([]) if fallback else None)
    assert fast.thresholds == slow.thresholds
    assert {"overlooked", "swap", "badloc", "spurious", "duplicate"} <= {c.type for c in fast.candidates}
    assert fast.candidates == slow.candidates
    for f, s in zip(fast.box_scores, slow.box_scores, strict=True):
        assert list(f) == list(s)
        for key in f:
            np.testing.assert_array_equal(f[key], s[key], err_msg=key)
    for f, s in zip(fast.label_quality, slow.label_quality, strict=True):
        np.testing.assert_array_equal(f, s)
    np.testing.assert_array_equal(fast.image_scores, slow.image_scores)


def test_score_labels_builds_shared_inputs_with_numpy_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("cleanlab's builder was called")

    kw = data([(B(A, Bx), L(0, 1), B(A, Bx), S(0.9, 0.9), L(2, 1))])
    expected = score_labels(**kw, shared_inputs="cleanlab")
    monkeypatch.setattr(rank, "_get_valid_inputs_for_compute_scores", forbidden)
    r = score_labels(**kw)
    assert r.candidates == expected.candidates and types_of(r) == ["swap"]
    with pytest.raises(AssertionError, match="builder was called"):
        score_labels(**kw, shared_inputs="cleanlab")
    with pytest.raises(ValueError, match="shared_inputs must be one of"):
        score_labels(**kw, shared_inputs="torch")


def test_a_class_floor_lifts_its_scores_but_keeps_their_order() -> None:
    scores = np.array([0.01, 0.2, 0.4, 0.6, np.nan])
    lifted = qf.lift(scores, np.full(5, 0.3), 0.5)
    assert lifted[:3] == pytest.approx([0.3 + 0.2 * 0.02, 0.3 + 0.2 * 0.4, 0.3 + 0.2 * 0.8])
    assert np.all(np.diff(lifted[:3]) > 0) and lifted[3] == 0.6 and np.isnan(lifted[4])  # order kept, rest as is
    assert np.all(qf.lift(scores[:3], np.full(3, 0.5), 0.5) == 0.5)  # a floor at the flag silences the class
    assert qf.lift(scores[:3], np.zeros(3), 0.5) == pytest.approx(scores[:3])  # no floor, no change
