"""A live training plot drawn with QPainter: loss per step (raw and smoothed) and val mAP@.5 per epoch.

Left axis: loss; right axis: mAP@.5 (0..1); x: training step. The points live in a Qt-free
:class:`labeltool.jobs.panel_views.TrainCurve`; this widget only draws them.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from labeltool.core.progress import Progress
from labeltool.jobs.panel_views import TrainCurve

LOSS_COLOR = QColor("#1f5fbf")
MAP_COLOR = QColor("#d9730d")
GRID_COLOR = QColor("#dddddd")
AXIS_COLOR = QColor("#666666")
MARGINS = (56, 30, 52, 34)  # left, top, right, bottom: room for tick labels and the legend
LEGEND = ("training loss (smoothed; faint: per step)", "validation mAP@.5 per epoch (right axis)")
LEGEND_MARK_PX = 18  # legend line sample length
MAX_MARKERS = 80  # epochs drawn as dots up to this many; beyond, the line alone stays readable
LEGEND_GAP_PX = 18  # space between the two legend entries on one line


def nice_axis(value: float, ticks: int = 4) -> tuple[float, int]:
    """(step, n) with step 1 / 2 / 2.5 / 5 x 10^k and ``n * step >= value``, n about ``ticks``:
    an axis 0..n*step with round labels."""
    if value <= 0 or not math.isfinite(value):
        return 0.25, 4
    rough = value / ticks
    exp = 10 ** math.floor(math.log10(rough))
    step = next(m * exp for m in (1, 2, 2.5, 5, 10) if m * exp >= rough * 0.999)
    return step, max(1, math.ceil(value / step - 1e-9))


class LossPlot(QWidget):
    """Plot of a :class:`TrainCurve`; ``add(progress)`` takes the job's events and repaints."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.curve = TrainCurve()
        self.setMinimumSize(320, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("training loss and validation mAP plot")

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(560, 260)

    @property
    def n_loss_points(self) -> int:
        return len(self.curve.loss)

    @property
    def n_map_points(self) -> int:
        return len(self.curve.maps)

    def clear(self) -> None:
        self.curve.clear()
        self.update()

    def add(self, progress: Progress) -> None:
        if self.curve.add(progress):
            self.update()

    # -- drawing ---------------------------------------------------------------------------------
    def _legend_rows(self) -> int:
        """1 when both legend entries fit on one line above the plot, else 2."""
        fm = self.fontMetrics()
        width = sum(LEGEND_MARK_PX + 6 + fm.horizontalAdvance(t) for t in LEGEND) + LEGEND_GAP_PX
        return 1 if MARGINS[0] + width <= self.width() - 4 else 2

    def plot_rect(self) -> QRectF:
        left, top, right, bottom = MARGINS
        top += (self._legend_rows() - 1) * self.fontMetrics().height()
        return QRectF(left, top, max(10, self.width() - left - right), max(10, self.height() - top - bottom))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), self.palette().base())
        rect = self.plot_rect()
        if not self.curve.loss:
            painter.setPen(AXIS_COLOR)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "The training loss and the validation mAP@.5 appear here while the model trains.")
            painter.end()
            return
        steps = [s for s, _ in self.curve.loss]
        x_max = max(max(steps), 1)
        y_step, y_ticks = nice_axis(max(v for _, v in self.curve.loss))
        y_max = y_step * y_ticks

        def px(step: float, value: float, top: float) -> QPointF:
            return QPointF(rect.left() + rect.width() * step / x_max, rect.bottom() - rect.height() * value / top)

        self._draw_axes(painter, rect, x_max, y_step, y_ticks)
        raw = QPainterPath(px(*self.curve.loss[0], y_max))
        for s, v in self.curve.loss[1:]:
            raw.lineTo(px(s, v, y_max))
        faint = QColor(LOSS_COLOR)
        faint.setAlpha(70)
        painter.setPen(QPen(faint, 1))
        painter.drawPath(raw)
        smooth = self.curve.smoothed()
        path = QPainterPath(px(*smooth[0], y_max))
        for s, v in smooth[1:]:
            path.lineTo(px(s, v, y_max))
        painter.setPen(QPen(LOSS_COLOR, 2))
        painter.drawPath(path)
        if self.curve.maps:
            pts = [px(s, v, 1.0) for s, v in self.curve.maps]
            painter.setPen(QPen(MAP_COLOR, 2))
            for a, b in zip(pts, pts[1:], strict=False):
                painter.drawLine(a, b)
            painter.setBrush(MAP_COLOR)
            for p in pts if len(pts) <= MAX_MARKERS else ():
                painter.drawEllipse(p, 3.5, 3.5)
        self._draw_legend(painter, rect)
        painter.end()

    def _draw_axes(self, painter: QPainter, rect: QRectF, x_max: int, y_step: float, y_ticks: int) -> None:
        fm = painter.fontMetrics()
        for i in range(y_ticks + 1):  # loss grid and labels (left)
            y = rect.bottom() - rect.height() * i / y_ticks
            painter.setPen(QPen(GRID_COLOR, 1))
            painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
            painter.setPen(LOSS_COLOR)
            painter.drawText(QRectF(0, y - 8, rect.left() - 6, 16),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{y_step * i:g}")
        painter.setPen(MAP_COLOR)
        for i in range(5):  # mAP labels (right), 0..1
            y = rect.bottom() - rect.height() * i / 4
            painter.drawLine(QPointF(rect.right(), y), QPointF(rect.right() + 4, y))
            painter.drawText(QRectF(rect.right() + 7, y - 8, 50, 16),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, f"{i / 4:g}")
        painter.setPen(QPen(AXIS_COLOR, 1))
        painter.drawRect(rect)
        for i in range(5):
            step = round(x_max * i / 4)
            x = rect.left() + rect.width() * step / x_max
            text = str(step)
            w = fm.horizontalAdvance(text)
            painter.drawText(QPointF(x - w / 2, rect.bottom() + fm.ascent() + 3), text)
        caption = "training step"
        painter.drawText(QPointF(rect.right() - fm.horizontalAdvance(caption), self.height() - 3), caption)

    def _draw_legend(self, painter: QPainter, rect: QRectF) -> None:
        fm = painter.fontMetrics()
        rows = self._legend_rows()
        y = rect.top() - 10 - (rows - 1) * fm.height()
        x = rect.left()
        for i, (text, color) in enumerate(zip(LEGEND, (LOSS_COLOR, MAP_COLOR), strict=True)):
            painter.setPen(QPen(color, 2))
            painter.drawLine(QPointF(x, y), QPointF(x + LEGEND_MARK_PX, y))
            if i == 1:
                painter.setBrush(color)
                painter.drawEllipse(QPointF(x + LEGEND_MARK_PX / 2, y), 3.5, 3.5)
            painter.setPen(AXIS_COLOR)
            painter.drawText(QPointF(x + LEGEND_MARK_PX + 6, y + fm.ascent() / 2 - 1), text)
            if rows == 1:
                x += LEGEND_MARK_PX + 6 + fm.horizontalAdvance(text) + LEGEND_GAP_PX
            else:
                y += fm.height()
