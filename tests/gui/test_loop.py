"""The data-centric loop driven through the main window: Loop menu actions, docks, panel buttons and
keys; every job is real and runs in a child process (the tiniest settings, through ``job_overrides``).

analyze → accept one issue of each type → fine-tune → a failing then a real export → verify; a
training cancelled from the Jobs panel leaves no run behind; every issue type accepted / rejected /
skipped with the review keys; the dashboard's buttons and a real augment set; the welcome screen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from labeltool.core.issue_types import BUILT_IN as ISSUE_TYPES
from labeltool.core.issues import NewIssue, get_issue, iou, record_analysis
from labeltool.core.store import Project
from labeltool.gui import main as gui_main
from labeltool.gui import review_panel as review_module
from labeltool.gui.loop import ANALYZE_TARGET, analysis_minutes_per_fold, in_view
from labeltool.gui.shortcuts import BINDINGS
from labeltool.jobs import drive
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import DEMO_MARKER, demo_data_job
from labeltool.jobs.panel_views import EXPORT_TARGET, TRAIN_TARGET, VERIFY_TARGET

pytestmark = pytest.mark.gui

TINY = {  # target -> the tiniest settings that still run the real code
    ANALYZE_TARGET: {"minutes_per_fold": None, "epochs_per_fold": 1, "image_size": 64},
    TRAIN_TARGET: {"epochs": 1, "image_size": 64, "batch_size": 2},
    EXPORT_TARGET: {"calibration_images": 4},
    VERIFY_TARGET: {"threads": 1},
}


def tiny_project(root: Path, *, n: int = 10, noise: float = 0.2, duplicates: int = 0) -> Path:
    """``n`` 64 px demo images with ``noise`` of their labels corrupted; ``duplicates`` boxes drawn twice
    (1 px apart: a label error the analysis finds whatever the model, which a 1-epoch model is not)."""
    drive(demo_data_job(root / "data", n_images=n, noise=noise, seed=1, size=64), lambda p: None)
    Project.create(root / "p").close()
    drive(import_job(root / "p", root / "data" / "annotations.json"), lambda p: None)
    with Project.open(root / "p") as project:
        boxes = [b for bs in project.all_boxes().values() for b in bs[:1]][:duplicates]
        for b in boxes:
            x1, y1, x2, y2 = b.xyxy
            project.add_box(b.image_id, b.class_id, (x1 + 1, y1, x2, y2))
    return root / "p"


@pytest.fixture
def window(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The main window with tiny job settings; closed here, not by qtbot (whose teardown comes first,
    while a job of a failed test may still run: the window would ask whether to quit)."""
    w = gui_main.MainWindow()
    w.job_overrides.update(TINY)
    w.job_panel.hide_after_ms = 100
    w.resize(1440, 900)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.confirm_quit = lambda question: True  # a test that failed midway: cancel what still runs
    w.close()
    w.deleteLater()


def run_job(qtbot, window, kind: str, start: Callable[[], object], *, timeout_s: float = 120.0,
            ends: int = 1) -> list[tuple[str, Any]]:
    """Do ``start()`` and wait until ``ends`` jobs of ``kind`` ended; returns (how, result / message)."""
    seen: list[tuple[str, Any]] = []
    slots = (
        (window.runner.finished, lambda k, result: seen.append(("finished", result)) if k == kind else None),
        (window.runner.failed, lambda k, title, msg: seen.append(("failed", msg)) if k == kind else None),
        (window.runner.cancelled, lambda k: seen.append(("cancelled", None)) if k == kind else None),
    )
    for signal, slot in slots:
        signal.connect(slot)
    try:
        start()
        qtbot.waitUntil(lambda: len(seen) >= ends or any(how != "finished" for how, _ in seen),
                        timeout=int(timeout_s * 1000))
    finally:
        for signal, slot in slots:
            signal.disconnect(slot)
    return seen


def trigger(window, name: str) -> None:
    action = window.loop_actions[name]
    assert action.isEnabled(), f"Loop ▸ {action.text()} is disabled"
    action.trigger()


def open_issues(project: Project) -> list[tuple[int, str, int]]:
    return project.connection.execute(
        "SELECT id, type, image_id FROM issues WHERE status = 'open' ORDER BY score, id").fetchall()


