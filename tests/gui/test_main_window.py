"""The overview window opens a real project and reports errors in a dialog (offscreen Qt)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeltool.core.store import Project
from labeltool.gui import main as gui_main
from labeltool.jobs import drive
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job

pytestmark = pytest.mark.gui


def test_window_shows_project_images_and_classes(qtbot, tmp_path: Path) -> None:
    drive(demo_data_job(tmp_path / "d", n_images=6, size=64), lambda p: None)
    Project.create(tmp_path / "p").close()
    drive(import_job(tmp_path / "p", tmp_path / "d" / "annotations.json"), lambda p: None)
    window = gui_main.MainWindow()
    qtbot.addWidget(window)
    window.open_project(tmp_path / "p")
    assert window.image_list.count() == 6
    assert window.image_list.item(0).text() == "images/part_00000.png"
    assert window.class_table.rowCount() == 5
    assert window.class_table.item(0, 0).text() == "scratch"
    assert "6 images" in window.summary.text()
    assert window.windowTitle() == "labeltool — p"


def test_opening_a_non_project_shows_a_dialog(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(gui_main, "show_error", lambda parent, title, exc: shown.append((title, str(exc))))
    window = gui_main.MainWindow()
    qtbot.addWidget(window)
    window.open_project(tmp_path)
    assert shown and "not a labeltool project" in shown[0][1]
    assert window.project is None
