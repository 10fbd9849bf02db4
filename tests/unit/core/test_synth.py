"""Tests for the synthetic "parts with defects" generator (core/synth.py)."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeltool.core.labels import LabelSet
from labeltool.core.synth import DEMO_CLASSES, _render_sample, generate_dataset


def _hashes(labels: LabelSet) -> list[str]:
    return [hashlib.sha256(Path(im.source).read_bytes()).hexdigest() for im in labels.images]


def _boxes(labels: LabelSet) -> list[list[tuple[str, float, float, float, float]]]:
    return [[(b.label, b.x1, b.y1, b.x2, b.y2) for b in im.boxes] for im in labels.images]


def test_same_seed_gives_identical_bytes_and_boxes(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", n_images=6, seed=3, size=64)
    b = generate_dataset(tmp_path / "b", n_images=6, seed=3, size=64)
    c = generate_dataset(tmp_path / "c", n_images=6, seed=4, size=64)
    assert _hashes(a) == _hashes(b)
    assert _boxes(a) == _boxes(b)
    assert not set(_hashes(a)) & set(_hashes(c))


def test_smaller_dataset_is_a_prefix_of_a_larger_one(tmp_path: Path) -> None:
    small = generate_dataset(tmp_path / "s", n_images=3, seed=7, size=48)
    large = generate_dataset(tmp_path / "l", n_images=7, seed=7, size=48)
    assert _hashes(small) == _hashes(large)[:3]
    assert _boxes(small) == _boxes(large)[:3]


def test_records_describe_the_written_files(tmp_path: Path) -> None:
    labels = generate_dataset(tmp_path, n_images=4, seed=1, size=40)
    assert labels.classes == list(DEMO_CLASSES)
    assert len(set(DEMO_CLASSES)) == len(DEMO_CLASSES) >= 4
    assert [im.file_name for im in labels.images] == [f"part_{i:05d}.png" for i in range(4)]
    for im in labels.images:
        assert im.source == (tmp_path / "images" / im.file_name).resolve()
        assert im.source.is_absolute()
        assert (im.width, im.height, im.split) == (40, 40, None)
        with Image.open(im.source) as pil:
            assert (pil.format, pil.mode, pil.size) == ("PNG", "RGB", (40, 40))
        for b in im.boxes:
            assert b.label in DEMO_CLASSES
            assert all(isinstance(v, float) for v in (b.x1, b.y1, b.x2, b.y2))


def test_written_pixels_and_boxes_match_the_renderer(tmp_path: Path) -> None:
    labels = generate_dataset(tmp_path, n_images=5, seed=2, size=64)
    for i, im in enumerate(labels.images):
        r = _render_sample(seed=2, index=i, size=64, defect_free_fraction=0.15)
        assert np.array_equal(np.asarray(Image.open(im.source)), r.image)
        assert [(b.x1, b.y1, b.x2, b.y2) for b in im.boxes] == [tuple(map(float, d.box)) for d in r.defects]


def test_boxes_are_tight_around_the_rendered_defects() -> None:
    size, n_defects = 96, 0
    for index in range(25):
        r = _render_sample(seed=5, index=index, size=size, defect_free_fraction=0.1, keep_background=True)
        assert r.background is not None
        changed = np.any(r.image != r.background, axis=2)  # bool[H, W]
        inside = np.zeros((size, size), bool)
        for d in r.defects:
            n_defects += 1
            full = np.zeros((size, size), bool)
            s = d.mask.shape[0]
            full[d.y0:d.y0 + s, d.x0:d.x0 + s] = d.mask
            rows, cols = np.flatnonzero(full.any(1)), np.flatnonzero(full.any(0))
            assert d.box == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
            x1, y1, x2, y2 = d.box
            assert 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size
            in_box = changed[y1:y2, x1:x2]
            # the changed pixels reach all four sides of the box (no slack around the visible defect)
            assert in_box[:, 0].any() and in_box[:, -1].any() and in_box[0].any() and in_box[-1].any()
            inside[y1:y2, x1:x2] = True
        assert not (changed & ~inside).any(), f"image {index}: pixels changed outside every box"
    assert n_defects > 20


def test_defect_boxes_do_not_overlap_and_have_plausible_sizes() -> None:
    size, per_image = 256, []
    for index in range(40):
        r = _render_sample(seed=11, index=index, size=size, defect_free_fraction=0.15)
        boxes = [d.box for d in r.defects]
        per_image.append(len(boxes))
        for k, a in enumerate(boxes):
            side = max(a[2] - a[0], a[3] - a[1])
            assert 0.03 * size <= side <= 0.3 * size, (index, a)
            for b in boxes[k + 1:]:
                overlap = min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])
                assert not overlap, (index, a, b)
    assert max(per_image) <= 4
    assert set(per_image) - {0} == {1, 2, 3, 4}


def test_all_classes_appear_and_defect_free_fraction_is_respected(tmp_path: Path) -> None:
    labels = generate_dataset(tmp_path, n_images=200, seed=0, size=32, defect_free_fraction=0.15)
    counts = Counter(b.label for im in labels.images for b in im.boxes)
    assert set(counts) == set(DEMO_CLASSES)
    assert min(counts.values()) >= 25
    free = sum(not im.boxes for im in labels.images)
    assert 0.12 <= free / 200 <= 0.18


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_defect_free_fraction_extremes(fraction: float) -> None:
    n_free = sum(not _render_sample(seed=0, index=i, size=32, defect_free_fraction=fraction).defects
                 for i in range(30))
    assert n_free == (30 if fraction == 1.0 else 0)


def test_both_background_kinds_with_their_colours() -> None:
    renders = [_render_sample(seed=9, index=i, size=48, defect_free_fraction=1.0) for i in range(24)]
    kinds = Counter(r.kind for r in renders)
    assert kinds["metal"] >= 5 and kinds["pcb"] >= 5
    for r in renders:
        mean = r.image.reshape(-1, 3).mean(0)
        if r.kind == "metal":  # nearly neutral grey
            assert mean.max() - mean.min() < 25, mean
        else:  # coloured substrate: green or blue well above red, or dark
            assert max(mean[1], mean[2]) - mean[0] > 20 or mean.max() < 70, mean


def test_each_class_changes_the_surface_in_its_own_direction() -> None:
    """scratch/chip brighten, crack/dent/stain darken: the classes are visually distinct."""
    deltas: dict[str, list[float]] = {c: [] for c in DEMO_CLASSES}
    for index in range(60):
        r = _render_sample(seed=4, index=index, size=128, defect_free_fraction=0.0, keep_background=True)
        assert r.background is not None
        for d in r.defects:
            s = d.mask.shape[0]
            img = r.image[d.y0:d.y0 + s, d.x0:d.x0 + s].astype(float).mean(2)
            bg = r.background[d.y0:d.y0 + s, d.x0:d.x0 + s].astype(float).mean(2)
            deltas[d.label].append(float((img - bg)[d.mask].mean()))
    means = {c: np.mean(v) for c, v in deltas.items()}
    assert all(len(v) >= 5 for v in deltas.values()), {c: len(v) for c, v in deltas.items()}
    assert means["scratch"] > 5 and means["chip"] > 30
    assert means["crack"] < -20 and means["dent"] < -4 and means["stain"] < -5


def test_progress_is_reported_up_to_the_total(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    generate_dataset(tmp_path, n_images=250, seed=0, size=32, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (250, 250)
    assert all(t == 250 for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and 50 <= len(calls) <= 130


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_images": 0}, "n_images"),
        ({"size": 31}, "size"),
        ({"size": 100_000}, "size"),
        ({"seed": -1}, "seed"),
        ({"defect_free_fraction": 1.5}, "defect_free_fraction"),
        ({"defect_free_fraction": float("nan")}, "defect_free_fraction"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(tmp_path: Path, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        generate_dataset(tmp_path, **kwargs)
    assert not (tmp_path / "images").exists()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"n_images": 2.5}, "n_images"), ({"size": True}, "size"), ({"progress": 3}, "progress")],
)
def test_wrong_types_raise_type_error(tmp_path: Path, kwargs: dict, name: str) -> None:
    with pytest.raises(TypeError, match=name):
        generate_dataset(tmp_path, **kwargs)
