"""The overview window opens a real project and reports errors in a dialog (offscreen Qt)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

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
    assert window.image_list.row_text(0).startswith("images/part_00000.png\n✓ labeled")
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


def test_new_project_takes_a_typed_folder_name_and_open_finds_the_project_one_level_down(
        qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """File ▸ New project: the user types a name (the folder does not exist yet). File ▸ Open on a folder
    whose project is in ``project/`` (the demo's layout) opens that project."""
    shown: list[str] = []
    monkeypatch.setattr(gui_main, "show_error", lambda parent, title, exc: shown.append(str(exc)))
    starts: list[str] = []

    def save_name(parent, caption, start, *args, **kwargs):  # the dialog, answered as the user would
        starts.append(start)
        return str(tmp_path / "lines" / "line-3"), ""

    monkeypatch.setattr(gui_main.QFileDialog, "getSaveFileName", save_name)
    (tmp_path / "home" / "my-project").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    window = gui_main.MainWindow()
    qtbot.addWidget(window)
    window._choose_new_project()
    assert shown == [] and window.project is not None and window.project.root == tmp_path / "lines" / "line-3"
    # no recent project yet: from the home folder, with a name that is not taken
    assert starts == [str(tmp_path / "home" / "my-project-2")]
    Project.create(tmp_path / "demo" / "project").close()
    opened: list[str] = []
    monkeypatch.setattr(gui_main.QFileDialog, "getExistingDirectory",
                        lambda parent, caption, start, *a, **k: opened.append(start) or str(tmp_path / "demo"))
    window._choose_project()
    assert shown == [] and window.project.root == tmp_path / "demo" / "project"
    assert opened == [str(tmp_path / "lines")]  # beside the last project
    window._choose_new_project()  # the same name again: refused with what to do, the open project stays
    assert "already holds a project; open it" in shown[-1] and window.project.root == tmp_path / "demo" / "project"


def test_window_shows_the_first_image_and_steps_with_keys(qtbot, tmp_path: Path) -> None:
    drive(demo_data_job(tmp_path / "d", n_images=3, size=64), lambda p: None)
    Project.create(tmp_path / "p").close()
    drive(import_job(tmp_path / "p", tmp_path / "d" / "annotations.json"), lambda p: None)
    window = gui_main.MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.open_project(tmp_path / "p")
    canvas = window.canvas
    assert canvas.image is not None and canvas.image.path == "images/part_00000.png"
    assert window.status.text().startswith("image 1/3") and "64×64 px" in window.status.text()
    qtbot.keyClick(canvas, Qt.Key.Key_Right)
    assert canvas.image.path == "images/part_00001.png" and window.status.text().startswith("image 2/3")
    qtbot.keyClick(canvas, Qt.Key.Key_PageDown)
    qtbot.keyClick(canvas, Qt.Key.Key_PageDown)  # past the end: stays on the last image
    assert window.image_list.currentRow() == 2
    qtbot.keyClick(canvas, Qt.Key.Key_Left)
    assert window.image_list.currentRow() == 1
    n_boxes = window.project.box_count()
    window._choose_class(1)
    canvas.set_view(canvas.view_state)
    start = canvas.mapFromScene(2.0, 2.0)
    end = canvas.mapFromScene(20.0, 20.0)
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(canvas.viewport(), end)
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, pos=end)
    assert window.project.box_count() == n_boxes + 1
    assert canvas.boxes[-1].class_id == window.project.classes()[1].id
    assert window.class_table.item(1, 1).text() == str(sum(b.class_id == canvas.boxes[-1].class_id
                                                           for bs in window.project.all_boxes().values() for b in bs))
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.project.box_count() == n_boxes


def test_undo_of_an_edit_on_another_image_shows_that_image(qtbot, tmp_path: Path) -> None:
    drive(demo_data_job(tmp_path / "d", n_images=3, size=64), lambda p: None)
    Project.create(tmp_path / "p").close()
    drive(import_job(tmp_path / "p", tmp_path / "d" / "annotations.json"), lambda p: None)
    window = gui_main.MainWindow()
    qtbot.addWidget(window)
    window.open_project(tmp_path / "p")
    project, canvas = window.project, window.canvas
    first = window.images[0].id
    box_id = project.add_box(first, project.classes()[0].id, (1.0, 2.0, 30.0, 40.0))
    window.step_image(2)
    assert canvas.image.id == window.images[2].id
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert canvas.image.id == first and box_id not in [b.id for b in canvas.boxes]
    window.step_image(1)
    qtbot.keyClick(canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert canvas.image.id == first and box_id in [b.id for b in canvas.boxes]
