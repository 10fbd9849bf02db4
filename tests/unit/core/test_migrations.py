"""Schema versions: upgrades run in one transaction after a backup; a failing one changes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from labeltool.core import config, schema
from labeltool.core.errors import ProjectError
from labeltool.core.store import Project


def _v1_project(tmp_path: Path) -> Path:
    with Project.create(tmp_path / "p") as p:
        cid = p.add_class("scratch")
        with p.edit("add image") as e:
            iid = e.insert("images", {"path": "images/a.png", "sha256": "h", "width": 10, "height": 10,
                                      "split": None, "added_at": "t", "origin": None, "labeled": 0})
        p.add_box(iid, cid, (1, 1, 5, 5))
    return tmp_path / "p"


def test_fresh_project_is_built_by_the_migration_chain(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as p:
        tables = {r[0] for r in p.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"images", "classes", "boxes", "edits", "edit_changes", "snapshots", "snapshot_boxes"} <= tables


def test_upgrade_runs_pending_migrations_and_keeps_a_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _v1_project(tmp_path)

    def v1_to_v2(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE images ADD COLUMN note TEXT NOT NULL DEFAULT ''")

    monkeypatch.setitem(schema.MIGRATIONS, 1, v1_to_v2)
    monkeypatch.setattr(config, "SCHEMA_VERSION", 2)
    with Project.open(root) as p:
        assert p.schema_version == 2
        assert p.connection.execute("SELECT note FROM images").fetchall() == [("",)]
        assert p.box_count() == 1  # data kept
    backup = root / "project.db.bak-v1"
    assert backup.is_file()
    old = sqlite3.connect(backup)
    assert old.execute("PRAGMA user_version").fetchone()[0] == 1
    assert old.execute("SELECT count(*) FROM boxes").fetchone()[0] == 1
    old.close()


def test_failing_migration_leaves_database_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _v1_project(tmp_path)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE images ADD COLUMN note TEXT")
        conn.execute("DROP TABLE boxes")
        raise sqlite3.OperationalError("simulated failure half-way")

    monkeypatch.setitem(schema.MIGRATIONS, 1, broken)
    monkeypatch.setattr(config, "SCHEMA_VERSION", 2)
    with pytest.raises(ProjectError, match="simulated failure"):
        Project.open(root)
    monkeypatch.setattr(config, "SCHEMA_VERSION", 1)
    with Project.open(root) as p:
        assert p.schema_version == 1
        assert p.box_count() == 1
        cols = [r[1] for r in p.connection.execute("PRAGMA table_info(images)")]
        assert "note" not in cols


def test_missing_migration_step_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _v1_project(tmp_path)
    monkeypatch.setattr(config, "SCHEMA_VERSION", 3)
    with pytest.raises(ProjectError, match="no migration from schema version 1"):
        Project.open(root)
