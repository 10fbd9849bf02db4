"""Presets and the RetinaNet builder (random init, tiny inputs)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.image_list import ImageList

from labeltool.core.errors import ModelError
from labeltool.ml.model import TimmFpnBackbone, build_model, count_parameters, forward_flops
from labeltool.ml.presets import DEFAULT_PRESET, PRESETS, Preset, get_preset

SIZE = 128
EXPECTED_BACKBONES = {"edge": "tf_efficientnet_lite0", "balanced": "tf_efficientnet_lite1", "accurate": "resnet50",
                      "mobilenetv3": "mobilenetv3_large_100", "resnet18": "resnet18"}


@pytest.fixture(scope="module")
def edge_model() -> RetinaNet:
    torch.manual_seed(0)
    return build_model(get_preset("edge"), num_classes=3, image_size=SIZE)


def test_presets_have_the_documented_backbones() -> None:
    assert DEFAULT_PRESET == "edge"
    for name, backbone in EXPECTED_BACKBONES.items():
        assert PRESETS[name].backbone == backbone
        assert get_preset(name) is PRESETS[name]
    assert PRESETS["edge"].image_size == 256
    assert PRESETS["edge"].fpn_channels == 64  # the head dominates the cost on a small backbone (CONTEXT.md)
    for preset in PRESETS.values():
        assert len(preset.anchor_sizes) == 5
        # 10-60 px defects at 256 px scale with the input: the P3 anchor at 256-px scale is <= 16 px
        assert preset.anchor_sizes[0] * 256 / preset.image_size <= 16, preset.name
        assert list(preset.anchor_sizes) == sorted(preset.anchor_sizes)
        assert preset.score_thresh <= 0.05, "low-score boxes are needed by the label-error analysis"


def test_get_preset_unknown_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="edge.*balanced.*accurate"):
        get_preset("huge")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_json_round_trip(name: str) -> None:
    preset = PRESETS[name]
    back = Preset.from_dict(json.loads(json.dumps(preset.to_dict())))
    assert back == preset
    assert isinstance(back.anchor_sizes, tuple) and isinstance(back.aspect_ratios, tuple)
    custom = dataclasses.replace(preset, score_thresh=0.01, anchor_scales=(1.0, 1.5))
    assert Preset.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom


@pytest.mark.parametrize(
    "change",
    [{"anchor_sizes": (16, 32, 64)}, {"fpn_channels": 100}, {"image_size": 250}, {"nms_thresh": 0.0}],
)
def test_preset_rejects_bad_values(change: dict) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(PRESETS["edge"], **change)


def test_preset_from_dict_rejects_unknown_and_missing_fields() -> None:
    d = PRESETS["edge"].to_dict()
    with pytest.raises(ValueError, match="unknown preset fields"):
        Preset.from_dict({**d, "mystery": 1})
    del d["backbone"]
    with pytest.raises(ValueError, match="invalid preset"):
        Preset.from_dict(d)
    with pytest.raises(ValueError, match="invalid preset"):
        Preset.from_dict({**PRESETS["edge"].to_dict(), "image_size": "256"})


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_builds_and_detects(name: str) -> None:
    torch.manual_seed(0)
    preset = dataclasses.replace(PRESETS[name], score_thresh=0.0)  # random weights score ~0.01
    model = build_model(preset, num_classes=3, image_size=SIZE)
    assert isinstance(model, RetinaNet) and isinstance(model.backbone, TimmFpnBackbone)
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, SIZE, SIZE), torch.rand(3, SIZE, SIZE)])
    assert isinstance(out, list) and len(out) == 2
    for det in out:
        assert set(det) == {"boxes", "scores", "labels"}
        m = det["boxes"].shape[0]
        assert 0 < m <= preset.detections_per_img
        assert det["boxes"].shape == (m, 4) and det["scores"].shape == (m,) and det["labels"].shape == (m,)
        assert det["labels"].dtype == torch.int64 and int(det["labels"].max()) < 3
        assert float(det["boxes"].min()) >= 0 and float(det["boxes"].max()) <= SIZE
        assert bool(((det["scores"] >= 0) & (det["scores"] <= 1)).all())


def test_fpn_levels_channels_and_anchor_count(edge_model: RetinaNet) -> None:
    preset = get_preset("edge")
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        feats = edge_model.backbone(x)
    assert list(feats) == ["p3", "p4", "p5", "p6", "p7"]
    for (_, f), stride in zip(feats.items(), (8, 16, 32, 64, 128), strict=True):
        assert f.shape == (1, preset.fpn_channels, SIZE // stride, SIZE // stride)
    per_location = len(preset.anchor_scales) * len(preset.aspect_ratios)
    assert edge_model.anchor_generator.num_anchors_per_location() == [per_location] * 5
    expected_sizes = tuple(tuple(s * k for k in preset.anchor_scales) for s in preset.anchor_sizes)
    assert edge_model.anchor_generator.sizes == expected_sizes
    anchors = edge_model.anchor_generator(ImageList(x, [(SIZE, SIZE)]), list(feats.values()))
    cells = sum((SIZE // s) ** 2 for s in (8, 16, 32, 64, 128))  # 256 + 64 + 16 + 4 + 1
    assert anchors[0].shape == (cells * per_location, 4)
    with torch.no_grad():
        head = edge_model.head(list(feats.values()))
    assert head["cls_logits"].shape == (1, cells * per_location, 3)
    assert head["bbox_regression"].shape == (1, cells * per_location, 4)


def test_no_upscaling_to_800(edge_model: RetinaNet) -> None:
    assert tuple(edge_model.transform.min_size) == (SIZE,) and edge_model.transform.max_size == SIZE
    seen: list[tuple[int, ...]] = []
    hook = edge_model.backbone.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    try:
        edge_model.eval()
        with torch.no_grad():
            edge_model([torch.rand(3, SIZE, SIZE)])
    finally:
        hook.remove()
    assert seen == [(1, 3, SIZE, SIZE)]
    default = build_model(get_preset("edge"), num_classes=1)
    assert tuple(default.transform.min_size) == (256,) and default.transform.max_size == 256


def test_train_forward_gives_finite_losses_and_gradients(edge_model: RetinaNet) -> None:
    edge_model.train()
    images = [torch.rand(3, SIZE, SIZE), torch.rand(3, SIZE, SIZE)]
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 30.0, 40.0], [60.0, 60.0, 100.0, 90.0]]),
         "labels": torch.tensor([0, 2])},
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)},  # defect-free part
    ]
    edge_model.zero_grad()
    losses = edge_model(images, targets)
    assert set(losses) == {"classification", "bbox_regression"}
    assert all(math.isfinite(float(v.detach())) and float(v.detach()) > 0 for v in losses.values())
    sum(losses.values()).backward()
    body_grad = next(p.grad for p in edge_model.backbone.body.parameters() if p.requires_grad)
    assert body_grad is not None and float(body_grad.abs().sum()) > 0
    cls_grad = edge_model.head.classification_head.cls_logits.weight.grad
    assert cls_grad is not None and float(cls_grad.abs().sum()) > 0
    edge_model.eval()


def test_head_uses_groupnorm_and_timm_normalization(edge_model: RetinaNet) -> None:
    norms = [m for m in edge_model.head.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(m.num_groups == 16 for m in norms)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in edge_model.head.modules())
    cfg = edge_model.backbone.body.pretrained_cfg
    assert edge_model.transform.image_mean == list(cfg["mean"])
    assert edge_model.transform.image_std == list(cfg["std"])
    assert edge_model.score_thresh == 0.05 and edge_model.detections_per_img == 100


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_bad_num_classes(bad: object) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        build_model(get_preset("edge"), num_classes=bad)  # type: ignore[arg-type]


def test_bad_image_size_and_backbone() -> None:
    with pytest.raises(ValueError, match="image_size"):
        build_model(get_preset("edge"), num_classes=1, image_size=100)
    with pytest.raises(ModelError, match="no_such_net"):
        build_model(dataclasses.replace(get_preset("edge"), backbone="no_such_net"), num_classes=1)


def test_count_parameters_and_flops(edge_model: RetinaNet) -> None:
    n = count_parameters(edge_model)
    assert n == sum(p.numel() for p in edge_model.parameters())
    assert 2_000_000 < n < 20_000_000
    edge_model.train()
    small = forward_flops(edge_model, image_size=128)
    assert edge_model.training, "forward_flops must keep the train/eval mode"
    edge_model.eval()
    large = forward_flops(edge_model, image_size=256)
    assert not edge_model.training
    assert small > 100_000_000
    assert 3.5 < large / small < 4.5  # convolutions scale with the pixel count
    with pytest.raises(ValueError):
        forward_flops(edge_model, image_size=0)


def test_normalization_falls_back_to_imagenet() -> None:
    from labeltool.ml.model import IMAGENET_MEAN, IMAGENET_STD, _normalization

    assert _normalization(nn.Identity()) == (list(IMAGENET_MEAN), list(IMAGENET_STD))
    body = nn.Identity()
    body.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    assert _normalization(body) == ([0.5] * 3, [0.25] * 3)