def choose(combo, data: object) -> None:
    """Pick ``data`` in a filter combo box the way a click does (index, then ``activated``)."""
    index = combo.findData(data)
    assert index >= 0, data
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


@pytest.mark.slow
def test_the_whole_loop_through_the_window(window, qtbot, tmp_path: Path) -> None:
    project_dir = tiny_project(tmp_path, duplicates=2)
    assert window.stack.currentWidget() is window.welcome
    window.open_project(project_dir)
    assert window.stack.currentWidget() is window.splitter
    project, panel = window.project, window.review_panel

    # analyze: the dialog's defaults, then a real K-fold analysis in a child process fills the review queue
    assert not window.loop_actions["quick"].isEnabled()  # no model yet
    trigger(window, "analyze")
    dialog = window.analyze_options
    assert dialog.isVisible() and not dialog.quick_radio.isEnabled() and "needs a trained model" in dialog.quick_radio.text()
    assert dialog.kwargs() == {"quick": False, "folds": 3, "minutes_per_fold": window._fold_minutes()}
    dialog.folds_spin.setValue(2)
    assert "About " in dialog.estimate.text()
    ended = run_job(qtbot, window, "analyze", dialog.start_button.click, timeout_s=150)
    assert ended[0][0] == "finished", ended
    assert project.connection.execute("SELECT folds FROM analyses").fetchall() == [(2,)]  # the dialog's choice
    assert window.loop_actions["analyze"].isEnabled() and in_view(window.review_dock)
    n_issues = project.connection.execute("SELECT count(*) FROM issues").fetchone()[0]
    assert n_issues == len(panel.all_issues) > 0 and panel.model.rowCount() == len(panel.issues)
    assert panel.counts.text().split()[0].isdigit()  # "12 to review of 12 — ..."

    # accept one issue of each type the analysis found, with the review keys on the canvas
    found = [t for t in ISSUE_TYPES if any(i.type == t and i.status == "open" for i in panel.all_issues)]
    assert "duplicate" in found  # the boxes drawn twice; the other types depend on the tiny model
    for kind in found:
        choose(panel.type_combo, kind)
        issue = panel.current_issue()
        if issue is None:  # an earlier accept settled this type's issues (same box)
            continue
        assert window.canvas.image.id == issue.image_id and window.canvas.ghost == issue
        n_edits = len(project.history(limit=1000))
        window.canvas.setFocus()
        qtbot.keyClick(window.canvas, Qt.Key.Key_Y)
        assert get_issue(project, issue.id).status == "accepted"
        assert len(project.history(limit=1000)) == n_edits + 1  # one edit (Ctrl+Z takes it back)
    choose(panel.type_combo, None)

    # fine-tune: one click, a real training; the panel compares per class at the end
    ended = run_job(qtbot, window, "train", lambda: trigger(window, "train"), timeout_s=150)
    assert ended[0][0] == "finished", ended
    assert in_view(window.train_dock) and window.train_panel.table.rowCount() == len(project.classes())
    assert window.train_panel.plot.n_loss_points > 0
    assert project.connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert window.loop_actions["quick"].isEnabled() and window.loop_actions["train"].isEnabled()
    trigger(window, "analyze")
    assert window.analyze_options.quick_radio.isEnabled()  # a model now: the quick check is offered
    window.analyze_options.quick_radio.setChecked(True)
    assert window.analyze_options.kwargs() == {"quick": True} and not window.analyze_options.folds_spin.isEnabled()
    window.analyze_options.reject()

    # export: a folder that is not empty fails with what to do, then a real export + verification
    export = window.export_panel
    trigger(window, "export")
    assert in_view(window.export_dock) and export.export_button.isEnabled()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x.txt").write_text("x")
    export.out_edit.clear()
    qtbot.keyClicks(export.out_edit, str(taken))
    ended = run_job(qtbot, window, "export", export.export_button.click, timeout_s=120)
    assert ended[0][0] == "failed" and "not an empty folder" in ended[0][1]
    assert window.job_error_box is not None and window.job_error_box.isVisible()
    assert "choose a new bundle folder" in window.job_error_box.text()
    assert window.jobs_dock.isVisible() and window.job_panel.row("export").failed
    window.job_error_box.accept()
    qtbot.mouseClick(window.job_panel.row("export").button, Qt.MouseButton.LeftButton)  # "Close"
    qtbot.waitUntil(lambda: not window.jobs_dock.isVisible(), timeout=3000)
    export.out_edit.clear()
    qtbot.keyClicks(export.out_edit, str(tmp_path / "bundle"))
    ended = run_job(qtbot, window, "export", export.export_button.click, timeout_s=240, ends=2)
    assert [how for how, _ in ended] == ["finished", "finished"], ended
    assert (tmp_path / "bundle" / "manifest.json").is_file() and export.bundle == str(tmp_path / "bundle")
    assert export.verification is not None and export.class_table.rowCount() == len(project.classes())
    assert export.speed_table.rowCount() == 3 and export.verdict_label.text()
    assert window.loop_actions["export"].isEnabled()


