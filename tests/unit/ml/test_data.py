"""Letterboxing, augmentation and sampling of training data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from labeltool.ml.data import (
    LETTERBOX_FILL,
    DetectionDataset,
    Sample,
    letterbox_scale,
    relabel_samples,
    repeat_factors,
    train_transform,
    unletterbox_boxes,
)


def sample_with_square(tmp_path: Path, *, w: int = 200, h: int = 100, box=(40, 20, 80, 60), name="a.png") -> Sample:
    """An image with a white square exactly at ``box`` on black, and that box as its label."""
    arr = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    arr[y1:y2, x1:x2] = 255
    path = tmp_path / name
    PILImage.fromarray(arr).save(path)
    return Sample(1, path, np.array([box], np.float32), np.array([0], np.int64), "train", w, h)


def test_letterbox_keeps_aspect_and_pads_bottom_right(tmp_path: Path) -> None:
    assert letterbox_scale(200, 100, 64) == (64, 32)
    assert letterbox_scale(100, 300, 64) == (21, 64)
    ds = DetectionDataset([sample_with_square(tmp_path)], size=64)
    image, target, meta = ds[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert torch.allclose(image[:, 40:, :], torch.full((3, 24, 64), LETTERBOX_FILL / 255.0))  # padding
    np.testing.assert_allclose(target["boxes"].numpy(), [[12.8, 6.4, 25.6, 19.2]], rtol=1e-6)
    # the box still frames the white square in the letterboxed image
    x1, y1, x2, y2 = (round(v) for v in target["boxes"][0].tolist())
    assert image[0, y1 + 1:y2 - 1, x1 + 1:x2 - 1].min() > 0.9
    back = unletterbox_boxes(target["boxes"].numpy(), sx=meta["sx"], sy=meta["sy"], width=200, height=100)
    np.testing.assert_allclose(back, [[40, 20, 80, 60]], atol=1e-4)


def test_augmented_boxes_follow_the_pixels(tmp_path: Path) -> None:
    """Under flips/affine/photometric changes the box keeps framing the bright square."""
    ds = DetectionDataset([sample_with_square(tmp_path, w=128, h=128, box=(30, 50, 70, 90))], size=128,
                          transform=train_transform(seed=3))
    checked = 0
    for _ in range(25):
        image, target, _ = ds[0]
        gray = image.mean(0).numpy()
        bright = gray > 0.75
        if not len(target["boxes"]):
            continue
        x1, y1, x2, y2 = target["boxes"][0].tolist()
        ys, xs = np.nonzero(bright)
        assert abs(xs.min() - x1) <= 3 and abs(xs.max() + 1 - x2) <= 3, (xs.min(), xs.max(), x1, x2)
        assert abs(ys.min() - y1) <= 3 and abs(ys.max() + 1 - y2) <= 3
        assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
        checked += 1
    assert checked >= 20


def test_same_seed_same_augmentation(tmp_path: Path) -> None:
    s = sample_with_square(tmp_path, w=96, h=96, box=(10, 10, 40, 40))
    a = DetectionDataset([s], size=96, transform=train_transform(seed=7))
    b = DetectionDataset([s], size=96, transform=train_transform(seed=7))
    for _ in range(5):
        (ia, ta, _), (ib, tb, _) = a[0], b[0]
        assert torch.equal(ia, ib) and torch.equal(ta["boxes"], tb["boxes"])


def test_repeat_factors_favour_rare_classes() -> None:
    def s(labels: list[int]) -> Sample:
        return Sample(0, Path("x"), np.zeros((len(labels), 4), np.float32), np.array(labels, np.int64), "train", 1, 1)

    samples = [s([0])] * 18 + [s([1])] + [s([])]
    r = repeat_factors(samples, threshold=0.3)
    assert r[0] == 1.0 and r[-1] == 1.0
    assert r[18] == pytest.approx(np.sqrt(0.3 / (1 / 20)))


def test_relabel_maps_by_name_and_drops_unknown(tmp_path: Path) -> None:
    s = Sample(1, Path("x"), np.arange(12, dtype=np.float32).reshape(3, 4), np.array([0, 1, 2]), "val", 9, 9)
    (out,) = relabel_samples([s], names=["a", "b", "c"], target=["c", "a"])
    assert out.labels.tolist() == [1, 0]
    assert out.boxes.tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]


def test_size_is_validated() -> None:
    with pytest.raises(ValueError, match="size"):
        DetectionDataset([], size=8)
