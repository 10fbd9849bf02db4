"""The training job on tiny generated data: it learns, over-fits, records, compares, cancels cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeltool.core.runs import current_run, list_runs
from labeltool.core.store import Project
from labeltool.jobs import drive
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job
from labeltool.ml.train import TrainOptions, lr_at, train

pytestmark = pytest.mark.slow


def tiny_project(tmp_path: Path, *, n: int, size: int = 64, seed: int = 0) -> Path:
    drive(demo_data_job(tmp_path / "data", n_images=n, noise=0.0, seed=seed, size=size), lambda p: None)
    Project.create(tmp_path / "p").close()
    drive(import_job(tmp_path / "p", tmp_path / "data" / "annotations.json"), lambda p: None)
    return tmp_path / "p"


def run(project: Path, **kw: object) -> dict:
    events: list = []
    result = drive(train(project, TrainOptions(**kw)), events.append)
    result["_events"] = events
    return result


def test_lr_schedule_warms_up_then_decays() -> None:
    assert lr_at(step=0, frac=0.0, peak=1.0, warmup_steps=10) == pytest.approx(0.1)
    assert lr_at(step=9, frac=0.0, peak=1.0, warmup_steps=10) == pytest.approx(1.0)
    assert lr_at(step=10, frac=0.0, peak=1.0, warmup_steps=10) == pytest.approx(1.0)
    assert lr_at(step=50, frac=0.5, peak=1.0, warmup_steps=10) == pytest.approx(0.505)
    assert lr_at(step=99, frac=1.0, peak=1.0, warmup_steps=10) == pytest.approx(0.01)


def test_loss_falls_and_run_is_recorded(tmp_path: Path) -> None:
    project = tiny_project(tmp_path, n=12)
    result = run(project, epochs=6, image_size=64, batch_size=4, patience=100)
    losses = [h["loss"] for h in result["history"]]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0], losses
    weights_events = [e for e in result["_events"] if e.stage == "model"]
    assert weights_events and weights_events[0].metrics["weights"] == "package"  # offline, yet pretrained
    run_dir = Path(result["run_dir"])
    assert {p.name for p in run_dir.iterdir()} >= {"model.safetensors", "config.json", "metrics.json"}
    with Project.open(project) as p:
        cur = current_run(p)
        assert cur is not None and cur.id == result["run_id"]
        assert cur.snapshot_id > 0
        assert cur.config["train_flops_estimate"] > 0 and cur.config["epochs_done"] == 6
        assert p.snapshot(cur.snapshot_id).n_images == 12


def test_tiny_model_overfits_four_images(tmp_path: Path) -> None:
    project = tiny_project(tmp_path, n=4, size=96, seed=1)
    with Project.open(project) as p:
        p.set_split([im.id for im in p.images()], "train")  # validate on the training images
    result = run(project, epochs=100, image_size=96, batch_size=4, augment=False, lr=3e-3, patience=100)
    assert result["map50"] >= 0.9, result["history"][-5:]
    assert "validating on the training images" in " ".join(result["notes"])


def test_second_run_is_compared_with_the_first_on_the_same_images(tmp_path: Path) -> None:
    project = tiny_project(tmp_path, n=10)
    first = run(project, epochs=1, image_size=64, batch_size=4)
    second = run(project, epochs=1, image_size=64, batch_size=4, seed=1)
    assert second["previous_run_id"] == first["run_id"]
    assert second["previous"] is not None and second["previous"]["map50"] == pytest.approx(first["map50"])
    assert {d["name"] for d in second["delta"]} == {"scratch", "dent", "crack", "stain", "chip"}
    with Project.open(project) as p:
        assert [r.id for r in list_runs(p)] == [first["run_id"], second["run_id"]]


def test_cancel_leaves_no_run_behind(tmp_path: Path) -> None:
    project = tiny_project(tmp_path, n=8)
    job = train(project, TrainOptions(epochs=50, image_size=64, batch_size=2))
    for event in job:
        if event.stage == "train" and event.metrics["step"] >= 2:
            break
    job.close()  # what Cancel does
    assert [p.name for p in (project / "runs").iterdir()] == []
    with Project.open(project) as p:
        assert list_runs(p) == [] and current_run(p) is None


def test_no_labels_is_a_clear_error(tmp_path: Path) -> None:
    from labeltool.core.errors import LabeltoolError

    Project.create(tmp_path / "p").close()
    with Project.open(tmp_path / "p") as p:
        p.add_class("scratch")
    with pytest.raises(LabeltoolError, match="no labeled training images"):
        run(tmp_path / "p", epochs=1)


def test_continue_from_the_current_model_starts_from_its_weights(tmp_path: Path) -> None:
    import torch

    from labeltool.core.errors import ModelError
    from labeltool.ml.checkpoint import load_checkpoint, start_from_run
    from labeltool.ml.presets import get_preset

    project = tiny_project(tmp_path, n=10)
    first = run(project, epochs=1, image_size=64, batch_size=4)
    old, config = load_checkpoint(Path(first["run_dir"]))
    names = config["class_names"]
    preset = get_preset("edge")
    from dataclasses import replace

    preset = replace(preset, image_size=64)
    same, note = start_from_run(Path(first["run_dir"]), preset, names)
    for key, tensor in old.state_dict().items():
        assert torch.equal(same.state_dict()[key], tensor), key
    assert "continuing from the model" in note
    # classes matched by name: reordered, one dropped, one new
    shuffled = [names[2], "pit", names[0], names[1]]
    moved, note = start_from_run(Path(first["run_dir"]), preset, shuffled)
    w_old = old.state_dict()["head.classification_head.cls_logits.weight"]
    w_new = moved.state_dict()["head.classification_head.cls_logits.weight"]
    n_old, n_new = len(names), len(shuffled)
    anchors = w_old.shape[0] // n_old
    for a in range(anchors):
        assert torch.equal(w_new[a * n_new + 0], w_old[a * n_old + 2])
        assert torch.equal(w_new[a * n_new + 2], w_old[a * n_old + 0])
        assert not torch.equal(w_new[a * n_new + 1], w_old[a * n_old + 1])  # "pit" is new: fresh init
    assert "new classes pit" in note and names[3] in note and names[4] in note
    with pytest.raises(ModelError, match="--preset edge"):
        start_from_run(Path(first["run_dir"]), get_preset("balanced"), names)

    second = run(project, epochs=1, image_size=64, batch_size=4, init_from="current")
    model_events = [e for e in second["_events"] if e.stage == "model"]
    assert model_events[0].metrics["weights"] == "run" and model_events[0].metrics["warning"] is False
    assert second["previous_run_id"] == first["run_id"]
    from labeltool.core.errors import ProjectError

    with Project.open(project) as p:
        n_edits = len(p.history())
    with pytest.raises(ProjectError, match="run 99 does not exist"):
        run(project, epochs=1, image_size=64, init_from="99")
    with Project.open(project) as p:
        assert len(p.history()) == n_edits  # refused before anything was written


def test_a_run_of_the_earlier_edge_preset_loads_continues_and_evaluates(tmp_path: Path) -> None:
    """Runs made before 'edge' became EfficientNet-Lite0 recorded preset name 'edge' with the MobileNetV3
    backbone: they still load, continue as MobileNetV3 (not as the preset now called 'edge'), and evaluate."""
    import json

    from labeltool.jobs.model import evaluate_job
    from labeltool.ml.checkpoint import load_checkpoint

    project = tiny_project(tmp_path, n=10)
    first = run(project, preset="mobilenetv3", epochs=1, image_size=64, batch_size=4)
    config_path = Path(first["run_dir"]) / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for key in ("backbone_lr_scale", "frozen_bn"):  # fields the earlier presets did not have
        config["preset"].pop(key)
    config["preset"]["name"] = "edge"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    model, _ = load_checkpoint(Path(first["run_dir"]))
    assert model.backbone.backbone_name == "mobilenetv3_large_100"

    second = run(project, epochs=1, image_size=64, batch_size=4, init_from="current")  # preset: default 'edge'
    assert second["previous_run_id"] == first["run_id"]
    second_config = json.loads((Path(second["run_dir"]) / "config.json").read_text(encoding="utf-8"))
    assert second_config["preset"]["backbone"] == "mobilenetv3_large_100" and second_config["image_size"] == 64
    assert second_config["preset"]["name"] == "mobilenetv3"  # today's name for that network
    assert any("continuing keeps the model's own network: the mobilenetv3 preset" in n for n in second["notes"])
    ev = drive(evaluate_job(project, run_id=second["run_id"]), lambda p: None)
    assert ev["run_id"] == second["run_id"] and ev["previous_run_id"] == first["run_id"]
    assert 0.0 <= ev["map50"] <= 1.0
