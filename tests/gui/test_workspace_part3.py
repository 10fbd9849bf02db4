"""Class panel, copy/paste, next issue and mark-labeled change project.db as expected (offscreen Qt)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog

from labeltool.core.issues import NewIssue, record_analysis
from labeltool.core.store import Project
from labeltool.gui import main as gui_main
from labeltool.gui import shortcuts
from labeltool.gui.class_panel import class_counts
from labeltool.gui.geometry import clamped_rect
from labeltool.jobs import drive
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> gui_main.MainWindow:
    errors: list[str] = []
    monkeypatch.setattr(gui_main, "show_error", lambda parent, title, exc: errors.append(f"{title}: {exc}"))
    drive(demo_data_job(tmp_path / "d", n_images=4, size=64), lambda p: None)
    Project.create(tmp_path / "p").close()
    drive(import_job(tmp_path / "p", tmp_path / "d" / "annotations.json"), lambda p: None)
    win = gui_main.MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.open_project(tmp_path / "p")
    win.errors = errors  # type: ignore[attr-defined]
    return win


def _counts(project: Project) -> dict[str, tuple[int, int]]:
    return {c.name: (c.boxes, c.images) for c in class_counts(project)}


def test_class_counts_match_the_boxes(window) -> None:
    project = window.project
    boxes = [b for bs in project.all_boxes().values() for b in bs]
    for c in project.classes():
        mine = [b for b in boxes if b.class_id == c.id]
        assert _counts(project)[c.name] == (len(mine), len({b.image_id for b in mine}))
    assert window.class_table.rowCount() == len(project.classes())
    assert window.class_table.item(0, 1).text() == str(_counts(project)[project.classes()[0].name][0])


def test_class_panel_add_rename_merge_colour_each_one_undoable_edit(window, qtbot, monkeypatch) -> None:
    project, panel = window.project, window.class_panel
    n_classes = len(project.classes())
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("burr", True))
    panel.add_interactive()
    assert project.class_by_name("burr") is not None, window.errors
    assert window.class_table.rowCount() == n_classes + 1, window.errors
    assert any(window.filter_combo.itemText(i) == "Contains class: burr" for i in range(window.filter_combo.count()))
    burr = project.class_by_name("burr").id
    window.class_table.selectRow(n_classes)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("edge burr", True))
    panel.rename_interactive()
    assert project.class_by_name("edge burr").id == burr
    assert window.class_table.item(n_classes, 0).text() == "edge burr"
    panel.set_color(burr, "#123456")
    assert next(c for c in project.classes() if c.id == burr).color == "#123456"
    assert next(c for c in window.canvas.classes if c.id == burr).color == "#123456"
    # merge: the first class's boxes become 'hairline burr'
    first = project.classes()[0]
    n_first = _counts(project)[first.name][0]
    assert n_first > 0
    window.class_table.selectRow(0)
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: ("edge burr", True))
    panel.merge_interactive()
    assert project.class_by_name(first.name) is None
    assert _counts(project)["edge burr"][0] == n_first
    assert window.class_table.rowCount() == n_classes
    # each was one edit: four undos restore the original classes
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.class_by_name(first.name) is not None and _counts(project)[first.name][0] == n_first
    assert window.class_table.rowCount() == n_classes + 1
    window.canvas.undo()
    assert next(c for c in project.classes() if c.id == burr).color != "#123456"
    window.canvas.undo()
    assert project.class_by_name("burr") is not None
    window.canvas.undo()
    assert project.class_by_name("burr") is None and len(project.classes()) == n_classes


def test_class_panel_reports_errors(window) -> None:
    window.class_panel.add_class(window.project.classes()[0].name)
    assert window.errors and "already exists" in window.errors[0]


def test_copy_paste_boxes_onto_another_image_is_one_edit_and_clamped(window, qtbot) -> None:
    project, canvas = window.project, window.canvas
    first = window.images[0].id
    cid = project.classes()[1].id
    big = project.add_box(first, cid, (40.0, 40.0, 64.0, 64.0))
    canvas.reload()
    canvas.select_box(big)
    qtbot.keyClick(canvas, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert canvas.clipboard == [(cid, (40.0, 40.0, 64.0, 64.0))]
    qtbot.keyClick(canvas, Qt.Key.Key_Right)
    second = canvas.image.id
    before = project.boxes(second)
    n_edits = len(project.history())
    qtbot.keyClick(canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    after = project.boxes(second)
    assert len(after) == len(before) + 1 and len(project.history()) == n_edits + 1
    pasted = after[-1]
    assert (pasted.class_id, pasted.xyxy) == (cid, (40.0, 40.0, 64.0, 64.0))
    assert canvas.selected == [pasted.id]
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.boxes(second) == before


def test_clamped_rect() -> None:
    assert clamped_rect((-5.0, 10.0, 50.0, 300.0), image_size=(40, 200)) == (0.0, 10.0, 40.0, 200.0)
    assert clamped_rect((45.0, 10.0, 50.0, 30.0), image_size=(40, 200)) is None


def test_mark_labeled_and_unlabeled_keys(window, qtbot) -> None:
    project, canvas = window.project, window.canvas
    image_id = canvas.image.id
    project.set_labeled([image_id], False)
    canvas.reload()
    qtbot.keyClick(canvas, Qt.Key.Key_L)
    assert project.image(image_id).labeled
    assert window.image_list.row_text(window.image_list.currentRow()).split("\n")[1].startswith("✓ labeled")
    qtbot.keyClick(canvas, Qt.Key.Key_L, Qt.KeyboardModifier.ShiftModifier)
    assert not project.image(image_id).labeled
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.image(image_id).labeled


def test_next_issue_key_shows_the_image_and_selects_the_box(window, qtbot) -> None:
    project, canvas = window.project, window.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_N)  # no analysis yet: a message, nothing moves
    assert "No open issues" in window.statusBar().currentMessage()
    boxes = {i: bs for i, bs in project.all_boxes().items() if bs}
    (img_a, boxes_a), (img_b, boxes_b) = sorted(boxes.items())[-1], sorted(boxes.items())[0]
    issues = [NewIssue("spurious", img_a, boxes_a[0].id, boxes_a[0].class_id, 0.1, {"action": "delete_box",
                                                                                     "box_id": boxes_a[0].id}),
              NewIssue("swap", img_b, boxes_b[0].id, boxes_b[0].class_id, 0.2,
                       {"action": "set_class", "box_id": boxes_b[0].id, "class_id": project.classes()[-1].id})]
    record_analysis(project, snapshot_id=project.create_snapshot(), run_id=None, mode="kfold", folds=3, config={},
                    summary={}, issues=issues)
    qtbot.keyClick(canvas, Qt.Key.Key_N)
    assert canvas.image.id == img_a and canvas.selected == [boxes_a[0].id]
    assert "issue 1/2: spurious" in window.statusBar().currentMessage()
    qtbot.keyClick(canvas, Qt.Key.Key_N)
    assert canvas.image.id == img_b and canvas.selected == [boxes_b[0].id]
    qtbot.keyClick(canvas, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    assert canvas.image.id == img_a


def test_new_keys_are_on_the_sheet() -> None:
    texts = {row[1] for row in shortcuts.sheet_rows()}
    for key in ("Ctrl+C", "Ctrl+V", "L", "Shift+L", "N", "Shift+N"):
        assert key in texts


def test_thumbnail_decoded_for_a_closed_project_is_dropped(qtbot) -> None:
    from PySide6.QtGui import QImage

    from labeltool.gui.image_list import ThumbnailLoader

    loader = ThumbnailLoader()
    loader._pending[1] = Path("new/project/images/a.png")  # the open project asked for image 1
    loader._done(1, Path("old/project/images/b.png"), QImage(2, 2, QImage.Format.Format_RGB888))
    assert loader.cache.get(1) is None and 1 in loader._pending
    loader._done(1, Path("new/project/images/a.png"), QImage(2, 2, QImage.Format.Format_RGB888))
    assert loader.cache.get(1) is not None and 1 not in loader._pending


def test_tag_of_a_box_cut_by_the_view_edge_stays_readable(qtbot) -> None:
    from PySide6.QtGui import QColor, QImage, QPainter, QTransform

    from labeltool.gui.overlay import Shape, paint_shapes

    image = QImage(200, 100, QImage.Format.Format_RGB888)
    image.fill(QColor("white"))
    painter = QPainter(image)
    paint_shapes(painter, QTransform(), [Shape((-80.0, 40.0, 120.0, 90.0), "#ff0000", "copper")])
    painter.end()
    # the red tag starts at the view's left edge (x=0), not at the box's x=-80
    assert image.pixelColor(2, 30).red() > 200 and image.pixelColor(2, 30).green() < 80
