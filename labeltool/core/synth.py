"""Deterministic synthetic "parts with defects" dataset: test, demo and benchmark data.

Each image is a brushed-metal-like or PCB-like part with 0-4 defects of ``DEMO_CLASSES``:

- ``scratch``: thin, long, slightly bowed bright line with a dark relief edge, at an oblique angle;
- ``dent``: small round/oval dark spot, darkest in the middle, with a bright crescent on its rim;
- ``crack``: dark jagged polyline, sometimes with short branches;
- ``stain``: soft irregular blob that tints the surface (rust, oil, coolant) and keeps its texture;
- ``chip``: bright irregular polygon of exposed material with a dark shadow along part of its edge.

Boxes are absolute pixel ``x1, y1, x2, y2`` floats on integer pixel edges, tight around the pixels the
defect changed (``x2``/``y2`` exclusive: a defect covering only column 5 gives ``x1=5, x2=6``).
Generation is deterministic: image ``i`` depends only on ``(seed, i, size, defect_free_fraction)``,
so the first N images of a larger dataset are byte-identical to a dataset of N images.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter

from labeltool.core import config as cfg
from labeltool.core.labels import BoxRecord, ImageRecord, LabelSet

DEMO_CLASSES: tuple[str, ...] = ("scratch", "dent", "crack", "stain", "chip")

# Defect extent (longest side of the rendered defect) as a fraction of the image side, per class.
_EXTENT: dict[str, tuple[float, float]] = {
    "scratch": (0.12, 0.25),
    "dent": (0.04, 0.09),
    "crack": (0.08, 0.22),
    "stain": (0.08, 0.22),
    "chip": (0.05, 0.13),
}
_SS = cfg.SYNTH_SUPERSAMPLE

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class _Layer:
    """One paint operation of a defect on its local square canvas of side S.

    ``alpha``: float32[S, S] coverage in 0..1 (0 = pixel untouched). ``color``: float32[3] or
    float32[S, S, 3]; the target RGB (0..255) when ``multiply`` is False, else per-channel factors.
    """

    alpha: F32
    color: F32
    multiply: bool = False


@dataclass(frozen=True, slots=True)
class _Defect:
    """A rendered defect: ``mask`` bool[S, S] of changed pixels, local canvas top-left at ``(x0, y0)``,
    ``box`` the mask's bounding box in image pixels (xyxy ints, x2/y2 exclusive)."""

    label: str
    x0: int
    y0: int
    mask: npt.NDArray[np.bool_]
    box: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class _Rendered:
    """``image``/``background``: uint8[H, W, 3] RGB with and without defects (background only when asked)."""

    image: npt.NDArray[np.uint8]
    background: npt.NDArray[np.uint8] | None
    kind: str  # "metal" or "pcb"
    defects: list[_Defect]


# Backgrounds ---------------------------------------------------------------------------------------


def _resize(a: npt.NDArray[np.floating], size: int, resample: Image.Resampling) -> F32:
    """Resize a 2-D float array to float32[size, size] with Pillow (mode "F")."""
    return np.asarray(Image.fromarray(a.astype(np.float32)).resize((size, size), resample), np.float32)


def _lighting(rng: np.random.Generator, size: int) -> F32:
    """float32[size, size] zero-mean-ish illumination: smooth blotches + linear ramp + hotspot."""
    blotch = _resize(rng.standard_normal((4, 4)), size, Image.Resampling.BICUBIC) * rng.uniform(5, 15)
    t = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    yy, xx = t[:, None], t[None, :]
    a = rng.uniform(0, 2 * math.pi)
    ramp = (xx * math.cos(a) + yy * math.sin(a)) * rng.uniform(-40, 40)
    cx, cy = rng.uniform(-0.4, 0.4, 2)
    s = rng.uniform(0.15, 0.45)
    hot = rng.uniform(0, 45) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    return (blotch + ramp + hot).astype(np.float32)


