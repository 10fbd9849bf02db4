"""SQLite schema of ``project.db`` and its migrations.

The schema version lives in ``PRAGMA user_version``. Opening a project runs every migration from
the file's version up to :data:`config.SCHEMA_VERSION` in one transaction, after copying the
database to ``project.db.bak-v<old>``; a failing migration leaves the file as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

# Version 1: the initial schema. Box coordinates are xyxy float pixels of the displayed image.
SCHEMA_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE classes (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name     TEXT NOT NULL UNIQUE CHECK (length(trim(name)) > 0),
    color    TEXT NOT NULL,               -- '#rrggbb'
    position INTEGER NOT NULL             -- display / export order
);
CREATE TABLE images (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    path     TEXT NOT NULL UNIQUE,        -- relative to the project folder, '/'-separated
    sha256   TEXT NOT NULL,               -- content hash of the file
    width    INTEGER NOT NULL CHECK (width > 0),
    height   INTEGER NOT NULL CHECK (height > 0),
    split    TEXT CHECK (split IN ('train', 'val', 'test')),
    labeled  INTEGER NOT NULL DEFAULT 0 CHECK (labeled IN (0, 1)),  -- annotated (even if without boxes)
    added_at TEXT NOT NULL,
    origin   TEXT                         -- where it was imported from (file name in the source)
);
CREATE INDEX images_sha256 ON images (sha256);
CREATE TABLE boxes (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images (id),
    class_id INTEGER NOT NULL REFERENCES classes (id),
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    CHECK (x1 >= 0 AND y1 >= 0 AND x1 < x2 AND y1 < y2)
);
CREATE INDEX boxes_image ON boxes (image_id);
CREATE INDEX boxes_class ON boxes (class_id);

-- The edit log: one row per user action (one transaction), its changes below it.
CREATE TABLE edits (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ts        TEXT NOT NULL,
    user      TEXT NOT NULL,
    action    TEXT NOT NULL,              -- 'add box', 'import', 'undo', ...
    state     TEXT NOT NULL DEFAULT 'done' CHECK (state IN ('done', 'undone', 'dropped')),
    target_id INTEGER REFERENCES edits (id)  -- for 'undo' / 'redo' rows: the edit they undid / redid
);
CREATE TABLE edit_changes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    edit_id   INTEGER NOT NULL REFERENCES edits (id),
    entity    TEXT NOT NULL,              -- table name; the editable ones are listed in core/edits.py
    entity_id INTEGER NOT NULL,
    before    TEXT,                       -- JSON object of the row's columns, NULL when created
    after     TEXT                        -- JSON object of the row's columns, NULL when deleted
);
CREATE INDEX edit_changes_edit ON edit_changes (edit_id);

-- Immutable label snapshots: a training run records the snapshot it used.
CREATE TABLE snapshots (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at   TEXT NOT NULL,
    note         TEXT NOT NULL DEFAULT '',
    content_hash TEXT NOT NULL,
    last_edit_id INTEGER,
    n_images     INTEGER NOT NULL,
    n_boxes      INTEGER NOT NULL
);
CREATE TABLE snapshot_classes (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id),
    class_id    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    position    INTEGER NOT NULL
);
CREATE TABLE snapshot_images (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id),
    image_id    INTEGER NOT NULL,
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    split       TEXT,
    labeled     INTEGER NOT NULL
);
CREATE TABLE snapshot_boxes (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id),
    image_id    INTEGER NOT NULL,
    class_id    INTEGER NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL
);
CREATE INDEX snapshot_boxes_snapshot ON snapshot_boxes (snapshot_id, image_id);
CREATE INDEX snapshot_images_snapshot ON snapshot_images (snapshot_id);
""" + "".join(
    f"""
CREATE TRIGGER {table}_immutable_{op.lower()} BEFORE {op} ON {table}
BEGIN SELECT RAISE(ABORT, 'label snapshots are immutable'); END;
"""
    for table in ("snapshots", "snapshot_classes", "snapshot_images", "snapshot_boxes")
    for op in ("UPDATE", "DELETE")
)

# Version 2: training runs and model predictions (model boxes, kept apart from human boxes).
SCHEMA_V2 = """
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    TEXT NOT NULL,
    finished_at   TEXT NOT NULL,
    snapshot_id   INTEGER NOT NULL REFERENCES snapshots (id),
    previous_id   INTEGER REFERENCES runs (id),   -- the current model when this run started
    preset        TEXT NOT NULL,
    path          TEXT NOT NULL,                  -- runs/<id>, relative to the project
    metrics       TEXT NOT NULL,                  -- JSON: final validation metrics
    config        TEXT NOT NULL                   -- JSON: preset, hyperparameters, weights source
);
CREATE TABLE predictions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    image_id   INTEGER NOT NULL REFERENCES images (id),
    class_id   INTEGER NOT NULL REFERENCES classes (id),
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    score      REAL NOT NULL,
    status     TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'accepted', 'rejected')),
    created_at TEXT NOT NULL
);
CREATE INDEX predictions_image ON predictions (image_id, run_id);
CREATE INDEX predictions_run ON predictions (run_id);
"""

