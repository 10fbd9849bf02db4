"""Review-queue logic without Qt: filters, counts, navigation, wording, weak-class rows, ghost marks,
augment-set captions — on issues recorded in a real project.db."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeltool.core import review
from labeltool.core.derived import AugmentSet
from labeltool.core.issues import (
    NewIssue,
    accept_issues,
    latest_analysis,
    list_issues,
    record_analysis,
    reject_issues,
)
from labeltool.core.model import Issue
from labeltool.core.store import Project


@pytest.fixture
def world(tmp_path: Path):
    """Two classes, two images, four boxes and an analysis with one issue of each type."""
    p = Project.create(tmp_path / "p")
    dent, scratch = p.add_class("dent", color="#3cb44b"), p.add_class("scratch", color="#e6194b")
    with p.edit("add images") as e:
        a = e.insert("images", {"path": "images/a.png", "sha256": "a" * 64, "width": 100, "height": 80,
                                "split": None, "added_at": "t", "origin": None, "labeled": 1})
        b = e.insert("images", {"path": "images/sub/b.png", "sha256": "b" * 64, "width": 100, "height": 80,
                                "split": None, "added_at": "t", "origin": None, "labeled": 1})
    b1, b2, b3, b4 = (p.add_box(a, dent, (10, 10, 30, 30)), p.add_box(a, scratch, (40, 40, 60, 60)),
                      p.add_box(b, dent, (5, 5, 20, 20)), p.add_box(b, dent, (6, 5, 20, 21)))
    found = [
        NewIssue("overlooked", b, None, scratch, 0.1, {"action": "add_box", "class_id": scratch, "xyxy": [50, 50, 70, 70]}),
        NewIssue("swap", a, b1, dent, 0.2, {"action": "set_class", "box_id": b1, "class_id": scratch}),
        NewIssue("badloc", a, b2, scratch, 0.3, {"action": "move_box", "box_id": b2, "xyxy": [41, 41, 62, 63]}),
        NewIssue("spurious", b, b3, dent, 0.4, {"action": "delete_box", "box_id": b3}),
        NewIssue("duplicate", b, b4, dent, 0.05, {"action": "delete_box", "box_id": b4}),
    ]
    record_analysis(p, snapshot_id=p.create_snapshot(), run_id=None, mode="kfold", folds=3, config={},
                    summary={"weak_classes": [{"class": "dent", "boxes": 3, "recommendation": "relabel",
                                               "reason": "r"}, "not a row"]}, issues=found)
    issues = {i.type: i for i in list_issues(p, status=None)}
    yield p, issues, {"dent": dent, "scratch": scratch, "a": a, "b": b}
    p.close()


def test_filters_match_list_issues(world) -> None:
    p, issues, ids = world
    every = list_issues(p, status=None)
    assert [i.type for i in review.filter_issues(every)] == ["duplicate", "overlooked", "swap", "badloc", "spurious"]
    assert review.filter_issues(every, type="swap") == [issues["swap"]]
    for name in ("dent", "scratch"):  # the same class rule as the store's list_issues
        assert review.filter_issues(every, class_id=ids[name]) == list_issues(p, class_names=[name])
    assert issues["swap"] in review.filter_issues(every, class_id=ids["scratch"])  # the suggested class counts
    reject_issues(p, [issues["spurious"].id])
    every = list_issues(p, status=None)
    assert [i.type for i in review.filter_issues(every, status="rejected")] == ["spurious"]
    assert len(review.filter_issues(every, status=None)) == 5
    with pytest.raises(ValueError, match="unknown issue type 'swapped'"):
        review.filter_issues(every, type="swapped")


def test_counts_text_follows_decisions(world) -> None:
    p, issues, _ = world
    assert review.counts_text(list_issues(p, status=None)) == (
        "5 to review of 5 — 1 missing box, 1 wrong class, 1 badly placed box, 1 box on nothing, 1 duplicate box")
    accept_issues(p, [issues["swap"].id])
    reject_issues(p, [issues["badloc"].id])
    text = review.counts_text(list_issues(p, status=None))
    assert text == "3 to review of 5 — 1 missing box, 1 box on nothing, 1 duplicate box · 1 accepted, 1 rejected"
    accept_issues(p, [i.id for i in list_issues(p)])
    assert review.counts_text(list_issues(p, status=None)) == "All 5 reviewed — 4 accepted, 1 rejected"
    assert review.counts_text([]) == "This analysis found no suspected label errors."
    assert review.shown_text(2, 5, filtered=True) == "2 of 5 match the filters"
    assert review.shown_text(0, 5, filtered=True) == "No issue matches these filters"
    assert review.shown_text(5, 5, filtered=False) == "5 shown"


@pytest.mark.parametrize(("count", "current", "step", "expected"), [
    (0, -1, 1, -1), (3, -1, 1, 0), (3, -1, -1, 2), (3, 0, 1, 1), (3, 2, 1, 0), (3, 0, -1, 2), (3, 7, 1, 0)])
def test_step_index_wraps(count: int, current: int, step: int, expected: int) -> None:
    assert review.step_index(count, current, step) == expected


def test_after_decision_prefers_the_next_issue() -> None:
    assert review.after_decision([4, 7, 9], 7) == 9
    assert review.after_decision([4, 7, 9], 9) == 7
    assert review.after_decision([4], 4) is None
    assert review.after_decision([4, 7], 5) is None


def test_rows_say_the_fix_in_words(world) -> None:
    p, issues, ids = world
    names = {c.id: c.name for c in p.classes()}
    paths = dict(p.connection.execute("SELECT id, path FROM images").fetchall())
    rows = {r.id: r for r in review.issue_rows(issues.values(), names=names, paths=paths)}
    swap = rows[issues["swap"].id]
    assert (swap.problem, swap.class_name, swap.score, swap.image, swap.fix) == (
        "Wrong class", "dent", "0.20", "a.png", "Change 'dent' to 'scratch'")
    assert rows[issues["overlooked"].id].fix == "Add a 'scratch' box" and rows[issues["overlooked"].id].image == "b.png"
    assert rows[issues["badloc"].id].fix == "Snap the box" and rows[issues["spurious"].id].fix == "Delete the box"
    assert "images/sub/b.png" in rows[issues["spurious"].id].tooltip
    assert swap.gain == "" and "gain" not in swap.tooltip  # no gains given: the likely order
    gained = review.issue_rows([issues["swap"]], names=names, paths=paths, gains={issues["swap"].id: 0.4321})
    assert gained[0].gain == "0.43" and "expected gain 0.43" in gained[0].tooltip
    gone = review.issue_rows([issues["spurious"]], names=names, paths={})
    assert gone[0].image == f"image {ids['b']} (deleted)"


def test_analysis_texts(world) -> None:
    p, _, _ = world
    analysis = latest_analysis(p)
    assert review.analysis_text(analysis).startswith(f"Analysis #{analysis.id} · 3-fold (out-of-sample) · ")
    assert review.analysis_warning(analysis) is None and review.analysis_warning(None) is None
    record_analysis(p, snapshot_id=p.create_snapshot(), run_id=None, mode="quick", folds=None, config={},
                    summary={}, issues=[])
    quick = latest_analysis(p)
    assert "quick (in-sample)" in review.analysis_text(quick)
    assert "less reliable (in-sample)" in review.analysis_warning(quick)
    assert review.weak_class_rows(quick) == [] and review.weak_class_rows(None) == []


def test_analysis_warning_says_when_the_models_were_too_weak_to_judge(world) -> None:
    p, _, _ = world
    weak = ("the fold models found few defects (mAP@.5 0.02 on images they did not see): many issues below "
            "reflect the model, not your labels")
    record_analysis(p, snapshot_id=p.create_snapshot(), run_id=None, mode="kfold", folds=3, config={},
                    summary={"notes": [weak, ""]}, issues=[])
    assert review.analysis_warning(latest_analysis(p)) == weak[:1].upper() + weak[1:] + "."
    record_analysis(p, snapshot_id=p.create_snapshot(), run_id=None, mode="quick", folds=None, config={},
                    summary={"notes": ["quick check: the current model judged the images it was trained on"]},
                    issues=[])
    assert review.analysis_warning(latest_analysis(p)) == review.QUICK_WARNING  # said once, not twice


def test_weak_class_rows_and_words(world) -> None:
    p, issues, ids = world
    (row,) = review.weak_class_rows(latest_analysis(p))  # the non-dict entry is skipped
    assert row["ap50"] is None and row["confused_with"] is None and row["recommendation"] == "relabel"
    assert review.recommendation(row) == ("Relabel", "#c0392b")
    assert review.recommendation({"recommendation": "pray"}) == ("Pray", "#666666")
    assert review.counts_line(row) == "3 boxes on 0 images"
    assert review.counts_line({"boxes": 1, "images": 1, "confused_with": "dent", "confusion_share": 0.234}) == (
        "1 box on 1 image · often confused with 'dent' (23%)")
    assert review.number_text(None) == "not measured" and review.number_text(0.456) == "0.46"
    counts = review.open_issues_by_class(issues.values())
    assert counts == {ids["dent"]: 3, ids["scratch"]: 3}  # the swap counts for both classes
    reject_issues(p, [issues["swap"].id])
    assert review.open_issues_by_class(list_issues(p, status=None)) == {ids["dent"]: 2, ids["scratch"]: 2}


def test_ghost_marks_for_each_fix(world) -> None:
    p, issues, ids = world
    classes = p.classes()

    def marks(kind: str) -> list[tuple[str, tuple, str, str]]:
        issue = issues[kind]
        return [(m.kind, m.rect, m.color, m.text) for m in review.ghost_marks(
            issue, image_id=issue.image_id, boxes=p.boxes(issue.image_id), classes=classes)]

    green, red = "#3cb44b", "#e6194b"
    assert marks("overlooked") == [("target", (50.0, 50.0, 70.0, 70.0), red, "add scratch")]
    assert marks("swap") == [("highlight", (10.0, 10.0, 30.0, 30.0), green, ""),
                             ("outline", (10.0, 10.0, 30.0, 30.0), red, "→ scratch")]
    assert marks("badloc") == [("highlight", (40.0, 40.0, 60.0, 60.0), red, ""),
                               ("target", (41.0, 41.0, 62.0, 63.0), red, "snap here")]
    assert marks("spurious") == [("highlight", (5.0, 5.0, 20.0, 20.0), green, ""),
                                 ("cross", (5.0, 5.0, 20.0, 20.0), green, "delete")]
    assert marks("duplicate")[1][3] == "delete (duplicate)"
    swap = issues["swap"]
    assert review.ghost_marks(swap, image_id=ids["b"], boxes=p.boxes(ids["b"]), classes=classes) == []
    assert review.ghost_marks(None, image_id=ids["a"], boxes=[], classes=classes) == []
    # the box was deleted meanwhile: nothing to outline; a target is still shown
    assert review.ghost_marks(swap, image_id=ids["a"], boxes=[], classes=classes) == []
    assert [m.kind for m in review.ghost_marks(issues["badloc"], image_id=ids["a"], boxes=[], classes=classes)] == [
        "target"]
    assert review.issue_status(p, swap.id) == "open"
    accept_issues(p, [swap.id])
    assert review.issue_status(p, swap.id) == "accepted" and review.issue_status(p, 10_000) is None


def test_augment_set_texts() -> None:
    aset = AugmentSet(4, "2024-01-01", "targeted", ["dent"], {
        "made": {"augment": 16, "copy_paste": 8}, "planned": {"dent": {"before": 5, "target": 12, "planned": 7}}},
        0, "active", 24)
    assert review.set_summary(aset) == ("Augment set #4: 24 new training images for 'dent' — 16 augmented copies, "
                                        "8 copy-paste composites")
    assert review.set_targets(aset) == "'dent': 5 training images before, target 12"
    uniform = AugmentSet(5, "2024-01-01", "uniform", [], {}, 0, "active", 1)
    assert review.set_summary(uniform) == "Augment set #5: 1 new training image for any class"
    assert review.set_targets(uniform) == ""
    member = {"source_image_id": 3, "kind": "copy_paste"}
    assert review.tile_caption(member, {3: "images/x/part_3.png"}) == "paste on part_3.png"
    assert review.tile_caption({**member, "kind": "augment"}, {}) == "copy of image 3"
    assert review.more_text(60, 60) == "" and review.more_text(61, 60) == "… and 1 more image (not shown)"


def test_concerns_class_rule() -> None:
    swap = Issue(1, 1, "swap", 1, 2, 5, 0.1, {"action": "set_class", "box_id": 2, "class_id": 6}, "open", "h", "t")
    assert review.concerns_class(swap, 5) and review.concerns_class(swap, 6) and not review.concerns_class(swap, 7)
    spur = Issue(2, 1, "spurious", 1, 3, 5, 0.1, {"action": "delete_box", "box_id": 3}, "open", "h", "t")
    assert review.concerns_class(spur, 5) and not review.concerns_class(spur, 6)


def test_the_warning_says_when_the_labels_changed_since_the_analysis(world) -> None:
    p, issues, ids = world
    analysis = latest_analysis(p)
    assert review.labels_changed_text(p, analysis) is None and review.analysis_warning(analysis, p) is None
    with p.edit("add derived image") as e:  # augmentation: not a label change the analysis would have seen
        d = e.insert("images", {"path": "derived/1/c.png", "sha256": "c" * 64, "width": 100, "height": 80,
                                "split": "train", "added_at": "t", "origin": None, "labeled": 1})
    p.add_box(d, ids["dent"], (1, 1, 9, 9))
    assert review.labels_changed_text(p, analysis) is None
    accept_issues(p, [issues["duplicate"].id])  # deletes a box
    text = review.analysis_warning(analysis, p)
    assert text == ("The labels changed since this analysis (it saw 2 labeled images with 4 boxes; now 2 with 3): "
                    "its counts and scores are from then. Analyze labels again to update.")
    p.undo()
    assert review.labels_changed_text(p, analysis) is None
    accept_issues(p, [issues["swap"].id])  # a relabel: same counts, other labels
    assert review.labels_changed_text(p, analysis).startswith(
        "The labels changed since this analysis (it saw 2 labeled images with 4 boxes; now 2 with 4)")
    p.undo()
    assert review.labels_changed_text(p, analysis) is None
    accept_issues(p, [issues["badloc"].id])  # a moved box
    assert review.labels_changed_text(p, analysis) is not None
