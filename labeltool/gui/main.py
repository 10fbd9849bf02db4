"""GUI entry: a project overview window (the labeling workspace replaces its centre later).

Shows the project's classes and counts and the image list; errors from core/ appear as a dialog
that says what happened and what to do.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from labeltool.core.errors import LabeltoolError
from labeltool.core.stats import project_stats
from labeltool.core.store import Project


class MainWindow(QMainWindow):
    """Top-level window. ``open_project`` loads a project folder and fills the panels."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("labeltool")
        self.resize(1100, 700)
        self.project: Project | None = None
        self.image_list = QListWidget()
        self.class_table = QTableWidget(0, 3)
        self.class_table.setHorizontalHeaderLabels(["class", "boxes", "images"])
        self.class_table.horizontalHeader().setStretchLastSection(True)
        self.summary = QLabel("Open a project folder (File ▸ Open) or create one with `labeltool new DIR`.")
        self.summary.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.summary.setWordWrap(True)
        splitter = QSplitter()
        splitter.addWidget(self.image_list)
        splitter.addWidget(self.summary)
        splitter.addWidget(self.class_table)
        splitter.setSizes([260, 560, 280])
        self.setCentralWidget(splitter)
        open_action = QAction("&Open project…", self)
        open_action.setShortcut(QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self._choose_project)
        self.menuBar().addMenu("&File").addAction(open_action)
        self.statusBar().showMessage("no project open")

    def _choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open labeltool project")
        if folder:
            self.open_project(Path(folder))

    def open_project(self, root: Path) -> None:
        try:
            project = Project.open(root)
            stats = project_stats(project)
        except LabeltoolError as exc:
            show_error(self, "Cannot open project", exc)
            return
        if self.project is not None:
            self.project.close()
        self.project = project
        self.setWindowTitle(f"labeltool — {project.root.name}")
        self.image_list.clear()
        self.image_list.addItems([img.path for img in project.images()])
        self.class_table.setRowCount(len(stats["classes"]))
        for row, cls in enumerate(stats["classes"]):
            for col, value in enumerate((cls["name"], cls["boxes"], cls["images"])):
                self.class_table.setItem(row, col, QTableWidgetItem(str(value)))
        self.summary.setText(
            f"<h2>{project.root.name}</h2><p>{stats['images']} images — {stats['labeled_images']} labeled, "
            f"{stats['unlabeled_images']} unlabeled — {stats['boxes']} boxes</p>"
        )
        self.statusBar().showMessage(f"{project.root}  ·  schema v{stats['schema_version']}")


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
