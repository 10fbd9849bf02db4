"""The Qt-free side of the train / export / welcome panels: curve, comparison, verification, deploy words."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from labeltool.core.progress import Progress
from labeltool.core.store import Project
from labeltool.jobs import panel_views as pv
from labeltool.jobs.demo import DEMO_ANALYZE_MINUTES, DEMO_MARKER, DEMO_TRAIN_MINUTES


def test_smoothing_is_bias_corrected_and_follows_the_values() -> None:
    assert pv.smooth([]) == []
    assert pv.smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])  # no drag towards 0 at the start
    s = pv.smooth([4.0, 0.0, 0.0, 0.0], weight=0.5)
    assert s[0] == pytest.approx(4.0) and s[1] == pytest.approx(4 / 3) and s[-1] < s[1]
    with pytest.raises(ValueError, match="weight"):
        pv.smooth([1.0], weight=1.0)


def test_curve_takes_train_and_eval_events_only() -> None:
    curve = pv.TrainCurve()
    assert not curve.add(Progress("load", 1, 2, "decoding"))
    for step in (1, 2, 3):
        assert curve.add(Progress("train", step, 6, "epoch 1", metrics={"loss": 3.0 - step, "step": step}))
    assert curve.add(Progress("eval", 1, 2, "val", metrics={"epoch": 1, "map50": 0.25}))
    assert curve.loss == [(1, 2.0), (2, 1.0), (3, 0.0)] and curve.maps == [(3, 0.25)]
    assert [s for s, _ in curve.smoothed()] == [1, 2, 3]
    curve.clear()
    assert curve.loss == [] and curve.maps == []


def _train_result(previous: bool) -> dict:
    per_class = [{"name": "scratch", "n_gt": 4, "ap50": 0.5}, {"name": "dent", "n_gt": 2, "ap50": None}]
    result = {"run_id": 2, "map50": 0.5, "n_val": 6, "eval": {"per_class": per_class}, "previous_run_id": None,
              "previous": None, "delta": None, "epochs_done": 3, "images_per_s": 4.2, "wall_s": 30.0,
              "weights": {"kind": "random"}, "notes": []}
    if previous:
        result.update(previous_run_id=1, previous={"map50": 0.42}, delta=[
            {"name": "scratch", "status": "kept", "n_gt": 4, "ap50_now": 0.5, "ap50_before": 0.4, "ap50_delta": 0.1},
            {"name": "dent", "status": "kept", "n_gt": 2, "ap50_now": 0.3, "ap50_before": 0.35, "ap50_delta": -0.05},
            {"name": "old", "status": "removed", "n_gt": None, "ap50_now": None, "ap50_before": 0.2,
             "ap50_delta": None}])
    return result


def test_comparison_rows_and_summary() -> None:
    first = _train_result(previous=False)
    rows = pv.compare_rows(first)
    assert [(r.name, r.now, r.before, r.verdict) for r in rows] == [("scratch", 0.5, None, "none"),
                                                                   ("dent", None, None, "none")]
    text, v = pv.compare_summary(first)
    assert "first model" in text and "mAP@.5 0.500 (6 images)" in text and v == "none"
    assert "random weights" in pv.train_footer(first) and "Run 2: 3 epochs" in pv.train_footer(first)
    second = _train_result(previous=True)
    rows = pv.compare_rows(second)
    assert [r.verdict for r in rows] == ["better", "worse", "none"]
    text, v = pv.compare_summary(second)
    assert v == "better" and "better than the previous model (run 1, 0.420, +8.0 points)" in text
    gone = {**second, "previous": None}
    assert "could not be loaded" in pv.compare_summary(gone)[0]
    assert pv.verdict(0.004) == "same" and pv.points(-0.0123) == "-1.2" and pv.points(None) == "–"


def _report(int8_drop: float) -> dict:
    return {"map50": {"torch_fp32": 0.6, "ort_fp32": 0.6, "ort_int8": 0.6 - int8_drop},
            "latency_median_ms": {"torch_fp32": 30.0, "ort_fp32": 15.0, "ort_int8": 10.0},
            "size_bytes": {"torch_fp32": 14_000_000, "ort_fp32": 14_000_000, "ort_int8": 4_200_000},
            "max_fp32_drop": 0.005, "max_int8_drop": 0.02, "fp32_map50_drop": 0.0, "int8_map50_drop": int8_drop,
            "per_class_ap50": [{"class": "scratch", "torch_fp32": 0.6, "ort_fp32": 0.6, "ort_fp32_diff": 0.0,
                                "ort_int8": 0.6 - int8_drop, "ort_int8_diff": -int8_drop}],
            "int8_most_hurt_classes": ["scratch"] if int8_drop > 0 else [],
            "verified": int8_drop <= 0.02, "n_images": 40, "threads": 2}


def test_verification_tables_and_verdict() -> None:
    ok = _report(0.003)
    assert [k for k, _ in pv.variants(ok)] == ["torch_fp32", "ort_fp32", "ort_int8"]
    assert pv.class_rows(ok) == [("scratch", [("0.600", "none"), ("0.600", "none"), ("+0.0", "same"),
                                              ("0.597", "none"), ("-0.3", "same")])]
    speed = dict(pv.speed_rows(ok))
    assert list(speed) == ["mAP@.5", "latency, ms", "size, MB"]
    assert speed["latency, ms"] == ["30.0", "15.0 (0.50×)", "10.0 (0.33×)"]
    assert speed["size, MB"] == ["14.0", "14.0 (1.00×)", "4.2 (0.30×)"]
    assert pv.speed_note(ok).startswith("Latency: median over 40 validation images, one image at a time, 2 CPU threads")
    text = pv.verification_verdict(ok)
    assert text.startswith("Verified on 40 validation images: FP32 scores the same mAP@.5 as PyTorch; INT8 "
                           "scores 0.3 points lower (at most 2.0 lower allowed).")
    bad = pv.verification_verdict(_report(0.05))
    assert bad.startswith("NOT verified") and "5.0 points lower" in bad
    assert "more calibration images" in bad and "INT8 hurts these classes most: scratch" in bad


def test_deploy_sentences() -> None:
    first = {"target": "/mnt/line", "live_path": "/mnt/line/current", "mode": "symlink", "run_id": 3,
             "previous_sha256": None, "action": "deploy", "verified": True}
    assert pv.deploy_sentence(first) == ("Deployed run 3 to /mnt/line: the line runs /mnt/line/current/infer.py. "
                                         "It is the first bundle on this target, so there is nothing to roll back "
                                         "to yet.")
    second = {**first, "previous_sha256": "ab", "verified": None, "mode": "rename"}
    text = pv.deploy_sentence(second)
    assert "Roll back restores it" in text and "not verified" in text and "renaming" in text
    back = pv.deploy_sentence({**first, "action": "rollback", "verified": None})
    assert back.startswith("Rolled back: /mnt/line/current is the previous bundle again (run 3)")


def test_folders_and_demo(tmp_path: Path) -> None:
    when = datetime(2025, 3, 1, 12, 0, 0)
    a = pv.default_bundle_dir(tmp_path, 4, when)
    assert a == tmp_path / "exports" / "run4-20250301-120000"
    a.mkdir(parents=True)
    assert pv.default_bundle_dir(tmp_path, 4, when).name == "run4-20250301-120000-2"
    assert pv.latest_bundle(tmp_path) is None  # no manifest: not a bundle
    (a / "manifest.json").write_text("{}")
    assert pv.latest_bundle(tmp_path) == a
    assert pv.read_verification(a) is None
    pv.verification_file(a).write_text('{"verified": true}')
    assert pv.read_verification(a) is None  # incomplete: treated as never verified
    report = _report(0.0)
    pv.verification_file(a).write_text(json.dumps(report))
    assert pv.read_verification(str(a) + ".zip") == report

    assert pv.default_demo_root() == Path.home() / "labeltool-demo"
    kwargs = pv.demo_job_kwargs(tmp_path / "demo")
    assert kwargs == {"root": str(tmp_path / "demo"), "train_minutes": DEMO_TRAIN_MINUTES,
                      "analyze_minutes": DEMO_ANALYZE_MINUTES, "review": 0, "finetune_epochs": 0,
                      "export": False}
    assert pv.demo_job_kwargs(tmp_path, analysis=False)["analyze_minutes"] == 0.0
    root = tmp_path / "demo"
    Project.create(root / "project").close()
    assert pv.existing_demo_project(root) is None  # not made by the demo job
    (root / DEMO_MARKER).write_text("x")
    assert pv.existing_demo_project(root) is None  # no trained model yet
    (root / "project" / "runs" / "20250301-120000-edge").mkdir(parents=True)
    assert pv.existing_demo_project(root) == root / "project"


def test_a_verified_bundle_of_a_weak_model_says_it_is_not_ready_for_the_line() -> None:
    weak = _report(0.0)
    weak["map50"] = {"torch_fp32": 0.02, "ort_fp32": 0.02, "ort_int8": 0.02}
    text = pv.verification_verdict(weak)
    assert text.startswith("Verified on 40 validation images") and "not ready for the line" in text
    assert "PyTorch mAP@.5 0.02" in text
    assert pv.weak_model_note(_report(0.0)) is None  # mAP@.5 0.6: no warning
    failed = _report(0.05)
    failed["map50"]["torch_fp32"] = 0.02
    assert "not ready for the line" not in pv.verification_verdict(failed)  # NOT verified says what to fix first
    weak["latency_median_ms"] = {"torch_fp32": 4518.0, "ort_fp32": 24.8, "ort_int8": 16.9}
    assert dict(pv.speed_rows(weak))["latency, ms"] == ["4518.0", "24.8 (0.0055×)", "16.9 (0.0037×)"]