@pytest.mark.slow
def test_cancel_during_training_leaves_no_run_and_one_training_at_a_time(window, qtbot, tmp_path: Path) -> None:
    window.open_project(tiny_project(tmp_path, noise=0.0))
    project = window.project
    before = project.connection.execute("SELECT id, split FROM images ORDER BY id").fetchall()
    window.job_overrides[TRAIN_TARGET] = {"epochs": 50, "image_size": 64, "batch_size": 2}
    trigger(window, "train")
    assert window.runner.is_running("train") and window.jobs_dock.isVisible()
    assert not window.loop_actions["train"].isEnabled() and not window.train_panel.train_button.isEnabled()
    assert window.loop_actions["analyze"].isEnabled()  # another kind may run beside it
    assert not window.fine_tune() and "already running" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.train_panel.plot.n_loss_points > 0, timeout=120_000)  # it trains
    asked: list[str] = []
    window.confirm_quit = lambda question: asked.append(question) or False  # "No": keep the window
    window.close()
    assert window.isVisible() and window.runner.is_running("train")
    assert asked and asked[0].startswith("A Fine-tune job is running — cancel it and quit?")
    row = window.job_panel.row("train")
    ended = run_job(qtbot, window, "train", lambda: qtbot.mouseClick(row.button, Qt.MouseButton.LeftButton),
                    timeout_s=60)
    assert ended == [("cancelled", None)]
    assert project.connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    runs = project.root / "runs"
    assert not runs.exists() or [p.name for p in runs.iterdir() if not p.name.startswith(".")] == []
    assert project.connection.execute("SELECT id, split FROM images ORDER BY id").fetchall() == before
    assert window.loop_actions["train"].isEnabled() and window.train_panel.train_button.isEnabled()
    assert "cancelled" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: not window.jobs_dock.isVisible(), timeout=3000)


def recorded_project(root: Path) -> tuple[Path, dict[str, int]]:
    """A tiny project with a recorded analysis: one issue of each type; returns ``{type: issue id}``."""
    project_dir = tiny_project(root, n=6, noise=0.0)
    with Project.open(project_dir) as project:
        classes = [c.id for c in project.classes()]
        boxes = sorted((b for bs in project.all_boxes().values() for b in bs), key=lambda b: b.id)
        swap, badloc, spurious, duplicate = boxes[:4]
        x1, y1, x2, y2 = badloc.xyxy
        image = project.image(badloc.image_id)
        moved = [max(0.0, x1 - 2), max(0.0, y1 - 2), min(image.width, x2 + 3), min(image.height, y2 + 3)]
        target = next(im for im in project.images() if not any(
            b.class_id == classes[0] and iou(b.xyxy, (8, 8, 30, 30)) > 0 for b in project.boxes(im.id)))
        other = next(c for c in classes if c != swap.class_id)
        issues = [
            NewIssue("overlooked", target.id, None, classes[0], 0.1,
                     {"action": "add_box", "class_id": classes[0], "xyxy": [8, 8, 30, 30]}),
            NewIssue("swap", swap.image_id, swap.id, swap.class_id, 0.2,
                     {"action": "set_class", "box_id": swap.id, "class_id": other}),
            NewIssue("badloc", badloc.image_id, badloc.id, badloc.class_id, 0.3,
                     {"action": "move_box", "box_id": badloc.id, "xyxy": moved}),
            NewIssue("spurious", spurious.image_id, spurious.id, spurious.class_id, 0.4,
                     {"action": "delete_box", "box_id": spurious.id}),
            NewIssue("duplicate", duplicate.image_id, duplicate.id, duplicate.class_id, 0.05,
                     {"action": "delete_box", "box_id": duplicate.id}),
        ]
        weak = [{"class": c.name, "boxes": 3, "images": 2, "ap50": 0.2, "label_quality": 0.6, "flagged": 1,
                 "confused_with": None, "confusion_share": 0.0, "recommendation": "augment" if k == 0 else "ok",
                 "reason": "few examples"} for k, c in enumerate(project.classes())]
        record_analysis(project, snapshot_id=project.create_snapshot(), run_id=None, mode="kfold", folds=3,
                        config={}, summary={"weak_classes": weak}, issues=issues)
        ids = {t: i for i, t in project.connection.execute("SELECT id, type FROM issues")}
    return project_dir, ids


