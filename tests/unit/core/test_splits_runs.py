"""Stratified, stable train/val splits; runs and model predictions in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeltool.core import runs
from labeltool.core.errors import EditError
from labeltool.core.splits import assign_splits
from labeltool.core.store import Project


def add_images(p: Project, n: int, *, start: int = 0, labeled: int = 1) -> list[int]:
    with p.edit("add images") as e:
        return [
            e.insert("images", {"path": f"images/{i}.png", "sha256": f"sha{i}", "width": 100, "height": 100,
                                "split": None, "added_at": "t", "origin": None, "labeled": labeled})
            for i in range(start, start + n)
        ]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    with Project.create(tmp_path / "p") as p:
        yield p


def test_split_is_stratified_and_covers_rare_classes(project: Project) -> None:
    common, rare = project.add_class("common"), project.add_class("rare")
    ids = add_images(project, 50)
    with project.edit("boxes") as e:
        for i in ids:
            e.add_box(image_id=i, class_id=common, xyxy=(1, 1, 9, 9))
        for i in ids[:3]:  # the rare class is on 3 images only
            e.add_box(image_id=i, class_id=rare, xyxy=(20, 20, 30, 30))
    unlabeled = add_images(project, 5, start=100, labeled=0)
    counts = assign_splits(project, val_fraction=0.2, seed=0)
    assert counts == {"train": 40, "val": 10}
    split = {img.id: img.split for img in project.images()}
    assert sum(split[i] == "val" for i in ids[:3]) == 1  # rare class validated (round(0.2*3)=1, min 1)
    assert all(split[i] is None for i in unlabeled)
    project.undo()
    assert all(img.split is None for img in project.images())


def test_split_is_stable_when_images_are_added_and_keeps_user_choice(project: Project) -> None:
    ids = add_images(project, 20)
    project.set_split([ids[0]], "val")  # the user's choice
    assign_splits(project, seed=1)
    before = {img.id: img.split for img in project.images()}
    assert before[ids[0]] == "val" and sum(s == "val" for s in before.values()) == 4
    new = add_images(project, 10, start=20)
    counts = assign_splits(project, seed=1)
    after = {img.id: img.split for img in project.images()}
    assert all(after[i] == before[i] for i in ids)  # nothing reshuffled
    assert counts["train"] + counts["val"] == 10 and sum(s == "val" for s in after.values()) == 6
    assert all(after[i] in ("train", "val") for i in new)


def test_split_is_reproducible_per_seed(tmp_path: Path) -> None:
    results = []
    for k, seed in enumerate((0, 0, 5)):
        with Project.create(tmp_path / f"p{k}") as p:
            add_images(p, 30)
            assign_splits(p, seed=seed)
            results.append([img.split for img in p.images()])
    assert results[0] == results[1] and results[0] != results[2]
    with pytest.raises(ValueError, match="val_fraction"):
        with Project.open(tmp_path / "p0") as p:
            assign_splits(p, val_fraction=1.5)


def test_runs_and_current_model(project: Project) -> None:
    assert runs.current_run(project) is None
    snap = project.create_snapshot()
    r1 = runs.record_run(project, created_at="t0", snapshot_id=snap, previous_id=None, preset="edge",
                         path="runs/a", metrics={"map50": 0.5}, config={"epochs": 3})
    r2 = runs.record_run(project, created_at="t1", snapshot_id=snap, previous_id=r1, preset="edge",
                         path="runs/b", metrics={"map50": 0.6}, config={})
    current = runs.current_run(project)
    assert current is not None and current.id == r2 and current.previous_id == r1
    assert runs.get_run(project, r1).metrics == {"map50": 0.5}
    assert [r.id for r in runs.list_runs(project)] == [r1, r2]


def test_predictions_are_kept_apart_and_accepting_is_undoable(project: Project) -> None:
    cid = project.add_class("scratch")
    (iid,) = add_images(project, 1, labeled=0)
    snap = project.create_snapshot()
    run_id = runs.record_run(project, created_at="t", snapshot_id=snap, previous_id=None, preset="edge",
                             path="runs/a", metrics={}, config={})
    runs.store_predictions(project, run_id=run_id, rows=[(iid, cid, 1, 1, 10, 10, 0.9), (iid, cid, 5, 5, 20, 20, 0.2)])
    assert project.boxes(iid) == []  # model boxes are not human boxes
    preds = runs.predictions(project, iid)
    assert [p.score for p in preds] == [0.9, 0.2]
    assert [p.score for p in runs.predictions(project, iid, min_score=0.5)] == [0.9]
    (box_id,) = runs.accept_predictions(project, [preds[0].id])
    assert project.box(box_id).xyxy == (1, 1, 10, 10) and project.image(iid).labeled
    assert [p.id for p in runs.predictions(project, iid)] == [preds[1].id]
    with pytest.raises(EditError, match="already accepted"):
        runs.accept_predictions(project, [preds[0].id])
    project.undo()
    assert project.boxes(iid) == [] and len(runs.predictions(project, iid)) == 2
    # predicting again replaces open model boxes only
    runs.accept_predictions(project, [preds[0].id])
    runs.store_predictions(project, run_id=run_id, rows=[(iid, cid, 2, 2, 8, 8, 0.7)])
    assert [p.score for p in runs.predictions(project, iid)] == [0.7]
    assert [p.status for p in runs.predictions(project, iid, status=None)] == ["accepted", "open"]


def test_deleting_an_image_with_model_boxes_and_undo_keep_working(project: Project) -> None:
    cid = project.add_class("scratch")
    (iid, other) = add_images(project, 2)
    snap = project.create_snapshot()
    run_id = runs.record_run(project, created_at="t", snapshot_id=snap, previous_id=None, preset="edge",
                             path="runs/a", metrics={}, config={})
    runs.store_predictions(project, run_id=run_id, rows=[(iid, cid, 1, 1, 10, 10, 0.9), (iid, cid, 2, 2, 9, 9, 0.8)])
    (box_id,) = runs.accept_predictions(project, [runs.predictions(project, iid)[0].id])
    project.delete_image(iid)  # model boxes of the image go with it (no foreign-key error)
    assert runs.predictions(project, iid, status=None) == []
    project.undo()  # the image and its human box come back
    assert project.box(box_id).image_id == iid
    project.undo()  # undoing the accept still works although its model box is gone
    assert project.boxes(iid) == []
    with pytest.raises(EditError, match="does not exist"):
        runs.reject_predictions(project, [12345])
