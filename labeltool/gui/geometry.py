"""Canvas maths without Qt: view transforms, drag-to-box, hit testing, move and resize.

Coordinates: *image* points are float pixels of the displayed image (the Box format, xyxy);
*view* points are screen pixels of the canvas widget. A :class:`ViewState` maps one to the other:
``view = image * zoom + pan``. Rects are ``(x1, y1, x2, y2)`` tuples; sizes are ``(width, height)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from . import constants as C

Point = tuple[float, float]
Rect = tuple[float, float, float, float]
Size = tuple[float, float]

HANDLES = ("nw", "n", "ne", "e", "se", "s", "sw", "w")
"""The 8 resize handles: corners and edge midpoints, named by compass direction."""


@dataclass(frozen=True, slots=True)
class ViewState:
    """``zoom``: view px per image px; ``pan``: view position of image point (0, 0)."""

    zoom: float = 1.0
    pan_x: float = 0.0
    pan_y: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.zoom) and self.zoom > 0):
            raise ValueError(f"zoom must be a positive finite number, got {self.zoom!r}")
        if not (math.isfinite(self.pan_x) and math.isfinite(self.pan_y)):
            raise ValueError(f"pan must be finite, got {(self.pan_x, self.pan_y)!r}")


@dataclass(frozen=True, slots=True)
class Hit:
    """What is under a point: box ``index`` in the list given, and a handle name or None (the body)."""

    index: int
    handle: str | None = None


def image_to_view(state: ViewState, point: Point) -> Point:
    return (point[0] * state.zoom + state.pan_x, point[1] * state.zoom + state.pan_y)


def view_to_image(state: ViewState, point: Point) -> Point:
    return ((point[0] - state.pan_x) / state.zoom, (point[1] - state.pan_y) / state.zoom)


def clamp_zoom(zoom: float) -> float:
    return min(C.ZOOM_MAX, max(C.ZOOM_MIN, zoom))


def zoom_at(state: ViewState, *, factor: float, anchor: Point) -> ViewState:
    """Multiply the zoom by ``factor`` (clamped) keeping the image point under view point ``anchor`` fixed."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"zoom factor must be a positive finite number, got {factor!r}")
    zoom = clamp_zoom(state.zoom * factor)
    ix, iy = view_to_image(state, anchor)
    return ViewState(zoom, anchor[0] - ix * zoom, anchor[1] - iy * zoom)


def panned(state: ViewState, *, dx: float, dy: float) -> ViewState:
    """The view moved by ``(dx, dy)`` screen pixels (the image follows the mouse)."""
    return ViewState(state.zoom, state.pan_x + dx, state.pan_y + dy)


def _centred(zoom: float, image_size: Size, view_size: Size) -> ViewState:
    return ViewState(zoom, (view_size[0] - image_size[0] * zoom) / 2, (view_size[1] - image_size[1] * zoom) / 2)


def fit(*, image_size: Size, view_size: Size, margin: float = C.FIT_MARGIN_PX) -> ViewState:
    """Whole image visible and centred, ``margin`` screen px free around it."""
    _check_size("image_size", image_size)
    _check_size("view_size", view_size)
    avail_w, avail_h = max(1.0, view_size[0] - 2 * margin), max(1.0, view_size[1] - 2 * margin)
    zoom = clamp_zoom(min(avail_w / image_size[0], avail_h / image_size[1]))
    return _centred(zoom, image_size, view_size)


def one_to_one(state: ViewState, *, view_size: Size) -> ViewState:
    """Zoom 1 (one image px per screen px), keeping the image point at the view centre fixed."""
    return zoom_at(state, factor=1.0 / state.zoom, anchor=(view_size[0] / 2, view_size[1] / 2))


def clamp_point(point: Point, *, image_size: Size) -> Point:
    return (min(max(point[0], 0.0), float(image_size[0])), min(max(point[1], 0.0), float(image_size[1])))


def normalize_drag(start: Point, end: Point, *, image_size: Size, min_side: float = C.MIN_BOX_SIDE_PX) -> Rect | None:
    """The box spanned by a drag in any direction, clamped to the image; None if a side is < ``min_side``."""
    _check_size("image_size", image_size)
    (ax, ay), (bx, by) = clamp_point(start, image_size=image_size), clamp_point(end, image_size=image_size)
    rect = (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))
    if rect[2] - rect[0] < min_side or rect[3] - rect[1] < min_side:
        return None
    return rect


def handle_points(rect: Rect) -> dict[str, Point]:
    """Position of each of the 8 handles of ``rect``."""
    x1, y1, x2, y2 = rect
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return {"nw": (x1, y1), "n": (cx, y1), "ne": (x2, y1), "e": (x2, cy),
            "se": (x2, y2), "s": (cx, y2), "sw": (x1, y2), "w": (x1, cy)}