def test_review_keys_accept_every_type_and_undo_reopens(window, qtbot, tmp_path: Path) -> None:
    project_dir, ids = recorded_project(tmp_path)
    window.open_project(project_dir)
    project, panel, canvas = window.project, window.review_panel, window.canvas
    assert in_view(window.review_dock)  # an analysed project opens with its queue
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_N)  # the window's N: the first issue of the queue, with its ghost
    first = get_issue(project, ids["duplicate"])
    assert panel.current_issue() == first and canvas.image.id == first.image_id and canvas.ghost == first
    assert canvas.selected == [first.box_id] and "issue 1/5: duplicate" in window.statusBar().currentMessage()
    keys = {"overlooked": Qt.Key.Key_Y, "swap": Qt.Key.Key_Return, "badloc": Qt.Key.Key_Enter,
            "spurious": Qt.Key.Key_Y, "duplicate": Qt.Key.Key_Y}
    for kind in ISSUE_TYPES:
        choose(panel.type_combo, kind)
        assert panel.current_issue().id == ids[kind] and canvas.ghost.id == ids[kind]
        assert canvas.ghost_marks(), kind  # the fix is drawn on this image
        qtbot.keyClick(canvas, keys[kind])
        assert get_issue(project, ids[kind]).status == "accepted", kind
    assert open_issues(project) == [] and panel.counts.text().startswith("All 5 reviewed")
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the last accept
    assert get_issue(project, ids["duplicate"]).status == "open"
    choose(panel.type_combo, None)
    assert [i.id for i in panel.issues] == [ids["duplicate"]]  # the canvas undo refreshed the queue
    panel.table.setFocus()
    qtbot.keyClick(panel.table, Qt.Key.Key_R)  # the queue's own keys
    assert get_issue(project, ids["duplicate"]).status == "rejected"


