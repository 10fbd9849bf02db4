"""Long-running work as generators that yield :class:`Progress` and return a result.

The CLI drives a job in-process (:func:`drive`); the GUI (later) runs the same job function in a
spawned child process. Job functions take only picklable arguments (paths, numbers, strings).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import TypeVar

from labeltool.core.progress import Progress
from labeltool.core.project_lock import writer_lock

T = TypeVar("T")
Job = Generator[Progress, None, T]

__all__ = ["Job", "Progress", "drive", "writing"]


def drive(job: Generator[Progress, None, T], on_progress: Callable[[Progress], None]) -> T:
    """Run ``job`` to completion in this process, passing each event to ``on_progress``.

    When ``on_progress`` raises (a Cancel button, Ctrl+C), the job is closed first so its own
    cleanup (``finally`` blocks, undo of its partial work) runs before the exception propagates."""
    try:
        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
            on_progress(event)
    except BaseException:
        job.close()
        raise


def writing(project_dir: Path, what: str, job: Generator[Progress, None, T], *, wait_s: float = 0.0) -> Job[T]:
    """``job`` run while holding the project's writer lock (``core.project_lock``): another writer
    gets "project is busy: <what> since <when>". What crashed writers left behind is cleaned first,
    and each thing cleaned is reported as a ``cleanup`` event."""
    with writer_lock(project_dir, what, wait_s=wait_s) as cleaned:
        for line in cleaned:
            yield Progress("cleanup", 0, 0, line)
        return (yield from job)
