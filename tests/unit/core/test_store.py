"""Project store: creation/opening, one transaction per edit, edit log, undo/redo, snapshots."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from labeltool.core import config
from labeltool.core.errors import EditError, ProjectError, ProjectLockedError
from labeltool.core.store import Project


def add_image(project: Project, name: str = "a.png", *, width: int = 100, height: int = 80) -> int:
    with project.edit("add image") as e:
        return e.insert(
            "images",
            {"path": f"images/{name}", "sha256": name, "width": width, "height": height,
             "split": None, "added_at": "t", "origin": None, "labeled": 0},
        )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    with Project.create(tmp_path / "proj") as p:
        yield p


@pytest.fixture
def labeled(project: Project) -> tuple[Project, int, int, int]:
    cid = project.add_class("scratch")
    iid = add_image(project)
    bid = project.add_box(iid, cid, (10, 10, 50, 40))
    return project, cid, iid, bid


def test_create_makes_layout_wal_and_foreign_keys(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as p:
        for sub in ("images", "runs", "exports", "derived"):
            assert (p.root / sub).is_dir()
        conn = p.connection
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert p.schema_version == config.SCHEMA_VERSION


def test_create_refuses_existing_project_and_nonempty_folder(tmp_path: Path) -> None:
    Project.create(tmp_path / "p").close()
    with pytest.raises(ProjectError, match="already holds a project"):
        Project.create(tmp_path / "p")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    with pytest.raises(ProjectError, match="not empty"):
        Project.create(tmp_path / "full")
    assert (tmp_path / "full" / "x.txt").read_text() == "keep me"


def test_open_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="labeltool new"):
        Project.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProjectError, match="not a labeltool project"):
        Project.open(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "project.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ProjectError, match="damaged"):
        Project.open(tmp_path / "bad")


def test_open_refuses_newer_schema(tmp_path: Path) -> None:
    Project.create(tmp_path / "p").close()
    conn = sqlite3.connect(tmp_path / "p" / "project.db")
    conn.execute(f"PRAGMA user_version = {config.SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(ProjectError, match="newer labeltool"):
        Project.open(tmp_path / "p")


def test_box_edits_change_rows_and_log_before_after(labeled: tuple[Project, int, int, int]) -> None:
    project, cid, iid, bid = labeled
    other = project.add_class("dent")
    project.move_box(bid, (12, 11, 52, 41))
    project.set_box_class(bid, other)
    box = project.box(bid)
    assert (box.class_id, box.xyxy) == (other, (12.0, 11.0, 52.0, 41.0))
    rows = project.connection.execute(
        "SELECT e.action, c.before, c.after FROM edits e JOIN edit_changes c ON c.edit_id = e.id "
        "WHERE c.entity = 'boxes' ORDER BY c.id"
    ).fetchall()
    assert [r[0] for r in rows] == ["add box", "move box", "change box class"]
    assert rows[0][1] is None
    move_before, move_after = json.loads(rows[1][1]), json.loads(rows[1][2])
    assert (move_before["x1"], move_after["x1"]) == (10.0, 12.0)
    assert json.loads(rows[2][2])["class_id"] == other
    project.delete_boxes([bid])
    assert project.boxes(iid) == []


def test_failed_edit_rolls_back_everything(labeled: tuple[Project, int, int, int]) -> None:
    project, cid, iid, bid = labeled
    n_edits = len(project.history())
    with pytest.raises(EditError, match="not inside image"):
        with project.edit("two boxes") as e:
            e.add_box(image_id=iid, class_id=cid, xyxy=(0, 0, 5, 5))
            e.add_box(image_id=iid, class_id=cid, xyxy=(0, 0, 500, 5))  # outside the 100x80 image
    assert [b.id for b in project.boxes(iid)] == [bid]
    assert len(project.history()) == n_edits


@pytest.mark.parametrize(
    "xyxy",
    [(5, 5, 5, 9), (9, 5, 5, 9), (-1, 0, 5, 5), (0, 0, 101, 5), (float("nan"), 0, 5, 5), (1, 2, 3)],
)
def test_invalid_boxes_are_refused_with_the_value(labeled: tuple[Project, int, int, int], xyxy: tuple) -> None:
    project, cid, iid, _ = labeled
    with pytest.raises(EditError):
        project.add_box(iid, cid, xyxy)


def test_unknown_image_or_class_refused(labeled: tuple[Project, int, int, int]) -> None:
    project, cid, iid, bid = labeled
    with pytest.raises(EditError, match="image 999"):
        project.add_box(999, cid, (0, 0, 5, 5))
    with pytest.raises(EditError, match="class 999"):
        project.set_box_class(bid, 999)


def test_undo_redo_walks_the_log(labeled: tuple[Project, int, int, int]) -> None:
    project, cid, iid, bid = labeled
    project.move_box(bid, (20, 20, 30, 30))
    project.delete_boxes([bid])
    assert project.boxes(iid) == []
    project.undo()  # delete
    assert project.box(bid).xyxy == (20, 20, 30, 30)
    project.undo()  # move
    assert project.box(bid).xyxy == (10, 10, 50, 40)
    project.redo()  # move again
    assert project.box(bid).xyxy == (20, 20, 30, 30)
    project.redo()  # delete again
    assert project.boxes(iid) == []
    assert project.redo() is None
    # everything can be undone back to an empty project
    while project.undo() is not None:
        pass
    assert project.classes() == [] and project.images() == []


def test_new_edit_drops_redo_branch(labeled: tuple[Project, int, int, int]) -> None:
    project, cid, iid, bid = labeled
    project.move_box(bid, (20, 20, 30, 30))
    undone = project.undo()
    assert project.can_redo()
    project.add_box(iid, cid, (1, 1, 2, 2))
    assert not project.can_redo()
    states = dict(project.connection.execute("SELECT id, state FROM edits").fetchall())
    assert states[undone] == "dropped"
    # audit trail: the undo itself is logged and points at its target
    undo_rows = project.connection.execute("SELECT target_id FROM edits WHERE action = 'undo'").fetchall()
    assert undo_rows == [(undone,)]


def test_job_taking_back_its_own_edit_cannot_be_redone(labeled: tuple[Project, int, int, int]) -> None:
    project, cid, iid, bid = labeled
    project.move_box(bid, (20, 20, 30, 30))
    mine = project.history(limit=1)[0].id
    other = project.add_box(iid, cid, (1, 1, 2, 2))
    assert project.undo(only=mine) is None  # not the newest edit: left alone
    assert project.box(other) is not None
    project.undo()  # the add
    project.redo()
    newest = project.history(limit=1)[0].target_id
    assert project.undo(only=newest) == newest  # a job's own edit: undone ...
    assert project.boxes(iid)[0].xyxy == (20, 20, 30, 30) and len(project.boxes(iid)) == 1
    assert not project.can_redo()  # ... and dropped, so Redo cannot bring it back
    assert project.undo() is not None  # the edit before it is still undoable
    assert project.box(bid).xyxy == (10, 10, 50, 40)


def test_undo_survives_reopen(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as p:
        cid = p.add_class("scratch")
        iid = add_image(p)
        bid = p.add_box(iid, cid, (1, 1, 9, 9))
        p.move_box(bid, (2, 2, 9, 9))
    with Project.open(tmp_path / "p") as p:
        p.undo()
        assert p.box(bid).xyxy == (1, 1, 9, 9)


def test_merge_and_delete_image_are_single_undoable_edits(labeled: tuple[Project, int, int, int]) -> None:
    project, cid, iid, bid = labeled
    dent = project.add_class("dent")
    b2 = project.add_box(iid, dent, (60, 10, 70, 20))
    assert project.merge_classes(dent, cid) == 1
    assert [c.name for c in project.classes()] == ["scratch"]
    assert project.box(b2).class_id == cid
    project.undo()
    assert [c.name for c in project.classes()] == ["scratch", "dent"]
    assert project.box(b2).class_id == dent
    project.delete_image(iid)
    assert project.images() == [] and project.box_count() == 0
    project.undo()
    assert [b.id for b in project.boxes(iid)] == [bid, b2]


def test_class_names_validated(project: Project) -> None:
    project.add_class("scratch")
    with pytest.raises(EditError, match="already exists"):
        project.add_class(" scratch ")
    with pytest.raises(EditError, match="empty"):
        project.add_class("  ")
    cid = project.add_class("dent")
    with pytest.raises(EditError, match="merge"):
        project.rename_class(cid, "scratch")
    project.rename_class(cid, "pit")
    assert [c.name for c in project.classes()] == ["scratch", "pit"]


def test_edit_without_changes_leaves_no_log_row(labeled: tuple[Project, int, int, int]) -> None:
    project, cid, iid, bid = labeled
    before = len(project.history())
    project.move_box(bid, project.box(bid).xyxy)  # no-op
    assert len(project.history()) == before


def test_busy_project_raises_locked_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "BUSY_TIMEOUT_S", 0.2)
    with Project.create(tmp_path / "p") as p:
        other = sqlite3.connect(p.db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        p.connection.execute("PRAGMA busy_timeout = 200")
        with pytest.raises(ProjectLockedError, match="another labeltool window or job"):
            p.add_class("scratch")
        other.execute("ROLLBACK")
        p.add_class("scratch")  # works once the other writer is done
        other.close()


def test_snapshots_are_immutable_and_reused_when_unchanged(labeled: tuple[Project, int, int, int]) -> None:
    project, cid, iid, bid = labeled
    s1 = project.create_snapshot(note="first")
    assert project.create_snapshot() == s1
    project.move_box(bid, (0, 0, 10, 10))
    s2 = project.create_snapshot()
    assert s2 != s1
    assert project.snapshot_boxes(s1) == {iid: [(cid, 10.0, 10.0, 50.0, 40.0)]}
    assert project.snapshot_boxes(s2) == {iid: [(cid, 0.0, 0.0, 10.0, 10.0)]}
    assert project.snapshot(s1).n_boxes == 1 and project.snapshot(s1).note == "first"
    for sql in ("DELETE FROM snapshot_boxes", "UPDATE snapshots SET note = 'x'", "DELETE FROM snapshots"):
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            project.connection.execute(sql)
    # deleting the image does not alter the snapshot
    project.delete_image(iid)
    assert project.snapshot_boxes(s1) == {iid: [(cid, 10.0, 10.0, 50.0, 40.0)]}
    with pytest.raises(ProjectError, match="does not exist"):
        project.snapshot(999)


def test_snapshot_changes_when_split_changes(labeled: tuple[Project, int, int, int]) -> None:
    project, cid, iid, bid = labeled
    s1 = project.create_snapshot()
    project.set_split([iid], "val")
    assert project.create_snapshot() != s1
    with pytest.raises(EditError, match="split"):
        project.set_split([iid], "holdout")


def test_a_box_marks_its_image_labeled_and_undo_reverts_it(project: Project) -> None:
    cid = project.add_class("scratch")
    iid = add_image(project)
    assert project.image(iid).labeled is False
    project.add_box(iid, cid, (1, 1, 5, 5))
    assert project.image(iid).labeled is True
    project.undo()
    assert project.image(iid).labeled is False and project.boxes(iid) == []
    project.set_labeled([iid], True)  # checked: no defects
    assert project.image(iid).labeled is True
