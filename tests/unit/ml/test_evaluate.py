"""labeltool.ml.evaluate: COCO mAP via pycocotools against hand-computed values, confusion matrix,
per-class delta, JSON round trip, validation, 100-detections-per-image truncation. No torch needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labeltool.ml.evaluate import (
    DEFAULT_CONFUSION_SCORE,
    ClassMetrics,
    EvalResult,
    evaluate_detections,
    format_eval_table,
    per_class_delta,
)


def B(*rows: list[float]) -> np.ndarray:
    """float32[N, 4] xyxy boxes."""
    return np.array(rows, dtype=np.float32).reshape(-1, 4)


def L(*labels: int) -> np.ndarray:
    return np.array(labels, dtype=np.int64)


def S(*scores: float) -> np.ndarray:
    return np.array(scores, dtype=np.float32)


def run(gt: list[tuple[np.ndarray, np.ndarray]], pred: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        names: list[str], **kw: object) -> EvalResult:
    return evaluate_detections(gt_boxes=[g[0] for g in gt], gt_labels=[g[1] for g in gt],
                               pred_boxes=[p[0] for p in pred], pred_scores=[p[1] for p in pred],
                               pred_labels=[p[2] for p in pred], class_names=names, **kw)


def cls(result: EvalResult, name: str) -> ClassMetrics:
    return next(c for c in result.per_class if c.name == name)


A1, A2, B1, FAR = [10, 10, 50, 50], [60, 60, 90, 90], [5, 5, 40, 40], [60, 60, 90, 90]


def test_hand_computed_ap_with_fp_and_duplicate(capsys: pytest.CaptureFixture[str]) -> None:
    """1 class, 2 images, 3 GT boxes (a1, a2 in image A; b1 in image B), 4 predictions, all exact or disjoint:

        score 0.9  image A, exactly a1          -> TP  cum TP=1 FP=0  P=1    R=1/3
        score 0.8  image B, disjoint from b1    -> FP  cum TP=1 FP=1  P=1/2  R=1/3
        score 0.7  image A, exactly a1 again    -> FP (duplicate: a1 is taken)  P=1/3  R=1/3
        score 0.6  image B, exactly b1          -> TP  cum TP=2 FP=2  P=1/2  R=2/3
        (a2 is never found: max recall 2/3)

    Interpolated precision (max over recall >= r): 1 for r <= 1/3, 1/2 for 1/3 < r <= 2/3, 0 above.
    COCO's 101 recall thresholds 0, .01, ..., 1: r = 0..0.33 -> 34 points at 1, r = 0.34..0.66 -> 33
    points at 1/2, r = 0.67..1.00 -> 34 points at 0.  AP50 = (34 + 33/2) / 101 = 50.5 / 101 = 0.5.
    Every match has IoU 1.0, so AP is the same at all ten IoU thresholds: AP50:95 = 0.5 too.
    """
    gt = [(B(A1, A2), L(0, 0)), (B(B1), L(0))]
    pred = [(B(A1, A1), S(0.9, 0.7), L(0, 0)), (B(FAR, B1), S(0.8, 0.6), L(0, 0))]
    r = run(gt, pred, ["scratch"])
    assert capsys.readouterr().out == ""  # pycocotools' prints are swallowed
    c = r.per_class[0]
    assert (c.n_gt, c.n_images) == (3, 2)
    assert c.ap50 == pytest.approx(50.5 / 101, abs=1e-6)
    assert c.ap50_95 == pytest.approx(0.5, abs=1e-6)
    assert r.map50 == pytest.approx(0.5, abs=1e-6) and r.map50_95 == pytest.approx(0.5, abs=1e-6)
    # PR curve at IoU .5: cut after the recall reached (2/3): thresholds 0.00..0.66 = 67 points
    assert c.pr_recall == pytest.approx([i / 100 for i in range(67)])
    assert c.pr_precision == pytest.approx([1.0] * 34 + [0.5] * 33, abs=1e-9)
    assert r.n_images == 2 and r.class_names == ["scratch"]


def test_hand_computed_ap50_95_from_partial_iou() -> None:
    """IoU 0.72 is a TP at thresholds .50 .55 .60 .65 .70 (5 of 10) and a FP at .75 ... .95.

    Class "dent": GT [0,0,100,100], one prediction [0,0,100,72] -> IoU 7200/10000 = 0.72.
        AP = 1 at 5 thresholds, 0 at 5 -> AP50 = 1, AP50:95 = 5/10 = 0.5.
    Class "pit": two GT boxes g1=[200,0,300,100] and g2=[400,0,500,100]; predictions
        score 0.9 on g1 with IoU 0.72 ([200,0,300,72]), score 0.8 exactly on g2 (IoU 1).
        t <= .70: both TP -> AP = 1.
        t >= .75: first is FP (P=0, R=0), second TP (P=1/2, R=1/2): interpolated precision 1/2 for
        r = 0..0.50 (51 thresholds), 0 above -> AP = 25.5/101.
        AP50:95 = (5 * 1 + 5 * 25.5/101) / 10 = 0.5 + 12.75/101.
    Class "nick": GT [0,200,100,300], prediction [0,200,100,252] -> IoU 0.52: a TP at .50 only
        -> AP50 = 1, AP50:95 = 1/10.
    Class "burr" has no GT but one prediction: AP None and left out of the means.
    mAP50 = (1 + 1 + 1) / 3 = 1; mAP50:95 = (0.5 + 0.5 + 12.75/101 + 0.1) / 3.
    """
    gt = [(B([0, 0, 100, 100], [200, 0, 300, 100], [400, 0, 500, 100], [0, 200, 100, 300]), L(0, 1, 1, 3))]
    pred = [(B([0, 0, 100, 72], [200, 0, 300, 72], [400, 0, 500, 100], [600, 0, 650, 50], [0, 200, 100, 252]),
             S(0.5, 0.9, 0.8, 0.95, 0.3), L(0, 1, 1, 2, 3))]
    r = run(gt, pred, ["dent", "pit", "burr", "nick"])
    assert cls(r, "dent").ap50 == pytest.approx(1.0, abs=1e-6)
    assert cls(r, "dent").ap50_95 == pytest.approx(0.5, abs=1e-6)
    assert cls(r, "pit").ap50 == pytest.approx(1.0, abs=1e-6)
    assert cls(r, "pit").ap50_95 == pytest.approx(0.5 + 12.75 / 101, abs=1e-6)
    burr = cls(r, "burr")
    assert burr.ap50 is None and burr.ap50_95 is None and burr.pr_recall == [] and burr.n_gt == 0
    assert cls(r, "nick").ap50 == pytest.approx(1.0, abs=1e-6)
    assert cls(r, "nick").ap50_95 == pytest.approx(0.1, abs=1e-6)
    assert r.map50 == pytest.approx(1.0, abs=1e-6)
    assert r.map50_95 == pytest.approx((1.1 + 12.75 / 101) / 3, abs=1e-6)


def test_perfect_predictions_score_one() -> None:
    gt = [(B(A1, A2), L(0, 1)), (B(B1), L(1)), (B(), L())]  # the last image: a defect-free part
    pred = [(B(A2, A1), S(0.4, 0.9), L(1, 0)), (B(B1), S(0.5), L(1)), (B(), S(), L())]
    r = run(gt, pred, ["a", "b"], image_sizes=[(100, 100)] * 3)
    assert r.map50 == pytest.approx(1.0) and r.map50_95 == pytest.approx(1.0)
    assert [c.ap50_95 for c in r.per_class] == pytest.approx([1.0, 1.0])
    assert r.per_class[1].pr_recall[-1] == 1.0 and len(r.per_class[1].pr_recall) == 101
    assert r.confusion == [[1, 0, 0], [0, 2, 0], [0, 0, 0]]


def test_no_predictions_at_all() -> None:
    gt = [(B(A1, A2), L(0, 0)), (B(B1), L(0))]
    pred = [(B(), S(), L()), (np.zeros((0,)), np.zeros(0), np.zeros(0, dtype=np.int64))]
    r = run(gt, pred, ["a", "b"])
    assert r.map50 == 0.0 and r.map50_95 == 0.0
    assert (cls(r, "a").ap50, cls(r, "a").ap50_95) == (0.0, 0.0)
    assert (cls(r, "b").ap50, cls(r, "b").ap50_95) == (None, None)
    assert cls(r, "a").pr_recall == [] and cls(r, "a").pr_precision == []
    assert r.confusion == [[0, 0, 3], [0, 0, 0], [0, 0, 0]]


def test_no_ground_truth_at_all_gives_zero_map_and_none_per_class() -> None:
    r = run([(B(), L())], [(B(A1), S(0.9), L(0))], ["a"])
    assert r.map50 == 0.0 and r.map50_95 == 0.0 and r.per_class[0].ap50 is None
    assert r.confusion == [[0, 0], [1, 0]]


def test_confusion_matrix_hand_built() -> None:
    """Classes a, b, c (index 0, 1, 2; background = 3). Image 1:
    GT a at P, predicted b at P (0.9)               -> [a][b] (swapped class, off-diagonal)
    GT b at Q, predicted b at Q (0.8), a at Q (0.7) -> [b][b] (higher score first), the duplicate -> [bg][a]
    predicted a at R where nothing is (0.6)         -> [bg][a] (false positive)
    GT c at T, predicted c at T with score 0.2      -> below 0.3: [c][bg] (missed); with 0.1: [c][c]
    Image 2: GT a at P predicted nothing            -> [a][bg]
    """
    P, Q, R, T = [0, 0, 20, 20], [30, 0, 50, 20], [60, 0, 80, 20], [0, 30, 20, 50]
    gt = [(B(P, Q, T), L(0, 1, 2)), (B(P), L(0))]
    pred = [(B(P, Q, Q, R, T), S(0.9, 0.8, 0.7, 0.6, 0.2), L(1, 1, 0, 0, 2)), (B(), S(), L())]
    r = run(gt, pred, ["a", "b", "c"])
    assert r.confusion_score == DEFAULT_CONFUSION_SCORE == 0.3
    assert r.confusion == [
        [0, 1, 0, 1],
        [0, 1, 0, 0],
        [0, 0, 0, 1],
        [2, 0, 0, 0],
    ]
    low = run(gt, pred, ["a", "b", "c"], confusion_score=0.1)
    assert low.confusion[2] == [0, 0, 1, 0] and low.confusion_score == 0.1


def test_confusion_takes_highest_iou_gt_regardless_of_class_and_respects_iou() -> None:
    # a class-b prediction overlaps GT x (class a, IoU 9600/10000 = 0.96) and GT y (class b,
    # IoU 9000/10600 = 0.85): the greedy matcher takes x, the higher IoU, although its class differs
    x, y = [0, 0, 100, 100], [0, 10, 100, 110]
    pred_box = [0, 4, 100, 100]
    r = run([(B(y, x), L(1, 0))], [(B(pred_box), S(0.9), L(1))], ["a", "b"])
    assert r.confusion == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]  # matched x (class a), y missed
    # IoU 0.6 matches at confusion_iou 0.5 but not at 0.7
    gt = [(B([0, 0, 100, 100]), L(0))]
    pred = [(B([0, 0, 100, 60]), S(0.9), L(0))]
    assert run(gt, pred, ["a"]).confusion == [[1, 0], [0, 0]]
    strict = run(gt, pred, ["a"], confusion_iou=0.7)
    assert strict.confusion == [[0, 1], [1, 0]] and strict.confusion_iou == 0.7


def _prev_and_current() -> tuple[EvalResult, EvalResult]:
    def mk(names: list[str], aps: list[float | None]) -> EvalResult:
        pcs = [ClassMetrics(name=n, n_gt=0 if a is None else 5, n_images=0 if a is None else 2, ap50=a,
                            ap50_95=None if a is None else a / 2, pr_recall=[], pr_precision=[])
               for n, a in zip(names, aps, strict=True)]
        c = len(names) + 1
        return EvalResult(map50=0.5, map50_95=0.25, per_class=pcs, class_names=names,
                          confusion=[[0] * c for _ in range(c)], confusion_iou=0.5, confusion_score=0.3,
                          n_images=4)
    previous = mk(["scratch", "dent", "burr"], [0.5, 0.75, None])
    current = mk(["scratch", "pit", "burr"], [0.625, 0.5, 0.25])  # "dent" renamed to "pit"
    return previous, current


def test_per_class_delta_matches_by_name_with_renamed_and_added_classes() -> None:
    previous, current = _prev_and_current()
    rows = {d["name"]: d for d in per_class_delta(current, previous)}
    assert [d["name"] for d in per_class_delta(current, previous)] == ["scratch", "pit", "burr", "dent"]
    s = rows["scratch"]
    assert (s["status"], s["ap50_now"], s["ap50_before"]) == ("kept", 0.625, 0.5)
    assert s["ap50_delta"] == pytest.approx(0.125) and s["ap50_95_delta"] == pytest.approx(0.0625)
    assert rows["pit"]["status"] == "new" and rows["pit"]["ap50_before"] is None and rows["pit"]["ap50_delta"] is None
    assert rows["dent"]["status"] == "removed" and rows["dent"]["ap50_now"] is None
    assert rows["dent"]["ap50_before"] == 0.75 and rows["dent"]["ap50_delta"] is None
    # burr had no GT before: known now, unknown before -> no delta
    assert rows["burr"]["status"] == "kept" and rows["burr"]["ap50_delta"] is None
    none_prev = per_class_delta(current, None)
    assert [d["status"] for d in none_prev] == ["new"] * 3
    assert all(d["ap50_before"] is None and d["ap50_95_delta"] is None for d in none_prev)


def test_format_eval_table() -> None:
    previous, current = _prev_and_current()
    plain = format_eval_table(current)
    assert "Δ" not in plain and "AP50:95" in plain and "scratch" in plain
    assert "0.625" in plain.splitlines()[2] and "dent" not in plain
    table = format_eval_table(current, previous=previous)
    lines = {ln.split()[0]: ln for ln in table.splitlines() if ln and not ln.startswith("-")}
    assert "ΔAP50" in table and "+0.125" in lines["scratch"] and "+0.062" in lines["scratch"]
    assert "dent (removed)" in table and lines["pit"].split()[-1] == "-"
    assert "+0.000" in lines["mAP"]


def test_to_dict_from_dict_json_round_trip() -> None:
    gt = [(B(A1, A2), L(0, 1)), (B(B1), L(0))]
    pred = [(B(A1, FAR), S(0.9, 0.5), L(0, 0)), (B(B1), S(0.4), L(1))]
    r = run(gt, pred, ["a", "b", "c"], confusion_score=0.25, confusion_iou=0.45)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["confusion"]["labels"] == ["a", "b", "c", "background"]
    assert d["confusion"]["matrix"] == r.confusion and d["confusion"]["score"] == 0.25
    assert set(d["per_class"][0]) >= {"name", "ap50", "ap50_95", "n_gt", "pr_curve"}
    assert d["per_class"][2]["ap50"] is None
    back = EvalResult.from_dict(d)
    assert back == r
    with pytest.raises(ValueError, match="newer"):
        EvalResult.from_dict({**d, "schema_version": 99})
    with pytest.raises(ValueError, match="map50"):
        EvalResult.from_dict({k: v for k, v in d.items() if k != "map50"})


GOOD = {"gt_boxes": [B(A1)], "gt_labels": [L(0)], "pred_boxes": [B(A1)], "pred_scores": [S(0.9)],
        "pred_labels": [L(0)], "class_names": ["a", "b"]}


@pytest.mark.parametrize(("change", "message"), [
    ({"pred_scores": [S(0.9), S(0.1)]}, r"pred_scores has 2 entries but gt_boxes has 1"),
    ({"gt_labels": []}, r"gt_labels has 0 entries"),
    ({"image_sizes": [(10, 10), (10, 10)]}, r"image_sizes has 2 entries"),
    ({"gt_boxes": [np.array([1.0, 2.0, 3.0], dtype=np.float32)]}, r"gt_boxes\[0\] must have shape \(N, 4\)"),
    ({"pred_boxes": [B([0, 0, np.nan, 5])]}, r"pred_boxes\[0\] has non-finite"),
    ({"gt_boxes": [B([10, 0, 5, 5])]}, r"gt_boxes\[0\] has a box with x2 < x1"),
    ({"gt_labels": [L(2)]}, r"gt_labels\[0\] has label 2, outside 0\.\.1"),
    ({"pred_labels": [L(-1)]}, r"pred_labels\[0\] has label -1"),
    ({"gt_labels": [L(0, 1)]}, r"gt_labels\[0\] must have shape \(1,\)"),
    ({"pred_scores": [S(0.9, 0.8)]}, r"pred_scores\[0\] must be 1 finite"),
    ({"pred_labels": [np.array([0.5])]}, r"integer class indices"),
    ({"class_names": []}, r"class_names is empty"),
    ({"class_names": ["a", "a"]}, r"unique"),
])
def test_validation_errors_name_the_bad_value(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_detections(**{**GOOD, **change})  # type: ignore[arg-type]


def test_bad_label_names_its_image_index() -> None:
    kw = {**GOOD, "gt_boxes": [B(A1), B(A2)], "gt_labels": [L(0), L(5)], "pred_boxes": [B(), B()],
          "pred_scores": [S(), S()], "pred_labels": [L(), L()]}
    with pytest.raises(ValueError, match=r"gt_labels\[1\] has label 5"):
        evaluate_detections(**kw)  # type: ignore[arg-type]


def _crowded_image(n_fp_other_class: int) -> EvalResult:
    """One GT (class 0) at [0,0,10,10]; 49 class-0 and `n_fp_other_class` class-1 false positives far
    away, all scoring above the single true positive (score 0.01), which is therefore ranked last."""
    fps = [[20 + 3 * i, 20, 22 + 3 * i, 22] for i in range(49 + n_fp_other_class)]
    scores = [0.99 - 0.001 * i for i in range(len(fps))]
    labels = [0] * 49 + [1] * n_fp_other_class
    gt = [(B([0, 0, 10, 10]), L(0))]
    pred = [(B(*fps, [0, 0, 10, 10]), S(*scores, 0.01), L(*labels, 0))]
    return run(gt, pred, ["a", "b"], confusion_score=0.0)


def test_more_than_100_predictions_per_image_are_truncated_by_score() -> None:
    """With 100 predictions the TP (rank 100) counts: class a has 50 dets, TP last -> interpolated
    precision 1/50 at every recall threshold -> AP = 0.02. With 101 the TP is rank 101 and dropped
    (even though class a alone has only 50 dets, so COCOeval's per-class cut would keep it) -> AP 0."""
    kept = _crowded_image(50)
    assert cls(kept, "a").ap50 == pytest.approx(1 / 50, abs=1e-6)
    assert kept.confusion[0][0] == 1
    dropped = _crowded_image(51)
    assert cls(dropped, "a").ap50 == 0.0
    assert dropped.confusion[0] == [0, 0, 1] and sum(dropped.confusion[2]) == 100


def test_module_runs_without_torch_or_qt() -> None:
    """Import and evaluate in a fresh interpreter where importing torch or PySide6 fails."""
    code = ("import sys; sys.modules['torch'] = None; sys.modules['PySide6'] = None\n"
            "import numpy as np\n"
            "from labeltool.ml.evaluate import evaluate_detections\n"
            "b = [np.array([[0, 0, 10, 10]], np.float32)]; lab = [np.array([0])]\n"
            "r = evaluate_detections(gt_boxes=b, gt_labels=lab, pred_boxes=b, pred_scores=[np.array([0.9])],\n"
            "                        pred_labels=lab, class_names=['a'])\n"
            "assert abs(r.map50 - 1.0) < 1e-6, r\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[3])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