def test_review_keys_need_the_queue_and_leave_text_fields_alone(window, qtbot, tmp_path: Path) -> None:
    project_dir, ids = recorded_project(tmp_path)
    window.open_project(project_dir)
    project, panel, canvas = window.project, window.review_panel, window.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_N)
    issue = panel.current_issue()
    others = [im.id for im in project.images() if im.id != issue.image_id]
    window.show_image(others[0])  # the user moved on to another image: Y must not decide an unseen issue
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Y)
    assert get_issue(project, issue.id).status == "open" and "on another image" in window.statusBar().currentMessage()
    window.show_image(issue.image_id)
    window.show_dock(window.export_dock)  # tabified over the queue: review keys do nothing now
    assert not in_view(window.review_dock)
    qtbot.keyClick(canvas, Qt.Key.Key_Y)
    assert get_issue(project, issue.id).status == "open"
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, window.export_dock)  # beside the queue
    window.export_dock.show()
    window.review_dock.raise_()
    qtbot.waitUntil(lambda: in_view(window.review_dock) and in_view(window.export_dock), timeout=2000)
    window.export_panel.target_edit.setFocus()  # Enter in a text field of another dock is not "accept"
    qtbot.keyClick(window.export_panel.target_edit, Qt.Key.Key_Return)
    assert get_issue(project, issue.id).status == "open"
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_S)  # skip: the next issue, nothing decided
    assert panel.current_issue() != issue and get_issue(project, issue.id).status == "open"
    qtbot.keyClick(canvas, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    assert panel.current_issue() == issue
    qtbot.keyClick(canvas, Qt.Key.Key_R)
    assert get_issue(project, issue.id).status == "rejected" and len(open_issues(project)) == 4


def test_every_review_key_is_on_the_shortcut_sheet() -> None:
    bound = {(k, b.action) for b in BINDINGS for k in b.keys}
    names = {Qt.Key.Key_Y: "Y", Qt.Key.Key_Return: "Return", Qt.Key.Key_Enter: "Enter", Qt.Key.Key_R: "R",
             Qt.Key.Key_S: "S", Qt.Key.Key_N: "N"}
    actions = {"accept": "review_accept", "reject": "review_reject", "skip": "review_skip",
               "next": "next_issue", "previous": "previous_issue"}
    for (key, shift), action in review_module.KEYS.items():
        assert ((f"Shift+{names[key]}" if shift else names[key]), actions[action]) in bound


@pytest.mark.slow
def test_dashboard_shows_class_issues_and_augments_with_a_preview(window, qtbot, tmp_path: Path) -> None:
    project_dir, _ids = recorded_project(tmp_path)
    window.open_project(project_dir)
    project = window.project
    trigger(window, "weak")
    assert in_view(window.dashboard_dock) and len(window.dashboard.cards) == len(project.classes())
    first = project.classes()[0]
    show: QPushButton = window.dashboard.show_buttons[first.name]
    qtbot.mouseClick(show, Qt.MouseButton.LeftButton)
    assert in_view(window.review_dock) and window.review_panel.filters()["class_id"] == first.id
    n_images = project.image_count()
    ended = run_job(qtbot, window, "augment", lambda: trigger(window, "augment"), timeout_s=120)
    assert ended[0][0] == "finished" and ended[0][1]["classes"] == [first.name], ended
    preview = window.augment_preview
    assert preview is not None and preview.isVisible() and preview.tiles
    made = ended[0][1]["images"]
    assert made > 0 and project.image_count() == n_images + made
    assert window.image_model.rowCount() == n_images + made  # the list shows the new images
    qtbot.mouseClick(preview.delete_button, Qt.MouseButton.LeftButton)
    assert not preview.isVisible() and project.image_count() == n_images
    assert window.image_model.rowCount() == n_images and "deleted" in window.statusBar().currentMessage()


def test_welcome_without_a_project_then_recent_and_demo(window, qtbot, tmp_path: Path) -> None:
    assert window.stack.currentWidget() is window.welcome and window.welcome.isVisible()
    assert not any(a.isEnabled() for a in window.loop_actions.values())
    assert not window.review_dock.isVisible() and not window.jobs_dock.isVisible()
    demo = tmp_path / "demo"  # a finished demo project: "Open the demo project" opens it at once
    project_dir = tiny_project(demo, n=3, noise=0.0)
    project_dir.rename(demo / "project")
    (demo / DEMO_MARKER).write_text("made by `labeltool demo`\n")
    (demo / "project" / "runs" / "20250101-000000-edge").mkdir(parents=True)
    window.welcome.demo_root = demo
    window.welcome.refresh_demo()
    qtbot.mouseClick(window.welcome.demo_button, Qt.MouseButton.LeftButton)
    assert window.project is not None and window.project.root == (demo / "project").resolve()
    assert window.stack.currentWidget() is window.splitter and window.image_list.count() == 3
    assert window.loop_actions["analyze"].isEnabled() and not window.loop_actions["quick"].isEnabled()
    assert window.loop_actions["analyze"].text().startswith("&Analyze labels… (about ")
    assert window.loop_actions["train"].text().startswith("&Fine-tune (about ")
    other = gui_main.MainWindow()  # the next start: the demo is a recent project on the welcome screen
    qtbot.addWidget(other)
    assert other.welcome.recent_paths() == [str((demo / "project").resolve())]
    item = other.welcome.recent_list.item(0)
    other.welcome.recent_list.itemClicked.emit(item)
    assert other.project is not None and other.stack.currentWidget() is other.splitter


def test_fold_minutes_follow_the_dataset_and_stay_under_the_cap() -> None:
    assert analysis_minutes_per_fold(0.5, folds=3) == 0.5  # tiny set: the minimum
    assert analysis_minutes_per_fold(3.0, folds=3) == 2.0  # two thirds of the images per fold model
    assert analysis_minutes_per_fold(30.0, folds=3) == 4.0  # capped: 12 min in all on a CPU
    assert analysis_minutes_per_fold(30.0, folds=3, device="cuda") == 2.0
    with pytest.raises(ValueError, match="folds"):
        analysis_minutes_per_fold(1.0, folds=1)
