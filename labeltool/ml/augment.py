"""Offline augmentation pipelines for derived images (albumentations 2.x, bbox-safe).

Presets suited to inspection images:

- ``light``: what online training does (small affine, mild lighting, a little noise);
- ``strong``: for targeted sets — lighting / contrast / gamma and uneven illumination, blur
  (Gaussian, motion, defocus), sensor noise (Gaussian, ISO), rotation up to ±10°, scale 0.8–1.25,
  shifts up to 8 %;
- ``photometric``: ``strong`` without any geometry (copy-paste composites: boxes stay where pasted).

Flips (horizontal and vertical) are added only when ``flips=True``: an image showing an
orientation-sensitive class (``classes.flip_ok = 0``) must never be mirrored.

Boxes are xyxy float pixels (albumentations' ``pascal_voc``), clipped to the image. A derived image
is accepted only if **every** box survives the transform (visible fraction >= :data:`MIN_VISIBILITY`);
otherwise another seed is tried, and in the end the photometric preset (which keeps every box). So a
derived image never shows a defect that has lost its label. Deterministic for a given seed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np
import numpy.typing as npt

PRESETS = ("light", "strong", "photometric")
MIN_VISIBILITY = 0.6  # a box cut to less than this share of its area rejects the whole derived image
MIN_BOX_SIDE_PX = 1.0  # boxes thinner than this after clipping are invalid (core.config.MIN_BOX_SIDE_PX)
MAX_TRIES = 6  # seeds tried before falling back to the photometric preset
MAX_PARAM_VALUES = 9  # applied-transform parameters with more values (noise maps, kernels) are not recorded
# grey where rotation/shift uncovers the border (never a mirrored copy of a defect); the same grey as
# data.LETTERBOX_FILL, not imported from there because ml/data.py imports torch
BORDER_FILL = 114


def _photometric(strength: str) -> list[A.BasicTransform]:
    if strength == "light":
        return [
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.RandomGamma(gamma_limit=(80, 120), p=0.3),
            A.GaussNoise(std_range=(0.01, 0.04), p=0.2),
        ]
    return [
        A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.3, p=0.8),
        A.RandomGamma(gamma_limit=(70, 140), p=0.5),
        A.Illumination(mode="linear", intensity_range=(0.03, 0.15), p=0.3),  # uneven lighting across the part
        A.OneOf([
            A.GaussianBlur(sigma_limit=(0.3, 1.2)),  # focus / vibration; mild: small defects must survive
            A.MotionBlur(blur_limit=(3, 5)),
            A.Defocus(radius=(1, 3), alias_blur=(0.1, 0.3)),
        ], p=0.3),
        A.OneOf([
            A.GaussNoise(std_range=(0.01, 0.05)),  # sensor noise
            A.ISONoise(color_shift=(0.01, 0.03), intensity=(0.1, 0.4)),
        ], p=0.4),
    ]


def _geometric(strength: str, *, flips: bool) -> list[A.BasicTransform]:
    out: list[A.BasicTransform] = [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)] if flips else []
    if strength == "light":
        out.append(A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-5, 5), keep_ratio=True,
                            border_mode=cv2.BORDER_CONSTANT, fill=BORDER_FILL, p=0.5))
    else:
        out.append(A.Affine(scale=(0.8, 1.25), translate_percent=(-0.08, 0.08), rotate=(-10, 10), keep_ratio=True,
                            border_mode=cv2.BORDER_CONSTANT, fill=BORDER_FILL, p=0.8))
    return out


def build_pipeline(preset: str, *, flips: bool = True, seed: int | None = None,
                   min_visibility: float = MIN_VISIBILITY) -> A.Compose:
    """The albumentations pipeline of ``preset``; call it with ``image``, ``bboxes`` (xyxy) and ``labels``.

    Rotated boxes use albumentations' ``largest_box`` rule (the box around the rotated corners), exact
    for a box that its defect fills; ``masks=[...]`` may be passed too (tests compare the two).
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    if not 0.0 <= min_visibility <= 1.0:
        raise ValueError(f"min_visibility must be in [0, 1], got {min_visibility}")
    strength = "light" if preset == "light" else "strong"
    transforms = [] if preset == "photometric" else _geometric(strength, flips=flips)
    transforms += _photometric(strength)
    with warnings.catch_warnings():  # photometric only: "no transform to process" the boxes is the point
        warnings.filterwarnings("ignore", message="Got processor for bboxes", category=UserWarning)
        return A.Compose(
            transforms,
            bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=min_visibility,
                                     min_width=MIN_BOX_SIDE_PX, min_height=MIN_BOX_SIDE_PX, clip=True,
                                     filter_invalid_bboxes=True),
            seed=seed, save_applied_params=True,
        )


