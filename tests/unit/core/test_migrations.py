"""Schema versions: upgrades run in one transaction after a backup; a failing one changes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from labeltool.core import config, schema
from labeltool.core.errors import ProjectError
from labeltool.core.store import Project


def _old_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: int) -> Path:
    """A project written by a labeltool whose newest schema was ``version``."""
    with monkeypatch.context() as m:
        m.setattr(config, "SCHEMA_VERSION", version)
        with Project.create(tmp_path / "p") as p:
            cid = p.add_class("scratch")
            with p.edit("add image") as e:
                iid = e.insert("images", {"path": "images/a.png", "sha256": "h", "width": 10, "height": 10,
                                          "split": None, "added_at": "t", "origin": None, "labeled": 0})
            p.add_box(iid, cid, (1, 1, 5, 5))
            assert p.schema_version == version
    return tmp_path / "p"


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_fresh_project_is_built_by_the_migration_chain(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as p:
        assert {"images", "classes", "boxes", "edits", "edit_changes", "snapshots", "snapshot_boxes",
                "runs", "predictions", "analyses", "issues"} <= _tables(p.connection)
        assert p.schema_version == config.SCHEMA_VERSION


def test_v1_project_is_upgraded_to_v2_with_a_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _old_project(tmp_path, monkeypatch, 1)
    with Project.open(root) as p:
        assert p.schema_version == config.SCHEMA_VERSION
        assert {"runs", "predictions"} <= _tables(p.connection)
        assert p.box_count() == 1 and p.image(1).labeled  # data kept
        p.undo()  # the edit log written under v1 still works
        assert p.box_count() == 0
    backup = sqlite3.connect(root / "project.db.bak-v1")
    assert backup.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "runs" not in _tables(backup)
    assert backup.execute("SELECT count(*) FROM boxes").fetchone()[0] == 1
    backup.close()


def test_v2_project_is_upgraded_to_v3_keeping_data_and_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _old_project(tmp_path, monkeypatch, 2)
    conn = sqlite3.connect(root / "project.db")  # a v2 snapshot, taken before snapshot boxes had ids
    conn.execute("INSERT INTO snapshots (created_at, content_hash, n_images, n_boxes) VALUES ('t', 'x', 1, 1)")
    conn.execute("INSERT INTO snapshot_boxes (snapshot_id, image_id, class_id, x1, y1, x2, y2) "
                 "VALUES (1, 1, 1, 1, 1, 5, 5)")
    conn.commit()
    conn.close()
    with Project.open(root) as p:
        assert p.schema_version == config.SCHEMA_VERSION
        assert {"analyses", "issues"} <= _tables(p.connection)
        assert "box_id" in [r[1] for r in p.connection.execute("PRAGMA table_info(snapshot_boxes)")]
        assert p.box_count() == 1 and p.image(1).labeled  # data kept
        assert p.snapshot_boxes(1) == {1: [(1, 1.0, 1.0, 5.0, 5.0)]}  # old snapshot kept, box id unknown
        new = p.create_snapshot()  # new snapshots record box ids
        assert p.connection.execute("SELECT box_id FROM snapshot_boxes WHERE snapshot_id = ?", (new,)).fetchall() == [(1,)]
        p.undo()  # the edit log written under v2 still works
        assert p.box_count() == 0
    assert (root / "project.db.bak-v2").is_file()


def test_pending_migration_steps_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _old_project(tmp_path, monkeypatch, config.SCHEMA_VERSION)
    nxt = config.SCHEMA_VERSION

    def add_note(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE images ADD COLUMN note TEXT NOT NULL DEFAULT ''")

    def fill_note(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE images SET note = 'migrated'")

    monkeypatch.setitem(schema.MIGRATIONS, nxt, add_note)
    monkeypatch.setitem(schema.MIGRATIONS, nxt + 1, fill_note)
    monkeypatch.setattr(config, "SCHEMA_VERSION", nxt + 2)
    with Project.open(root) as p:
        assert p.schema_version == nxt + 2
        assert p.connection.execute("SELECT note FROM images").fetchall() == [("migrated",)]
    assert (root / f"project.db.bak-v{nxt}").is_file()


def test_failing_migration_leaves_database_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _old_project(tmp_path, monkeypatch, config.SCHEMA_VERSION)
    current = config.SCHEMA_VERSION

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE images ADD COLUMN note TEXT")
        conn.execute("DROP TABLE predictions")
        raise sqlite3.OperationalError("simulated failure half-way")

    monkeypatch.setitem(schema.MIGRATIONS, current, broken)
    monkeypatch.setattr(config, "SCHEMA_VERSION", current + 1)
    with pytest.raises(ProjectError, match="simulated failure"):
        Project.open(root)
    monkeypatch.setattr(config, "SCHEMA_VERSION", current)
    with Project.open(root) as p:
        assert p.schema_version == current
        assert p.box_count() == 1 and "predictions" in _tables(p.connection)
        assert "note" not in [r[1] for r in p.connection.execute("PRAGMA table_info(images)")]


def test_missing_migration_step_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _old_project(tmp_path, monkeypatch, config.SCHEMA_VERSION)
    monkeypatch.setattr(config, "SCHEMA_VERSION", config.SCHEMA_VERSION + 2)
    with pytest.raises(ProjectError, match="no migration from schema version"):
        Project.open(root)
