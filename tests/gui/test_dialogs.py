"""File menu logic: import / export with summaries, drag and drop, new / open / recent, errors, the ? sheet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QKeyEvent
from PySide6.QtWidgets import QDialog

from labeltool.core.errors import ProjectLockedError
from labeltool.gui import dialogs
from labeltool.gui import main as gui_main
from labeltool.gui.shortcuts import BINDINGS, CANVAS_ACTIONS, WINDOW_ACTIONS, binding_for, sheet_rows
from labeltool.jobs import drive
from labeltool.jobs.demo import demo_data_job

pytestmark = pytest.mark.gui


@pytest.fixture
def errors(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    shown: list[tuple[str, str]] = []

    def record(parent: object, title: str, exc: BaseException) -> None:
        shown.append((title, dialogs.error_text(exc)))

    monkeypatch.setattr(dialogs, "show_error", record)
    monkeypatch.setattr(gui_main, "show_error", record)
    return shown


@pytest.fixture
def window(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    w = gui_main.MainWindow()
    qtbot.addWidget(w)
    yield w
    w.close()


def _coco_with_a_bad_box(tmp_path: Path) -> Path:
    drive(demo_data_job(tmp_path / "d", n_images=4, size=64), lambda p: None)
    ann = tmp_path / "d" / "annotations.json"
    data = json.loads(ann.read_text())
    bad = dict(data["annotations"][0], id=10_000, bbox=[5, 5, -3, 4])  # negative width
    data["annotations"].append(bad)
    ann.write_text(json.dumps(data))
    return ann


def test_import_shows_what_was_added_and_skipped(window, tmp_path: Path, errors) -> None:  # type: ignore[no-untyped-def]
    ann = _coco_with_a_bad_box(tmp_path)
    assert dialogs.guess_format(ann) == "coco" and dialogs.guess_format(tmp_path / "d" / "images") == "folder"
    assert window.new_project(tmp_path / "p")
    summary = window.import_source(ann)
    assert summary is not None and summary.images_added == 4 and len(summary.report.errors) == 1
    assert window.image_list.count() == 4 and window.canvas.image is not None
    assert window.class_table.rowCount() == 5 and not errors
    report = window.report_dialog
    assert isinstance(report, dialogs.ReportDialog) and report.isVisible()
    assert "4 image(s) added" in report.summary.text() and "1 record(s) skipped" in report.summary.text()
    texts = [report.table.item(r, 0).text() for r in range(report.table.rowCount())]
    assert "skipped" in texts
    again = window.import_source(ann)  # same images again: nothing new, skipped with reasons
    assert again is not None and again.images_added == 0 and window.image_list.count() == 4


def test_import_of_a_bad_source_shows_a_dialog_and_adds_nothing(window, tmp_path: Path, errors) -> None:  # type: ignore[no-untyped-def]
    assert window.new_project(tmp_path / "p")
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    assert window.import_source(bad) is None
    assert errors and errors[0][0].startswith("Import failed") and "broken.json" in errors[0][1]
    assert window.project is not None and window.project.image_count() == 0


def test_import_dialog_detects_the_format(qtbot, tmp_path: Path) -> None:
    drive(demo_data_job(tmp_path / "d", n_images=2, size=32), lambda p: None)
    dialog = dialogs.ImportDialog(None, tmp_path / "d" / "annotations.json")
    qtbot.addWidget(dialog)
    assert dialog.fmt == "coco" and "Detected" in dialog.note.text()
    dialog.path.setText(str(tmp_path / "d" / "images"))
    assert dialog.fmt == "folder"
    dialog.path.setText(str(tmp_path / "nowhere"))
    assert "could not be detected" in dialog.note.text()


def test_export_writes_the_format_and_shows_a_summary(window, tmp_path: Path, errors) -> None:  # type: ignore[no-untyped-def]
    ann = _coco_with_a_bad_box(tmp_path)
    window.new_project(tmp_path / "p")
    window.import_source(ann)
    report = window.export_to(tmp_path / "out", fmt="yolo")
    assert report is not None and not errors
    assert (tmp_path / "out" / "data.yaml").is_file()
    assert window.report_dialog is not None and "Exported YOLO" in window.report_dialog.summary.text()
    assert window.export_to(tmp_path / "out", fmt="coco") is None  # not empty any more
    assert errors and errors[0][0] == "Export failed"


def test_dropping_a_file_opens_the_import_dialog(window, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    drive(demo_data_job(tmp_path / "d", n_images=3, size=32), lambda p: None)
    window.new_project(tmp_path / "p")
    seen: list[str] = []

    def accept(dialog: dialogs.ImportDialog) -> int:
        seen.append(dialog.fmt)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(dialogs.ImportDialog, "exec", accept)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "d" / "annotations.json"))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert seen == ["coco"] and window.image_list.count() == 3


def test_new_open_recent_and_errors(window, tmp_path: Path, errors) -> None:  # type: ignore[no-untyped-def]
    assert window.new_project(tmp_path / "a") and window.new_project(tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.txt").write_text("x")
    assert not window.new_project(tmp_path / "c")
    assert errors[-1][0] == "Cannot create the project" and "not empty" in errors[-1][1]
    assert window.recent_projects() == [str((tmp_path / "b").resolve()), str((tmp_path / "a").resolve())]
    actions = window.recent_menu.actions()
    assert [a.text() for a in actions] == window.recent_projects()
    actions[1].trigger()
    assert window.project is not None and window.project.root.name == "a"
    assert window.recent_projects()[0].endswith("a")
    again = gui_main.MainWindow()  # the list survives a restart (same settings file)
    assert again.recent_projects() == window.recent_projects()
    again.close()


def test_locked_project_message_says_what_to_do() -> None:
    text = dialogs.error_text(ProjectLockedError("project.db is locked by another process"))
    assert text.startswith("project.db is locked") and "What to do" in text and "try again" in text
    assert "disk is not full" in dialogs.error_text(OSError(28, "No space left on device"))


def test_question_mark_shows_every_binding(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window.show()
    qtbot.waitExposed(window)
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Question, Qt.KeyboardModifier.ShiftModifier)
    assert window.sheet is not None and window.sheet.isVisible()
    table = window.sheet.table
    n_class = sum(b.action == "class" for b in BINDINGS)
    assert table.rowCount() == len(sheet_rows()) == len(BINDINGS) - n_class + 1  # one row for the keys 1 … 9
    shown = {table.item(r, 2).text() for r in range(table.rowCount())}
    assert "Undo the last edit (any image)" in shown and "Zoom at the cursor" in shown
    for b in BINDINGS:  # every key in the table reaches its own binding (no shadowing)
        assert b.action in CANVAS_ACTIONS | set(WINDOW_ACTIONS) or not b.keys
        for key in b.keys:
            from PySide6.QtGui import QKeySequence

            combo = QKeySequence(key)[0]
            event = QKeyEvent(QKeyEvent.Type.KeyPress, combo.key(), combo.keyboardModifiers())
            assert binding_for(event) == b, key