# Version 3: label-quality analyses and their issue queue. An issue's ``box_id`` / ``class_id`` carry no
# foreign key on purpose: accepting a 'delete_box' fix deletes the box the issue points at, and a
# class may be merged away later; the issue stays as the record of what was suggested.
# Snapshot boxes also keep the box's id (so an analysis can name the box it flags); it is NULL in
# snapshots taken before version 3. (Added here, not to SCHEMA_V1: old projects must get it too.)
SCHEMA_V3 = """
ALTER TABLE snapshot_boxes ADD COLUMN box_id INTEGER;  -- the box's id in `boxes` when snapshotted
CREATE INDEX snapshot_boxes_box ON snapshot_boxes (snapshot_id, box_id);
CREATE TABLE analyses (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  TEXT NOT NULL,
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id),  -- the labels that were analysed
    run_id      INTEGER REFERENCES runs (id),               -- the model used ('quick' mode), if any
    mode        TEXT NOT NULL CHECK (mode IN ('kfold', 'quick')),
    folds       INTEGER,
    config      TEXT NOT NULL,              -- JSON: thresholds used etc.
    summary     TEXT NOT NULL               -- JSON: weak-class table, counts, timings
);
CREATE TABLE issues (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    analysis_id INTEGER NOT NULL REFERENCES analyses (id),
    type        TEXT NOT NULL CHECK (type IN ('overlooked', 'swap', 'badloc', 'spurious', 'duplicate')),
    image_id    INTEGER NOT NULL REFERENCES images (id),
    box_id      INTEGER,                    -- the labeled box concerned; NULL for 'overlooked'
    class_id    INTEGER,                    -- class of the box ('overlooked': the class to add)
    score       REAL NOT NULL,              -- 0..1, lower = more likely a label error
    fix         TEXT NOT NULL,              -- JSON: {"action": "add_box" | "set_class" | "move_box" | "delete_box", ...}
    status      TEXT NOT NULL DEFAULT 'open'
                CHECK (status IN ('open', 'accepted', 'rejected', 'superseded')),
    labels_hash TEXT NOT NULL,              -- hash of the image's boxes when analysed (core/issues.py)
    created_at  TEXT NOT NULL
);
CREATE INDEX issues_analysis ON issues (analysis_id, status);
CREATE INDEX issues_image ON issues (image_id);
"""

# Version 4: augmentation. A derived (augmented / synthetic) image is an ordinary row of `images`
# whose file lives under derived/<set id>/ (the path prefix marks it, also in snapshots) and whose
# provenance is in `derived_images`. Sets and derived rows are edit-log entities (core/edits.py), so
# creating or deleting a set is one undoable edit. Triggers keep validation clean: a derived image is
# always in the training split, and an image that derived images were made from (base image or
# pasted crop, listed in `derived_sources`) must stay in the training split while they exist.
# `classes.flip_ok`: 0 for orientation-sensitive classes (no mirrored copies); a project setting,
# not a label, so it is not in the edit log.
_DERIVED_ONLY_TRAIN = ("derived (augmented) images are training-only: they can never be in the validation or "
                       "test split, nor without a split")
_SOURCE_ONLY_TRAIN = ("this image has augmented copies (labeltool augment): it must stay in the training split "
                      "while they exist; delete their augment set first (labeltool augment DIR --list, --delete ID)")
