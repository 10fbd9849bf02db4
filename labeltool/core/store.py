"""The Project: a folder with ``project.db`` (SQLite, WAL) and the image files.

Layout::

    <project>/project.db   images, classes, boxes, edit log, snapshots
    <project>/images/      image files (paths in the db are relative to the project folder)
    <project>/runs/ exports/ derived/   written by later stages

Every change goes through :meth:`Project.edit` — one transaction, one edit-log row — so a crash
never loses a committed edit and undo/redo are derived from the log.
"""

from __future__ import annotations

import getpass
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import config, db, edits
from .class_names import checked_class_name
from .edits import Edit
from .errors import EditError, ProjectError
from .model import Box, Class, EditEntry, Image, Snapshot

PROJECT_SUBDIRS = ("images", "runs", "exports", "derived")
_IMAGE_COLS = "id, path, sha256, width, height, split, added_at, origin, labeled"
_BOX_COLS = "id, image_id, class_id, x1, y1, x2, y2"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _image(row: Sequence[Any]) -> Image:
    return Image(*row[:-1], labeled=bool(row[-1]))


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return config.DEFAULT_USER


class Project:
    """An open project. Use :meth:`create` or :meth:`open`; close it (or use ``with``)."""

    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self.root = root
        self.db_path = root / config.DB_FILENAME
        self._conn = conn
        self.user = _user()

    # -- lifecycle ------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path) -> Project:
        """Create a new project in ``root`` (which must not exist or be empty)."""
        root = Path(root).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise ProjectError(f"{root} is a file; choose a folder name for the new project")
        if (root / config.DB_FILENAME).exists():
            raise ProjectError(f"{root} already holds a project; open it instead of creating a new one")
        if root.exists() and any(root.iterdir()):
            raise ProjectError(f"{root} is not empty; choose a new or empty folder for the project")
        try:
            for sub in PROJECT_SUBDIRS:
                (root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"cannot create the project folder {root}: {exc.strerror or exc}") from exc
        conn = db.connect(root / config.DB_FILENAME)
        try:
            db.migrate(conn, root / config.DB_FILENAME)
            project = cls(root, conn)
            with db.write_tx(conn, project.db_path):
                conn.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", (now_iso(),))
        except BaseException:
            conn.close()
            raise
        return project

    @classmethod
    def open(cls, root: str | Path) -> Project:
        """Open an existing project, upgrading its schema if it is older than this version."""
        root = Path(root).expanduser().resolve()
        db_path = root / config.DB_FILENAME
        if not root.is_dir():
            raise ProjectError(f"{root}: no such project folder. Create one with File ▸ New project in the window "
                               f"(`labeltool new {root}` on the command line).")
        if not db_path.is_file():
            raise ProjectError(
                f"{root} is not a labeltool project (no {config.DB_FILENAME} in it). "
                f"Pick the folder that holds {config.DB_FILENAME}, or create a project with File ▸ New project "
                f"in the window (`labeltool new {root}` on the command line)."
            )
        db.check_header(db_path)
        conn = db.connect(db_path)
        try:
            db.migrate(conn, db_path)
        except sqlite3.Error as exc:
            conn.close()
            raise db.translate(exc, db_path) from exc
        except BaseException:
            conn.close()
            raise
        for sub in PROJECT_SUBDIRS:
            (root / sub).mkdir(exist_ok=True)
        return cls(root, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def images_dir(self) -> Path:
        return self.root / config.IMAGES_DIRNAME

    @property
    def schema_version(self) -> int:
        return db.schema_version(self._conn)

    # -- reading --------------------------------------------------------------------------------
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise db.translate(exc, self.db_path) from exc

    def classes(self) -> list[Class]:
        """All classes in display/export order."""
        return [Class(*r) for r in self._query("SELECT id, name, color, position FROM classes ORDER BY position, id")]

    def class_by_name(self, name: str) -> Class | None:
        rows = self._query("SELECT id, name, color, position FROM classes WHERE name = ?", (name,))
        return Class(*rows[0]) if rows else None

    def images(self, *, split: str | None = None) -> list[Image]:
        """All images ordered by id, or those of one split."""
        if split is None:
            rows = self._query(f"SELECT {_IMAGE_COLS} FROM images ORDER BY id")
        else:
            rows = self._query(f"SELECT {_IMAGE_COLS} FROM images WHERE split = ? ORDER BY id", (split,))
        return [_image(r) for r in rows]

    def image(self, image_id: int) -> Image:
        rows = self._query(f"SELECT {_IMAGE_COLS} FROM images WHERE id = ?", (image_id,))
        if not rows:
            raise EditError(f"image {image_id} does not exist")
        return _image(rows[0])

    def image_by_sha256(self, sha256: str) -> Image | None:
        rows = self._query(f"SELECT {_IMAGE_COLS} FROM images WHERE sha256 = ? ORDER BY id LIMIT 1", (sha256,))
        return _image(rows[0]) if rows else None

    def image_count(self) -> int:
        return int(self._query("SELECT count(*) FROM images")[0][0])

    def image_file(self, image: Image) -> Path:
        """Absolute path of an image's file."""
        return self.root / image.path

    def boxes(self, image_id: int) -> list[Box]:
        """The human boxes of one image, in creation order."""
        return [Box(*r) for r in self._query(f"SELECT {_BOX_COLS} FROM boxes WHERE image_id = ? ORDER BY id", (image_id,))]

    def box(self, box_id: int) -> Box:
        rows = self._query(f"SELECT {_BOX_COLS} FROM boxes WHERE id = ?", (box_id,))
        if not rows:
            raise EditError(f"box {box_id} does not exist")
        return Box(*rows[0])

    def all_boxes(self) -> dict[int, list[Box]]:
        """Boxes of every image that has any, keyed by image id (one query)."""
        out: dict[int, list[Box]] = {}
        for r in self._query(f"SELECT {_BOX_COLS} FROM boxes ORDER BY image_id, id"):
            out.setdefault(r[1], []).append(Box(*r))
        return out

    def box_count(self) -> int:
        return int(self._query("SELECT count(*) FROM boxes")[0][0])

    # -- editing --------------------------------------------------------------------------------
    @contextmanager
    def edit(self, action: str) -> Iterator[Edit]:
        """One user action: a transaction and an edit-log row. Nothing is logged if nothing changed."""
        with db.write_tx(self._conn, self.db_path) as conn:
            change = edits.start(conn, ts=now_iso(), user=self.user, action=action)
            yield change
            if change.n_changes == 0:
                conn.execute("DELETE FROM edits WHERE id = ?", (change.id,))
            else:
                change.flush()
                edits.drop_redo_branch(conn)

    def add_class(self, name: str, *, color: str | None = None) -> int:
        """Add a class at the end of the class order; returns its id."""
        name = checked_class_name(name)
        if self.class_by_name(name) is not None:
            raise EditError(f"class {name!r} already exists")
        position = int(self._query("SELECT coalesce(max(position) + 1, 0) FROM classes")[0][0])
        color = color or config.CLASS_COLORS[position % len(config.CLASS_COLORS)]
        with self.edit(f"add class {name}") as e:
            return e.insert("classes", {"name": name, "color": color, "position": position})

    def rename_class(self, class_id: int, name: str) -> None:
        name = checked_class_name(name)
        other = self.class_by_name(name)
        if other is not None and other.id != class_id:
            raise EditError(f"class {name!r} already exists; merge the classes instead of renaming")
        with self.edit(f"rename class to {name}") as e:
            e.update("classes", class_id, name=name)

    def set_class_color(self, class_id: int, color: str) -> None:
        if not (len(color) == 7 and color.startswith("#")):
            raise EditError(f"colour must look like '#rrggbb', got {color!r}")
        with self.edit("change class colour") as e:
            e.update("classes", class_id, color=color.lower())

    def merge_classes(self, source_id: int, target_id: int) -> int:
        """Relabel every box of ``source_id`` as ``target_id`` and delete the source class.

        Returns the number of boxes relabeled. One undoable edit.
        """
        if source_id == target_id:
            raise EditError("cannot merge a class into itself")
        ids = [r[0] for r in self._query("SELECT id FROM boxes WHERE class_id = ?", (source_id,))]
        with self.edit("merge classes") as e:
            if e._conn.execute("SELECT 1 FROM classes WHERE id = ?", (target_id,)).fetchone() is None:
                raise EditError(f"class {target_id} does not exist")
            for box_id in ids:
                e.update("boxes", box_id, class_id=target_id)
            e.delete("classes", source_id)
        return len(ids)

    def delete_class(self, class_id: int, *, with_boxes: bool = False) -> int:
        """Delete a class; one undoable edit. A class with boxes is refused unless ``with_boxes``
        (then its boxes go too). Returns the number of boxes deleted."""
        ids = [r[0] for r in self._query("SELECT id FROM boxes WHERE class_id = ?", (class_id,))]
        if ids and not with_boxes:
            raise EditError(f"the class has {len(ids)} boxes; merge it into another class, or delete its boxes too")
        with self.edit("delete class") as e:
            if e._conn.execute("SELECT 1 FROM classes WHERE id = ?", (class_id,)).fetchone() is None:
                raise EditError(f"class {class_id} does not exist")
            for box_id in ids:
                e.delete("boxes", box_id)
            e.delete("classes", class_id)
        return len(ids)

    def add_box(self, image_id: int, class_id: int, xyxy: Sequence[float]) -> int:
        """Add one box (xyxy float pixels); returns its id."""
        with self.edit("add box") as e:
            return e.add_box(image_id=image_id, class_id=class_id, xyxy=xyxy)

    def move_box(self, box_id: int, xyxy: Sequence[float]) -> None:
        """Move or resize a box to ``xyxy`` (float pixels)."""
        with self.edit("move box") as e:
            e.update_box(box_id, xyxy=xyxy)

    def set_box_class(self, box_id: int, class_id: int) -> None:
        with self.edit("change box class") as e:
            e.update_box(box_id, class_id=class_id)

    def delete_boxes(self, box_ids: Sequence[int]) -> None:
        with self.edit("delete box" if len(box_ids) == 1 else f"delete {len(box_ids)} boxes") as e:
            for box_id in box_ids:
                e.delete_box(box_id)

    def set_split(self, image_ids: Sequence[int], split: str | None) -> None:
        """Put images into 'train' / 'val' / 'test' or unassign them (None)."""
        if split not in ("train", "val", "test", None):
            raise EditError(f"split must be train, val, test or none; got {split!r}")
        with self.edit(f"set split {split}") as e:
            for image_id in image_ids:
                e.update("images", image_id, split=split)

    def set_labeled(self, image_ids: Sequence[int], labeled: bool) -> None:
        """Mark images as annotated (e.g. checked and defect-free) or back to unlabeled."""
        with self.edit("mark labeled" if labeled else "mark unlabeled") as e:
            for image_id in image_ids:
                e.update("images", image_id, labeled=int(bool(labeled)))

    def delete_image(self, image_id: int) -> None:
        """Remove an image and its boxes from the project (the file stays on disk; undoable)."""
        with self.edit("delete image") as e:
            for (box_id,) in e._conn.execute("SELECT id FROM boxes WHERE image_id = ?", (image_id,)).fetchall():
                e.delete_box(box_id)
            for (row_id,) in e._conn.execute("SELECT id FROM derived_images WHERE image_id = ?", (image_id,)).fetchall():
                e.delete("derived_images", row_id)  # logged, so undo restores the image as derived
            e.delete("images", image_id)

    # -- undo / redo ------------------------------------------------------------------------------
    def can_undo(self) -> bool:
        return edits.undo_target(self._conn) is not None

    def can_redo(self) -> bool:
        return edits.redo_target(self._conn) is not None

    def undo(self, *, only: int | None = None) -> int | None:
        """Undo the newest edit; returns its id, or None when there is nothing to undo.

        With ``only``, undo only if the newest edit is that one (a job taking back its own edit); that
        edit is then marked 'dropped', so Redo cannot bring back the work of a cancelled or failed job.
        """
        return self._undo_redo(backwards=True, only=only)

    def redo(self) -> int | None:
        """Redo the most recently undone edit; returns its id, or None when there is nothing to redo."""
        return self._undo_redo(backwards=False)

    def _undo_redo(self, *, backwards: bool, only: int | None = None) -> int | None:
        with db.write_tx(self._conn, self.db_path) as conn:
            target = edits.undo_target(conn) if backwards else edits.redo_target(conn)
            if target is None or (only is not None and target != only):
                return None
            log = edits.start(
                conn, ts=now_iso(), user=self.user, action="undo" if backwards else "redo", target_id=target
            )
            edits.replay(conn, target_id=target, into=log, backwards=backwards)
            log.flush()
            state = "done" if not backwards else "dropped" if only is not None else "undone"
            conn.execute("UPDATE edits SET state = ? WHERE id = ?", (state, target))
            return target

    def history(self, *, limit: int = 100) -> list[EditEntry]:
        """The newest ``limit`` edit-log rows, newest first."""
        rows = self._query(
            "SELECT e.id, e.ts, e.user, e.action, e.state, e.target_id, "
            "(SELECT count(*) FROM edit_changes c WHERE c.edit_id = e.id) "
            "FROM edits e ORDER BY e.id DESC LIMIT ?",
            (limit,),
        )
        return [EditEntry(*r) for r in rows]

    # -- snapshots --------------------------------------------------------------------------------
    def create_snapshot(self, *, note: str = "") -> int:
        """Freeze the current labels; returns the snapshot id (an unchanged state reuses the last one)."""
        from .snapshots import create_snapshot

        with db.write_tx(self._conn, self.db_path) as conn:
            return create_snapshot(conn, ts=now_iso(), note=note)

    def snapshot(self, snapshot_id: int) -> Snapshot:
        rows = self._query(
            "SELECT id, created_at, note, content_hash, last_edit_id, n_images, n_boxes FROM snapshots WHERE id = ?",
            (snapshot_id,),
        )
        if not rows:
            raise ProjectError(f"label snapshot {snapshot_id} does not exist in {self.root}")
        return Snapshot(*rows[0])

    def snapshots(self) -> list[Snapshot]:
        rows = self._query(
            "SELECT id, created_at, note, content_hash, last_edit_id, n_images, n_boxes FROM snapshots ORDER BY id"
        )
        return [Snapshot(*r) for r in rows]

    def snapshot_boxes(
        self, snapshot_id: int, *, with_ids: bool = False
    ) -> dict[int, list[tuple[Any, ...]]]:
        """Boxes of a snapshot keyed by image id: ``(class_id, x1, y1, x2, y2)`` tuples, in box-id
        order; with ``with_ids`` each tuple starts with the box's id at snapshot time."""
        self.snapshot(snapshot_id)
        cols = "box_id, class_id, x1, y1, x2, y2" if with_ids else "class_id, x1, y1, x2, y2"
        out: dict[int, list[tuple[Any, ...]]] = {}
        for image_id, *rest in self._query(
            f"SELECT image_id, {cols} FROM snapshot_boxes WHERE snapshot_id = ? ORDER BY rowid", (snapshot_id,)
        ):
            out.setdefault(image_id, []).append(tuple(rest))
        return out

    # -- low-level access for core modules (ingest, stats) ------------------------------------------
    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for read queries of core modules. Write only through :meth:`edit`."""
        return self._conn
