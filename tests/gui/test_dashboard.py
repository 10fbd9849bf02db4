"""Weak-class dashboard and the augment-set preview on real projects: one card per class with its
recommendation, buttons that emit the window's signals, and a real augment set kept or deleted."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel

from labeltool.core.derived import delete_set, get_set, set_members
from labeltool.core.issues import NewIssue, record_analysis
from labeltool.core.store import Project
from labeltool.gui import augment_preview
from labeltool.gui.augment_preview import AugmentPreview
from labeltool.gui.dashboard import ScoreBar, WeakClassDashboard
from labeltool.gui.review_panel import ReviewPanel
from labeltool.jobs import drive
from labeltool.jobs.augment import augment_job
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job

pytestmark = pytest.mark.gui

RECOMMENDATIONS = {"scratch": "relabel", "dent": "augment", "crack": "collect more images", "stain": "ok",
                   "chip": "not judged"}
WORDS = {"relabel": "Relabel", "augment": "Augment", "collect more images": "Collect more images", "ok": "OK",
         "not judged": "Not judged"}


def demo_project(root: Path, *, n_images: int = 6) -> Project:
    drive(demo_data_job(root / "d", n_images=n_images, size=64), lambda p: None)
    Project.create(root / "p").close()
    drive(import_job(root / "p", root / "d" / "annotations.json"), lambda p: None)
    return Project.open(root / "p")


def weak_rows(project: Project) -> list[dict]:
    rows = []
    for k, c in enumerate(project.classes()):
        rec = RECOMMENDATIONS[c.name]
        rows.append({"class": c.name, "boxes": 10 + k, "images": 5 + k, "ap50": None if rec == "not judged" else 0.2 * k,
                     "label_quality": 0.5 + 0.1 * k, "flagged": k, "confused_with": "dent" if c.name == "scratch" else None,
                     "confusion_share": 0.25, "recommendation": rec, "reason": f"because of {c.name}"})
    return rows


@pytest.fixture
def project(tmp_path: Path) -> Project:
    p = demo_project(tmp_path)
    box = sorted((b for bs in p.all_boxes().values() for b in bs), key=lambda b: b.id)[0]
    other = next(c.id for c in p.classes() if c.id != box.class_id)
    record_analysis(p, snapshot_id=p.create_snapshot(), run_id=None, mode="kfold", folds=3, config={},
                    summary={"weak_classes": weak_rows(p)},
                    issues=[NewIssue("swap", box.image_id, box.id, box.class_id, 0.1,
                                     {"action": "set_class", "box_id": box.id, "class_id": other})])
    p.swap = (box.class_id, other)  # type: ignore[attr-defined]
    yield p
    p.close()


def test_one_card_per_class_with_bars_counts_and_recommendation(project, qtbot) -> None:
    dash = WeakClassDashboard()
    qtbot.addWidget(dash)
    dash.set_project(project)
    names = [c.name for c in project.classes()]
    assert len(dash.cards) == len(names) == 5 and list(dash.show_buttons) == names
    for card, name in zip(dash.cards, names, strict=True):
        assert card.findChild(QLabel, "recommendation").text() == WORDS[RECOMMENDATIONS[name]]
        assert card.findChild(QLabel, "reason").text() == f"Because of {name}"
        bars = card.findChildren(ScoreBar)
        assert [b.text() for b in bars][1] == f"{0.5 + 0.1 * names.index(name):.2f}"
    assert dash.cards[0].findChildren(ScoreBar)[0].text() == "0.00"
    assert dash.cards[4].findChildren(ScoreBar)[0].text() == "not measured"
    texts = [lbl.text() for lbl in dash.cards[0].findChildren(QLabel)]
    assert "10 boxes on 5 images · often confused with 'dent' (25%)" in texts
    # only the classes of the swap issue have an open issue to show
    enabled = {n for n, b in dash.show_buttons.items() if b.isEnabled()}
    by_id = {c.id: c.name for c in project.classes()}
    assert enabled == {by_id[project.swap[0]], by_id[project.swap[1]]}
    assert dash.message.isHidden()


def test_buttons_emit_the_window_signals_and_filter_the_queue(project, qtbot) -> None:
    dash, panel = WeakClassDashboard(), ReviewPanel()
    qtbot.addWidget(dash)
    qtbot.addWidget(panel)
    dash.set_project(project)
    panel.set_project(project)
    dash.open_class_issues.connect(lambda cid: panel.set_filter(class_id=cid))
    name = {c.id: c.name for c in project.classes()}[project.swap[1]]
    with qtbot.waitSignal(dash.open_class_issues) as opened:
        qtbot.mouseClick(dash.show_buttons[name], Qt.MouseButton.LeftButton)
    assert opened.args == [project.swap[1]]
    assert panel.filters()["class_id"] == project.swap[1] and len(panel.issues) == 1
    with qtbot.waitSignal(dash.augment_requested) as wanted:
        qtbot.mouseClick(dash.augment_buttons["dent"], Qt.MouseButton.LeftButton)
    assert wanted.args == [["dent"]]


def test_without_analysis_or_with_a_deleted_class(project, tmp_path: Path, qtbot) -> None:
    dash = WeakClassDashboard()
    qtbot.addWidget(dash)
    dash.set_project(demo_project(tmp_path / "bare"))
    assert dash.cards == [] and "Run Analyze (Loop menu)" in dash.message.text() and not dash.message.isHidden()
    dash.project.close()
    chip = project.class_by_name("chip")
    stain = project.class_by_name("stain")
    project.merge_classes(chip.id, stain.id)  # 'chip' is gone; its row stays, without buttons
    dash.set_project(project)
    assert len(dash.cards) == 5
    assert not dash.show_buttons["chip"].isEnabled() and not dash.augment_buttons["chip"].isEnabled()
    assert dash.augment_buttons["stain"].isEnabled()


# -- augment preview ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def augmented(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A 12-image project with one real augment set for 'dent' (the job run in-process)."""
    root = tmp_path_factory.mktemp("aug")
    demo_project(root, n_images=12).close()
    result = drive(augment_job(root / "p", classes=["dent"], per_class=8, seed=1), lambda p: None)
    assert result["set_id"] is not None and result["images"] > 0, result
    return root / "p", result["set_id"], result["images"]


