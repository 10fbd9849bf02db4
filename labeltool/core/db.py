"""Low-level SQLite access: connecting, write transactions, error translation, migrations.

Every write goes through :func:`write_tx` (``BEGIN IMMEDIATE`` … ``COMMIT``): one writer at a time,
others wait up to ``config.BUSY_TIMEOUT_S`` and then get :class:`ProjectLockedError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import config
from .errors import ProjectError, ProjectLockedError
from .schema import MIGRATIONS


def connect(db_path: Path) -> sqlite3.Connection:
    """Open ``db_path`` with WAL, foreign keys and a busy timeout; autocommit mode (explicit BEGIN)."""
    try:
        conn = sqlite3.connect(
            str(db_path), timeout=config.BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA foreign_keys = ON")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        # FULL: a committed edit survives a crash of the app *and* of the machine.
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.DatabaseError as exc:
        raise translate(exc, db_path) from exc
    if str(mode).lower() != "wal":
        conn.close()
        raise ProjectError(
            f"{db_path}: could not switch the database to WAL mode (got {mode!r}); "
            "the project folder may be on a network share or read-only medium — copy it to a local disk."
        )
    return conn


SQLITE_HEADER = b"SQLite format 3\x00"


def check_header(db_path: Path) -> None:
    """ProjectError ("damaged project", naming the backups found) unless ``db_path`` starts like an
    SQLite database. An empty or foreign file would otherwise open as a new, empty project."""
    try:
        with open(db_path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise ProjectError(f"{db_path}: cannot be read ({exc.strerror or exc}); check the folder's permissions") from exc
    if head == SQLITE_HEADER:
        return
    what = "is empty (0 bytes)" if not head else "is not an SQLite database"
    backups = sorted(p.name for p in db_path.parent.glob(f"{db_path.name}.bak*") if p.is_file())
    restore = (f"Restore it from a backup beside it ({', '.join(backups)}): copy that file over {db_path.name}."
               if backups else "No backup (project.db.bak-*) is beside it; restore the folder from your own backup.")
    raise ProjectError(f"damaged project: {db_path} {what}, so its labels cannot be read. {restore} "
                       "Nothing was changed.")


def translate(exc: sqlite3.Error, db_path: Path) -> ProjectError:
    """Turn an sqlite3 error into a ProjectError that says what to do."""
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return ProjectLockedError(
            f"{db_path}: the project is busy — another labeltool window or job is writing to it "
            f"and did not finish within {config.BUSY_TIMEOUT_S:.0f} s. Wait for it to finish "
            "(or close the other window) and try again."
        )
    if "full" in low:
        return ProjectError(f"{db_path}: the disk is full ({text}). Free some space and retry; nothing was saved.")
    if "not a database" in low or "malformed" in low:
        return ProjectError(
            f"{db_path}: the project database is damaged ({text}). Restore project.db from a backup "
            "(project.db.bak-* files are kept beside it after upgrades)."
        )
    if "readonly" in low or "read-only" in low or "unable to open" in low:
        return ProjectError(
            f"{db_path}: cannot write the project database ({text}). Check that the folder exists "
            "and is writable by your user."
        )
    return ProjectError(f"{db_path}: database error: {text}")


@contextmanager
def write_tx(conn: sqlite3.Connection, db_path: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction: commits on success, rolls back on any exception."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise translate(exc, db_path) from exc
    try:
        yield conn
    except sqlite3.Error as exc:
        _rollback(conn)
        raise translate(exc, db_path) from exc
    except BaseException:
        _rollback(conn)
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        raise translate(exc, db_path) from exc


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open (SQLite ends it itself after e.g. a full disk)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, db_path: Path, *, target: int | None = None) -> int:
    """Upgrade the database to ``target`` (default: config.SCHEMA_VERSION); returns the old version.

    A database from a newer labeltool raises ProjectError. Before upgrading an existing database
    (version >= 1) it is copied to ``project.db.bak-v<old>``. All steps run in one transaction.
    """
    target = config.SCHEMA_VERSION if target is None else target
    current = schema_version(conn)
    if current > target:
        raise ProjectError(
            f"{db_path}: this project was written by a newer labeltool (schema {current}, this "
            f"version understands up to {target}). Install the newer labeltool to open it."
        )
    if current == target:
        return current
    missing = [v for v in range(current, target) if v not in MIGRATIONS]
    if missing:
        raise ProjectError(f"{db_path}: no migration from schema version {missing[0]}; cannot upgrade.")
    if current >= 1:  # a consistent copy, WAL content included (sqlite3's online backup)
        backup = sqlite3.connect(str(db_path.with_name(f"{db_path.name}.bak-v{current}")))
        try:
            conn.backup(backup)
        finally:
            backup.close()
    with write_tx(conn, db_path):
        for version in range(current, target):
            MIGRATIONS[version](conn)
        conn.execute(f"PRAGMA user_version = {int(target)}")
    return current
