"""Timing probes for bench/gui.py (so the benchmark itself needs no Qt imports)."""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication

from .main import MainWindow


def application() -> QApplication:
    app = QApplication.instance()
    return app if isinstance(app, QApplication) else QApplication([])


class _FirstImagePaint(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.at: float | None = None

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if self.at is None and event.type() == QEvent.Type.Paint and self.window.canvas.image is not None:
            self.at = time.perf_counter()
        return False


def open_until_first_image_painted(window: MainWindow, project_dir, *, timeout_s: float = 30.0) -> float | None:  # type: ignore[no-untyped-def]
    """Show ``window``, open the project and process events until the canvas painted its first image;
    returns the perf_counter time of that paint (None on timeout)."""
    probe = _FirstImagePaint(window)
    window.canvas.viewport().installEventFilter(probe)
    window.resize(1280, 800)
    window.show()
    window.open_project(project_dir)
    deadline = time.perf_counter() + timeout_s
    app = application()
    while probe.at is None and time.perf_counter() < deadline:
        app.processEvents()
    return probe.at


def timed_repaint(window: MainWindow) -> None:
    """Paint the canvas viewport now (synchronously)."""
    window.canvas.viewport().repaint()
