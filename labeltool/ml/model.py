"""The detector: torchvision RetinaNet on a timm ``features_only`` backbone with an FPN (P3..P7).

Building is separate from loading weights (ml/weights.py loads pretrained backbones, ml/checkpoint.py
trained runs); ``forward`` does no I/O.

Inputs: a list of float32 RGB tensors ``[3, H, W]`` in 0..1, already letterboxed to the preset's
``image_size`` by the data pipeline. Training targets, one dict per image:
``{'boxes': float32[N, 4] xyxy pixels, 'labels': int64[N] in 0..num_classes-1}`` (sigmoid classes,
no background index). Eval output, one dict per image:
``{'boxes': float32[M, 4] xyxy pixels, 'scores': float32[M], 'labels': int64[M]}``.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import timm
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from labeltool.core.config import GROUPNORM_GROUPS
from labeltool.core.errors import ModelError
from labeltool.ml.presets import Preset

FPN_STRIDES = (8, 16, 32)  # backbone levels fed to the FPN (C3, C4, C5); P6/P7 add strides 64, 128
LEVEL_NAMES = ("p3", "p4", "p5")  # FPN output keys; LastLevelP6P7 appends "p6", "p7"
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # fallback when the timm model has no pretrained_cfg mean/std
IMAGENET_STD = (0.229, 0.224, 0.225)


def create_timm_probe(backbone: str, **kwargs: object) -> nn.Module:
    """``timm.create_model(backbone, pretrained=False, **kwargs)`` on the meta device (no memory, no
    init cost) to read its structure; on CPU for the rare model that cannot be built on meta."""
    try:
        with torch.device("meta"):
            return timm.create_model(backbone, pretrained=False, **kwargs)
    except NotImplementedError:
        return timm.create_model(backbone, pretrained=False, **kwargs)


def feature_out_indices(backbone: str) -> tuple[int, ...]:
    """Indices of the timm feature levels with strides 8, 16, 32 (e.g. ``(2, 3, 4)`` for ResNets).

    ``ModelError`` for an unknown timm name or a backbone without those three strides.
    """
    try:
        probe = create_timm_probe(backbone, features_only=True)
    except (RuntimeError, ValueError, TypeError, KeyError, AssertionError) as exc:
        raise ModelError(
            f"cannot build timm backbone {backbone!r} with features_only=True: {exc}. "
            "Use a timm model name such as 'tf_efficientnet_lite0', 'mobilenetv3_large_100' or 'resnet18'."
        ) from exc
    reductions = list(probe.feature_info.reduction())
    missing = [s for s in FPN_STRIDES if s not in reductions]
    if missing:
        raise ModelError(
            f"backbone {backbone!r} has feature strides {reductions}, but the FPN needs {list(FPN_STRIDES)} "
            f"(missing {missing}); choose another backbone."
        )
    return tuple(reductions.index(s) for s in FPN_STRIDES)


class TimmFpnBackbone(nn.Module):
    """timm ``features_only`` body (strides 8, 16, 32) + FPN with P6/P7: 5 levels of ``out_channels``.

    Attributes: ``body`` (the timm feature model, random init), ``fpn``, ``out_channels``,
    ``backbone_name``, ``out_indices``.
    """

    def __init__(self, backbone: str, *, fpn_channels: int) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.out_indices = feature_out_indices(backbone)
        self.body = timm.create_model(backbone, features_only=True, out_indices=self.out_indices, pretrained=False)
        in_channels = list(self.body.feature_info.channels())
        self.fpn = FeaturePyramidNetwork(
            in_channels, fpn_channels, extra_blocks=LastLevelP6P7(fpn_channels, fpn_channels)
        )
        self.out_channels = fpn_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """x: float32[B, 3, H, W] normalized -> {"p3": [B, C, H/8, W/8], ..., "p7": [B, C, H/128, W/128]}."""
        feats = self.body(x)  # [C3 [B, c3, H/8, W/8], C4 [.., H/16, ..], C5 [.., H/32, ..]]
        return self.fpn(OrderedDict(zip(LEVEL_NAMES, feats, strict=True)))


def _normalization(body: nn.Module) -> tuple[list[float], list[float]]:
    cfg = getattr(body, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if not mean or not std or len(mean) != 3 or len(std) != 3:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    return [float(v) for v in mean], [float(v) for v in std]


def build_model(preset: Preset, *, num_classes: int, image_size: int | None = None) -> RetinaNet:
    """A randomly initialized RetinaNet for ``preset`` with ``num_classes`` sigmoid classes.

    ``image_size`` (default ``preset.image_size``) sets the transform's min/max size so an input of
    that size is neither upscaled (torchvision's default is 800 px) nor downscaled. Anchor sizes per
    level are ``anchor_sizes[i] * anchor_scales``; ``len(anchor_scales) * len(aspect_ratios)``
    anchors per location. ``ValueError`` for ``num_classes < 1`` or a bad ``image_size``;
    ``ModelError`` when the backbone cannot be built.
    """
    if not isinstance(preset, Preset):
        raise TypeError(f"preset must be a Preset, got {type(preset).__name__}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    size = preset.image_size if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 32 or size % 32:
        raise ValueError(f"image_size must be a multiple of 32 and >= 32, got {size!r}")

    backbone = TimmFpnBackbone(preset.backbone, fpn_channels=preset.fpn_channels)
    sizes = tuple(tuple(s * scale for scale in preset.anchor_scales) for s in preset.anchor_sizes)
    anchor_generator = AnchorGenerator(sizes=sizes, aspect_ratios=(preset.aspect_ratios,) * len(sizes))
    head = RetinaNetHead(
        backbone.out_channels,
        anchor_generator.num_anchors_per_location()[0],
        num_classes,
        norm_layer=partial(nn.GroupNorm, GROUPNORM_GROUPS),  # trains well from scratch (DESIGN.md)
    )
    mean, std = _normalization(backbone.body)
    return RetinaNet(
        backbone,
        num_classes,
        min_size=size,  # both set: the default (800, 1333) would upscale a 256 px input to 800 px
        max_size=size,
        image_mean=mean,
        image_std=std,
        anchor_generator=anchor_generator,
        head=head,
        score_thresh=preset.score_thresh,
        nms_thresh=preset.nms_thresh,
        detections_per_img=preset.detections_per_img,
        topk_candidates=preset.topk_candidates,
    )


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())


def forward_flops(model: RetinaNet, *, image_size: int) -> int:
    """FLOPs (2 per multiply-add) of one inference forward of backbone + FPN + head at batch 1.

    The input is ``[1, 3, image_size, image_size]``; the resize/normalize transform, anchor decoding
    and NMS are not counted (they are small and not matmul/conv). Used to estimate training compute
    (a training step costs about 3x the forward per image). The model's train/eval mode is kept.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an int >= 32, got {image_size!r}")
    param = next(model.parameters())
    x = torch.zeros(1, 3, image_size, image_size, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            features = model.backbone(x)  # {"p3": [1, C, S/8, S/8], ..., "p7": [1, C, S/128, S/128]}
            model.head(list(features.values()))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
