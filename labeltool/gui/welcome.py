"""The first-run screen the window shows while no project is open.

What labeltool does in one line, the demo project, Open / New, and the recent projects. It only
emits requests; the window opens projects and runs the demo job (``demo_job_request``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from labeltool.jobs.panel_views import DEMO_TARGET, default_demo_root, demo_job_kwargs, existing_demo_project

TAGLINE = ("Label defect boxes, find the labels that are wrong, fine-tune a detector and put a verified model "
           "on the line — offline, on this computer.")
CONTENT_WIDTH = 620  # px: the column of text and buttons stays readable on a wide window
RECENT_ROW_PX = 28  # height of one recent-project row
RECENT_ROWS = 8  # rows shown before the list scrolls (File ▸ Open recent keeps as many)


def demo_job_request(root: Path | None = None, *, analysis: bool = True) -> tuple[str, dict[str, Any]]:
    """(target, kwargs) the window runs for "Open the demo project" when it does not exist yet."""
    return DEMO_TARGET, demo_job_kwargs(root or default_demo_root(), analysis=analysis)


class WelcomeWidget(QWidget):
    """Shown with no project open. Emits what the user asked for; the window does it."""

    demo_requested = Signal()
    open_requested = Signal()
    new_requested = Signal()
    recent_chosen = Signal(str)  # project folder

    def __init__(self, parent: QWidget | None = None, *, demo_root: Path | None = None) -> None:
        super().__init__(parent)
        self.demo_root = demo_root or default_demo_root()
        title = QLabel("labeltool")
        font = QFont(title.font())
        font.setPointSizeF(font.pointSizeF() * 2.4)
        font.setBold(True)
        title.setFont(font)
        tagline = QLabel(TAGLINE)
        tagline.setWordWrap(True)
        font = QFont(tagline.font())
        font.setPointSizeF(font.pointSizeF() * 1.25)
        tagline.setFont(font)
        self.demo_button = self._big_button("Open the demo project", self.demo_requested)
        self.demo_button.setDefault(True)  # the first thing a newcomer should try
        demo_font = self.demo_button.font()
        demo_font.setBold(True)
        self.demo_button.setFont(demo_font)
        self.demo_label = QLabel()
        self.demo_label.setWordWrap(True)
        self.demo_label.setStyleSheet("color: #555555;")
        self.open_button = self._big_button("Open a project…", self.open_requested)
        self.new_button = self._big_button("New project…", self.new_requested)
        self.recent_title = QLabel("Recent projects")
        bold = QFont(self.recent_title.font())
        bold.setBold(True)
        self.recent_title.setFont(bold)
        self.recent_list = QListWidget()
        self.recent_list.setToolTip("Click to open")
        self.recent_list.itemClicked.connect(self._recent_clicked)
        self.recent_list.installEventFilter(self)  # Enter opens the selected project
        self.recent_empty = QLabel("None yet: projects you open appear here.")
        self.recent_empty.setStyleSheet("color: #777777;")

        column = QWidget()
        column.setMaximumWidth(CONTENT_WIDTH)
        col = QVBoxLayout(column)
        col.setSpacing(10)
        col.addWidget(title)
        col.addWidget(tagline)
        col.addSpacing(16)
        col.addWidget(self.demo_button)
        col.addWidget(self.demo_label)
        col.addSpacing(8)
        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addWidget(self.new_button)
        col.addLayout(row)
        col.addSpacing(16)
        col.addWidget(self.recent_title)
        col.addWidget(self.recent_list)
        col.addWidget(self.recent_empty)
        middle = QVBoxLayout()
        middle.addStretch(1)
        middle.addWidget(column)
        middle.addStretch(2)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(middle, 4)
        outer.addStretch(1)
        self.refresh_demo()
        self.set_recent([])

    def _big_button(self, text: str, signal: Signal) -> QPushButton:
        button = QPushButton(text)
        button.setMinimumHeight(44)
        font = QFont(button.font())
        font.setPointSizeF(font.pointSizeF() * 1.15)
        button.setFont(font)
        button.clicked.connect(signal)
        return button

    def refresh_demo(self) -> None:
        """Say whether the demo opens at once or is built first (and for how long)."""
        project = existing_demo_project(self.demo_root)
        if project is not None:
            self.demo_label.setText(f"Opens {project}: generated parts with defects, 10 % of the labels "
                                    "deliberately wrong, and a trained model.")
        else:
            self.demo_label.setText(
                f"Builds it in {self.demo_root} first: 200 generated parts with defects, 10 % of the labels "
                "deliberately wrong; then trains a first model and looks for the wrong labels "
                "(about 8 minutes on a 2-core laptop CPU).")

    def set_recent(self, paths: Sequence[str]) -> None:
        """The recent projects, newest first; folders that are gone are shown greyed out."""
        self.recent_list.clear()
        for path in paths:
            item = QListWidgetItem(str(path))
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setSizeHint(QSize(0, RECENT_ROW_PX))
            if not (Path(path) / "project.db").is_file():
                item.setText(f"{path}  (not found)")
                item.setForeground(QColor("#999999"))
                item.setToolTip("This folder is gone or is no longer a labeltool project")
            self.recent_list.addItem(item)
        rows = max(1, min(len(paths), RECENT_ROWS))
        self.recent_list.setFixedHeight(rows * RECENT_ROW_PX + 2 * self.recent_list.frameWidth() + 2)
        self.recent_list.setVisible(bool(paths))
        self.recent_empty.setVisible(not paths)

    def recent_paths(self) -> list[str]:
        return [self.recent_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.recent_list.count())]

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if (watched is self.recent_list and event.type() == QEvent.Type.KeyPress
                and isinstance(event, QKeyEvent) and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)):
            item = self.recent_list.currentItem()
            if item is not None:
                self._recent_clicked(item)
                return True
        return super().eventFilter(watched, event)

    def _recent_clicked(self, item: QListWidgetItem) -> None:
        self.recent_chosen.emit(item.data(Qt.ItemDataRole.UserRole))
