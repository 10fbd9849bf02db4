"""Tests for the label-noise injector (core/noise.py)."""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from labeltool.core import config as cfg
from labeltool.core.errors import ImportFormatError
from labeltool.core.labels import BoxRecord, ImageRecord, LabelSet
from labeltool.core.noise import (
    NOISE_KINDS,
    NoiseRecord,
    inject_noise,
    read_noise_record,
    write_noise_record,
)
from labeltool.core.synth import generate_dataset

CLASSES = ["scratch", "dent", "crack"]


def _clean(n_images: int = 40, seed: int = 0) -> LabelSet:
    """Images 120x90 with 0-4 boxes, each inside its own 30x30 grid cell (so boxes never overlap)."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n_images):
        cells = rng.permutation(12)[: int(rng.integers(0, 5))]
        boxes = []
        for c in cells:
            cx, cy = float(c % 4) * 30, float(c // 4) * 30
            x1, y1 = cx + rng.uniform(0, 10), cy + rng.uniform(0, 10)
            boxes.append(BoxRecord(CLASSES[int(rng.integers(3))], x1, y1,
                                   x1 + rng.uniform(6, 20), y1 + rng.uniform(6, 20)))
        images.append(ImageRecord(file_name=f"img_{i:03d}.png", width=120, height=90, boxes=boxes,
                                  split="train" if i % 2 else None))
    return LabelSet(classes=list(CLASSES), images=images)


def _expected(fraction: float, n: int) -> int:
    """round half up, as documented by inject_noise."""
    return math.floor(fraction * n + 0.5)


def _n_boxes(labels: LabelSet) -> int:
    return sum(len(im.boxes) for im in labels.images)


def _iou(a: BoxRecord, b: BoxRecord) -> float:
    iw = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    ih = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - iw * ih
    return iw * ih / union


def _apply(clean: LabelSet, records: list[NoiseRecord]) -> LabelSet:
    """Independent re-implementation of the documented record semantics."""
    by_file: dict[str, list[NoiseRecord]] = {}
    for r in records:
        by_file.setdefault(r.file_name, []).append(r)
    images = []
    for im in clean.images:
        recs = by_file.get(im.file_name, [])
        edits = {r.box_index: r for r in recs if r.kind != "spurious"}
        boxes = []
        for j, b in enumerate(im.boxes):
            r = edits.get(j)
            if r is None:
                boxes.append(b)
            else:
                assert r.before == b
                if r.kind != "drop":
                    boxes.append(r.after)
        boxes += [r.after for r in recs if r.kind == "spurious"]
        images.append(ImageRecord(file_name=im.file_name, source=im.source, width=im.width,
                                  height=im.height, boxes=boxes, split=im.split))
    return LabelSet(classes=list(clean.classes), images=images)


def test_records_reproduce_the_noisy_set_exactly() -> None:
    clean = _clean()
    noisy, records = inject_noise(clean, fraction=0.3, seed=1)
    assert records
    assert _apply(clean, records) == noisy


def test_counts_per_kind_are_split_evenly() -> None:
    clean = _clean()
    n = _n_boxes(clean)
    noisy, records = inject_noise(clean, fraction=0.25, seed=2)
    counts = Counter(r.kind for r in records)
    total = _expected(0.25, n)
    assert sum(counts.values()) == total
    assert set(counts) == set(NOISE_KINDS)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert _n_boxes(noisy) == n - counts["drop"] + counts["spurious"]


def test_each_clean_box_is_corrupted_at_most_once() -> None:
    clean = _clean()
    _, records = inject_noise(clean, fraction=1.0, seed=3)
    keys = [(r.file_name, r.box_index) for r in records if r.kind != "spurious"]
    assert len(keys) == len(set(keys))
    counts = Counter(r.kind for r in records)
    assert sum(counts.values()) == _n_boxes(clean)
    assert counts["swap"] + counts["drop"] + counts["shift"] == len(keys)


def test_swap_changes_only_the_class_to_another_known_class() -> None:
    clean = _clean()
    _, records = inject_noise(clean, fraction=0.5, seed=4, kinds=("swap",))
    images = {im.file_name: im for im in clean.images}
    assert len(records) == _expected(0.5, _n_boxes(clean))
    for r in records:
        assert r.kind == "swap" and r.before is not None and r.after is not None
        assert r.before == images[r.file_name].boxes[r.box_index]
        assert r.after.label != r.before.label and r.after.label in CLASSES
        assert (r.after.x1, r.after.y1, r.after.x2, r.after.y2) == (r.before.x1, r.before.y1,
                                                                     r.before.x2, r.before.y2)


def test_drop_removes_the_box() -> None:
    clean = _clean()
    noisy, records = inject_noise(clean, fraction=0.2, seed=5, kinds=("drop",))
    assert records and all(r.kind == "drop" and r.after is None for r in records)
    assert _n_boxes(noisy) == _n_boxes(clean) - len(records)


def test_shifted_boxes_are_badly_located_but_valid() -> None:
    clean = _clean()
    _, records = inject_noise(clean, fraction=0.8, seed=6, kinds=("shift",))
    assert len(records) == _expected(0.8, _n_boxes(clean))
    for r in records:
        assert r.before is not None and r.after is not None
        assert r.after.label == r.before.label
        assert _iou(r.before, r.after) < 0.5
        assert 0 <= r.after.x1 < r.after.x2 <= 120 and 0 <= r.after.y1 < r.after.y2 <= 90


def test_spurious_boxes_overlap_nothing() -> None:
    clean = _clean()
    noisy, records = inject_noise(clean, fraction=0.5, seed=7, kinds=("spurious", "shift"))
    clean_by_file = {im.file_name: im for im in clean.images}
    noisy_by_file = {im.file_name: im for im in noisy.images}
    spurious = [r for r in records if r.kind == "spurious"]
    assert spurious
    widths = [b.x2 - b.x1 for im in clean.images for b in im.boxes]
    for r in spurious:
        assert r.box_index is None and r.before is None and r.after is not None
        assert r.after.label in CLASSES
        assert 0 <= r.after.x1 < r.after.x2 <= 120 and 0 <= r.after.y1 < r.after.y2 <= 90
        assert min(widths) * 0.5 <= r.after.x2 - r.after.x1 <= max(widths) * 1.5
        others = [*clean_by_file[r.file_name].boxes, *noisy_by_file[r.file_name].boxes]
        for b in others:
            if b is not r.after:
                assert _iou(r.after, b) == 0.0


def test_same_seed_same_noise_and_other_seed_other_noise() -> None:
    clean = _clean()
    a = inject_noise(clean, fraction=0.3, seed=8)
    b = inject_noise(clean, fraction=0.3, seed=8)
    c = inject_noise(clean, fraction=0.3, seed=9)
    assert a == b
    assert a[1] != c[1]


def test_input_is_not_mutated() -> None:
    clean = _clean()
    snapshot = copy.deepcopy(clean)
    noisy, _ = inject_noise(clean, fraction=0.6, seed=10)
    assert clean == snapshot
    noisy.images[0].boxes.append(BoxRecord("dent", 0.0, 0.0, 1.0, 1.0))
    noisy.classes.append("new")
    assert clean == snapshot


def test_fraction_zero_and_minimum_of_one() -> None:
    clean = _clean()
    noisy, records = inject_noise(clean, fraction=0.0)
    assert records == [] and noisy == clean and noisy is not clean
    _, records = inject_noise(clean, fraction=1e-6, kinds=("drop",))
    assert len(records) == 1


def test_remainder_goes_to_the_first_kinds() -> None:
    clean = _clean()
    n = _n_boxes(clean)
    fraction = 6 / n  # 6 corruptions over 4 kinds -> 2, 2, 1, 1
    _, records = inject_noise(clean, fraction=fraction, seed=0, kinds=("shift", "drop", "swap", "spurious"))
    assert Counter(r.kind for r in records) == {"shift": 2, "drop": 2, "swap": 1, "spurious": 1}


def test_works_on_a_generated_dataset(tmp_path: Path) -> None:
    clean = generate_dataset(tmp_path, n_images=20, seed=0, size=64)
    noisy, records = inject_noise(clean, fraction=0.4, seed=0)
    assert _apply(clean, records) == noisy
    assert len(records) == _expected(0.4, _n_boxes(clean))


def test_record_json_round_trip(tmp_path: Path) -> None:
    clean = _clean()
    _, records = inject_noise(clean, fraction=0.5, seed=11)
    path = tmp_path / "noise.json"
    meta = {"seed": 11, "fraction": 0.5, "kinds": list(NOISE_KINDS)}
    write_noise_record(records, path, meta=meta)
    data = json.loads(path.read_text())
    assert data["schema_version"] == cfg.NOISE_RECORD_SCHEMA_VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["noise.json"]  # no temporary file left
    back, back_meta = read_noise_record(path)
    assert back == records and back_meta == meta
    assert {kind for kind in Counter(r.kind for r in back)} == set(NOISE_KINDS)


def test_failed_write_leaves_no_files(tmp_path: Path) -> None:
    _, records = inject_noise(_clean(), fraction=0.2, seed=0)
    with pytest.raises(TypeError):
        write_noise_record(records, tmp_path / "a.json", meta={"not json": object()})
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):  # os.replace onto a directory fails after the temp file was written
        write_noise_record(records, tmp_path / "taken", meta={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"records": "x", "schema_version": 1}',
     '{"schema_version": 99, "meta": {}, "records": []}',
     '{"schema_version": 1, "meta": {}, "records": [{"kind": "drop", "file_name": "a", '
     '"box_index": 0, "before": null, "after": null}]}'],
)
def test_read_rejects_bad_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ImportFormatError, match="bad.json"):
        read_noise_record(path)


def test_record_validates_its_fields() -> None:
    box = BoxRecord("dent", 1.0, 1.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="teleport"):
        NoiseRecord("teleport", "a.png", 0, box, box)
    with pytest.raises(ValueError, match="after"):
        NoiseRecord("drop", "a.png", 0, box, box)
    with pytest.raises(ValueError, match="box_index"):
        NoiseRecord("spurious", "a.png", 0, None, box)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fraction": -0.1}, ValueError, "fraction"),
        ({"fraction": 1.5}, ValueError, "fraction"),
        ({"fraction": float("nan")}, ValueError, "fraction"),
        ({"fraction": True}, TypeError, "fraction"),
        ({"fraction": 0.1, "kinds": ("swap", "bogus")}, ValueError, "bogus"),
        ({"fraction": 0.1, "kinds": ()}, ValueError, "kinds"),
        ({"fraction": 0.1, "kinds": ("drop", "drop")}, ValueError, "duplicates"),
        ({"fraction": 0.1, "kinds": "swap"}, TypeError, "kinds"),
        ({"fraction": 0.1, "seed": -3}, ValueError, "seed"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        inject_noise(_clean(5), **kwargs)


def test_missing_requirements_are_reported() -> None:
    one_class = _clean(10)
    one_class.classes = ["scratch"]
    with pytest.raises(ValueError, match="two classes"):
        inject_noise(one_class, fraction=0.5, kinds=("swap",))
    no_size = _clean(10)
    no_size.images[3].width = None
    with pytest.raises(ValueError, match="img_003.png"):
        inject_noise(no_size, fraction=0.5, kinds=("shift",))
    dup = _clean(10)
    dup.images[1].file_name = dup.images[0].file_name
    with pytest.raises(ValueError, match="duplicate"):
        inject_noise(dup, fraction=0.5)


def test_fractions_per_kind() -> None:
    from labeltool.core.labels import BoxRecord, ImageRecord, LabelSet
    from labeltool.core.noise import inject_noise

    images = [ImageRecord(file_name=f"{i}.png", width=200, height=200,
                          boxes=[BoxRecord("a" if j % 2 else "b", 10 + 40 * j, 10, 30 + 40 * j, 30) for j in range(4)])
              for i in range(25)]
    labels = LabelSet(classes=["a", "b"], images=images)
    _, records = inject_noise(labels, fractions={"swap": 0.1, "drop": 0.05, "spurious": 0.03}, seed=1)
    kinds = [r.kind for r in records]
    assert (kinds.count("swap"), kinds.count("drop"), kinds.count("spurious"), kinds.count("shift")) == (10, 5, 3, 0)
