"""Painting of boxes on the canvas, in screen pixels so lines and labels look the same at any zoom.

Human boxes: a solid class-colour outline with a contrasting halo on both sides and a label tag;
model boxes: dashed, tag with the score; the ghost of an issue's suggested fix (``paint_ghost``): a
highlight band, a dashed target, an outline or a cross. Readable on binarized (black and white) images.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPen, QTransform

from labeltool.core.review import GhostMark

from . import constants as C
from .geometry import Rect, handle_points


@dataclass(frozen=True, slots=True)
class Shape:
    """One box to paint: image-pixel ``rect``, ``color`` '#rrggbb', tag text; model boxes are dashed."""

    rect: Rect
    color: str
    text: str
    dashed: bool = False
    selected: bool = False


def contrast(color: QColor) -> QColor:
    """Black for light colours, white for dark ones (relative luminance, sRGB weights)."""
    lum = 0.2126 * color.redF() + 0.7152 * color.greenF() + 0.0722 * color.blueF()
    return QColor(Qt.GlobalColor.black) if lum > 0.5 else QColor(Qt.GlobalColor.white)


def _pen(color: QColor, width: float, *, dashed: bool = False) -> QPen:
    pen = QPen(color, width)
    pen.setCosmetic(True)
    pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
    if dashed:
        pen.setStyle(Qt.PenStyle.CustomDashLine)
        pen.setDashPattern([3.0, 2.0])
    return pen


def paint_shapes(painter: QPainter, to_view: QTransform, shapes: Iterable[Shape]) -> None:
    """Paint ``shapes`` (image coordinates) with ``to_view`` mapping image to view pixels."""
    painter.save()
    painter.resetTransform()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    font = QFont(painter.font())
    font.setPixelSize(12)
    painter.setFont(font)
    metrics = QFontMetricsF(font)
    for shape in shapes:
        _paint_shape(painter, to_view, shape, metrics)
    painter.restore()


def _paint_shape(painter: QPainter, to_view: QTransform, shape: Shape, metrics: QFontMetricsF) -> None:
    x1, y1, x2, y2 = shape.rect
    r = to_view.mapRect(QRectF(QPointF(x1, y1), QPointF(x2, y2)))
    color = QColor(shape.color)
    halo = contrast(color)
    width = C.OUTLINE_PX + (1 if shape.selected else 0)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.setPen(_pen(halo, width + 2 * C.HALO_PX))
    painter.drawRect(r)
    painter.setPen(_pen(color, width, dashed=shape.dashed))
    painter.drawRect(r)
    if shape.text:
        _paint_tag(painter, r, shape.text, color, halo, metrics)
    if shape.selected and not shape.dashed:
        s = C.HANDLE_PX
        painter.setPen(_pen(QColor(Qt.GlobalColor.black), 1))
        painter.setBrush(QBrush(QColor(Qt.GlobalColor.white)))
        for hx, hy in handle_points((r.left(), r.top(), r.right(), r.bottom())).values():
            painter.drawRect(QRectF(hx - s / 2, hy - s / 2, s, s))


def _paint_tag(painter: QPainter, r: QRectF, text: str, color: QColor, ink: QColor, metrics: QFontMetricsF) -> None:
    w, h = metrics.horizontalAdvance(text) + 6, metrics.height() + 2
    top = r.top() - h if r.top() - h >= 0 else r.top()  # above the box, inside when at the view's top
    # keep the tag readable when the box starts left of the view (zoomed in), without leaving the box
    left = r.left()
    if left < 0:
        left = min(0.0, r.right() - w)
    device = painter.device()
    if device is not None and left + w > device.width():
        left = max(float(device.width()) - w, r.left())
    tag = QRectF(left, top, w, h)
    painter.setPen(_pen(ink, 1))
    painter.setBrush(QBrush(color))
    painter.drawRect(tag)
    painter.setPen(ink)
    painter.drawText(tag.adjusted(3, 1, -3, -1), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)


# -- the ghost of a suggested fix (review queue) ---------------------------------------------------
GHOST_HIGHLIGHT = "#ffd400"  # band around the box an issue is about (with black edges: shows on any image)
GHOST_GAP_PX = 4.0  # screen pixels between a box and the highlight band / suggested-class outline
GHOST_BAND_PX = 4  # width of the highlight band
GHOST_FILL_ALPHA = 60  # 0..255: tint inside a box to add / snap to


def paint_ghost(painter: QPainter, to_view: QTransform, marks: Iterable[GhostMark], *, layer: str) -> None:
    """Paint ``review.ghost_marks`` (image coordinates) in two layers around the boxes.

    ``layer='under'`` (before the boxes, so their tags stay readable): the highlight band and the
    outline in the suggested class's colour; ``'over'``: the dashed target with a light tint, the
    cross, and the tags, below the box. Every line has a contrasting halo (binarized images).
    """
    if layer not in ("under", "over"):
        raise ValueError(f"layer must be 'under' or 'over', got {layer!r}")
    painter.save()
    painter.resetTransform()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    font = QFont(painter.font())
    font.setPixelSize(12)
    font.setBold(True)
    font.setItalic(True)
    painter.setFont(font)
    metrics = QFontMetricsF(font)
    for mark in marks:
        x1, y1, x2, y2 = mark.rect
        r = to_view.mapRect(QRectF(QPointF(x1, y1), QPointF(x2, y2)))
        color = QColor(mark.color)
        halo = contrast(color)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if mark.kind == "outline":
            g = GHOST_GAP_PX + GHOST_BAND_PX + 3
            r = r.adjusted(-g, -g, g, g)
        if layer == "under":
            if mark.kind == "highlight":
                g = GHOST_GAP_PX + GHOST_BAND_PX / 2
                band = r.adjusted(-g, -g, g, g)
                painter.setPen(_pen(QColor(Qt.GlobalColor.black), GHOST_BAND_PX + 2))
                painter.drawRect(band)
                painter.setPen(_pen(QColor(GHOST_HIGHLIGHT), GHOST_BAND_PX))
                painter.drawRect(band)
            elif mark.kind == "outline":
                painter.setPen(_pen(halo, C.OUTLINE_PX + 1 + 2 * C.HALO_PX))
                painter.drawRect(r)
                painter.setPen(_pen(color, C.OUTLINE_PX + 1, dashed=True))
                painter.drawRect(r)
            continue
        if mark.kind == "target":
            tint = QColor(color)
            tint.setAlpha(GHOST_FILL_ALPHA)
            painter.fillRect(r, tint)
            painter.setPen(_pen(halo, C.OUTLINE_PX + 1 + 2 * C.HALO_PX))
            painter.drawRect(r)
            painter.setPen(_pen(color, C.OUTLINE_PX + 1, dashed=True))
            painter.drawRect(r)
        elif mark.kind == "cross":
            for a, b in ((r.topLeft(), r.bottomRight()), (r.topRight(), r.bottomLeft())):
                painter.setPen(_pen(halo, C.OUTLINE_PX + 2 + 2 * C.HALO_PX))
                painter.drawLine(a, b)
                painter.setPen(_pen(color, C.OUTLINE_PX + 2))
                painter.drawLine(a, b)
        if mark.text:
            _paint_ghost_tag(painter, r, mark.text, color, halo, metrics)
    painter.restore()


def _paint_ghost_tag(painter: QPainter, r: QRectF, text: str, color: QColor, ink: QColor,
                     metrics: QFontMetricsF) -> None:
    """A tag under the box (above it at the view's bottom edge), kept inside the view horizontally."""
    w, h = metrics.horizontalAdvance(text) + 8, metrics.height() + 4
    device = painter.device()
    view_w = float(device.width()) if device is not None else r.right() + w
    view_h = float(device.height()) if device is not None else r.bottom() + h
    top = r.bottom() + GHOST_GAP_PX + GHOST_BAND_PX + 2
    if top + h > view_h:
        top = max(0.0, r.top() - h - GHOST_GAP_PX - GHOST_BAND_PX - 2)
    left = min(max(0.0, r.left()), max(0.0, view_w - w))
    tag = QRectF(left, top, w, h)
    painter.setPen(_pen(ink, 1))
    painter.setBrush(QBrush(color))
    painter.drawRoundedRect(tag, 3, 3)
    painter.setPen(ink)
    painter.drawText(tag.adjusted(4, 1, -4, -1), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
