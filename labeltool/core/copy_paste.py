"""Copy-paste synthesis: labeled defect crops pasted onto defect-free regions of other images.

A crop is a labeled box plus a margin of its surroundings; the margin is feathered (alpha ramps
from 1 at the box edge to 0 at the crop edge), so the defect itself is pasted unchanged and the
seam fades into the new background. Before blending, the crop is scaled per channel so that its
background (the margin ring) matches the mean colour of the target region.

Guarantees (tested): the whole crop rectangle, margin included, lies inside the target image and
keeps at least :data:`GAP_PX` pixels away from every box already in the image and from every other
pasted crop, so no existing defect is covered; the new box is the crop's box moved by the paste
offset. Pure numpy; deterministic for a given ``numpy.random.Generator`` state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

MARGIN_FRACTION = 0.25  # feathered context around a crop: this share of the box's longer side …
MARGIN_PX = (2, 12)  # … clipped to this range: enough to hide the seam, small enough to stay on background
GAP_PX = 2.0  # a pasted crop keeps this distance from every box already in the image and from other crops
PLACEMENT_TRIES = 80  # random positions tried per crop before it is given up (the image is too full)
GAIN_RANGE = (0.5, 2.0)  # brightness matching never scales a crop by more than this (per channel)
MAX_CROP_SHARE = 0.5  # a crop wider/taller than this share of the target image is not pasted
MIN_RING_PIXELS = 12  # below this many margin pixels the whole crop's mean stands for its background

XYXY = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Crop:
    """A labeled defect cut from an image. ``pixels``: float32[h, w, 3] 0..255; ``alpha``: float32[h, w]
    0..1 (1 on the box); ``box``: xyxy float pixels inside the crop; ``background``: float32[3] mean
    colour of the margin ring; ``source_rect``: integer x0, y0, x1, y1 of the crop in its image."""

    pixels: npt.NDArray[np.float32]
    alpha: npt.NDArray[np.float32]
    box: XYXY
    background: npt.NDArray[np.float32]
    class_id: int
    source_image_id: int
    source_box: XYXY
    source_rect: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Pasted:
    """One pasted crop: its new ``box`` (xyxy float pixels of the target), the crop ``rect`` (integer
    x0, y0, x1, y1) and the per-channel ``gain`` used for brightness matching."""

    class_id: int
    box: XYXY
    rect: tuple[int, int, int, int]
    gain: tuple[float, float, float]
    source_image_id: int
    source_box: XYXY

    def to_dict(self) -> dict[str, Any]:
        return {"class_id": self.class_id, "box": [round(v, 3) for v in self.box], "rect": list(self.rect),
                "gain": [round(g, 4) for g in self.gain], "source_image_id": self.source_image_id,
                "source_box": [round(v, 3) for v in self.source_box]}


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    """Open-interval overlap of two xyxy rectangles (touching edges do not overlap)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _ramp(n: int, core0: int, core1: int, lo: int, hi: int) -> npt.NDArray[np.float32]:
    """1-D feather over pixel columns ``lo..hi-1``: 1 on ``[core0, core1)``, a smoothstep down to ~0 at the ends."""
    centers = np.arange(lo, hi, dtype=np.float32) + 0.5
    before = np.maximum(core0 - centers, 0) / max(1, core0 - lo)
    after = np.maximum(centers - core1, 0) / max(1, hi - core1)
    t = np.clip(np.maximum(before, after), 0.0, 1.0)
    return (1.0 - t * t * (3.0 - 2.0 * t)).astype(np.float32)


