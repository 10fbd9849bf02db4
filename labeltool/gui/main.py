"""GUI entry: the labeling workspace window.

Image list on the left, the canvas in the centre, classes (counts, current class) and the model-box
score threshold on the right, image i/n, size and zoom in the status bar. Every edit is saved as it
happens; errors from core/ appear as a dialog that says what happened and what to do.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QSlider,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from labeltool.core.errors import LabeltoolError
from labeltool.core.model import Image
from labeltool.core.stats import project_stats
from labeltool.core.store import Project

from . import constants as C
from .canvas import Canvas


class MainWindow(QMainWindow):
    """Top-level window. ``open_project`` loads a project folder and shows its first image."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("labeltool")
        self.resize(1280, 800)
        self.project: Project | None = None
        self.images: list[Image] = []
        self.image_list = QListWidget()
        self.image_list.currentRowChanged.connect(self._show_row)
        self.canvas = Canvas()
        self.canvas.step_image.connect(self.step_image)
        self.canvas.show_image_requested.connect(self.show_image)
        self.canvas.edited.connect(self._refresh_counts)
        self.canvas.view_changed.connect(self._update_status)
        self.canvas.error.connect(lambda title, exc: show_error(self, title, exc))
        self.class_table = QTableWidget(0, 3)
        self.class_table.setHorizontalHeaderLabels(["class", "boxes", "images"])
        self.class_table.horizontalHeader().setStretchLastSection(True)
        self.class_table.verticalHeader().setVisible(False)
        self.class_table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.class_table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.class_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.class_table.cellClicked.connect(self._choose_class)
        self.summary = QLabel("Open a project folder (File ▸ Open) or create one with `labeltool new DIR`.")
        self.summary.setWordWrap(True)
        self.score_label = QLabel()
        self.score_slider = QSlider(Qt.Orientation.Horizontal)
        self.score_slider.setRange(0, 100)
        self.score_slider.valueChanged.connect(self._set_score_threshold)
        self.score_slider.setValue(round(C.SCORE_THRESHOLD * 100))
        self._set_score_threshold(self.score_slider.value())
        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.addWidget(self.summary)
        layout.addWidget(QLabel("Classes (number keys 1–9; click = class for new boxes)"))
        layout.addWidget(self.class_table, 1)
        layout.addWidget(self.score_label)
        layout.addWidget(self.score_slider)
        splitter = QSplitter()
        splitter.addWidget(self.image_list)
        splitter.addWidget(self.canvas)
        splitter.addWidget(panel)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 760, 280])
        self.setCentralWidget(splitter)
        open_action = QAction("&Open project…", self)
        open_action.setShortcut(QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self._choose_project)
        self.menuBar().addMenu("&File").addAction(open_action)
        edit_menu = self.menuBar().addMenu("&Edit")
        for text, keys, slot in (("&Undo", ["Ctrl+Z"], self.canvas.undo),
                                 ("&Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], self.canvas.redo)):
            action = QAction(text, self)
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.triggered.connect(slot)
            edit_menu.addAction(action)
        self.status = QLabel()
        self.statusBar().addPermanentWidget(self.status)
        self.statusBar().showMessage("no project open")

    def _choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open labeltool project")
        if folder:
            self.open_project(Path(folder))

    def open_project(self, root: Path) -> None:
        try:
            project = Project.open(root)
            images = project.images()
        except LabeltoolError as exc:
            show_error(self, "Cannot open project", exc)
            return
        if self.project is not None:
            self.project.close()
        self.project, self.images = project, images
        self.setWindowTitle(f"labeltool — {project.root.name}")
        self.canvas.set_project(project)
        self._refresh_counts()
        self.statusBar().showMessage(f"{project.root}  ·  schema v{project.schema_version}")
        self.image_list.blockSignals(True)
        self.image_list.clear()
        self.image_list.addItems([img.path for img in images])
        self.image_list.blockSignals(False)
        if images:
            self.image_list.setCurrentRow(0)

    def _show_row(self, row: int) -> None:
        if self.project is None or not 0 <= row < len(self.images):
            return
        try:
            self.canvas.show_image(self.images[row].id)
        except LabeltoolError as exc:
            show_error(self, "Cannot show this image", exc)
        self.canvas.setFocus()
        self._update_status()

    def step_image(self, step: int) -> None:
        """Next (+1) or previous (-1) image in the list."""
        row = self.image_list.currentRow() + step
        if 0 <= row < self.image_list.count():
            self.image_list.setCurrentRow(row)

    def show_image(self, image_id: int) -> None:
        """Select the image with id ``image_id`` in the list (and so show it)."""
        rows = [i for i, img in enumerate(self.images) if img.id == image_id]
        if rows:
            self.image_list.setCurrentRow(rows[0])

    def _choose_class(self, row: int, _column: int = 0) -> None:
        if 0 <= row < len(self.canvas.classes):
            self.canvas.set_current_class(self.canvas.classes[row].id)

    def _set_score_threshold(self, value: int) -> None:
        self.score_label.setText(f"Model boxes shown from score {value / 100:.2f} (A accepts, Shift+A all)")
        self.canvas.set_score_threshold(value / 100)

    def _refresh_counts(self) -> None:
        if self.project is None:
            return
        try:
            stats = project_stats(self.project)
        except LabeltoolError as exc:
            show_error(self, "Cannot read the project", exc)
            return
        colors = {c.id: c.color for c in self.canvas.classes}
        self.class_table.setRowCount(len(stats["classes"]))
        for row, cls in enumerate(stats["classes"]):
            for col, value in enumerate((cls["name"], cls["boxes"], cls["images"])):
                item = QTableWidgetItem(str(value))
                if col == 0 and cls["id"] in colors:
                    item.setIcon(_swatch(colors[cls["id"]]))
                self.class_table.setItem(row, col, item)
        current = [i for i, c in enumerate(stats["classes"]) if c["id"] == self.canvas.current_class_id]
        if current:
            self.class_table.selectRow(current[0])
        self.summary.setText(
            f"<h2>{self.project.root.name}</h2><p>{stats['images']} images — {stats['labeled_images']} labeled, "
            f"{stats['unlabeled_images']} unlabeled — {stats['boxes']} boxes</p>"
        )

    def _update_status(self) -> None:
        image = self.canvas.image
        if image is None:
            self.status.setText("")
            return
        row = self.image_list.currentRow()
        self.status.setText(f"image {row + 1}/{len(self.images)}  ·  {image.path}  ·  "
                            f"{image.width}×{image.height} px  ·  zoom {self.canvas.view_state.zoom * 100:.0f}%")


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


def show_error(parent: QWidget | None, title: str, exc: BaseException) -> None:
    """A dialog with the user-facing message of ``exc`` (the message already says what to do)."""
    QMessageBox.critical(parent, title, str(exc))


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    traceback.print_exception(kind, exc, tb)
    if isinstance(exc, LabeltoolError):
        show_error(None, "labeltool", exc)
    else:
        QMessageBox.critical(
            None, "labeltool: unexpected error",
            f"{kind.__name__}: {exc}\n\nYour labels are safe (every edit is saved as it happens). "
            "Please report this with the text printed in the terminal.",
        )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    app = QApplication.instance() or QApplication(argv)
    sys.excepthook = _excepthook
    window = MainWindow()
    if len(argv) > 1:
        window.open_project(Path(argv[1]))
    window.show()
    return app.exec()
