"""The issue queue: recording analyses, listing/filtering, accepting/rejecting through the edit log."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from labeltool.core import issue_order as order
from labeltool.core import issues as iss
from labeltool.core.errors import EditError, ProjectError
from labeltool.core.issues import NewIssue
from labeltool.core.store import Project


def add_image(p: Project, name: str, *, width: int = 100, height: int = 80) -> int:
    with p.edit("add image") as e:
        return e.insert("images", {"path": f"images/{name}", "sha256": name, "width": width, "height": height,
                                   "split": None, "added_at": "t", "origin": None, "labeled": 1})


class World:
    """Classes scratch/dent/crack; image a: b1 scratch, b2 dent; image b: b3 + b4 crack (duplicates)."""

    def __init__(self, p: Project) -> None:
        self.p = p
        self.scratch, self.dent, self.crack = (p.add_class(n) for n in ("scratch", "dent", "crack"))
        self.a, self.b = add_image(p, "a.png"), add_image(p, "b.png")
        with p.edit("label") as e:
            self.b1 = e.add_box(image_id=self.a, class_id=self.scratch, xyxy=(10, 10, 40, 30))
            self.b2 = e.add_box(image_id=self.a, class_id=self.dent, xyxy=(50, 40, 90, 70))
            self.b3 = e.add_box(image_id=self.b, class_id=self.crack, xyxy=(5, 5, 20, 20))
            self.b4 = e.add_box(image_id=self.b, class_id=self.crack, xyxy=(6, 6, 21, 21))

    def overlooked(self, xyxy: Any = (60, 5, 80, 25), score: float = 0.1, image: int | None = None) -> NewIssue:
        return NewIssue("overlooked", image or self.a, None, self.dent, score,
                        {"action": "add_box", "class_id": self.dent, "xyxy": list(xyxy)})

    def swap(self, score: float = 0.2) -> NewIssue:
        return NewIssue("swap", self.a, self.b1, self.scratch, score,
                        {"action": "set_class", "box_id": self.b1, "class_id": self.crack})

    def badloc(self, score: float = 0.3) -> NewIssue:
        return NewIssue("badloc", self.a, self.b2, self.dent, score,
                        {"action": "move_box", "box_id": self.b2, "xyxy": [52, 42, 95, 75]})

    def spurious(self, score: float = 0.4) -> NewIssue:
        return NewIssue("spurious", self.a, self.b1, self.scratch, score, {"action": "delete_box", "box_id": self.b1})

    def duplicate(self, score: float = 0.05) -> NewIssue:
        return NewIssue("duplicate", self.b, self.b4, self.crack, score, {"action": "delete_box", "box_id": self.b4})

    def all(self) -> list[NewIssue]:
        return [self.overlooked(), self.swap(), self.badloc(), self.spurious(), self.duplicate()]

    def analyse(self, found: list[NewIssue], **kw: Any) -> tuple[int, dict[str, int]]:
        args: dict[str, Any] = {"run_id": None, "mode": "kfold", "folds": 5, "config": {"thresholds": {"t": 0.5}},
                                "summary": {"weak_classes": []}}
        return iss.record_analysis(self.p, snapshot_id=self.p.create_snapshot(), issues=found, **{**args, **kw})

    def state(self) -> tuple[Any, ...]:
        """Every box and issue status: compared before/after to prove undo restores all."""
        boxes = sorted((b.id, b.class_id, b.xyxy) for i in (self.a, self.b) for b in self.p.boxes(i))
        status = self.p.connection.execute("SELECT id, status FROM issues ORDER BY id").fetchall()
        return boxes, status


@pytest.fixture
def w(tmp_path: Path) -> World:
    with Project.create(tmp_path / "p") as p:
        yield World(p)


def _by_type(w: World, analysis_id: int | None = None) -> dict[str, iss.Issue]:
    return {i.type: i for i in iss.list_issues(w.p, analysis_id=analysis_id, status=None)}


def test_labels_hash_ignores_order_and_float_noise_but_not_changes(w: World) -> None:
    conn = w.p.connection
    h = iss.image_labels_hash(conn, w.a)
    assert h == iss._labels_hash([(w.dent, 50, 40, 90, 70), (w.scratch, 10, 10, 40, 30.0001)])
    w.p.move_box(w.b2, (50, 40, 90, 71))
    assert iss.image_labels_hash(conn, w.a) != h
    w.p.undo()
    w.p.set_box_class(w.b1, w.crack)
    assert iss.image_labels_hash(conn, w.a) != h
    assert iss.image_labels_hash(conn, w.b) != iss.image_labels_hash(conn, 999)  # no boxes: the empty hash


def test_record_list_filter_and_rank(w: World) -> None:
    assert iss.latest_analysis(w.p) is None and iss.list_issues(w.p) == []
    aid, counts = w.analyse(w.all(), config={"thresholds": {"overlooked": 0.4}, "ap": math.nan},
                            summary={"weak_classes": [{"class": "dent", "ap50": float("nan")}]})
    assert counts == {"recorded": 5, "suppressed_rejected": 0, "superseded": 0}
    analysis = iss.latest_analysis(w.p)
    assert analysis is not None and analysis.id == aid and analysis.mode == "kfold" and analysis.folds == 5
    assert analysis.config == {"thresholds": {"overlooked": 0.4}, "ap": None}  # NaN stored as null
    assert analysis.summary["weak_classes"][0]["ap50"] is None
    found = iss.list_issues(w.p)
    assert [i.type for i in found] == ["duplicate", "overlooked", "swap", "badloc", "spurious"]  # score ascending
    assert [i.score for i in found] == sorted(i.score for i in found)
    assert {i.type for i in iss.list_issues(w.p, types=["swap", "badloc"])} == {"swap", "badloc"}
    assert {i.type for i in iss.list_issues(w.p, class_names=["dent"])} == {"overlooked", "badloc"}
    assert {i.type for i in iss.list_issues(w.p, class_names=["crack"])} == {"duplicate", "swap"}  # swap target
    assert iss.list_issues(w.p, status="accepted") == []
    dup = _by_type(w)["duplicate"]
    assert dup.fix == {"action": "delete_box", "box_id": w.b4} and dup.labels_hash == iss.image_labels_hash(
        w.p.connection, w.b)
    assert iss.issue_counts(w.p)["swap"] == {"open": 1, "accepted": 0, "rejected": 0, "superseded": 0}
    with pytest.raises(ValueError, match="unknown issue type"):
        iss.list_issues(w.p, types=["typo"])
    with pytest.raises(ValueError, match="unknown class"):
        iss.list_issues(w.p, class_names=["rust"])
    with pytest.raises(ProjectError, match="analysis 99 does not exist"):
        iss.get_analysis(w.p, 99)


def test_impact_order_puts_the_weak_class_first(w: World) -> None:
    # scores: duplicate (crack) .05, overlooked (dent) .1, swap (scratch -> crack) .2, badloc (dent) .3,
    # spurious (scratch) .4; the analysis found dent and scratch learnt (AP .95, .9) and crack weak (AP .4)
    headroom = {str(w.scratch): 0.1, str(w.dent): 0.05, str(w.crack): 0.6}
    w.analyse(w.all(), summary={"weak_classes": [], "class_headroom": headroom})
    queue = order.issue_queue(w.p, order="impact")
    assert [i.type for i in queue.issues] == ["duplicate", "swap", "spurious", "overlooked", "badloc"]
    assert queue.note is None
    assert [round(queue.gains[i.id], 3) for i in queue.issues] == [0.57, 0.48, 0.06, 0.045, 0.035]  # (1-score) x room
    dent = order.issue_queue(w.p, order="impact", class_names=["dent"])
    assert [i.type for i in dent.issues] == ["overlooked", "badloc"]
    assert dent.gains == {i.id: queue.gains[i.id] for i in dent.issues}  # a filter does not change a gain
    likely = ["duplicate", "overlooked", "swap", "badloc", "spurious"]
    same = order.issue_queue(w.p)  # most likely first, gains kept (the CLI's JSON shows them in either order)
    assert [i.type for i in same.issues] == likely and same.gains == queue.gains and same.note is None
    assert [i.type for i in iss.list_issues(w.p)] == likely
    with pytest.raises(ValueError, match="order must be one of"):
        order.issue_queue(w.p, order="best")
    # no headroom: a quick check (in-sample APs), models too weak to judge (stored None), or nothing stored
    for kw, why in (({"mode": "quick", "folds": None, "summary": {"class_headroom": headroom}},
                     "in-sample; run a full analysis"),
                    ({"summary": {"class_headroom": None, "oof_map50": 0.12}},
                     "too weak to judge classes, mAP@.5 0.12 (below 0.3); give the analysis more minutes"),
                    ({}, "kept no per-class out-of-sample AP; analyze again")):
        w.analyse(w.all(), **kw)
        assert order.analysis_headroom(w.p, iss.latest_analysis(w.p)) is None
        queue = order.issue_queue(w.p, order="impact")
        assert [i.type for i in queue.issues] == likely and queue.gains is None
        assert queue.note.startswith("most likely first — this analysis cannot tell") and why in queue.note
        assert order.issue_queue(w.p).note is None  # only the impact order needs the headroom
        assert queue.issues == iss.list_issues(w.p)  # no headroom: order unchanged
    # recorded before the headroom was kept: taken from the stored per-class AP (names -> ids), junk skipped
    per_class = [{"name": "scratch", "ap50": 0.9}, {"name": "dent", "ap50": 0.95}, {"name": "crack", "ap50": 0.4},
                 {"name": "rust", "ap50": 0.1}]
    w.analyse(w.all(), summary={"oof_map50": 0.6, "evaluation": {"per_class": per_class}})
    assert order.analysis_headroom(w.p, iss.latest_analysis(w.p)) == pytest.approx(
        {w.scratch: 0.1, w.dent: 0.05, w.crack: 0.6})
    assert [i.type for i in order.issue_queue(w.p, order="impact").issues][:2] == ["duplicate", "swap"]
    w.analyse(w.all(), summary={"oof_map50": 0.1, "evaluation": {"per_class": per_class}})  # too weak to judge
    assert order.analysis_headroom(w.p, iss.latest_analysis(w.p)) is None
    w.analyse(w.all(), summary={"class_headroom": {str(w.crack): 0.6, str(w.dent): None, "x": 1.0}})
    assert order.analysis_headroom(w.p, iss.latest_analysis(w.p)) == {w.crack: 0.6}


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        ({"type": "typo"}, ValueError, "type must be one of"),
        ({"score": 1.5}, ValueError, "score must be"),
        ({"score": math.nan}, ValueError, "score must be"),
        ({"image_id": 99}, ValueError, "no image 99"),
        ({"fix": {"action": "delete_box", "box_id": 1}}, ValueError, "action 'set_class'"),
        ({"box_id": 2}, ValueError, "equal to fix"),
        ({"fix": {"action": "set_class", "box_id": 1, "class_id": 77}}, ValueError, "class_id of a class"),
        ({"box_id": 1.0}, TypeError, "box_id must be an int"),
    ],
)
def test_record_refuses_bad_issues_and_writes_nothing(w: World, bad: dict, error: type, match: str) -> None:
    good = w.swap()
    fields = {"type": good.type, "image_id": good.image_id, "box_id": good.box_id, "class_id": good.class_id,
              "score": good.score, "fix": good.fix}
    with pytest.raises(error, match=match):
        w.analyse([w.duplicate(), NewIssue(**{**fields, **bad})])
    assert w.p.connection.execute("SELECT count(*) FROM analyses").fetchone()[0] == 0


def test_record_refuses_bad_analysis_arguments_and_clips_boxes(w: World) -> None:
    with pytest.raises(ValueError, match="mode"):
        w.analyse([], mode="fast")
    with pytest.raises(ValueError, match="folds"):
        w.analyse([], folds=None)
    with pytest.raises(ValueError, match="empty or outside"):
        w.analyse([w.overlooked(xyxy=(120, 5, 130, 25))])
    with pytest.raises(ProjectError, match="run 5 does not exist"):
        w.analyse([], run_id=5)
    aid, _ = w.analyse([w.overlooked(xyxy=(90, -2, 104.5, 25))], mode="quick", folds=None)
    assert iss.list_issues(w.p)[0].fix["xyxy"] == [90.0, 0.0, 100.0, 25.0]  # clipped to the 100x80 image
    assert iss.get_analysis(w.p, aid).mode == "quick"


EXPECTED = {  # type -> what accepting it does to (b1, b2, b4, number of dent boxes on image a)
    "overlooked": lambda w: len([b for b in w.p.boxes(w.a) if b.class_id == w.dent]) == 2,
    "swap": lambda w: w.p.box(w.b1).class_id == w.crack and w.p.box(w.b1).xyxy == (10, 10, 40, 30),
    "badloc": lambda w: w.p.box(w.b2).xyxy == (52, 42, 95, 75) and w.p.box(w.b2).class_id == w.dent,
    "spurious": lambda w: [b.id for b in w.p.boxes(w.a)] == [w.b2],
    "duplicate": lambda w: [b.id for b in w.p.boxes(w.b)] == [w.b3],
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_accepting_each_fix_type_is_one_undoable_edit(w: World, kind: str) -> None:
    w.analyse(w.all())
    issue = _by_type(w)[kind]
    before, n_edits = w.state(), len(w.p.history())
    assert not EXPECTED[kind](w)
    iss.accept_issues(w.p, [issue.id])
    assert EXPECTED[kind](w)
    assert iss.get_issue(w.p, issue.id).status == "accepted"
    log = w.p.history()
    assert len(log) == n_edits + 1 and log[0].action == "accept issue"
    assert w.p.undo() == log[0].id
    assert w.state() == before  # labels and status restored
    w.p.redo()
    assert EXPECTED[kind](w) and iss.get_issue(w.p, issue.id).status == "accepted"


def test_accepting_several_issues_is_one_edit(w: World) -> None:
    w.analyse(w.all())
    t = _by_type(w)
    before = w.state()
    iss.accept_issues(w.p, [t["swap"].id, t["badloc"].id, t["overlooked"].id, t["duplicate"].id])
    assert w.p.history()[0].action == "accept 4 issues"
    assert all(EXPECTED[k](w) for k in ("swap", "badloc", "overlooked", "duplicate"))
    assert iss.issue_counts(w.p)["badloc"]["accepted"] == 1
    w.p.undo()
    assert w.state() == before


def _refused(w: World, issue_ids: list[int], match: str) -> None:
    before, n_edits = w.state(), len(w.p.history())
    with pytest.raises(EditError, match=match) as info:
        iss.accept_issues(w.p, issue_ids)
    assert "labeltool analyze" in str(info.value)
    assert w.state() == before and len(w.p.history()) == n_edits  # nothing changed


def test_accepting_a_stale_issue_changes_nothing(w: World) -> None:
    w.analyse(w.all())
    t = _by_type(w)
    w.p.delete_boxes([w.b1])
    _refused(w, [t["overlooked"].id, t["swap"].id], "box .* no longer exists.*labels changed since the analysis")
    _refused(w, [t["spurious"].id], "no longer exists")
    w.p.undo()
    w.p.move_box(w.b2, (50, 40, 91, 70))
    _refused(w, [t["badloc"].id], "moved or resized")
    w.p.set_box_class(w.b1, w.dent)
    _refused(w, [t["swap"].id], "another class")
    _refused(w, [t["spurious"].id], "was changed")
    w.p.add_box(w.a, w.dent, (61, 5, 80, 25))  # somebody labeled the overlooked defect meanwhile
    _refused(w, [t["overlooked"].id], "already there")
    iss.accept_issues(w.p, [t["duplicate"].id])
    _refused(w, [t["duplicate"].id], "already accepted")
    with pytest.raises(EditError, match="issue 999 does not exist"):
        iss.accept_issues(w.p, [999])


def test_accepting_two_issues_on_one_box_one_after_the_other(w: World) -> None:
    w.analyse([w.swap(), NewIssue("badloc", w.a, w.b1, w.scratch, 0.3,
                                  {"action": "move_box", "box_id": w.b1, "xyxy": [11, 11, 41, 31]})])
    t = _by_type(w)
    iss.accept_issues(w.p, [t["swap"].id])
    iss.accept_issues(w.p, [t["badloc"].id])  # the class changed, but a move does not depend on it
    assert w.p.box(w.b1).class_id == w.crack and w.p.box(w.b1).xyxy == (11, 11, 41, 31)


def test_rejected_issues_stay_quiet_until_the_image_labels_change(w: World) -> None:
    w.analyse(w.all())
    t = _by_type(w)
    iss.reject_issues(w.p, [t["swap"].id, t["overlooked"].id])
    assert w.p.history()[0].action == "reject 2 issues"
    assert iss.issue_counts(w.p)["swap"]["rejected"] == 1
    with pytest.raises(EditError, match="already rejected"):
        iss.reject_issues(w.p, [t["swap"].id])
    # same labels: the rejected swap and an overlooked box overlapping the rejected one are not raised again;
    # an overlooked box elsewhere and the other issues are
    again = [w.swap(0.1), w.overlooked((61, 6, 81, 26)), w.overlooked((5, 50, 25, 70)), w.badloc(), w.duplicate()]
    _, counts = w.analyse(again)
    assert counts == {"recorded": 3, "suppressed_rejected": 2, "superseded": 3}
    assert sorted(i.type for i in iss.list_issues(w.p)) == ["badloc", "duplicate", "overlooked"]
    assert iss.list_issues(w.p, types=["overlooked"])[0].fix["xyxy"] == [5, 50, 25, 70]
    # the labels of image a change: the swap is raised again; an unrelated image's labels do not matter
    w.p.move_box(w.b2, (50, 40, 90, 72))
    _, counts = w.analyse([w.swap(), w.overlooked((61, 6, 81, 26))])
    assert counts["recorded"] == 2 and counts["suppressed_rejected"] == 0


def test_rejecting_is_undoable(w: World) -> None:
    w.analyse(w.all())
    swap = _by_type(w)["swap"]
    iss.reject_issues(w.p, [swap.id])
    assert w.p.history()[0].action == "reject issue"
    w.p.undo()
    assert iss.get_issue(w.p, swap.id).status == "open"
    _, counts = w.analyse([w.swap()])  # the rejection was undone: nothing suppressed
    assert counts["suppressed_rejected"] == 0


def test_a_new_analysis_supersedes_open_issues_only(w: World) -> None:
    first, _ = w.analyse(w.all())
    t = _by_type(w)
    iss.accept_issues(w.p, [t["duplicate"].id])
    iss.reject_issues(w.p, [t["badloc"].id])
    second, counts = w.analyse([w.swap()])
    assert counts == {"recorded": 1, "suppressed_rejected": 0, "superseded": 3}
    old = {i.type: i.status for i in iss.list_issues(w.p, analysis_id=first, status=None)}
    assert old == {"overlooked": "superseded", "swap": "superseded", "spurious": "superseded",
                   "duplicate": "accepted", "badloc": "rejected"}
    assert [i.analysis_id for i in iss.list_issues(w.p)] == [second]  # default: the latest analysis
    assert iss.issue_counts(w.p, analysis_id=first)["swap"]["superseded"] == 1
    _refused(w, [t["swap"].id], "already superseded")


def test_superseding_drops_only_a_redo_branch_that_touches_those_issues(w: World) -> None:
    w.analyse(w.all())
    t = _by_type(w)
    iss.accept_issues(w.p, [t["swap"].id])
    w.p.undo()
    w.analyse([])  # the swap issue is superseded: redoing its acceptance would fail, so it is dropped
    assert not w.p.can_redo() and w.p.redo() is None
    w.analyse(w.all())
    w.p.add_box(w.b, w.crack, (40, 40, 60, 60))
    w.p.undo()
    w.analyse([])  # an undone label edit that touches no issue stays redoable
    assert w.p.can_redo()
    w.p.redo()
    assert len(w.p.boxes(w.b)) == 3