def test_preview_shows_thumbnails_and_delete_is_one_undoable_edit(augmented, qtbot) -> None:
    path, set_id, n = augmented
    with Project.open(path) as project:
        images_before = project.image_count()
        dialog = AugmentPreview(project, set_id)
        qtbot.addWidget(dialog)
        assert len(dialog.tiles) == n and dialog.more.isHidden()
        assert dialog.wait_thumbnails()
        qtbot.waitUntil(lambda: dialog.decoded == n, timeout=5000)
        for tile in dialog.tiles:
            pixmap = tile.pixmap()
            assert not pixmap.isNull() and max(pixmap.width(), pixmap.height()) == augment_preview.TILE_PX
        member = set_members(project, set_id)[0]
        args = (project.root / member["path"],)
        size = {"width": member["width"], "height": member["height"]}
        boxes = [("#00ff00", *xyxy) for _, *xyxy in member["boxes"]]
        assert boxes and augment_preview.render_tile(*args, boxes, **size) != augment_preview.render_tile(*args, [], **size)
        colors = {c.id: c.color for c in project.classes()}
        shown = augment_preview.render_tile(*args, [(colors[c], *xyxy) for c, *xyxy in member["boxes"]], **size)
        rgb32 = QImage.Format.Format_RGB32
        assert dialog.tiles[0].pixmap().toImage().convertToFormat(rgb32) == shown.convertToFormat(rgb32)
        qtbot.mouseClick(dialog.delete_button, Qt.MouseButton.LeftButton)
        assert dialog.choice == "delete" and dialog.result() == AugmentPreview.DELETE
        assert get_set(project, set_id).status == "deleted"
        assert project.image_count() == images_before - n
        assert project.history(limit=1)[0].action == f"delete augment set {set_id}"
        project.undo()
        assert get_set(project, set_id).status == "active" and project.image_count() == images_before
        # deleting a deleted set says why and keeps the dialog open
        dialog2 = AugmentPreview(project, set_id)
        qtbot.addWidget(dialog2)
        delete_set(project, set_id)  # deleted behind the dialog's back
        dialog2.delete()
        assert dialog2.choice == "keep" and "already deleted" in dialog2.error_label.text()
        project.undo()


def test_preview_caps_the_grid_and_keep_keeps_the_set(augmented, qtbot, monkeypatch) -> None:
    path, set_id, n = augmented
    monkeypatch.setattr(augment_preview, "PREVIEW_MAX", 2)
    with Project.open(path) as project:
        dialog = AugmentPreview(project, set_id)
        qtbot.addWidget(dialog)
        assert n > 2 and len(dialog.tiles) == 2
        assert dialog.more.text() == f"… and {n - 2} more image{'s' if n > 3 else ''} (not shown)"
        qtbot.mouseClick(dialog.keep_button, Qt.MouseButton.LeftButton)
        assert dialog.choice == "keep" and dialog.result() == AugmentPreview.KEEP
        assert get_set(project, set_id).status == "active" and get_set(project, set_id).n_images == n
        dialog.wait_thumbnails()
