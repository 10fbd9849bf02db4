"""One writer at a time: the project's writer lock.

Every job that writes a project (import, training, analysis, augmentation, the demo; from the
command line or as a window's child process) holds ``<project>/.labeltool-writer.lock`` while it
runs: an OS file lock (``fcntl.flock`` / ``msvcrt.locking``), so it is released when the process
ends, even by SIGKILL or a power cut. The file also says who holds it; a second writer gets
:class:`ProjectBusyError` ("project is busy: import of … since …") or, asked to, waits for it.

Box edits in the window are single SQLite transactions and do not take this lock. The lock is
re-entrant within a process (the demo job runs import, training and analysis jobs inside it).
Whoever takes the lock first cleans what crashed writers left behind (``core.leftovers``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .errors import ProjectLockedError

LOCK_FILENAME = ".labeltool-writer.lock"
POLL_S = 0.2
HOLDER_READ_TRIES = 20  # x POLL_S / 4: up to a second for a new holder to say who it is

_held: dict[Path, tuple[IO[bytes], int]] = {}  # project root -> (open lock file, depth)
_guard = threading.Lock()


class ProjectBusyError(ProjectLockedError):
    """Another process is writing the project; ``holder`` is what it said about itself."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def _try_lock(fh: IO[bytes]) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _unlock(fh: IO[bytes]) -> None:
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_holder(root: Path) -> dict[str, Any]:
    """What the current (or last) holder wrote into the lock file; {} when nothing readable."""
    try:
        data = json.loads((Path(root) / LOCK_FILENAME).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def busy_message(root: Path, holder: dict[str, Any]) -> str:
    what = holder.get("what") or "another labeltool job"
    since = holder.get("since", "")
    try:
        since = datetime.fromisoformat(since).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        pass
    who = f" (process {holder['pid']} on {holder.get('host', '?')})" if holder.get("pid") else ""
    return (f"project is busy: {what} since {since or 'a moment ago'}{who}, in {root}. Wait for it to "
            "finish (or cancel it), then try again; on the command line --wait waits for it.")


@contextmanager
def writer_lock(root: str | Path, what: str, *, wait_s: float = 0.0) -> Iterator[list[str]]:
    """Hold the project's writer lock for ``what`` (shown to whoever is refused).

    ``wait_s`` > 0 waits that long for another writer to finish before ProjectBusyError. Yields the
    list of leftovers of crashed writers that taking the lock cleaned (usually empty).
    """
    root = Path(root).expanduser().resolve()
    with _guard:
        if root in _held:
            fh, depth = _held[root]
            _held[root] = (fh, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield []
        finally:
            with _guard:
                fh, depth = _held[root]
                _held[root] = (fh, depth - 1)
        return
    path = root / LOCK_FILENAME
    fh = open(path, "a+b")  # noqa: SIM115 (held open for the lock's lifetime)
    deadline = time.monotonic() + max(0.0, wait_s)
    while not _try_lock(fh):
        if time.monotonic() >= deadline:
            fh.close()
            holder = read_holder(root)
            for _ in range(HOLDER_READ_TRIES):  # the holder writes who it is just after it takes the lock
                if holder:
                    break
                time.sleep(POLL_S / 4)
                holder = read_holder(root)
            raise ProjectBusyError(busy_message(root, holder), holder)
        time.sleep(POLL_S)
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"what": what, "pid": os.getpid(), "host": socket.gethostname(),
                             "since": datetime.now(UTC).isoformat(timespec="seconds")}).encode())
        fh.flush()
        with _guard:
            _held[root] = (fh, 1)
        from .leftovers import clean_leftovers

        cleaned = clean_leftovers(root)
        yield cleaned
    finally:
        with _guard:
            _held.pop(root, None)
        # who held it stays in the file: a writer refused a moment before this release reads it after
        _unlock(fh)
        fh.close()

