"""Painting of boxes on the canvas, in screen pixels so lines and labels look the same at any zoom.

Human boxes: a solid class-colour outline with a contrasting halo on both sides and a label tag;
model boxes: dashed, tag with the score. Readable on binarized (black and white) images.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPen, QTransform

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
