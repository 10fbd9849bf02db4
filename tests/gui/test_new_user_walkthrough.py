"""A new user's first session, driven through the real widgets (offscreen Qt): import a DeepPCB sample
with the import dialog, fix (move) a box with the mouse, relabel one with a number key, undo, export
COCO with the export dialog; the database / exported file is checked after each step."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog

from labeltool.gui import dialogs
from labeltool.gui import geometry as geo
from labeltool.gui import main as gui_main

pytestmark = pytest.mark.gui
DEEPPCB = Path(__file__).resolve().parents[3] / "shared" / "data" / "deeppcb"
N_IMAGES = 4


def _sample(dest: Path) -> Path:
    """The first N_IMAGES training images of DeepPCB (YOLO layout) with their label files and data.yaml."""
    if not (DEEPPCB / "data.yaml").is_file():
        pytest.skip(f"DeepPCB sample not found at {DEEPPCB}")
    (dest / "images" / "train").mkdir(parents=True)
    (dest / "labels" / "train").mkdir(parents=True)
    shutil.copy(DEEPPCB / "data.yaml", dest / "data.yaml")
    for image in sorted((DEEPPCB / "images" / "train").glob("*.jpg"))[:N_IMAGES]:
        shutil.copy(image, dest / "images" / "train" / image.name)
        shutil.copy(DEEPPCB / "labels" / "train" / f"{image.stem}.txt", dest / "labels" / "train" / f"{image.stem}.txt")
    return dest


def _when_dialog(check: Callable[[QDialog], None]) -> None:
    """Run ``check`` on the next modal dialog once it is open (it must accept or reject it)."""
    def poll() -> None:
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, QDialog):
            check(dialog)
        else:
            QTimer.singleShot(10, poll)
    QTimer.singleShot(0, poll)


def test_new_user_imports_fixes_relabels_undoes_and_exports_coco(qtbot, tmp_path: Path, monkeypatch) -> None:
    errors: list[str] = []
    monkeypatch.setattr(gui_main, "show_error", lambda parent, title, exc: errors.append(f"{title}: {exc}"))
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, exc: errors.append(f"{title}: {exc}"))
    source = _sample(tmp_path / "deeppcb")
    window = gui_main.MainWindow()
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)

    # 1. new project, then File ▸ Import with the dialog: the format is detected, OK imports
    assert window.new_project(tmp_path / "project")
    seen: dict[str, str] = {}

    def import_ok(dialog: QDialog) -> None:
        assert isinstance(dialog, dialogs.ImportDialog)
        seen["note"], seen["fmt"] = dialog.note.text(), dialog.fmt
        dialog.accept()
    _when_dialog(import_ok)
    window.import_dialog(source)
    assert seen == {"note": "Detected: YOLO (data.yaml + labels/).", "fmt": "yolo"}, errors
    project = window.project
    n_labels = sum(len(p.read_text().split("\n")) - 1 for p in (source / "labels" / "train").glob("*.txt"))
    assert project.image_count() == N_IMAGES and project.box_count() == n_labels and not errors
    assert [c.name for c in project.classes()] == ["open", "short", "mousebite", "spur", "copper", "pin-hole"]
    assert window.report_dialog is not None and "4 image(s) added" in window.report_dialog.summary.text()
    window.report_dialog.close()
    assert window.image_list.count() == N_IMAGES and window.canvas.image is not None

    # 2. fix a box: drag it 12 px right and 8 px down (image pixels) at 2x zoom
    canvas = window.canvas
    canvas.set_view(geo.ViewState(2.0, 0.0, 0.0))
    box = min(canvas.boxes, key=lambda b: (b.x1, b.y1))
    original = box.xyxy
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    start = QPoint(round(cx * 2), round(cy * 2))
    end = start + QPoint(24, 16)
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(canvas.viewport(), end)
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, pos=end)
    moved = project.box(box.id)
    assert moved.xyxy == pytest.approx((original[0] + 12, original[1] + 8, original[2] + 12, original[3] + 8))
    assert canvas.selected == [box.id] and project.box_count() == n_labels

    # 3. relabel it: the selected box, key 2 = second class
    short = project.classes()[1].id
    assert moved.class_id != short
    qtbot.keyClick(canvas, Qt.Key.Key_2)
    assert project.box(box.id).class_id == short
    assert window.class_table.item(1, 1).text() == str(
        project.connection.execute("SELECT count(*) FROM boxes WHERE class_id = ?", (short,)).fetchone()[0])

    # 4. undo: the class comes back, the move stays
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.box(box.id).class_id == moved.class_id
    assert project.box(box.id).xyxy == pytest.approx(moved.xyxy)

    # 5. File ▸ Export with the dialog: COCO into a new folder
    out = tmp_path / "export"

    def export_ok(dialog: QDialog) -> None:
        assert isinstance(dialog, dialogs.ExportDialog)
        dialog.format.setCurrentIndex(dialog.format.findData("coco"))
        dialog.dest.setText(str(out))
        dialog.accept()
    _when_dialog(export_ok)
    window.export_dialog()
    assert not errors
    doc = json.loads((out / "annotations.json").read_text())
    assert len(doc["images"]) == N_IMAGES and len(doc["annotations"]) == n_labels
    names = {c["id"]: c["name"] for c in doc["categories"]}
    image = project.image(box.image_id)
    coco_image = next(i for i in doc["images"] if Path(i["file_name"]).name == Path(image.path).name)
    x1, y1, x2, y2 = moved.xyxy
    mine = [a for a in doc["annotations"] if a["image_id"] == coco_image["id"]
            and a["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.01)]  # COCO rounds
    assert len(mine) == 1
    assert names[mine[0]["category_id"]] == next(c.name for c in project.classes() if c.id == moved.class_id)
    assert window.report_dialog is not None and "Exported COCO" in window.report_dialog.summary.text()
    assert f"{N_IMAGES} images with {n_labels} boxes" in window.report_dialog.summary.text()

    # 6. the next export starts beside the last one, in a new folder named after the project and format
    suggested: list[str] = []

    def look(dialog: QDialog) -> None:
        dialog.format.setCurrentIndex(dialog.format.findData("yolo"))
        suggested.append(dialog.dest.text())
        dialog.reject()
    _when_dialog(look)
    window.export_dialog()
    assert suggested == [str(out.parent / f"{project.root.name}-yolo")]