@dataclass(frozen=True, slots=True)
class Augmented:
    """An augmented image: ``image`` uint8[H, W, 3], ``boxes`` float32[N, 4] xyxy pixels, ``labels``
    int64[N] (the input labels, same order: every box survived), ``record``: what was done (JSON-able)."""

    image: npt.NDArray[np.uint8]
    boxes: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    record: dict[str, Any]


def _plain(value: Any) -> Any:
    """A JSON-able, compact form of an applied-transform parameter (None to leave it out)."""
    if isinstance(value, np.ndarray):
        return None if value.size > MAX_PARAM_VALUES else _plain(value.tolist())
    if isinstance(value, dict):
        return {str(k): v for k, v in ((k, _plain(v)) for k, v in value.items()) if v is not None}
    if isinstance(value, list | tuple):
        if len(value) > MAX_PARAM_VALUES:
            return None
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float | np.floating):
        return round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


def applied_record(applied: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """``[{"name": ..., <parameters>}]`` of the transforms that fired (image shapes and big arrays left out)."""
    out = []
    for name, params in applied:
        kept = {k: v for k, v in ((k, _plain(v)) for k, v in params.items() if k != "shape") if v is not None}
        out.append({"name": name, **kept})
    return out


def augment(
    image: npt.NDArray[np.uint8], boxes: npt.NDArray[np.floating], labels: npt.NDArray[np.integer], *,
    preset: str, flips: bool, seed: int, max_tries: int = MAX_TRIES,
) -> Augmented:
    """Augment ``image`` (uint8[H, W, 3]) with its ``boxes`` (float[N, 4] xyxy pixels) and ``labels`` (int[N]).

    Tries seeds ``seed, seed + 1, …`` until every box survives and the image changed; after
    ``max_tries`` falls back to the photometric preset. Deterministic in ``seed``.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8[H, W, 3], got {image.dtype}{list(image.shape)}")
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(boxes) != len(labels):
        raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
    index = np.arange(len(boxes), dtype=np.int64)
    attempts = [(preset, seed + k) for k in range(max_tries)] + [("photometric", seed + max_tries + k)
                                                                   for k in range(max_tries)]
    out: dict[str, Any] = {}
    used, used_seed = preset, seed
    for used, used_seed in attempts:
        pipeline = build_pipeline(used, flips=flips, seed=used_seed)
        out = pipeline(image=image, bboxes=boxes, labels=index)
        if len(out["labels"]) == len(boxes) and not np.array_equal(out["image"], image):
            break
    else:
        if len(out["labels"]) != len(boxes):  # cannot happen: photometric transforms keep every box
            raise RuntimeError("augmentation lost a box even without geometric transforms")
    order = np.argsort(np.asarray(out["labels"], dtype=np.int64))
    new_boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)[order]
    record = {"preset": used, "seed": int(used_seed), "flips": bool(flips),
              "tries": attempts.index((used, used_seed)) + 1,
              "applied": applied_record(out.get("applied_transforms", []))}
    return Augmented(np.ascontiguousarray(out["image"], dtype=np.uint8), new_boxes, labels.copy(), record)
