"""The edit log: every change to boxes, classes and images is a logged, invertible row change.

A user action is one :class:`Edit` — one SQLite transaction and one row in ``edits`` — holding
the row changes it made (``edit_changes``: entity, id, JSON before/after). Undo applies the
changes of the newest 'done' edit backwards and redo applies the oldest 'undone' edit forwards;
both are themselves logged ('undo' / 'redo' rows pointing at their target) so the log is a full
audit trail. A new edit after some undos marks the redo branch 'dropped'.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import EditError

# Columns logged per entity (the id is stored separately). Order = insert order.
ENTITY_COLUMNS: dict[str, tuple[str, ...]] = {
    "boxes": ("image_id", "class_id", "x1", "y1", "x2", "y2"),
    "classes": ("name", "color", "position"),
    "images": ("path", "sha256", "width", "height", "split", "added_at", "origin", "labeled"),
    # model boxes are written in bulk by prediction jobs; only their review status is an edit
    "predictions": ("status",),
    # issues are written in bulk by an analysis (core/issues.py); only their review status is an edit
    "issues": ("status",),
    # augmentation (core/derived.py): creating or deleting a set of derived images is one edit
    "augment_sets": ("created_at", "kind", "classes", "params", "seed", "status"),
    "derived_images": ("image_id", "set_id", "source_image_id", "kind", "transform"),
}
UNDO_ACTIONS = ("undo", "redo")
# Rows derived from an image or class by a model or an analysis (recreated by predicting/analysing
# again). Deleting the image/class deletes them too, unlogged; undoing the delete does not bring
# them back.
DERIVED_ENTITIES = ("predictions", "issues")
DERIVED_ROWS = {
    "images": (("predictions", "image_id"), ("issues", "image_id")),
    "classes": (("predictions", "class_id"), ("issues", "class_id")),
}
Row = dict[str, Any]


def read_row(conn: sqlite3.Connection, entity: str, entity_id: int) -> Row | None:
    cols = ENTITY_COLUMNS[entity]
    found = conn.execute(f"SELECT {', '.join(cols)} FROM {entity} WHERE id = ?", (entity_id,)).fetchone()
    return None if found is None else dict(zip(cols, found, strict=True))


def _apply(conn: sqlite3.Connection, entity: str, entity_id: int, before: Row | None, after: Row | None) -> None:
    """Make row ``entity_id`` go from ``before`` to ``after`` (None = row absent)."""
    cols = ENTITY_COLUMNS[entity]
    if before is None and after is not None:
        conn.execute(
            f"INSERT INTO {entity} (id, {', '.join(cols)}) VALUES (?{', ?' * len(cols)})",
            (entity_id, *(after[c] for c in cols)),
        )
    elif before is not None and after is None:
        for table, column in DERIVED_ROWS.get(entity, ()):
            conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (entity_id,))
        conn.execute(f"DELETE FROM {entity} WHERE id = ?", (entity_id,))
    elif before is not None and after is not None:
        changed = [c for c in cols if after[c] != before[c]]
        if changed:
            conn.execute(
                f"UPDATE {entity} SET {', '.join(f'{c} = ?' for c in changed)} WHERE id = ?",
                (*(after[c] for c in changed), entity_id),
            )


class Edit:
    """Collects the row changes of one user action inside an open write transaction.

    Obtain it from ``Project.edit(action)``; do not construct it directly.
    """

    def __init__(self, conn: sqlite3.Connection, edit_id: int) -> None:
        self._conn = conn
        self.id = edit_id
        self._changes: list[tuple[int, str, int, str | None, str | None]] = []

    @property
    def n_changes(self) -> int:
        return len(self._changes)

    def _record(self, entity: str, entity_id: int, before: Row | None, after: Row | None) -> None:
        self._changes.append(
            (
                self.id,
                entity,
                entity_id,
                None if before is None else json.dumps(before),
                None if after is None else json.dumps(after),
            )
        )

    def flush(self) -> None:
        """Write the collected change rows (called before commit)."""
        self._conn.executemany(
            "INSERT INTO edit_changes (edit_id, entity, entity_id, before, after) VALUES (?, ?, ?, ?, ?)",
            self._changes,
        )

    # -- generic ------------------------------------------------------------------------------
    def insert(self, entity: str, values: Mapping[str, Any]) -> int:
        """Insert a row; ``values`` must hold every column of ENTITY_COLUMNS[entity]. Returns its id."""
        cols = ENTITY_COLUMNS[entity]
        row = {c: values[c] for c in cols}
        cur = self._conn.execute(
            f"INSERT INTO {entity} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            tuple(row[c] for c in cols),
        )
        new_id = int(cur.lastrowid or 0)
        self._record(entity, new_id, None, row)
        return new_id

    def update(self, entity: str, entity_id: int, **values: Any) -> Row:
        """Change some columns of a row; returns the row after the change."""
        before = read_row(self._conn, entity, entity_id)
        if before is None:
            raise EditError(f"{entity[:-1] if entity != 'classes' else 'class'} {entity_id} does not exist")
        unknown = set(values) - set(ENTITY_COLUMNS[entity])
        if unknown:
            raise EditError(f"cannot change {sorted(unknown)} of {entity}")
        after = {**before, **values}
        if after != before:
            _apply(self._conn, entity, entity_id, before, after)
            self._record(entity, entity_id, before, after)
        return after

    def delete(self, entity: str, entity_id: int) -> Row:
        """Delete a row; returns what it held."""
        before = read_row(self._conn, entity, entity_id)
        if before is None:
            raise EditError(f"{entity} row {entity_id} does not exist")
        _apply(self._conn, entity, entity_id, before, None)
        self._record(entity, entity_id, before, None)
        return before

    # -- boxes ----------------------------------------------------------------------------------
    def add_box(self, *, image_id: int, class_id: int, xyxy: Sequence[float]) -> int:
        """Add a box (xyxy float pixels, validated against the image size); returns its id."""
        x1, y1, x2, y2 = self._checked_box(image_id, class_id, xyxy)
        self.update("images", image_id, labeled=1)  # a box makes the image labeled (no-op if it was)
        return self.insert(
            "boxes", {"image_id": image_id, "class_id": class_id, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
        )

    def update_box(
        self, box_id: int, *, xyxy: Sequence[float] | None = None, class_id: int | None = None
    ) -> Row:
        """Move/resize (``xyxy``) and/or relabel (``class_id``) a box."""
        current = read_row(self._conn, "boxes", box_id)
        if current is None:
            raise EditError(f"box {box_id} does not exist (deleted meanwhile?)")
        new_class = current["class_id"] if class_id is None else class_id
        coords = (current["x1"], current["y1"], current["x2"], current["y2"]) if xyxy is None else xyxy
        x1, y1, x2, y2 = self._checked_box(current["image_id"], new_class, coords)
        return self.update("boxes", box_id, class_id=new_class, x1=x1, y1=y1, x2=x2, y2=y2)

    def delete_box(self, box_id: int) -> Row:
        return self.delete("boxes", box_id)

    def _checked_box(self, image_id: int, class_id: int, xyxy: Sequence[float]) -> tuple[float, ...]:
        if len(xyxy) != 4:
            raise EditError(f"a box needs 4 coordinates x1, y1, x2, y2; got {list(xyxy)!r}")
        try:
            x1, y1, x2, y2 = (float(v) for v in xyxy)
        except (TypeError, ValueError) as exc:
            raise EditError(f"box coordinates must be numbers, got {list(xyxy)!r}") from exc
        size = self._conn.execute("SELECT width, height FROM images WHERE id = ?", (image_id,)).fetchone()
        if size is None:
            raise EditError(f"image {image_id} does not exist")
        if self._conn.execute("SELECT 1 FROM classes WHERE id = ?", (class_id,)).fetchone() is None:
            raise EditError(f"class {class_id} does not exist")
        w, h = size
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise EditError(f"box coordinates must be finite, got {(x1, y1, x2, y2)}")
        if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
            raise EditError(
                f"box {(x1, y1, x2, y2)} is not inside image {image_id} ({w}x{h} px) "
                "or has zero/negative size; need 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height"
            )
        return (x1, y1, x2, y2)


def start(conn: sqlite3.Connection, *, ts: str, user: str, action: str, target_id: int | None = None) -> Edit:
    """Create the ``edits`` row of a new action (inside an open transaction)."""
    cur = conn.execute(
        "INSERT INTO edits (ts, user, action, target_id) VALUES (?, ?, ?, ?)", (ts, user, action, target_id)
    )
    return Edit(conn, int(cur.lastrowid or 0))


def drop_redo_branch(conn: sqlite3.Connection) -> None:
    """A new edit invalidates everything that could have been redone."""
    conn.execute("UPDATE edits SET state = 'dropped' WHERE state = 'undone'")


def undo_target(conn: sqlite3.Connection) -> int | None:
    placeholders = ", ".join("?" * len(UNDO_ACTIONS))
    row = conn.execute(
        f"SELECT max(id) FROM edits WHERE state = 'done' AND action NOT IN ({placeholders})", UNDO_ACTIONS
    ).fetchone()
    return row[0]


def redo_target(conn: sqlite3.Connection) -> int | None:
    return conn.execute("SELECT min(id) FROM edits WHERE state = 'undone'").fetchone()[0]


def replay(conn: sqlite3.Connection, *, target_id: int, into: Edit, backwards: bool) -> None:
    """Apply the changes of edit ``target_id`` (inverted and in reverse when ``backwards``) via ``into``.

    Each row must currently be in the state the target edit left it (forwards: its ``before``);
    otherwise EditError — the log and the tables disagree and nothing is applied.
    """
    order = "DESC" if backwards else "ASC"
    rows = conn.execute(
        f"SELECT entity, entity_id, before, after FROM edit_changes WHERE edit_id = ? ORDER BY id {order}",
        (target_id,),
    ).fetchall()
    for entity, entity_id, before_json, after_json in rows:
        before = None if before_json is None else json.loads(before_json)
        after = None if after_json is None else json.loads(after_json)
        if backwards:
            before, after = after, before
        current = read_row(conn, entity, entity_id)
        if current is None and before is not None and entity in DERIVED_ENTITIES:
            continue  # a model box / issue removed with its image or class: nothing left to revert
        if current != before:
            raise EditError(
                f"cannot {'undo' if backwards else 'redo'} edit {target_id}: {entity} row {entity_id} "
                "was changed outside the edit log"
            )
        _apply(conn, entity, entity_id, before, after)
        into._record(entity, entity_id, before, after)
