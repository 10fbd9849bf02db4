"""Copy-paste synthesis and augmentation planning (pure numpy / Python)."""

from __future__ import annotations

import numpy as np
import pytest

from labeltool.core.augment_plan import (
    MAX_FACTOR,
    TrainImage,
    default_target,
    item_seed,
    plan_targeted,
    plan_uniform,
)
from labeltool.core.copy_paste import GAP_PX, cut_crop, paste_crops


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def scene(seed: int, size: int = 96) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """A textured background with 3 bright rectangles as 'defects' and their boxes."""
    rng = np.random.default_rng(seed)
    img = (rng.normal(90, 12, (size, size, 3))).clip(0, 255).astype(np.uint8)
    boxes = [(10.0, 12.0, 22.0, 20.0), (50.0, 50.0, 58.0, 70.0), (70.0, 8.0, 90.0, 16.0)]
    for x1, y1, x2, y2 in boxes:
        img[int(y1):int(y2), int(x1):int(x2)] = 230
    return img, boxes


def test_pasted_crops_never_cover_a_box_and_stay_inside_the_image() -> None:
    src, src_boxes = scene(0)
    for seed in range(40):
        target, target_boxes = scene(seed + 1, size=80)
        crops = [cut_crop(src, b, other_boxes=[o for o in src_boxes if o != b], class_id=k, source_image_id=7)
                 for k, b in enumerate(src_boxes)]
        out, pasted = paste_crops(target, [c for c in crops if c is not None], boxes=target_boxes,
                                  rng=np.random.default_rng(seed))
        assert out.shape == target.shape and out.dtype == np.uint8
        for p in pasted:
            x0, y0, x1, y1 = p.rect
            assert 0 <= x0 < x1 <= 80 and 0 <= y0 < y1 <= 80  # the whole crop is inside
            assert x0 <= p.box[0] < p.box[2] <= x1 and y0 <= p.box[1] < p.box[3] <= y1
            grown = (x0 - GAP_PX, y0 - GAP_PX, x1 + GAP_PX, y1 + GAP_PX)
            assert not any(overlaps(grown, b) for b in target_boxes)  # nor near an existing box
            assert not any(overlaps(p.rect, q.rect) for q in pasted if q is not p)
        # outside the pasted rectangles nothing changed; existing defects are intact
        mask = np.ones(target.shape[:2], bool)
        for p in pasted:
            mask[p.rect[1]:p.rect[3], p.rect[0]:p.rect[2]] = False
        assert np.array_equal(out[mask], target[mask])


def test_the_defect_is_pasted_whole_with_matched_brightness_and_a_soft_edge() -> None:
    src, boxes = scene(0)
    crop = cut_crop(src, boxes[1], other_boxes=[boxes[0], boxes[2]], class_id=3, source_image_id=1)
    assert crop is not None and crop.class_id == 3
    assert crop.alpha.max() == 1.0 and crop.alpha.min() < 0.1  # feathered to ~0 at the border
    bx1, by1, bx2, by2 = (int(v) for v in crop.box)
    assert (crop.alpha[by1:by2, bx1:bx2] == 1.0).all()  # the defect itself is opaque
    dark = np.full((64, 64, 3), 45, np.uint8)  # a darker part: the crop is dimmed to match it
    out, (p,) = paste_crops(dark, [crop], boxes=[], rng=np.random.default_rng(0))
    x1, y1, x2, y2 = (int(round(v)) for v in p.box)
    assert p.class_id == 3 and (x2 - x1, y2 - y1) == (8, 20)
    assert 0.4 < p.gain[0] < 0.6  # background 90 -> 45
    inside = out[y1:y2, x1:x2].astype(float)
    assert inside.mean() == pytest.approx(230 * p.gain[0], abs=2)  # the defect, scaled, fully there
    assert abs(out[p.rect[1], p.rect[0]].astype(int) - 45).max() <= 6  # the crop corner fades into the target


