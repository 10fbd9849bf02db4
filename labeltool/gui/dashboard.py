"""The weak-class dashboard: per class, how well the model finds it, how consistent its labels are,
and what to do about it (relabel / collect more images / augment), from the latest analysis.

One card per class: name with its colour, AP@0.5 and label-quality bars (painted here, no
matplotlib), box and image counts, the class it is most often confused with, the recommendation
as a coloured chip with its reason, and "Show issues" / "Augment…" buttons. The texts come from
``core/review.py``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from labeltool.core import review
from labeltool.core.issues import latest_analysis, list_issues
from labeltool.core.model import Analysis
from labeltool.core.store import Project

from .review_panel import header_labels

BAR_HEIGHT_PX = 16  # height of an AP / label-quality bar
BAR_MIN_WIDTH_PX = 90
CARD_STYLE = "QFrame#card { border:1px solid palette(mid); border-radius:6px; }"


class ScoreBar(QWidget):
    """A horizontal bar for a value in 0..1 with the number beside it; None shows "not measured"."""

    def __init__(self, value: float | None, color: str, tooltip: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.value = None if value is None else min(max(float(value), 0.0), 1.0)
        self.color = QColor(color)
        self.setToolTip(tooltip)
        self.setMinimumSize(BAR_MIN_WIDTH_PX + self.fontMetrics().horizontalAdvance(" 0.00 "), BAR_HEIGHT_PX + 2)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(180, BAR_HEIGHT_PX + 2)

    def text(self) -> str:
        return review.number_text(self.value)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        text_w = self.fontMetrics().horizontalAdvance(" 0.00 ") + 2
        track = QRectF(0.5, 1.5, max(10.0, self.width() - text_w - 1.0), BAR_HEIGHT_PX - 1.0)
        if self.value is None:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, "not measured")
            return
        painter.setPen(QPen(self.palette().mid().color(), 1))
        painter.setBrush(self.palette().base())
        painter.drawRoundedRect(track, 3, 3)
        if self.value > 0:
            fill = QRectF(track.left(), track.top(), max(3.0, track.width() * self.value), track.height())
            painter.setPen(QPen(self.color.darker(140), 1))
            painter.setBrush(self.color)
            painter.drawRoundedRect(fill, 3, 3)
        painter.setPen(self.palette().text().color())
        painter.drawText(QRectF(track.right() + 4, 0, text_w, self.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, f"{self.value:.2f}")


def _chip(text: str, color: str) -> QLabel:
    chip = QLabel(text)
    chip.setStyleSheet(f"background:{color}; color:white; font-weight:600; border-radius:4px; padding:2px 8px;")
    chip.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
    return chip


class WeakClassDashboard(QWidget):
    """Weak-class report of the latest analysis, one card per class.

    Signals: ``open_class_issues(class_id)`` ("Show issues": set the review panel's class filter,
    e.g. ``ReviewPanel.set_filter(class_id=...)``), ``augment_requested([class names])``
    ("Augment…": open the augmentation job for those classes).
    """

    open_class_issues = Signal(int)
    augment_requested = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.analysis: Analysis | None = None
        self.rows: list[dict[str, Any]] = []
        self.cards: list[QFrame] = []
        self.show_buttons: dict[str, QPushButton] = {}  # class name -> its "Show issues" button
        self.augment_buttons: dict[str, QPushButton] = {}
        self.title, self.header, self.warning, self.message = header_labels("Weak classes")
        self.legend = QLabel(f"{review.AP_HELP}. {review.QUALITY_HELP[:1].upper()}{review.QUALITY_HELP[1:]}.")
        self.legend.setWordWrap(True)
        palette = self.legend.palette()
        palette.setColor(palette.ColorRole.WindowText, palette.placeholderText().color())
        self.legend.setPalette(palette)
        self.body = QWidget()
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.setContentsMargins(0, 0, 0, 0)
        self.body_layout.setSpacing(8)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.body)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        for widget in (self.title, self.header, self.warning, self.message, self.legend):
            layout.addWidget(widget)
        layout.addWidget(self.scroll, 1)
        self.set_project(None)

    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.refresh()

    def refresh(self) -> None:
        """Re-read the latest analysis and rebuild the cards."""
        self.analysis = latest_analysis(self.project) if self.project is not None else None
        self.rows = review.weak_class_rows(self.analysis)
        issues = list_issues(self.project, status="open") if self.analysis is not None else []
        open_by_class = review.open_issues_by_class(issues)
        classes = {c.name: c for c in self.project.classes()} if self.project is not None else {}
        for card in self.cards:
            card.deleteLater()
        self.cards, self.show_buttons, self.augment_buttons = [], {}, {}
        while self.body_layout.count():
            self.body_layout.takeAt(0)
        for row in self.rows:
            cls = classes.get(str(row["class"]))
            card = self._card(row, color=cls.color if cls else "#999999", class_id=cls.id if cls else None,
                              open_issues=open_by_class.get(cls.id, 0) if cls else 0)
            self.cards.append(card)
            self.body_layout.addWidget(card)
        self.body_layout.addStretch(1)
        self.update_texts()

    def update_texts(self) -> None:
        """Header, warnings (labels changed since the analysis …) and message, without rebuilding the cards."""
        has = self.analysis is not None
        self.header.setText(review.analysis_text(self.analysis) if self.analysis is not None else "")
        warning = review.analysis_warning(self.analysis, self.project)
        self.warning.setText(warning or "")
        self.warning.setVisible(warning is not None)
        if self.project is None:
            text = "Open a project to see how well each class is labeled and learned."
        elif not has:
            text = ("No label analysis yet. Run Analyze (Loop menu): it measures per class how well the model "
                    "finds it and how consistent its boxes are, and says what to do (relabel, collect more "
                    "images or augment).")
        else:
            text = "" if self.rows else "This analysis has no per-class report (it was made by an older version)."
        self.message.setText(text)
        self.message.setVisible(bool(text))
        self.header.setVisible(has)
        self.legend.setVisible(bool(self.rows))
        self.scroll.setVisible(bool(self.rows))

    def _card(self, row: dict[str, Any], *, color: str, class_id: int | None, open_issues: int) -> QFrame:
        name = str(row["class"])
        card = QFrame()
        card.setObjectName("card")
        card.setStyleSheet(CARD_STYLE)
        grid = QGridLayout(card)
        grid.setContentsMargins(10, 8, 10, 8)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(4)
        title = QHBoxLayout()
        title.setSpacing(6)
        swatch = QLabel()
        swatch.setFixedSize(14, 14)
        swatch.setStyleSheet(f"background:{color}; border:1px solid #333; border-radius:2px;")
        label = QLabel(name)
        font = label.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        label.setFont(font)
        words, chip_color = review.recommendation(row)
        chip = _chip(words, chip_color)
        chip.setObjectName("recommendation")
        title.addWidget(swatch)
        title.addWidget(label)
        title.addStretch(1)
        title.addWidget(chip)
        grid.addLayout(title, 0, 0, 1, 2)
        grid.addWidget(QLabel("AP@0.5"), 1, 0)
        grid.addWidget(ScoreBar(row["ap50"], color, review.AP_HELP), 1, 1)
        grid.addWidget(QLabel("Label quality"), 2, 0)
        grid.addWidget(ScoreBar(row["label_quality"], color, review.QUALITY_HELP), 2, 1)
        counts = QLabel(review.counts_line(row))
        counts.setWordWrap(True)
        grid.addWidget(counts, 3, 0, 1, 2)
        text = str(row["reason"])
        reason = QLabel(text[:1].upper() + text[1:])
        reason.setObjectName("reason")
        reason.setWordWrap(True)
        grid.addWidget(reason, 4, 0, 1, 2)
        buttons = QHBoxLayout()
        show = QPushButton(f"Show issues ({open_issues})" if open_issues else "No open issues")
        show.setEnabled(class_id is not None and open_issues > 0)
        show.setToolTip(f"List the open issues of '{name}' in the review queue")
        augment = QPushButton("Augment…")
        augment.setEnabled(class_id is not None)
        augment.setToolTip(f"Make more training images of '{name}' (augmented copies; previewed before use)")
        if row.get("recommendation") in ("augment", "collect more images"):
            augment.setStyleSheet("font-weight:600;")
        if class_id is None:
            show.setToolTip(f"'{name}' is no longer a class of the project")
            augment.setToolTip(show.toolTip())
        else:
            show.clicked.connect(lambda _=False, cid=class_id: self.open_class_issues.emit(cid))
            augment.clicked.connect(lambda _=False, n=name: self.augment_requested.emit([n]))
        for button in (show, augment):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            buttons.addWidget(button)
        buttons.addStretch(1)
        grid.addLayout(buttons, 5, 0, 1, 2)
        grid.setColumnStretch(1, 1)
        self.show_buttons[name], self.augment_buttons[name] = show, augment
        return card
