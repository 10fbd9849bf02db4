"""Run checkpoints: safetensors + config.json round trip and the errors of damaged runs."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
from torchvision.models.detection import RetinaNet

from labeltool.core.errors import ModelError
from labeltool.ml import checkpoint as checkpoint_mod
from labeltool.ml.checkpoint import CHECKPOINT_VERSION, load_checkpoint, save_checkpoint
from labeltool.ml.model import build_model
from labeltool.ml.presets import Preset, get_preset

SIZE = 64
CLASSES = ["scratch", "dent", "stain"]
# score_thresh 0: a random model's scores are ~0.01, and the comparison needs detections
PRESET = dataclasses.replace(get_preset("edge"), score_thresh=0.0, detections_per_img=50)


@pytest.fixture(scope="module")
def model() -> RetinaNet:
    torch.manual_seed(7)
    m = build_model(PRESET, num_classes=len(CLASSES), image_size=SIZE)
    with torch.no_grad():  # make BatchNorm statistics differ from a fresh model's
        for name, buf in m.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.1, 0.1)
    return m.eval()


@pytest.fixture
def run_dir(tmp_path: Path, model: RetinaNet) -> Path:
    run = tmp_path / "runs" / "1"
    save_checkpoint(model, run, preset=PRESET, class_names=CLASSES, extra={"snapshot_id": 5})
    return run


def _predict(m: RetinaNet) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.rand(3, SIZE, SIZE)
    with torch.no_grad():
        return m([x])[0]


def test_round_trip_identical(run_dir: Path, model: RetinaNet) -> None:
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "model.safetensors"]  # no tmp left
    loaded, config = load_checkpoint(run_dir)
    assert not loaded.training
    before, after = _predict(model), _predict(loaded)
    assert before["boxes"].shape[0] > 0
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(before[key], after[key]), key
    ref, got = model.state_dict(), loaded.state_dict()
    assert list(ref) == list(got)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert Preset.from_dict(config["preset"]) == PRESET
    assert config["class_names"] == CLASSES and config["num_classes"] == 3
    assert config["image_size"] == SIZE and config["snapshot_id"] == 5
    assert config["checkpoint_version"] == CHECKPOINT_VERSION == 2
    assert tuple(loaded.transform.min_size) == (SIZE,) and loaded.score_thresh == 0.0


def test_config_is_plain_json(run_dir: Path) -> None:
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    assert config["preset"]["backbone"] == "tf_efficientnet_lite0"
    assert config["preset"]["anchor_sizes"] == list(PRESET.anchor_sizes)


def test_missing_files(run_dir: Path) -> None:
    (run_dir / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="model.safetensors"):
        load_checkpoint(run_dir)
    (run_dir / "config.json").unlink()
    with pytest.raises(ModelError, match="config.json"):
        load_checkpoint(run_dir)
    with pytest.raises(ModelError):
        load_checkpoint(run_dir.parent / "does-not-exist")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "JSON"),
        ("[1, 2]", "JSON object"),
        ('{"preset": {}}', "checkpoint_version"),
    ],
)
def test_corrupted_config(run_dir: Path, text: str, match: str) -> None:
    (run_dir / "config.json").write_text(text, encoding="utf-8")
    with pytest.raises(ModelError, match=match):
        load_checkpoint(run_dir)


def _edit_config(run_dir: Path, **changes: object) -> None:
    path = run_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(changes)
    path.write_text(json.dumps(config), encoding="utf-8")


def test_newer_version_refused(run_dir: Path) -> None:
    _edit_config(run_dir, checkpoint_version=CHECKPOINT_VERSION + 1)
    with pytest.raises(ModelError, match="newer"):
        load_checkpoint(run_dir)


def test_shape_mismatch_and_bad_preset(run_dir: Path) -> None:
    _edit_config(run_dir, num_classes=4, class_names=[*CLASSES, "crack"])
    with pytest.raises(ModelError, match="does not fit"):
        load_checkpoint(run_dir)
    _edit_config(run_dir, num_classes=3, class_names=CLASSES, preset={"name": "edge"})
    with pytest.raises(ModelError, match="does not describe"):
        load_checkpoint(run_dir)


def test_truncated_weights(run_dir: Path) -> None:
    path = run_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError, match="model.safetensors"):
        load_checkpoint(run_dir)


def test_save_validates_inputs(tmp_path: Path, model: RetinaNet) -> None:
    with pytest.raises(ValueError, match="class"):
        save_checkpoint(model, tmp_path / "a", preset=PRESET, class_names=["only-one"])
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(model, tmp_path / "b", preset=PRESET, class_names=CLASSES, extra={"num_classes": 9})
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(model, tmp_path / "c", preset=PRESET, class_names=CLASSES, extra={"x": object()})
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_failed_save_keeps_previous_checkpoint(
    run_dir: Path, model: RetinaNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (run_dir / "config.json").read_bytes()
    real_replace = os.replace

    def failing_replace(src: object, dst: object) -> None:
        if str(dst).endswith("config.json"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint_mod.os, "replace", failing_replace)
    with pytest.raises(ModelError, match="disk full"):
        save_checkpoint(model, run_dir, preset=PRESET, class_names=CLASSES, extra={"snapshot_id": 6})
    assert (run_dir / "config.json").read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "model.safetensors"]


def test_bad_device(run_dir: Path) -> None:
    with pytest.raises(ValueError, match="device"):
        load_checkpoint(run_dir, device="not-a-device")


def test_weights_missing_a_tensor_refused(run_dir: Path) -> None:
    from safetensors.torch import load_file, save_file

    path = run_dir / "model.safetensors"
    state = load_file(path)
    state.pop("head.classification_head.cls_logits.bias")
    save_file(state, path)
    with pytest.raises(ModelError, match="cls_logits.bias"):
        load_checkpoint(run_dir)