def hit_handle(rect: Rect, point: Point, *, tolerance: float) -> str | None:
    """The handle within ``tolerance`` (image px, per axis) of ``point``; the nearest one if several."""
    best: tuple[float, str] | None = None
    for name, (hx, hy) in handle_points(rect).items():
        dx, dy = abs(point[0] - hx), abs(point[1] - hy)
        if dx <= tolerance and dy <= tolerance:
            dist = dx * dx + dy * dy
            if best is None or dist < best[0]:
                best = (dist, name)
    return None if best is None else best[1]


def _contains(rect: Rect, point: Point, tolerance: float) -> bool:
    x1, y1, x2, y2 = rect
    return x1 - tolerance <= point[0] <= x2 + tolerance and y1 - tolerance <= point[1] <= y2 + tolerance


def hit_test(rects: Sequence[Rect], point: Point, *, zoom: float, selected: Sequence[int] = (),
             tolerance_px: float = C.HIT_TOLERANCE_PX) -> Hit | None:
    """What a click at image ``point`` grabs among ``rects`` (drawing order: later = on top).

    Handles of ``selected`` boxes come first; then the smallest box containing the point (within the
    tolerance), the topmost one among equal areas. ``tolerance_px`` is in screen pixels, so handles are
    equally easy to grab at any ``zoom``.
    """
    if not (math.isfinite(zoom) and zoom > 0):
        raise ValueError(f"zoom must be a positive finite number, got {zoom!r}")
    tol = tolerance_px / zoom
    for index in reversed(list(selected)):
        if 0 <= index < len(rects):
            handle = hit_handle(rects[index], point, tolerance=tol)
            if handle is not None:
                return Hit(index, handle)
    best: tuple[float, int] | None = None
    for index in range(len(rects) - 1, -1, -1):  # topmost first: it wins ties
        rect = rects[index]
        if _contains(rect, point, tol):
            area = (rect[2] - rect[0]) * (rect[3] - rect[1])
            if best is None or area < best[0]:
                best = (area, index)
    return None if best is None else Hit(best[1])


def moved(rect: Rect, *, dx: float, dy: float, image_size: Size) -> Rect:
    """``rect`` shifted by ``(dx, dy)`` image px, the shift reduced so the box stays inside the image."""
    x1, y1, x2, y2 = rect
    w, h = image_size
    dx = min(max(dx, -x1), w - x2)
    dy = min(max(dy, -y1), h - y2)
    return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


def _span(fixed: float, moving: float, *, limit: float, min_side: float) -> tuple[float, float]:
    """One axis of a resize: the edge at ``fixed`` stays, the other goes to ``moving`` (either side)."""
    moving = min(max(moving, 0.0), limit)
    lo, hi = min(fixed, moving), max(fixed, moving)
    if hi - lo < min_side:
        if moving >= fixed:
            lo, hi = fixed, fixed + min_side
        else:
            lo, hi = fixed - min_side, fixed
        if lo < 0:
            lo, hi = 0.0, min_side
        if hi > limit:
            lo, hi = limit - min_side, limit
    return lo, hi


def resized(rect: Rect, handle: str, point: Point, *, image_size: Size,
            min_side: float = C.MIN_BOX_SIDE_PX) -> Rect:
    """``rect`` with ``handle`` dragged to image ``point``: the opposite edges stay; dragging past them
    flips the box; clamped to the image; sides at least ``min_side``."""
    if handle not in HANDLES:
        raise ValueError(f"handle must be one of {HANDLES}, got {handle!r}")
    _check_size("image_size", image_size)
    x1, y1, x2, y2 = rect
    w, h = float(image_size[0]), float(image_size[1])
    if "w" in handle:
        x1, x2 = _span(x2, point[0], limit=w, min_side=min_side)
    elif "e" in handle:
        x1, x2 = _span(x1, point[0], limit=w, min_side=min_side)
    if "n" in handle:
        y1, y2 = _span(y2, point[1], limit=h, min_side=min_side)
    elif "s" in handle:
        y1, y2 = _span(y1, point[1], limit=h, min_side=min_side)
    return (x1, y1, x2, y2)


def _check_size(name: str, size: Size) -> None:
    if len(size) != 2 or not all(math.isfinite(v) and v > 0 for v in size):
        raise ValueError(f"{name} must be (width, height) with positive sides, got {size!r}")


def clamped_rect(rect: Rect, *, image_size: Size, min_side: float = C.MIN_BOX_SIDE_PX) -> Rect | None:
    """``rect`` cut to the image (a pasted box from a larger image); None when less than ``min_side`` is left."""
    _check_size("image_size", image_size)
    x1, y1 = clamp_point((rect[0], rect[1]), image_size=image_size)
    x2, y2 = clamp_point((rect[2], rect[3]), image_size=image_size)
    if x2 - x1 < min_side or y2 - y1 < min_side:
        return None
    return (x1, y1, x2, y2)
