"""The review queue on a real project.db with a recorded analysis: filters, counts, accept / reject of
every fix type (undone from the canvas), stale issues, keys, and the ghost of the fix on the canvas."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from labeltool.core.errors import EditError
from labeltool.core.issue_order import analysis_headroom, issue_impacts
from labeltool.core.issues import (
    NewIssue,
    get_issue,
    iou,
    latest_analysis,
    list_issues,
    record_analysis,
)
from labeltool.core.model import Issue
from labeltool.core.store import Project
from labeltool.gui.canvas import Canvas
from labeltool.gui.review_panel import COLUMNS, ReviewPanel
from labeltool.jobs import drive
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job

pytestmark = pytest.mark.gui

SCORES = {"duplicate": 0.05, "overlooked": 0.1, "swap": 0.2, "badloc": 0.3, "spurious": 0.4}


def make_project(root: Path, *, mode: str = "kfold", analyse: bool = True,
                 summary: dict | None = None) -> tuple[Project, dict[str, int]]:
    """A 6-image demo project and an analysis with one issue of each type (plus a second swap);
    returns the open project and ``{type: issue id}`` (``swap2`` for the second swap)."""
    drive(demo_data_job(root / "d", n_images=6, size=64), lambda p: None)
    Project.create(root / "p").close()
    drive(import_job(root / "p", root / "d" / "annotations.json"), lambda p: None)
    project = Project.open(root / "p")
    if not analyse:
        return project, {}
    classes = [c.id for c in project.classes()]
    boxes = sorted((b for bs in project.all_boxes().values() for b in bs), key=lambda b: b.id)
    assert len(boxes) >= 5, "the demo project needs 5 boxes for these tests"
    swap, badloc, spurious, duplicate, swap2 = boxes[:5]
    other = next(c for c in classes if c != swap.class_id)
    other2 = next(c for c in classes if c != swap2.class_id)
    x1, y1, x2, y2 = badloc.xyxy
    image = project.image(badloc.image_id)
    moved = [max(0.0, x1 - 2), max(0.0, y1 - 2), min(image.width, x2 + 3), min(image.height, y2 + 3)]
    target = next(im for im in project.images()
                  if not any(b.class_id == classes[0] and iou(b.xyxy, (8, 8, 30, 30)) > 0 for b in project.boxes(im.id)))
    found = [
        NewIssue("overlooked", target.id, None, classes[0], SCORES["overlooked"],
                 {"action": "add_box", "class_id": classes[0], "xyxy": [8, 8, 30, 30]}),
        NewIssue("swap", swap.image_id, swap.id, swap.class_id, SCORES["swap"],
                 {"action": "set_class", "box_id": swap.id, "class_id": other}),
        NewIssue("badloc", badloc.image_id, badloc.id, badloc.class_id, SCORES["badloc"],
                 {"action": "move_box", "box_id": badloc.id, "xyxy": moved}),
        NewIssue("spurious", spurious.image_id, spurious.id, spurious.class_id, SCORES["spurious"],
                 {"action": "delete_box", "box_id": spurious.id}),
        NewIssue("duplicate", duplicate.image_id, duplicate.id, duplicate.class_id, SCORES["duplicate"],
                 {"action": "delete_box", "box_id": duplicate.id}),
        NewIssue("swap", swap2.image_id, swap2.id, swap2.class_id, 0.45,
                 {"action": "set_class", "box_id": swap2.id, "class_id": other2}),
    ]
    record_analysis(project, snapshot_id=project.create_snapshot(), run_id=None, mode=mode,
                    folds=3 if mode == "kfold" else None, config={}, summary=summary or {}, issues=found)
    ids = {}
    for row in project.connection.execute("SELECT id, type, score FROM issues ORDER BY id"):
        ids["swap2" if row[2] == 0.45 else row[1]] = row[0]
    return project, ids


class Workspace:
    """The review panel wired to a canvas the way the main window does it."""

    def __init__(self, project: Project, qtbot) -> None:
        self.project = project
        self.canvas, self.panel = Canvas(), ReviewPanel()
        qtbot.addWidget(self.canvas)
        qtbot.addWidget(self.panel)
        self.canvas.resize(400, 400)
        self.canvas.show()
        self.errors: list[tuple[str, BaseException]] = []
        self.shown: list[Issue | None] = []
        self.canvas.set_project(project)
        self.panel.set_project(project)
        self.panel.show_issue.connect(self.show)
        self.panel.edited.connect(self.canvas.reload)
        self.panel.error.connect(lambda title, exc: self.errors.append((title, exc)))
        self.canvas.edited.connect(self.panel.refresh)

    def show(self, issue: Issue | None) -> None:
        self.shown.append(issue)
        if issue is not None:
            if self.canvas.image is None or self.canvas.image.id != issue.image_id:
                self.canvas.show_image(issue.image_id)
            self.canvas.select_box(issue.box_id)
        self.canvas.set_ghost(issue)


@pytest.fixture
def ws(tmp_path: Path, qtbot) -> Workspace:
    project, ids = make_project(tmp_path)
    w = Workspace(project, qtbot)
    w.ids = ids  # type: ignore[attr-defined]
    yield w
    project.close()


def texts(panel: ReviewPanel) -> list[tuple[str, ...]]:
    return [(r.problem, r.class_name, r.score, r.fix) for r in panel.model.rows]


def test_queue_is_ranked_and_filters_change_rows_and_counts(ws) -> None:
    panel, project = ws.panel, ws.project
    assert [float(r.score) for r in panel.model.rows] == sorted(SCORES.values()) + [0.45]
    assert panel.counts.text().startswith("6 to review of 6 — 1 missing box, 2 wrong class, 1 badly placed box")
    assert panel.header.text().startswith("Analysis #1 · 3-fold (out-of-sample)")
    assert panel.model.rows[0].image == Path(project.image(get_issue(project, ws.ids["duplicate"]).image_id).path).name
    panel.set_filter(type="swap")
    assert [r.problem for r in panel.model.rows] == ["Wrong class", "Wrong class"]
    assert panel.shown.text() == "2 of 6 match the filters"
    assert ws.shown[-1].id == ws.ids["swap"]  # the first match is shown
    swap = get_issue(project, ws.ids["swap"])
    names = {c.id: c.name for c in project.classes()}
    assert panel.model.rows[0].fix == f"Change '{names[swap.class_id]}' to '{names[swap.fix['class_id']]}'"
    # class filter through the combo, as a user does it: the box's class or the suggested class
    panel.set_filter()
    combo = panel.class_combo
    combo.setCurrentIndex(combo.findData(swap.fix["class_id"]))
    combo.activated.emit(combo.currentIndex())
    expected = [i.id for i in panel.all_issues
                if swap.fix["class_id"] in (i.class_id, i.fix.get("class_id") if i.type == "swap" else None)]
    assert [i.id for i in panel.issues] == expected and ws.ids["swap"] in expected and len(expected) < 6
    panel.set_filter(status="accepted")
    assert panel.model.rowCount() == 0 and panel.shown.text() == "0 shown"
    assert ws.shown[-1] is None
    panel.set_filter(type="badloc", status=None)
    assert len(panel.issues) == 1
    with pytest.raises(ValueError, match="unknown issue type"):
        panel.set_filter(type="nonsense")


def test_the_order_box_puts_the_weak_class_first(tmp_path: Path, qtbot) -> None:
    # the class of the least likely single-class issue (spurious, 0.4) is the weak one: headroom 0.9, others 0.05
    # (the same demo data gives the same ids, so a first project tells which class that is)
    project, ids = make_project(tmp_path / "first")
    weak = get_issue(project, ids["spurious"]).class_id
    project.close()
    headroom = {str(c): (0.9 if c == weak else 0.05) for c in range(1, 20)}
    project, ids = make_project(tmp_path / "weak", summary={"class_headroom": headroom})
    w = Workspace(project, qtbot)
    panel = w.panel
    assert panel.order() == "likely" and panel.issues[0].id == ids["duplicate"]
    gain_col = COLUMNS.index("gain")
    assert panel.table.isColumnHidden(gain_col)  # the gain column only in the impact order
    combo = panel.order_combo  # as a user does it
    combo.setCurrentIndex(combo.findData("impact"))
    combo.activated.emit(combo.currentIndex())
    gain = issue_impacts(analysis_headroom(project, latest_analysis(project)), panel.issues)
    assert [gain[i.id] for i in panel.issues] == sorted(gain.values(), reverse=True)
    touches = [weak in (i.class_id, i.fix.get("class_id")) for i in panel.issues]
    assert touches[0] and touches == sorted(touches, reverse=True)  # every weak-class issue before the others
    assert w.shown[-1].id == panel.issues[0].id  # its first issue is shown
    assert f"expected gain {gain[panel.issues[0].id]:.2f}" in panel.detail.text()
    assert not panel.table.isColumnHidden(gain_col)
    shown_gains = [panel.model.data(panel.model.index(r, gain_col)) for r in range(panel.model.rowCount())]
    assert shown_gains == [f"{gain[i.id]:.2f}" for i in panel.issues]
    assert "gain" in panel.model.headerData(gain_col, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    assert [i.id for i in panel.issues] != [i.id for i in list_issues(project)]
    panel.set_filter(type="swap")  # filters keep the order
    assert [gain[i.id] for i in panel.issues] == sorted((gain[i.id] for i in panel.issues), reverse=True)
    panel.refresh()
    assert panel.order() == "impact"
    with pytest.raises(ValueError, match="unknown review order"):
        panel.set_order("best")
    panel.set_order("likely")
    assert panel.table.isColumnHidden(gain_col) and [i.id for i in panel.issues] == [i.id for i in list_issues(project, types=["swap"])]
    panel.set_order("impact")
    project.close()
    # a quick check cannot tell which classes are weak: most likely first, and the panel says why
    project, ids = make_project(tmp_path / "quick", mode="quick", summary={"class_headroom": headroom})
    panel.set_project(project)
    assert panel.order() == "impact" and panel.issues[0].id == ids["duplicate"]
    assert "cannot tell which classes are weak: a quick check's per-class APs are in-sample" in panel.shown.text()
    assert "expected gain" not in panel.detail.text() and panel.table.isColumnHidden(gain_col)
    project.close()
    # fold models too weak to judge: says so, and the long note wraps instead of widening the dock
    project, ids = make_project(tmp_path / "weakmodels", summary={"class_headroom": None, "oof_map50": 0.12})
    panel.set_project(project)
    assert panel.issues[0].id == ids["duplicate"] and panel.table.isColumnHidden(gain_col)
    assert "too weak to judge classes, mAP@.5 0.12" in panel.shown.text()
    assert panel.minimumSizeHint().width() < 600
    project.close()


def _box(project: Project, box_id: int):
    row = project.connection.execute("SELECT class_id, x1, y1, x2, y2 FROM boxes WHERE id = ?", (box_id,)).fetchone()
    return None if row is None else (row[0], tuple(round(v, 3) for v in row[1:]))


GHOST_KINDS = {"overlooked": ["target"], "swap": ["highlight", "outline"], "badloc": ["highlight", "target"],
               "spurious": ["highlight", "cross"], "duplicate": ["highlight", "cross"]}


@pytest.mark.parametrize("kind", ["overlooked", "swap", "badloc", "spurious", "duplicate"])
def test_accepting_each_type_changes_the_db_and_canvas_undo_reverts_it(ws, qtbot, kind: str) -> None:
    project, panel, canvas = ws.project, ws.panel, ws.canvas
    issue = get_issue(project, ws.ids[kind])
    panel.set_filter(type=kind)
    assert ws.shown[-1] == issue and canvas.image.id == issue.image_id and canvas.ghost == issue
    marks = canvas.ghost_marks()
    assert [m.kind for m in marks] == GHOST_KINDS[kind]
    if "xyxy" in issue.fix:
        assert [m for m in marks if m.kind == "target"][0].rect == tuple(issue.fix["xyxy"])
    before_boxes = {b.id: (b.class_id, b.xyxy) for b in project.boxes(issue.image_id)}
    before_box = _box(project, issue.box_id) if issue.box_id else None
    with_ghost = canvas.grab().toImage()
    canvas.set_ghost(None)
    assert canvas.ghost_marks() == [] and canvas.grab().toImage() != with_ghost  # the ghost was painted
    canvas.set_ghost(issue)
    if kind in ("overlooked", "badloc"):
        qtbot.mouseClick(panel.buttons["accept"], Qt.MouseButton.LeftButton)
    else:
        panel.table.setFocus()
        qtbot.keyClick(panel.table, Qt.Key.Key_Y)
    assert ws.errors == []
    assert get_issue(project, issue.id).status == "accepted"
    after = {b.id: (b.class_id, b.xyxy) for b in project.boxes(issue.image_id)}
    if kind == "overlooked":
        (new,) = set(after) - set(before_boxes)
        assert after[new] == (issue.fix["class_id"], tuple(issue.fix["xyxy"]))
    elif kind == "swap":
        assert _box(project, issue.box_id) == (issue.fix["class_id"], before_box[1])
    elif kind == "badloc":
        assert _box(project, issue.box_id) == (before_box[0], tuple(round(v, 3) for v in issue.fix["xyxy"]))
    else:
        assert _box(project, issue.box_id) is None and len(after) == len(before_boxes) - 1
    assert canvas.ghost is None or canvas.ghost.id != issue.id  # decided: its ghost is gone
    assert issue.id not in [i.id for i in panel.issues]
    canvas.undo()
    assert {b.id: (b.class_id, b.xyxy) for b in project.boxes(issue.image_id)} == before_boxes
    assert get_issue(project, issue.id).status == "open"
    assert issue.id in [i.id for i in panel.issues]  # the canvas edit refreshed the queue


def test_accept_moves_to_the_next_and_reject_marks_rejected(ws, qtbot) -> None:
    project, panel = ws.project, ws.panel
    panel.select_row(0)
    first, second = panel.issues[0], panel.issues[1]
    qtbot.mouseClick(panel.buttons["reject"], Qt.MouseButton.LeftButton)
    assert get_issue(project, first.id).status == "rejected"
    assert panel.current_issue() == second and ws.shown[-1] == second and ws.canvas.ghost == second
    assert panel.counts.text().startswith("5 to review of 6") and "1 rejected" in panel.counts.text()
    panel.set_filter(status="rejected")
    assert [i.id for i in panel.issues] == [first.id]
    assert not panel.buttons["accept"].isEnabled()  # decided issues cannot be decided again
    ws.canvas.undo()
    assert get_issue(project, first.id).status == "open" and panel.issues == []


def test_keys_step_skip_and_decide(ws, qtbot) -> None:
    panel = ws.panel
    panel.table.setFocus()
    ids = [i.id for i in panel.issues]
    qtbot.keyClick(panel.table, Qt.Key.Key_N)
    assert panel.current_issue().id == ids[0]
    qtbot.keyClick(panel.table, Qt.Key.Key_S)
    assert panel.current_issue().id == ids[1]
    qtbot.keyClick(panel.table, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(panel.table, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    assert panel.current_issue().id == ids[-1]  # wraps around
    qtbot.keyClick(panel.table, Qt.Key.Key_R)
    assert get_issue(ws.project, ids[-1]).status == "rejected"
    assert panel.current_issue().id == ids[-2]  # the last one: then the previous
    assert [s.id for s in ws.shown] == [ids[0], ids[1], ids[0], ids[-1], ids[-2]]


def test_a_stale_issue_reports_an_error_and_changes_nothing(ws) -> None:
    project, panel = ws.project, ws.panel
    issue = get_issue(project, ws.ids["swap"])
    panel.set_filter(type="swap")
    x1, y1, x2, y2 = project.box(issue.box_id).xyxy
    project.delete_boxes([issue.box_id])  # someone deleted the box after the analysis
    edits = len(project.history())
    assert not panel.accept_current()
    ((title, exc),) = ws.errors
    assert isinstance(exc, EditError) and "changed since the analysis" in str(exc) and "not applied" in title
    assert len(project.history()) == edits and get_issue(project, issue.id).status == "open"
    assert panel.current_issue() == issue  # still selected, can be rejected
    assert panel.reject_current() and get_issue(project, issue.id).status == "rejected"


def test_deciding_elsewhere_clears_the_ghost_on_reload(ws) -> None:
    from labeltool.core.issues import accept_issues

    issue = get_issue(ws.project, ws.ids["spurious"])
    ws.show(issue)
    assert ws.canvas.ghost_marks()
    accept_issues(ws.project, [issue.id])  # e.g. the CLI
    ws.canvas.reload()
    assert ws.canvas.ghost is None and ws.canvas.ghost_marks() == []
    ws.show(get_issue(ws.project, ws.ids["overlooked"]))
    other = next(im.id for im in ws.project.images() if im.id != ws.canvas.image.id)
    ws.canvas.show_image(other)
    assert ws.canvas.ghost is None  # another image: the ghost goes


def test_without_analysis_the_panel_says_what_to_do(tmp_path: Path, qtbot) -> None:
    project, _ = make_project(tmp_path, analyse=False)
    panel = ReviewPanel()
    qtbot.addWidget(panel)
    assert "Open a project" in panel.message.text()
    panel.set_project(project)
    assert "Run Analyze (Loop menu)" in panel.message.text() and not panel.message.isHidden()
    assert panel.table.isHidden() and panel.buttons["accept"].isHidden()
    panel.table.setFocus()
    assert not panel.accept_current()
    project.close()


def test_a_quick_analysis_is_labelled_less_reliable(tmp_path: Path, qtbot) -> None:
    project, _ = make_project(tmp_path, mode="quick")
    panel = ReviewPanel()
    qtbot.addWidget(panel)
    panel.set_project(project)
    assert not panel.warning.isHidden() and "less reliable (in-sample)" in panel.warning.text()
    assert "quick (in-sample)" in panel.header.text() and panel.message.isHidden()
    project.close()


def test_a_mouse_click_on_a_row_enables_accept_and_reject(ws, qtbot) -> None:
    """Qt moves the current row before it selects it: the buttons must follow the selection."""
    panel = ws.panel
    panel.resize(600, 400)
    panel.show()
    qtbot.waitExposed(panel)
    assert not panel.buttons["accept"].isEnabled()  # nothing chosen yet
    rect = panel.table.visualRect(panel.model.index(1, COLUMNS.index("problem")))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert panel.current_issue() == panel.issues[1] and ws.shown[-1] == panel.issues[1]
    assert panel.buttons["accept"].isEnabled() and panel.buttons["reject"].isEnabled()
    issue = panel.issues[1]
    qtbot.mouseClick(panel.buttons["accept"], Qt.MouseButton.LeftButton)
    assert get_issue(ws.project, issue.id).status == "accepted"
