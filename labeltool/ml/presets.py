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
            description="MobileNetV3-Large at 256 px: fast on a laptop CPU and on edge devices",
            backbone="mobilenetv3_large_100",
            image_size=256,  # defects stay >= ~10 px
            anchor_sizes=(12, 24, 48, 96, 192),  # 12 px P3 anchor: a 10 px defect gets IoU ~0.7
            # the 4-conv head dominates the FLOPs on a small backbone: 64 channels train at 58 ms/image
            # on 2 CPU cores (1.6 GFLOPs) vs 100 ms/image with 128 (4.5 GFLOPs), bench/train.py
            fpn_channels=64,
            batch_size=8,  # fits 2-core CPU memory and keeps BatchNorm statistics stable
            lr=1e-3,  # AdamW peak; GroupNorm head tolerates it, also from random init
            weight_decay=1e-4,
            warmup_steps=100,  # ~13 epochs of a 60-image set: avoids early focal-loss blow-ups
        ),
        Preset(
            name="balanced",
            description="ResNet-18 at 320 px: more accurate, about twice the edge preset's cost",
            backbone="resnet18",
            image_size=320,  # 1.25x edge: 10 px defects become 12.5 px
            anchor_sizes=(16, 32, 64, 128, 256),  # edge anchors scaled by 320/256, rounded to powers of two
            fpn_channels=128,  # 256 would triple the head cost at 320 px for little gain on small sets
            batch_size=8,
            lr=1e-3,
            weight_decay=1e-4,
            warmup_steps=100,
        ),
        Preset(
            name="accurate",
            description="ResNet-50 at 512 px: for small defects on large images; use a GPU",
            backbone="resnet50",
            image_size=512,  # 2x edge: fine scratches stay visible on large camera frames
            anchor_sizes=(24, 48, 96, 192, 384),  # edge anchors scaled by 512/256
            fpn_channels=256,  # the standard RetinaNet width
            batch_size=4,  # 512 px x ResNet-50 activations: keeps a 8 GB GPU within memory
            lr=5e-4,  # half of the others for the smaller batch
            weight_decay=1e-4,
            warmup_steps=200,
        ),
    )
}
DEFAULT_PRESET = "edge"


def get_preset(name: str) -> Preset:
    """Preset by name; ``ValueError`` listing the valid names when unknown."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