def _metal_background(rng: np.random.Generator, size: int) -> F32:
    """Brushed-metal-like float32[size, size, 3] (0..255): streaks, grain, uneven light, slight tint."""
    cols = max(2, size // int(rng.integers(10, 40)))
    streak = _resize(rng.standard_normal((size, cols)), size, Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        streak = streak.T
    gray = rng.uniform(95, 175) + streak * rng.uniform(4, 12) + _lighting(rng, size)
    gray += rng.standard_normal((size, size), dtype=np.float32) * rng.uniform(2, 5)
    tint = (1.0 + rng.normal(0, 0.02, 3)).astype(np.float32)
    return gray[..., None] * tint


def _paint(img: F32, mask: Image.Image, color: npt.ArrayLike, strength: float = 1.0) -> None:
    """Blend ``color`` into ``img`` (float32[H, W, 3]) in place where the L-mode ``mask`` is set."""
    m = np.asarray(mask, np.float32)[..., None] * (strength / 255.0)
    img += m * (np.asarray(color, np.float32) - img)


def _pcb_background(rng: np.random.Generator, size: int) -> F32:
    """PCB-like float32[size, size, 3]: solder-mask substrate, lighter traces, metal pads and vias."""
    u, sc = rng.random(), size / 256
    if u < 0.7:  # green solder mask
        sub = [rng.uniform(18, 40), rng.uniform(80, 120), rng.uniform(40, 70)]
    elif u < 0.85:  # blue
        sub = [rng.uniform(15, 30), rng.uniform(35, 55), rng.uniform(90, 120)]
    else:  # black
        sub = [rng.uniform(25, 40)] * 3
    substrate = np.asarray(sub, np.float32)
    light = 1.0 + _lighting(rng, size)[..., None] * 0.008
    img = substrate * light + rng.standard_normal((size, size, 1), dtype=np.float32) * rng.uniform(1.5, 3.5)

    traces = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(traces)
    for _ in range(int(rng.integers(4, 10))):  # routed traces: axis-aligned and 45-degree segments
        pts = [tuple(rng.uniform(0, size, 2))]
        for _ in range(int(rng.integers(2, 5))):
            ang = math.pi / 4 * (int(rng.integers(4)) * 2 + (rng.random() < 0.25))
            length = rng.uniform(0.1, 0.45) * size
            x, y = pts[-1]
            pts.append((x + length * math.cos(ang), y + length * math.sin(ang)))
        draw.line(pts, fill=255, width=max(1, round(rng.uniform(2, 5) * sc)), joint="curve")
    for _ in range(int(rng.integers(0, 3))):  # buses of parallel traces
        n, pitch = int(rng.integers(3, 7)), rng.uniform(5, 9) * sc
        (x, y), length, vertical = rng.uniform(0, size, 2), rng.uniform(0.3, 0.8) * size, rng.random() < 0.5
        for k in range(n):
            o = k * pitch
            seg = [(x + o, y), (x + o, y + length)] if vertical else [(x, y + o), (x + length, y + o)]
            draw.line(seg, fill=255, width=max(1, round(2 * sc)))
    _paint(img, traces, substrate * 1.45 + 12, 0.85)

    pads, holes = Image.new("L", (size, size), 0), Image.new("L", (size, size), 0)
    dp, dh = ImageDraw.Draw(pads), ImageDraw.Draw(holes)
    for _ in range(int(rng.integers(1, 4))):  # rows of SMD pads
        n, pw, ph = int(rng.integers(4, 10)), rng.uniform(3, 6) * sc, rng.uniform(6, 12) * sc
        pitch, vertical = pw * rng.uniform(1.6, 2.2), rng.random() < 0.5
        x, y = rng.uniform(0, size, 2)
        for k in range(n):
            if vertical:
                dp.rectangle([x, y + k * pitch, x + ph, y + k * pitch + pw], fill=255)
            else:
                dp.rectangle([x + k * pitch, y, x + k * pitch + pw, y + ph], fill=255)
    for _ in range(int(rng.integers(3, 12))):  # vias: metal ring with a dark hole
        (x, y), r = rng.uniform(0, size, 2), rng.uniform(2.5, 4.5) * sc
        dp.ellipse([x - r, y - r, x + r, y + r], fill=255)
        dh.ellipse([x - r * 0.45, y - r * 0.45, x + r * 0.45, y + r * 0.45], fill=255)
    metal = [210, 170, 85] if rng.random() < 0.6 else [205, 205, 200]  # gold (ENIG) or tin (HASL)
    _paint(img, pads, np.asarray(metal, np.float32) * light)
    _paint(img, holes, [20, 20, 20])
    return img


# Defects ---------------------------------------------------------------------------------------


def _canvas(side: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A blank supersampled L-mode canvas for a local defect square of ``side`` pixels."""
    im = Image.new("L", (side * _SS, side * _SS), 0)
    return im, ImageDraw.Draw(im)


def _layer(im: Image.Image, side: int, strength: float, color: npt.ArrayLike, *,
           blur: float = 0.0, multiply: bool = False) -> _Layer:
    """Downsample a supersampled canvas to coverage float32[side, side]; drop coverage under the cutoff."""
    if blur > 0:
        im = im.filter(ImageFilter.GaussianBlur(blur * _SS))
    a = np.asarray(im.resize((side, side), Image.Resampling.BOX), np.float32) * (strength / 255.0)
    a[a < cfg.SYNTH_ALPHA_CUTOFF] = 0.0
    return _Layer(a, np.asarray(color, np.float32), multiply)


def _fit(pts: npt.NDArray[np.float64], side: int, e: float) -> npt.NDArray[np.float64]:
    """Scale/translate points float[N, 2] so their longest extent is ``e`` px, centred on the canvas
    (result in supersampled canvas coordinates)."""
    lo, hi = pts.min(0), pts.max(0)
    scale = e * _SS / max(float((hi - lo).max()), 1e-6)
    return (pts - (lo + hi) / 2) * scale + side * _SS / 2


def _scratch(rng: np.random.Generator, side: int, e: float, lw: float, pcb: bool) -> list[_Layer]:
    theta = rng.uniform(0.2, math.pi / 2 - 0.2) + math.pi / 2 * int(rng.integers(2))
    t = np.linspace(-0.5, 0.5, 9)
    bow = rng.uniform(-0.08, 0.08) * (1 - 4 * t * t)
    pts = _fit(np.stack([t * math.cos(theta) - bow * math.sin(theta),
                         t * math.sin(theta) + bow * math.cos(theta)], 1), side, e)
    w = max(1, round(lw * _SS * rng.uniform(0.8, 1.3)))
    core, dc = _canvas(side)
    dc.line([tuple(p) for p in pts], fill=255, width=w, joint="curve")
    shade, ds = _canvas(side)
    off = np.array([-math.sin(theta), math.cos(theta)]) * (w * 0.8 + 1)
    ds.line([tuple(p + off) for p in pts], fill=255, width=w, joint="curve")
    bright = [235, 205, 165] if pcb else [242, 240, 232]
    return [_layer(shade, side, rng.uniform(0.35, 0.55), [30, 30, 30]),
            _layer(core, side, rng.uniform(0.75, 0.95), bright)]


def _dent(rng: np.random.Generator, side: int, e: float, lw: float, pcb: bool) -> list[_Layer]:
    c, rx = side * _SS / 2, e * _SS / 2
    ry = rx * rng.uniform(0.7, 1.0)
    if rng.random() < 0.5:
        rx, ry = ry, rx
    pit, dp = _canvas(side)
    for i in range(6):  # concentric steps: darkest in the middle
        f = 1 - i / 6
        dp.ellipse([c - rx * f, c - ry * f, c + rx * f, c + ry * f], fill=int(255 * (i + 1) / 6))
    rim, dr = _canvas(side)
    start = rng.uniform(0, 360)
    dr.arc([c - rx * 0.8, c - ry * 0.8, c + rx * 0.8, c + ry * 0.8], start, start + rng.uniform(70, 140),
           fill=255, width=max(1, round(lw * _SS)))
    factor = rng.uniform(0.3, 0.5)
    return [_layer(pit, side, 1.0, [factor, factor, factor * 1.05], blur=max(0.5, e * 0.06), multiply=True),
            _layer(rim, side, rng.uniform(0.6, 0.9), [250, 250, 244])]


def _crack(rng: np.random.Generator, side: int, e: float, lw: float, pcb: bool) -> list[_Layer]:
    base = rng.uniform(0, 2 * math.pi)
    pts = [np.zeros(2)]
    for _ in range(int(rng.integers(8, 15))):  # zig-zag around a main direction
        h = base + rng.uniform(-1.0, 1.0)
        pts.append(pts[-1] + rng.uniform(0.6, 1.4) * np.array([math.cos(h), math.sin(h)]))
    branches = []
    for _ in range(int(rng.integers(0, 3))):
        b = [pts[int(rng.integers(2, len(pts) - 1))]]
        hb = base + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
        for _ in range(int(rng.integers(2, 5))):
            h = hb + rng.uniform(-0.8, 0.8)
            b.append(b[-1] + rng.uniform(0.4, 0.9) * np.array([math.cos(h), math.sin(h)]))
        branches.append(len(b))
        pts.extend(b)
    xy = _fit(np.array(pts), side, e)
    n_main = len(xy) - sum(branches)
    im, d = _canvas(side)
    w = max(1, round(lw * _SS))
    d.line([tuple(p) for p in xy[:n_main]], fill=255, width=w)
    i = n_main
    for n in branches:
        d.line([tuple(p) for p in xy[i:i + n]], fill=255, width=max(1, w - 1))
        i += n
    return [_layer(im, side, rng.uniform(0.8, 0.95), [25, 20, 18])]


_STAIN_TINTS = ([0.85, 0.6, 0.38], [0.62, 0.6, 0.72], [0.95, 0.88, 0.5])  # rust, oil, coolant (factors)


def _stain(rng: np.random.Generator, side: int, e: float, lw: float, pcb: bool) -> list[_Layer]:
    n = int(rng.integers(4, 9))
    ang, dist = rng.uniform(0, 2 * math.pi, n), rng.uniform(0, 0.5, n)
    rad = rng.uniform(0.25, 0.5, (n, 2))
    centres = np.stack([dist * np.cos(ang), dist * np.sin(ang)], 1)
    corners = _fit(np.concatenate([centres - rad, centres + rad]), side, e)
    im, d = _canvas(side)
    for lo, hi in zip(corners[:n], corners[n:], strict=True):
        d.ellipse([lo[0], lo[1], hi[0], hi[1]], fill=255)
    tint = _STAIN_TINTS[int(rng.integers(len(_STAIN_TINTS)))]
    return [_layer(im, side, rng.uniform(0.6, 0.9), tint, blur=e * 0.07, multiply=True)]


def _chip(rng: np.random.Generator, side: int, e: float, lw: float, pcb: bool) -> list[_Layer]:
    m = int(rng.integers(5, 9))
    ang = 2 * math.pi * (np.arange(m) + rng.uniform(-0.3, 0.3, m)) / m + rng.uniform(0, 2 * math.pi)
    r = rng.uniform(0.45, 1.0, m)
    pts = [tuple(p) for p in _fit(np.stack([r * np.cos(ang), r * np.sin(ang)], 1), side, e)]
    face, df = _canvas(side)
    df.polygon(pts, fill=255)
    edge, de = _canvas(side)
    k = int(rng.integers(m))
    de.line([pts[(k + j) % m] for j in range(m // 2 + 1)], fill=255, width=max(1, round(lw * _SS)))
    base = np.asarray([225, 208, 165] if pcb else [232, 232, 228], np.float32)
    shade = np.linspace(-12, 12, side, dtype=np.float32)
    color = base + (shade[:, None] if rng.random() < 0.5 else shade[None, :])[..., None]
    color = color + rng.standard_normal((side, side, 1), dtype=np.float32) * 5
    return [_layer(face, side, rng.uniform(0.85, 0.97), color),
            _layer(edge, side, rng.uniform(0.6, 0.8), [28, 26, 24])]


_RENDERERS = {"scratch": _scratch, "dent": _dent, "crack": _crack, "stain": _stain, "chip": _chip}


def _place(rng: np.random.Generator, size: int, side: int,
           taken: list[tuple[int, int, int, int]]) -> tuple[int, int] | None:
    """Top-left of a free ``side`` square (disjoint from every ``taken`` x0,y0,x1,y1), or None."""
    for _ in range(cfg.SYNTH_PLACEMENT_TRIES):
        x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, 2))
        if all(x0 >= t[2] or x0 + side <= t[0] or y0 >= t[3] or y0 + side <= t[1] for t in taken):
            return x0, y0
    return None


def _to_uint8(img: F32) -> npt.NDArray[np.uint8]:
    return np.rint(np.clip(img, 0, 255)).astype(np.uint8)


def _is_defect_free(seed: int, index: int, fraction: float) -> bool:
    """Golden-ratio sequence: every prefix of the dataset has very nearly ``fraction`` defect-free images."""
    return (seed * 0.7548776662466927 + (index + 1) * 0.6180339887498949) % 1.0 < fraction


def _render_sample(*, seed: int, index: int, size: int, defect_free_fraction: float,
                   keep_background: bool = False) -> _Rendered:
    """Render image ``index`` of the dataset ``seed`` (pure function of its arguments)."""
    rng = np.random.default_rng([seed, index])
    kind = "pcb" if rng.random() < cfg.SYNTH_PCB_FRACTION else "metal"
    canvas = _pcb_background(rng, size) if kind == "pcb" else _metal_background(rng, size)
    background = _to_uint8(canvas) if keep_background else None
    defects: list[_Defect] = []
    if not _is_defect_free(seed, index, defect_free_fraction):
        weights = np.asarray(cfg.SYNTH_DEFECT_COUNT_WEIGHTS)
        n = 1 + int(rng.choice(len(weights), p=weights / weights.sum()))
        lw = max(1.0, size / 160)
        taken: list[tuple[int, int, int, int]] = []
        for _ in range(n):
            label = DEMO_CLASSES[int(rng.integers(len(DEMO_CLASSES)))]
            e = max(cfg.SYNTH_MIN_DEFECT_PX, rng.uniform(*_EXTENT[label]) * size)
            pad = math.ceil(3 * lw) + 2 + (math.ceil(0.2 * e) if label in ("stain", "dent") else 0)
            side = min(size, math.ceil(e) + 2 * pad)
            pos = _place(rng, size, side, taken)
            if pos is None:
                continue
            x0, y0 = pos
            layers = _RENDERERS[label](rng, side, e, lw, kind == "pcb")
            region = canvas[y0:y0 + side, x0:x0 + side]  # view: float32[side, side, 3]
            mask = np.zeros((side, side), bool)
            for layer in layers:
                a = layer.alpha[..., None]
                if layer.multiply:
                    region *= 1.0 - a + a * layer.color
                else:
                    region += a * (layer.color - region)
                mask |= layer.alpha > 0
            if not mask.any():
                continue
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            box = (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
            taken.append((x0, y0, x0 + side, y0 + side))
            defects.append(_Defect(label, x0, y0, mask, box))
    return _Rendered(_to_uint8(canvas), background, kind, defects)


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return int(value)


def generate_dataset(dest: Path, *, n_images: int = 200, seed: int = 0, size: int = 256,
                     defect_free_fraction: float = 0.15,
                     progress: Callable[[int, int], None] | None = None) -> LabelSet:
    """Write ``n_images`` synthetic part images to ``dest/images/part_00000.png`` ... and return their labels.

    Images: RGB PNG, ``size`` x ``size``; about half brushed-metal-like, half PCB-like. About
    ``defect_free_fraction`` of them have no defect; the others 1-4 non-overlapping defects, each
    4-25% of the image side. Returns a ``LabelSet`` with ``classes == list(DEMO_CLASSES)`` and one
    ``ImageRecord`` per image (``file_name`` relative to ``dest/images``, ``source`` the absolute
    path written, ``width``/``height`` = ``size``, ``split`` None); boxes are xyxy float pixels,
    tight around the changed pixels. Existing files of the same names are overwritten.
    ``progress(done, total)`` is called about ``SYNTH_PROGRESS_CALLS`` times, last with ``done == total``.
    Deterministic in ``seed``; generating N images gives a prefix of generating N + k.
    """
    if not isinstance(dest, str | Path):
        raise TypeError(f"dest must be a path, got {dest!r}")
    n_images = _check_int("n_images", n_images, 1)
    seed = _check_int("seed", seed, 0)
    size = _check_int("size", size, cfg.SYNTH_MIN_SIZE, cfg.SYNTH_MAX_SIZE)
    if isinstance(defect_free_fraction, bool) or not isinstance(defect_free_fraction, Real):
        raise TypeError(f"defect_free_fraction must be a number, got {defect_free_fraction!r}")
    if not 0.0 <= float(defect_free_fraction) <= 1.0:
        raise ValueError(f"defect_free_fraction must be in [0, 1], got {defect_free_fraction!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {progress!r}")
    image_dir = (Path(dest) / cfg.IMAGES_DIRNAME).resolve()
    image_dir.mkdir(parents=True, exist_ok=True)
    step = max(1, n_images // cfg.SYNTH_PROGRESS_CALLS)
    records: list[ImageRecord] = []
    for i in range(n_images):
        r = _render_sample(seed=seed, index=i, size=size, defect_free_fraction=float(defect_free_fraction))
        name = f"part_{i:05d}.png"
        path = image_dir / name
        Image.fromarray(r.image).save(path, format="PNG", compress_level=cfg.SYNTH_PNG_COMPRESS_LEVEL)
        boxes = [BoxRecord(d.label, *(float(v) for v in d.box)) for d in r.defects]
        records.append(ImageRecord(file_name=name, source=path, width=size, height=size, boxes=boxes))
        if progress is not None and ((i + 1) % step == 0 or i + 1 == n_images):
            progress(i + 1, n_images)
    return LabelSet(classes=list(DEMO_CLASSES), images=records)