SCHEMA_V4 = f"""
ALTER TABLE classes ADD COLUMN flip_ok INTEGER NOT NULL DEFAULT 1 CHECK (flip_ok IN (0, 1));
CREATE TABLE augment_sets (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('targeted', 'uniform')),
    classes    TEXT NOT NULL,              -- JSON list of the targeted class names
    params     TEXT NOT NULL,              -- JSON: presets, per-class targets and counts, copy-paste settings
    seed       INTEGER NOT NULL,
    status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted'))
);
CREATE TABLE derived_images (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id        INTEGER NOT NULL UNIQUE REFERENCES images (id) ON DELETE CASCADE,
    set_id          INTEGER NOT NULL REFERENCES augment_sets (id),
    source_image_id INTEGER NOT NULL,      -- the image it was made from; no FK: provenance outlives it
    kind            TEXT NOT NULL CHECK (kind IN ('augment', 'copy_paste')),
    transform       TEXT NOT NULL          -- JSON: seed, preset, applied transforms, pasted crops, "sources"
);
CREATE INDEX derived_images_set ON derived_images (set_id);
CREATE TABLE derived_sources (             -- every image a derived image took pixels from (kept by a trigger)
    derived_id INTEGER NOT NULL REFERENCES derived_images (id) ON DELETE CASCADE,
    image_id   INTEGER NOT NULL
);
CREATE INDEX derived_sources_image ON derived_sources (image_id);
CREATE INDEX derived_sources_derived ON derived_sources (derived_id);
CREATE TRIGGER derived_sources_fill AFTER INSERT ON derived_images
BEGIN
    INSERT INTO derived_sources (derived_id, image_id)
    SELECT NEW.id, value FROM json_each(NEW.transform, '$.sources');
END;
CREATE TRIGGER derived_sources_train_only BEFORE INSERT ON derived_images
WHEN EXISTS (SELECT 1 FROM json_each(NEW.transform, '$.sources') j JOIN images i ON i.id = j.value
             WHERE i.split IS NOT 'train')
BEGIN SELECT RAISE(ABORT, '{_SOURCE_ONLY_TRAIN}'); END;
CREATE TRIGGER derived_train_only_insert BEFORE INSERT ON images
WHEN substr(NEW.path, 1, 8) = 'derived/' AND NEW.split IS NOT 'train'
BEGIN SELECT RAISE(ABORT, '{_DERIVED_ONLY_TRAIN}'); END;
CREATE TRIGGER derived_train_only_update BEFORE UPDATE OF split, path ON images
WHEN substr(NEW.path, 1, 8) = 'derived/' AND NEW.split IS NOT 'train'
BEGIN SELECT RAISE(ABORT, '{_DERIVED_ONLY_TRAIN}'); END;
CREATE TRIGGER derived_source_stays_train BEFORE UPDATE OF split ON images
WHEN NEW.split IS NOT 'train' AND EXISTS (SELECT 1 FROM derived_sources WHERE image_id = NEW.id)
BEGIN SELECT RAISE(ABORT, '{_SOURCE_ONLY_TRAIN}'); END;
"""

# Version 5: one row per image content, enforced by the database and not only by the import's
# check (two imports at once both passed the check). A trigger, not a UNIQUE index: projects written
# before may already hold such pairs, and they must still open.
SCHEMA_V5 = """
CREATE TRIGGER images_unique_content BEFORE INSERT ON images
WHEN EXISTS (SELECT 1 FROM images WHERE sha256 = NEW.sha256)
BEGIN SELECT RAISE(ABORT, 'an image with the same content is already in the project'); END;
"""

# Version 6: the issue type is data, not a CHECK list (core/issue_types.py is the one list; a new check
# needs no migration). SQLite cannot drop a CHECK, so the table is rebuilt with the same rows and ids.
SCHEMA_V6 = """
CREATE TABLE issues_v6 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    analysis_id INTEGER NOT NULL REFERENCES analyses (id),
    type        TEXT NOT NULL,              -- a name from core/issue_types.py
    image_id    INTEGER NOT NULL REFERENCES images (id),
    box_id      INTEGER,                    -- the labeled box concerned; NULL for 'overlooked'
    class_id    INTEGER,                    -- class of the box ('overlooked': the class to add)
    score       REAL NOT NULL,              -- 0..1, lower = more likely a label error
    fix         TEXT NOT NULL,              -- JSON: {"action": "add_box" | "set_class" | "move_box" | "delete_box", ...}
    status      TEXT NOT NULL DEFAULT 'open'
                CHECK (status IN ('open', 'accepted', 'rejected', 'superseded')),
    labels_hash TEXT NOT NULL,              -- hash of the image's boxes when analysed (core/issues.py)
    created_at  TEXT NOT NULL
);
INSERT INTO issues_v6 SELECT id, analysis_id, type, image_id, box_id, class_id, score, fix, status, labels_hash,
    created_at FROM issues;
DROP TABLE issues;
ALTER TABLE issues_v6 RENAME TO issues;
CREATE INDEX issues_analysis ON issues (analysis_id, status);
CREATE INDEX issues_image ON issues (image_id);
"""

Migration = Callable[[sqlite3.Connection], None]

# MIGRATIONS[v] upgrades a database from version v to v + 1. Version 0 is an empty file.
MIGRATIONS: dict[int, Migration] = {
    0: lambda conn: _run_script(conn, SCHEMA_V1),
    1: lambda conn: _run_script(conn, SCHEMA_V2),
    2: lambda conn: _run_script(conn, SCHEMA_V3),
    3: lambda conn: _run_script(conn, SCHEMA_V4),
    4: lambda conn: _run_script(conn, SCHEMA_V5),
    5: lambda conn: _run_script(conn, SCHEMA_V6),
}


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run a multi-statement DDL script inside the caller's open transaction.

    ``executescript`` would COMMIT first, so statements are executed one by one instead.
    """
    for statement in _split_sql(script):
        conn.execute(statement)


def _split_sql(script: str) -> list[str]:
    """Split a script into complete statements (``sqlite3.complete_statement`` handles triggers)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
