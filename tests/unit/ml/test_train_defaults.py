"""One-click training defaults: preset, epochs or time budget, patience and the words shown for them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from labeltool.ml import train_defaults as td
from labeltool.ml.train_defaults import choose_train_defaults, detect_device


def test_cpu_uses_the_edge_preset_and_a_gpu_the_balanced_one() -> None:
    cpu = choose_train_defaults(n_images=200, n_boxes=500, device="cpu", cpu_count=2)
    gpu = choose_train_defaults(n_images=200, n_boxes=500, device="cuda", cpu_count=2)
    assert cpu.kwargs["preset"] == "edge" and gpu.kwargs["preset"] == "balanced"
    assert "on this CPU (2 cores)" in cpu.explanation and "edge preset" in cpu.explanation
    assert "256 px" in cpu.explanation and "320 px" in gpu.explanation and "on the GPU" in gpu.explanation
    assert gpu.minutes < cpu.minutes


def test_demo_sized_project_on_two_cores() -> None:
    # 200 labeled images -> 160 train / 40 val; 4000 images seen -> 25 epochs; 64 ms/image training,
    # 40 ms/image validation: 25 x (160 x 64 + 40 x 40) ms = 296 s, plus ~21 s of preparation
    d = choose_train_defaults(n_images=200, n_boxes=500, device="cpu", cpu_count=2)
    assert d.ready and d.kwargs == {"preset": "edge", "epochs": 25, "patience": 8}
    assert d.minutes == pytest.approx(5.3, abs=0.1)
    assert d.explanation.startswith("About 5 min on this CPU (2 cores): edge preset (EfficientNet-Lite0), 256 px, "
                                    "up to 25 epochs over 160 training images; stops early when val mAP@.5 has "
                                    "not improved for 8 epochs.")
    assert d.warnings == ()


def test_every_preset_has_speed_figures() -> None:
    from labeltool.ml.presets import PRESETS

    for table in (td.CPU_TRAIN_MS_2_CORES, td.CPU_EVAL_MS_2_CORES, td.GPU_TRAIN_MS, td.GPU_EVAL_MS):
        assert set(table) == set(PRESETS)
    for name in PRESETS:  # e.g. a run of the earlier MobileNetV3 preset is kept when it fits
        d = choose_train_defaults(n_images=50, n_boxes=150, device="cpu", cpu_count=2, previous_preset=name)
        assert d.ready and d.kwargs["preset"] in PRESETS


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_small_sets_get_more_epochs_large_sets_fewer(device: str) -> None:
    sizes = [12, 50, 200, 500, 1000, 2000]
    plans = [choose_train_defaults(n_images=n, n_boxes=3 * n, device=device, cpu_count=2) for n in sizes]
    epochs = [p.kwargs.get("epochs") for p in plans]
    assert epochs[0] == td.MAX_EPOCHS
    assert all(e is not None for e in epochs)
    assert epochs == sorted(epochs, reverse=True) and epochs[-1] == td.MIN_EPOCHS
    estimates = [p.minutes for p in plans]
    assert estimates == sorted(estimates) and estimates[-1] <= td.MAX_MINUTES[device]
    assert all(p.kwargs["patience"] >= td.MIN_PATIENCE for p in plans)


def test_a_large_set_on_a_cpu_gets_a_time_budget() -> None:
    d = choose_train_defaults(n_images=5000, n_boxes=20000, device="cpu", cpu_count=2)
    assert "epochs" not in d.kwargs and 25 < d.kwargs["minutes"] < td.MAX_MINUTES["cpu"]
    assert d.minutes == td.MAX_MINUTES["cpu"]
    assert d.explanation.startswith("At most 30 min on this CPU (2 cores)") and "about 5 epochs" in d.explanation
    # more cores: the same set fits in epochs
    fast = choose_train_defaults(n_images=4000, n_boxes=12000, device="cpu", cpu_count=8)
    slow = choose_train_defaults(n_images=4000, n_boxes=12000, device="cpu", cpu_count=2)
    assert "epochs" in fast.kwargs and "minutes" in slow.kwargs and fast.minutes < slow.minutes


def test_the_kwargs_are_valid_training_options() -> None:
    from labeltool.ml.fit import TrainOptions

    for n in (3, 50, 5000):
        for device in ("cpu", "cuda"):
            d = choose_train_defaults(n_images=n, n_boxes=n, device=device, cpu_count=4)
            options = TrainOptions(**d.kwargs)
            assert options.preset == d.kwargs["preset"] and (options.epochs is None) != (options.minutes is None)


def test_a_previous_run_keeps_its_preset_when_it_fits_and_is_compared() -> None:
    first = choose_train_defaults(n_images=50, n_boxes=150, device="cpu", cpu_count=2)
    assert "compared" not in first.explanation
    again = choose_train_defaults(n_images=50, n_boxes=150, device="cpu", cpu_count=2, has_previous_run=True,
                                  previous_preset="balanced")
    assert again.kwargs["preset"] == "balanced" and "balanced preset (the current model's)" in again.explanation
    assert "compared with the current one on the same validation images" in again.explanation
    # too slow on this CPU for a big set: back to edge
    big = choose_train_defaults(n_images=3000, n_boxes=9000, device="cpu", cpu_count=2, has_previous_run=True,
                                previous_preset="accurate")
    assert big.kwargs["preset"] == "edge"
    unknown = choose_train_defaults(n_images=50, n_boxes=150, device="cpu", previous_preset="huge")
    assert unknown.kwargs["preset"] == "edge"


def test_nothing_to_train_on_says_what_to_do() -> None:
    none = choose_train_defaults(n_images=0, n_boxes=0)
    assert not none.ready and none.kwargs == {} and "label some images" in none.explanation
    empty = choose_train_defaults(n_images=30, n_boxes=0)
    assert not empty.ready and "no boxes" in empty.explanation


def test_few_images_warn() -> None:
    few = choose_train_defaults(n_images=3, n_boxes=4, device="cpu", cpu_count=2)
    assert few.ready and len(few.warnings) == 2
    assert "Only 3 labeled images with 4 boxes" in few.warnings[0] and "validation split" in few.warnings[1]
    assert choose_train_defaults(n_images=100, n_boxes=300).warnings == ()


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="'tpu'"):
        choose_train_defaults(n_images=10, n_boxes=10, device="tpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_images=-1"):
        choose_train_defaults(n_images=-1, n_boxes=10)


def test_device_detection_does_not_import_torch() -> None:
    had_torch = "torch" in sys.modules
    device = detect_device()
    assert device in ("cpu", "cuda")
    assert ("torch" in sys.modules) == had_torch
    if sys.platform.startswith("linux") and not Path("/proc/driver/nvidia/version").exists():
        assert device == "cpu"
