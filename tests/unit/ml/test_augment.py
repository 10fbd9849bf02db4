"""Offline augmentation pipelines: boxes follow the pixels, stay inside, flips obey the class setting."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from labeltool.ml import data as ml_data
from labeltool.ml.augment import BORDER_FILL, MIN_VISIBILITY, PRESETS, augment, build_pipeline
from labeltool.ml.data import DetectionDataset, Sample
from labeltool.ml.oof import out_of_sample_predictions
from labeltool.ml.train import select_samples

H, W = 96, 128


def scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """An image with 1-3 non-overlapping filled rectangles (its boxes), and one mask per box."""
    image = rng.integers(40, 80, (H, W, 3), dtype=np.uint8)
    boxes, masks = [], []
    for _ in range(int(rng.integers(1, 4))):
        for _ in range(50):
            x1, y1 = int(rng.integers(0, W - 12)), int(rng.integers(0, H - 12))
            x2, y2 = x1 + int(rng.integers(6, min(48, W - x1) + 1)), y1 + int(rng.integers(6, min(40, H - y1) + 1))
            if not any(x1 < b[2] and b[0] < x2 and y1 < b[3] and b[1] < y2 for b in boxes):
                break
        else:
            continue
        boxes.append((x1, y1, x2, y2))
        mask = np.zeros((H, W), np.uint8)
        mask[y1:y2, x1:x2] = 1
        masks.append(mask)
        image[y1:y2, x1:x2] = 200
    return image, np.array(boxes, np.float32), masks


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("flips", [True, False])
def test_boxes_follow_the_transformed_pixels(preset: str, flips: bool) -> None:
    """Each box, drawn as a filled mask, is transformed with the image; the box must still frame its mask."""
    rng = np.random.default_rng(zlib.crc32(f"{preset}-{flips}".encode()))  # hash() of str varies per process
    compared = 0
    for seed in range(40):
        image, boxes, masks = scene(rng)
        out = build_pipeline(preset, flips=flips, seed=seed)(image=image, bboxes=boxes, masks=masks,
                                                             labels=np.arange(len(boxes)))
        assert out["image"].shape == image.shape
        for box, k in zip(np.asarray(out["bboxes"]).reshape(-1, 4), out["labels"], strict=True):
            x1, y1, x2, y2 = box
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H  # never outside the image
            mask = out["masks"][int(k)]
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            frame = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)
            # nearest-neighbour mask warping: within 2 px. A rotated box clipped at the image edge may
            # frame a corner that is outside the image: it still holds the mask, but its other side can
            # be looser by up to side * sin(10 deg) (the strong preset's largest rotation).
            at_edge = x1 <= 0.5 or y1 <= 0.5 or x2 >= W - 0.5 or y2 >= H - 0.5
            slack = 2.0 + (max(x2 - x1, y2 - y1) * math.sin(math.radians(10)) if at_edge else 0.0)
            assert np.all(box[:2] <= frame[:2] + 2.0) and np.all(box[2:] >= frame[2:] - 2.0), \
                f"{preset} seed {seed}: box {box} does not hold its mask {frame}"
            np.testing.assert_allclose(box, frame, atol=slack, err_msg=f"{preset} seed {seed}")
            visible = mask.sum() / masks[int(k)].sum()
            assert visible >= MIN_VISIBILITY * 0.8  # dropped when cut more (0.8: interpolation slack)
            compared += 1
        if preset == "photometric":
            assert len(out["bboxes"]) == len(boxes)
            np.testing.assert_allclose(np.asarray(out["bboxes"]), boxes, atol=1e-4)  # float round trip
    assert compared >= 40


def test_augment_keeps_every_box_is_seeded_and_records_what_it_did() -> None:
    rng = np.random.default_rng(0)
    for seed in range(30):
        image, boxes, _ = scene(rng)
        boxes[0] = (0, 0, 30, 30)  # a box at the corner: often cut by rotation / shift
        image[0:30, 0:30] = 200
        labels = np.arange(len(boxes)) + 5
        a = augment(image, boxes, labels, preset="strong", flips=True, seed=seed)
        assert len(a.boxes) == len(boxes) and a.labels.tolist() == labels.tolist()  # nothing lost
        assert ((a.boxes[:, 0] >= 0) & (a.boxes[:, 2] <= W) & (a.boxes[:, 1] >= 0) & (a.boxes[:, 3] <= H)).all()
        assert not np.array_equal(a.image, image)
        b = augment(image, boxes, labels, preset="strong", flips=True, seed=seed)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes) and a.record == b.record
        json.dumps(a.record)  # provenance is JSON-able (no big arrays)
        assert a.record["preset"] in ("strong", "photometric") and a.record["tries"] >= 1
        assert all("noise_map" not in step for step in a.record["applied"])
    c = augment(image, boxes, labels, preset="strong", flips=True, seed=1000)
    assert not np.array_equal(c.image, a.image)


def test_no_flips_for_orientation_sensitive_images() -> None:
    rng = np.random.default_rng(1)
    names = set()
    for seed in range(60):
        image, boxes, _ = scene(rng)
        rec = augment(image, boxes, np.zeros(len(boxes)), preset="strong", flips=False, seed=seed).record
        names |= {step["name"] for step in rec["applied"]}
    assert "Affine" in names and not names & {"HorizontalFlip", "VerticalFlip"}
    flipped = set()
    for seed in range(20):
        image, boxes, _ = scene(rng)
        rec = augment(image, boxes, np.zeros(len(boxes)), preset="strong", flips=True, seed=seed).record
        flipped |= {step["name"] for step in rec["applied"]}
    assert {"HorizontalFlip", "VerticalFlip"} <= flipped
    assert BORDER_FILL == ml_data.LETTERBOX_FILL
    with pytest.raises(ValueError, match="preset"):
        build_pipeline("extreme")


def test_training_does_not_mirror_orientation_sensitive_images(tmp_path: Path) -> None:
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[:, :16] = 255  # bright left edge: a horizontal flip moves it right
    PILImage.fromarray(arr).save(tmp_path / "a.png")
    box = np.array([[2, 2, 10, 10]], np.float32)
    mk = lambda ok: Sample(1, tmp_path / "a.png", box, np.zeros(1, np.int64), "train", 64, 64, flip_ok=ok)  # noqa: E731
    flip = ml_data.A.Compose([ml_data.A.HorizontalFlip(p=1.0)], bbox_params=ml_data.A.BboxParams(
        format="pascal_voc", label_fields=["labels"]))
    ds = DetectionDataset([mk(True), mk(False)], size=64, transform=flip,
                          no_flip_transform=ml_data.train_transform(seed=0, flips=False))
    assert ds[0][0][:, :, -1].mean() > 0.9  # mirrored
    for _ in range(10):
        image = ds[1][0]
        assert image[:, :, 6:12].mean() > 0.6 > image[:, :, 52:58].mean()  # the bright edge stays left
    names = [type(t).__name__ for t in ml_data.train_transform(flips=False).transforms]
    assert "HorizontalFlip" not in names and "VerticalFlip" not in names


def sample(i: int, split: str, derived: bool = False) -> Sample:
    return Sample(i, Path(f"{i}.png"), np.zeros((1, 4), np.float32), np.zeros(1, np.int64), split, 10, 10,
                  derived=derived)


def test_derived_samples_train_but_never_validate() -> None:
    samples = [sample(1, "train"), sample(2, "val"), sample(3, "train", True), sample(4, "train", True)]
    train_s, val_s, notes = select_samples(samples)
    assert [s.image_id for s in train_s] == [1, 3, 4] and [s.image_id for s in val_s] == [2]
    train_s, val_s, notes = select_samples(samples, derived=False)
    assert [s.image_id for s in train_s] == [1] and "--no-derived" in notes[0]
    # no validation images: the real training images stand in, never the derived ones
    train_s, val_s, notes = select_samples([s for s in samples if s.split == "train"])
    assert [s.image_id for s in val_s] == [1] and "validating on the training images" in notes[0]


def test_out_of_sample_predictions_refuse_derived_images() -> None:
    from labeltool.ml.fit import TrainOptions
    from labeltool.ml.presets import get_preset

    job = out_of_sample_predictions([sample(1, "train"), sample(2, "train", True)], ["a"], k=2,
                                    preset=get_preset("edge"), options=TrainOptions())
    with pytest.raises(ValueError, match="derived"):
        next(job)