def cut_crop(
    image: npt.NDArray[np.uint8], box: Sequence[float], *, other_boxes: Sequence[Sequence[float]] = (),
    class_id: int, source_image_id: int,
) -> Crop | None:
    """Cut ``box`` (xyxy float pixels) out of ``image`` (uint8[H, W, 3]) with a feathered margin.

    The margin is shrunk on any side where it would take in part of ``other_boxes`` (the image's
    other labeled boxes, not ``box`` itself), so a crop never carries an unlabeled piece of another defect. Returns None
    when another box overlaps the box itself (it cannot be isolated) or the box is empty.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8[H, W, 3], got {image.dtype}{list(image.shape)}")
    if len(box) != 4:
        raise ValueError(f"box must be x1, y1, x2, y2; got {list(box)!r}")
    h_img, w_img = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    cx0, cy0 = max(0, math.floor(x1)), max(0, math.floor(y1))
    cx1, cy1 = min(w_img, math.ceil(x2)), min(h_img, math.ceil(y2))
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    m = int(np.clip(round(MARGIN_FRACTION * max(x2 - x1, y2 - y1)), *MARGIN_PX))
    left, top, right, bottom = max(0, cx0 - m), max(0, cy0 - m), min(w_img, cx1 + m), min(h_img, cy1 + m)
    for other in other_boxes:
        ox0, oy0 = math.floor(other[0]), math.floor(other[1])
        ox1, oy1 = math.ceil(other[2]), math.ceil(other[3])
        if _overlaps((ox0, oy0, ox1, oy1), (cx0, cy0, cx1, cy1)):
            return None
        if not _overlaps((ox0, oy0, ox1, oy1), (left, top, right, bottom)):
            continue
        if ox1 <= cx0:
            left = max(left, ox1)
        elif ox0 >= cx1:
            right = min(right, ox0)
        elif oy1 <= cy0:
            top = max(top, oy1)
        else:
            bottom = min(bottom, oy0)
    pixels = image[top:bottom, left:right].astype(np.float32)
    alpha = _ramp(right - left, cx0, cx1, left, right)[None, :] * _ramp(bottom - top, cy0, cy1, top, bottom)[:, None]
    core = np.zeros(alpha.shape, bool)
    core[cy0 - top:cy1 - top, cx0 - left:cx1 - left] = True
    ring = pixels[~core]
    background = (ring if len(ring) >= MIN_RING_PIXELS else pixels.reshape(-1, 3)).mean(axis=0)
    return Crop(pixels=pixels, alpha=alpha.astype(np.float32), box=(x1 - left, y1 - top, x2 - left, y2 - top),
                background=background.astype(np.float32), class_id=int(class_id),
                source_image_id=int(source_image_id), source_box=(x1, y1, x2, y2),
                source_rect=(left, top, right, bottom))


def paste_crops(
    target: npt.NDArray[np.uint8], crops: Sequence[Crop], *, boxes: Sequence[Sequence[float]],
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.uint8], list[Pasted]]:
    """Paste ``crops`` onto free places of ``target`` (uint8[H, W, 3]) whose boxes are ``boxes`` (xyxy).

    Returns the new image and the crops that found a place (a crop that does not fit anywhere
    free after :data:`PLACEMENT_TRIES` random positions is left out). ``target`` is not modified.
    """
    if target.ndim != 3 or target.shape[2] != 3 or target.dtype != np.uint8:
        raise ValueError(f"target must be uint8[H, W, 3], got {target.dtype}{list(target.shape)}")
    h_img, w_img = target.shape[:2]
    out = target.astype(np.float32)
    taken = [(b[0] - GAP_PX, b[1] - GAP_PX, b[2] + GAP_PX, b[3] + GAP_PX) for b in boxes]
    pasted: list[Pasted] = []
    for crop in crops:
        h, w = crop.alpha.shape
        if w > MAX_CROP_SHARE * w_img or h > MAX_CROP_SHARE * h_img:
            continue
        for _ in range(PLACEMENT_TRIES):
            x0, y0 = int(rng.integers(0, w_img - w + 1)), int(rng.integers(0, h_img - h + 1))
            rect = (x0, y0, x0 + w, y0 + h)
            if not any(_overlaps(rect, t) for t in taken):
                break
        else:
            continue
        region = out[y0:y0 + h, x0:x0 + w]
        gain = np.clip(region.reshape(-1, 3).mean(axis=0) / np.maximum(crop.background, 1.0), *GAIN_RANGE)
        a = crop.alpha[..., None]
        out[y0:y0 + h, x0:x0 + w] = a * (crop.pixels * gain) + (1.0 - a) * region
        bx1, by1, bx2, by2 = crop.box
        pasted.append(Pasted(class_id=crop.class_id, box=(x0 + bx1, y0 + by1, x0 + bx2, y0 + by2), rect=rect,
                             gain=(float(gain[0]), float(gain[1]), float(gain[2])),
                             source_image_id=crop.source_image_id, source_box=crop.source_box))
        taken.append((x0 - GAP_PX, y0 - GAP_PX, x0 + w + GAP_PX, y0 + h + GAP_PX))
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8), pasted