def test_a_crop_takes_no_piece_of_a_neighbouring_box() -> None:
    img = np.full((60, 60, 3), 80, np.uint8)
    box, neighbour = (20.0, 20.0, 30.0, 30.0), (32.0, 18.0, 40.0, 34.0)  # 2 px to the right
    crop = cut_crop(img, box, other_boxes=[neighbour], class_id=0, source_image_id=0)
    assert crop is not None
    left, top, right, bottom = crop.source_rect
    assert right <= 32 and left < 20 and top < 20 and bottom > 30  # margin cut only on the neighbour's side
    assert cut_crop(img, box, other_boxes=[(25.0, 25.0, 35.0, 35.0)], class_id=0, source_image_id=0) is None
    with pytest.raises(ValueError, match="uint8"):
        cut_crop(img.astype(np.float32), box, class_id=0, source_image_id=0)


def test_a_full_image_gets_no_crop() -> None:
    src, boxes = scene(0)
    crop = cut_crop(src, boxes[0], other_boxes=boxes[1:], class_id=0, source_image_id=0)
    full = [(0.0, 0.0, 64.0, 64.0)]
    out, pasted = paste_crops(np.zeros((64, 64, 3), np.uint8), [crop], boxes=full, rng=np.random.default_rng(0))
    assert pasted == [] and not out.any()


def images(spec: dict[int, list[int]]) -> list[TrainImage]:
    """Train images from ``{image_id: [class ids of its boxes]}`` (box id = image_id * 10 + k)."""
    return [TrainImage(i, f"images/{i}.png", 64, 64,
                       tuple((i * 10 + k, c, (1.0 + 10 * k, 1.0, 8.0 + 10 * k, 8.0)) for k, c in enumerate(cs)))
            for i, cs in spec.items()]


def test_targeted_plan_brings_weak_classes_to_their_target() -> None:
    # class 0 on 20 images, class 1 on 13, class 2 (weak) on 3, one of them also showing class 1; 5 defect-free
    spec = {i: [0] for i in range(20)} | {20 + i: [1] for i in range(12)} | {40: [2], 41: [2], 42: [2, 1]}
    spec |= {50 + i: [] for i in range(5)}
    ims = images(spec)
    plan = plan_targeted(ims, class_ids=[2], seed=0)
    assert plan.counts[2]["before"] == 3 and plan.counts[2]["target"] == min(13, MAX_FACTOR * 3)  # the median
    assert len(plan.items) == 13 - 3 and all(it.kind == "augment" and it.image_id in (40, 41, 42)
                                             for it in plan.items)
    assert plan_targeted(ims, class_ids=[2], seed=0).items == plan.items  # reproducible
    assert plan_targeted(ims, class_ids=[2], seed=1).items != plan.items
    # explicit target, copy-paste: half composites on other images, donors never from the canvas itself
    plan = plan_targeted(ims, class_ids=[2, 1], per_class=15, copy_paste=True, seed=0)
    pastes = [it for it in plan.items if it.kind == "copy_paste"]
    assert len(pastes) == round(12 * 0.5) and all(it.donors for it in pastes)
    assert all(d[0] != it.image_id and d[0] in (40, 41, 42) for it in pastes for d in it.donors)
    assert pastes[0].image_id in range(50, 55)  # defect-free images (most room) first
    assert plan.counts[2]["planned"] == 12 and plan.counts[1]["planned"] >= 15 - 13
    assert len({it.seed for it in plan.items}) == len(plan.items) and plan.items[0].seed == item_seed(0, 0)


def test_plan_checks_and_uniform_mode() -> None:
    ims = images({1: [0], 2: [0], 3: []})
    with pytest.raises(ValueError, match="appear on no training image"):
        plan_targeted(ims, class_ids=[5])
    with pytest.raises(ValueError, match="per_class"):
        plan_targeted(ims, class_ids=[0], per_class=0)
    assert plan_targeted(ims, class_ids=[0], per_class=2).items == []  # already there
    assert default_target(3, 40) == 15 and default_target(10, 12) == 20 and default_target(10, 200) == 50
    plan = plan_uniform(ims, n=7, seed=3)
    assert len(plan.items) == 7 and {it.image_id for it in plan.items} == {1, 2, 3}
    assert all(it.target_class is None for it in plan.items)
