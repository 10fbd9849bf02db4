"""One-click fine-tune: the training options chosen from the project's size and the machine.

No torch here (the GUI calls this at start-up). The time estimate uses the training speeds measured
on this project's 2-core CPU build machine (README "Benchmarks", CONTEXT.md "Fine-tuning defaults")
and rough GPU figures; it is an estimate shown to the user, not a promise. The choice:

- preset: ``edge`` on a CPU, ``balanced`` on a GPU; the current model's preset when there is one and
  it fits the time limit (the before/after comparison is then like for like);
- epochs: enough for about ``TARGET_IMAGES_SEEN`` training images (small sets get more epochs),
  between ``MIN_EPOCHS`` and ``MAX_EPOCHS``; when that would take longer than the device's time
  limit, a time budget (``minutes``) instead;
- patience (early stopping on val mAP@.5): a quarter of the epochs, at least the TrainOptions default.

The one-click training starts afresh from the pretrained backbone (not ``init_from``); a previous run
only changes the comparison and the preset.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

from labeltool.core.splits import DEFAULT_VAL_FRACTION

from .presets import DEFAULT_PRESET, PRESETS

Device = Literal["cpu", "cuda"]

# Training cost per image at the preset's input size, ms, on 2 CPU cores (training step + loading).
# Every preset has an entry (tests/unit/ml/test_train_defaults.py checks it).
CPU_TRAIN_MS_2_CORES = {
    "edge": 64.0,  # EfficientNet-Lite0 at 256 px, 4 stages frozen: 15.6 images/s (bench/train.py map, CONTEXT.md)
    "balanced": 103.0,  # EfficientNet-Lite1 at 320 px, 4 stages frozen: 9.75 images/s (bench/train.py map --preset balanced)
    "accurate": 1500.0,  # not measured: ~7x ResNet-18 at 320 px by FLOPs (ResNet-50 at 512 px)
    "mobilenetv3": 58.0,  # measured, bench/train.py (CONTEXT.md "Detector head width")
    "resnet18": 222.0,  # measured: 4.5 images/s (bench/train.py map --preset resnet18)
}
# Validation cost per image (PyTorch eager, batch 1, 2 threads), ms.
CPU_EVAL_MS_2_CORES = {
    "edge": 40.0,  # bench/export.py (PyTorch FP32, batch 1)
    "balanced": 65.0,  # not measured: ~1.6x edge, as the training step
    "accurate": 600.0,  # not measured: ~7x ResNet-18
    "mobilenetv3": 36.0,  # measured (DESIGN.md "Edge export")
    "resnet18": 88.0,  # measured, bench/export.py
}
# GPU: not measured (the build machine has none); rough figures for a mid-range GPU with bf16.
GPU_TRAIN_MS = {"edge": 5.0, "balanced": 8.0, "accurate": 25.0, "mobilenetv3": 5.0, "resnet18": 8.0}
GPU_EVAL_MS = {"edge": 3.0, "balanced": 4.0, "accurate": 10.0, "mobilenetv3": 3.0, "resnet18": 4.0}
CPU_SCALING_MAX_CORES = 8  # training speed assumed to grow with the cores up to this many
SETUP_S = 20.0  # building the model and decoding the images before the first step (small sets)
SETUP_MS_PER_IMAGE = 5.0  # image decoding and letterboxing per image

# From the pretrained edge backbone the generated set (240 training images) reached val mAP@.5 0.80 after
# ~2,600 images seen (3-minute budget) and 0.94 after ~4,000 (5 minutes, 17 epochs); from random init 0.73 took 10,000
TARGET_IMAGES_SEEN = 4000
# A minute-budgeted training (or fold model) that fit fewer epochs says so: a busy machine trains less
FEW_EPOCHS = 3
MIN_EPOCHS = 10  # large sets: never fewer passes than this (unless the time limit says otherwise)
MAX_EPOCHS = 40  # tiny sets: more passes only over-fit
MAX_MINUTES: dict[str, float] = {"cpu": 30.0, "cuda": 60.0}  # one click should not block the laptop longer
MIN_PATIENCE = 8  # TrainOptions' default early-stopping patience (epochs without a better val mAP@.5)
FEW_IMAGES = 20  # below this many labeled images the user is warned the model will be weak
FEW_BOXES = 30  # ... and below this many boxes
DEVICE_PRESET = {"cpu": DEFAULT_PRESET, "cuda": "balanced"}  # README: balanced is for "a GPU or patience"


@dataclass(frozen=True, slots=True)
class TrainDefaults:
    """What one click trains with, and why, in words."""

    kwargs: dict[str, Any]  # TrainOptions keyword arguments (JSON-able); empty when not ready
    explanation: str  # one plain-words line for the user
    minutes: float  # estimated wall time, minutes (0 when not ready)
    ready: bool  # False: nothing to train on yet (explanation says what to do)
    warnings: tuple[str, ...] = field(default=())


def _speed_ms(preset: str, device: Device, cpu_count: int) -> tuple[float, float]:
    """(training, validation) ms per image for ``preset`` on this device."""
    if device == "cuda":
        return GPU_TRAIN_MS[preset], GPU_EVAL_MS[preset]
    scale = 2.0 / max(1, min(cpu_count, CPU_SCALING_MAX_CORES))
    return CPU_TRAIN_MS_2_CORES[preset] * scale, CPU_EVAL_MS_2_CORES[preset] * scale


def _split(n_images: int) -> tuple[int, int]:
    """(training, validation) images after the split assignment (no validation below 5 images)."""
    if n_images < 5:
        return n_images, n_images  # train.py validates on the training images then
    n_val = max(1, round(DEFAULT_VAL_FRACTION * n_images))
    return n_images - n_val, n_val


def _plan(preset: str, *, n_images: int, device: Device, cpu_count: int,
          compare: bool) -> tuple[int | None, float | None, int, float]:
    """(epochs or None, minutes or None, epochs expected, estimated minutes) for ``preset``."""
    n_train, n_val = _split(n_images)
    train_ms, eval_ms = _speed_ms(preset, device, cpu_count)
    epoch_s = (n_train * train_ms + n_val * eval_ms) / 1000.0
    extra_s = SETUP_S + n_images * SETUP_MS_PER_IMAGE / 1000.0 + (n_val * eval_ms / 1000.0 if compare else 0.0)
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_IMAGES_SEEN / max(1, n_train))))
    total_min = (extra_s + epochs * epoch_s) / 60.0
    limit = MAX_MINUTES[device]
    if total_min <= limit:
        return epochs, None, epochs, total_min
    budget = limit - extra_s / 60.0  # --minutes counts training, not preparation
    return None, round(budget, 1), max(1, int(budget * 60.0 / epoch_s)), limit


def _minutes_text(minutes: float) -> str:
    return "About 1 min" if minutes < 1.5 else f"About {round(minutes)} min"


def choose_train_defaults(*, n_images: int, n_boxes: int, device: Device = "cpu", cpu_count: int | None = None,
                          has_previous_run: bool = False, previous_preset: str | None = None) -> TrainDefaults:
    """The options of a one-click fine-tune for a project with ``n_images`` labeled images holding
    ``n_boxes`` boxes, on ``device`` with ``cpu_count`` cores (None: this machine's).

    ``previous_preset``: the current model's preset; kept when it fits the device's time limit.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if n_images < 0 or n_boxes < 0:
        raise ValueError(f"counts must not be negative, got n_images={n_images}, n_boxes={n_boxes}")
    if previous_preset is not None and previous_preset not in PRESETS:
        previous_preset = None  # a preset this version does not know: choose afresh
    cores = max(1, cpu_count or os.cpu_count() or 2)
    if n_images == 0:
        return TrainDefaults({}, "Nothing to train on yet: label some images (or import labels) first.", 0.0, False)
    if n_boxes == 0:
        return TrainDefaults({}, "The labeled images have no boxes yet: a detector learns from boxes, so draw "
                                 "some on images that show defects.", 0.0, False)
    compare = has_previous_run or previous_preset is not None
    preset = DEVICE_PRESET[device]
    plan = _plan(preset, n_images=n_images, device=device, cpu_count=cores, compare=compare)
    if previous_preset is not None and previous_preset != preset:
        alt = _plan(previous_preset, n_images=n_images, device=device, cpu_count=cores, compare=compare)
        if alt[1] is None:  # fits in epochs mode: keep the current model's preset
            preset, plan = previous_preset, alt
    epochs, minutes, expected_epochs, estimate = plan
    patience = max(MIN_PATIENCE, (epochs or expected_epochs) // 4)
    kwargs: dict[str, Any] = {"preset": preset, "patience": patience}
    if epochs is not None:
        kwargs["epochs"] = epochs
    else:
        kwargs["minutes"] = minutes
    p = PRESETS[preset]
    where = "on the GPU" if device == "cuda" else f"on this CPU ({cores} cores)"
    n_train, _ = _split(n_images)
    if epochs is not None:
        length = f"{_minutes_text(estimate)} {where}"
        passes = f"up to {epochs} epochs over {n_train} training images"
    else:
        length = f"At most {round(estimate)} min {where}"
        passes = f"about {expected_epochs} epochs over {n_train} training images"
    backbone = p.description.split(" at ")[0]
    kept = " (the current model's)" if preset == previous_preset and preset != DEVICE_PRESET[device] else ""
    text = (f"{length}: {preset} preset{kept} ({backbone}), {p.image_size} px, {passes}; stops early when "
            f"val mAP@.5 has not improved for {patience} epochs.")
    if compare:
        text += " The new model is compared with the current one on the same validation images."
    warnings = []
    if n_images < FEW_IMAGES or n_boxes < FEW_BOXES:
        warnings.append(f"Only {n_images} labeled images with {n_boxes} boxes: expect a weak model. About 50 "
                        "well-labeled images per defect class make a big difference.")
    if n_images < 5:
        warnings.append("Too few images for a validation split: the model is scored on its own training "
                        "images, so its mAP will look better than it is.")
    return TrainDefaults(kwargs, text, round(estimate, 1), True, tuple(warnings))


def detect_device() -> Device:
    """'cuda' when torch is a CUDA build and an NVIDIA driver is present, else 'cpu' — without
    importing torch (seconds at GUI start-up) unless it is already imported."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    spec = find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return "cpu"
    version_file = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        text = version_file.read_text(encoding="utf-8")
    except OSError:
        return "cpu"
    cuda_line = next((line for line in text.splitlines() if line.startswith("cuda")), "")
    if "None" in cuda_line or "'" not in cuda_line and '"' not in cuda_line:
        return "cpu"  # a CPU-only build
    if sys.platform.startswith("linux"):
        driver = Path("/proc/driver/nvidia/version").is_file()
    elif sys.platform == "win32":
        driver = (Path(os.environ.get("SystemRoot", r"C:\Windows")) / "System32" / "nvcuda.dll").is_file()
    else:
        driver = False
    return "cuda" if driver else "cpu"


__all__ = ["TrainDefaults", "choose_train_defaults", "detect_device"]
