"""Runs jobs in child processes and turns their messages into Qt signals (one job per kind).

Jobs that train or run models (``CPU_KINDS``, from ``jobs/kinds.py``) take every core: two at once ran about 8x slower
each (88 s vs 11.6 s an epoch on 2 cores) and a minute-budgeted one silently trained less. So only
one of them runs at a time; another one is queued (it counts as running for its kind, shows a
"waiting for …" progress event) and starts when the running one ends.

The work happens in ``labeltool.jobs.child.ChildJob`` (spawned process, cancel, time-outs); this
class only polls it from a ``QTimer``, so the window's thread never waits on a job. Signal order for
one job: ``running_changed(kind, True)``, ``progress``…, then exactly one of ``finished`` /
``failed`` / ``cancelled``, then ``running_changed(kind, False)`` (left out when a slot of the final
signal already started the next job of the same kind).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

from labeltool.core.progress import Progress
from labeltool.jobs.child import CHILD_NICE, ChildJob, JobMessage
from labeltool.jobs.kinds import CPU_KINDS

POLL_MS = 40  # how often running jobs are read (25 polls a second; each poll only reads a pipe)


class JobRunner(QObject):
    """One job of a kind at a time (``"train"``, ``"analyze"`` …), each in its own process."""

    progress = Signal(str, object)  # kind, Progress
    finished = Signal(str, object)  # kind, result (the job's return value)
    failed = Signal(str, str, str)  # kind, title, message (what happened + what to do)
    cancelled = Signal(str)  # kind
    running_changed = Signal(str, bool)  # kind, running

    def __init__(self, parent: QObject | None = None, *, poll_ms: int = POLL_MS, nice: int = CHILD_NICE) -> None:
        super().__init__(parent)
        self.nice = nice  # priority decrement of the job processes (see labeltool.jobs.child)
        self._jobs: dict[str, ChildJob] = {}
        self._titles: dict[str, str] = {}
        self._queued: dict[str, tuple[str, dict[str, Any]]] = {}  # kind -> (target, kwargs), in start order
        self._ending: list[ChildJob] = []  # sent their final message; polled until the process exits
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)
        app = QCoreApplication.instance()
        if app is not None:  # safety net: a job process left running would keep the app from exiting
            app.aboutToQuit.connect(self.shutdown)

    # -- API ------------------------------------------------------------------------------------
    def start(self, kind: str, target: str, kwargs: Mapping[str, Any], *, title: str = "") -> bool:
        """Start ``target(**kwargs)`` (``"package.module:function"``) in a child process.

        Returns False and starts nothing if a job of this ``kind`` already runs (or waits). A CPU job
        while another CPU job runs is queued (True is returned; it starts when that one ends). A process
        that cannot be started (out of memory, too many processes) emits ``failed`` and returns False too.
        """
        if kind in self._jobs or kind in self._queued:
            return False
        title = title or kind
        busy = self._cpu_job()
        if kind in CPU_KINDS and busy is not None:
            self._queued[kind] = (target, dict(kwargs))
            self._titles[kind] = title
            self.running_changed.emit(kind, True)
            self.progress.emit(kind, Progress("queued", 0, 0, f"waiting for {self._titles.get(busy, busy)} to "
                                                              "finish (one model job at a time uses all cores)"))
            return True
        if not self._launch(kind, target, kwargs, title):
            return False
        self.running_changed.emit(kind, True)
        return True

    def _cpu_job(self) -> str | None:
        return next((k for k in self._jobs if k in CPU_KINDS), None)

    def _launch(self, kind: str, target: str, kwargs: Mapping[str, Any], title: str) -> bool:
        job = ChildJob(target, kwargs, nice=self.nice)
        try:
            job.start()
        except OSError as exc:
            self.failed.emit(kind, f"{title} failed", (
                f"Could not start the job's process: {exc.strerror or exc}. What to do: close other "
                "programs (memory, processes) and try again."))
            return False
        self._jobs[kind] = job
        self._titles[kind] = title
        self._timer.start()
        return True

    def cancel(self, kind: str) -> None:
        """Ask the job of ``kind`` to stop (its clean-up runs); ``cancelled`` follows. No-op if none runs."""
        if kind in self._queued:  # never started: nothing to clean up
            del self._queued[kind]
            self._titles.pop(kind, None)
            self.cancelled.emit(kind)
            self.running_changed.emit(kind, False)
            return
        job = self._jobs.get(kind)
        if job is not None:
            job.cancel()

    def is_running(self, kind: str) -> bool:
        """Whether a job of ``kind`` runs or waits its turn."""
        return kind in self._jobs or kind in self._queued

    def is_queued(self, kind: str) -> bool:
        return kind in self._queued

    def kinds(self) -> list[str]:
        """Kinds of the jobs running or waiting now."""
        return list(self._jobs) + list(self._queued)

    def title(self, kind: str) -> str:
        return self._titles.get(kind, kind)

    def pid(self, kind: str) -> int | None:
        """Process id of the running job of ``kind`` (None if none runs)."""
        job = self._jobs.get(kind)
        return None if job is None else job.pid

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """The window is closing: cancel every job, wait up to ``timeout_s`` for their clean-up,
        then terminate (SIGTERM: clean-up still runs) and finally kill what is left. Emits nothing."""
        self._timer.stop()
        self._queued.clear()
        jobs = list(self._jobs.values()) + self._ending
        self._jobs.clear()
        self._ending.clear()
        for job in jobs:
            job.cancel()
        deadline = time.monotonic() + timeout_s
        for job in jobs:
            job.wait(max(0.0, deadline - time.monotonic()))
            while job.is_alive and time.monotonic() < deadline:  # its last message came; let it exit
                time.sleep(0.02)
        leftovers = [job for job in jobs if job.is_alive]
        for job in leftovers:
            job.terminate()
        deadline = time.monotonic() + min(timeout_s, 3.0)
        for job in leftovers:
            while job.is_alive and time.monotonic() < deadline:
                time.sleep(0.02)
            job.kill()

    # -- polling --------------------------------------------------------------------------------
    def _poll(self) -> None:
        for kind, job in list(self._jobs.items()):
            for message in job.poll():
                if message.kind == "progress":
                    self.progress.emit(kind, message.progress)
                else:
                    self._end(kind, job, message)
                    break
        self._ending = [job for job in self._ending if self._still_ending(job)]
        if not self._jobs and not self._ending:
            self._timer.stop()

    @staticmethod
    def _still_ending(job: ChildJob) -> bool:
        job.poll()  # reaps, and terminates a child that lingers after its last message
        return job.is_alive

    def _end(self, kind: str, job: ChildJob, message: JobMessage) -> None:
        del self._jobs[kind]
        title = self._titles.pop(kind, kind)
        self._ending.append(job)
        if message.kind == "done":
            self.finished.emit(kind, message.result)
        elif message.kind == "cancelled":
            self.cancelled.emit(kind)
        else:
            self.failed.emit(kind, f"{title} failed", failure_text(message))
        if kind not in self._jobs and kind not in self._queued:  # a slot may have started the next job of this kind
            self.running_changed.emit(kind, False)
        self._start_queued()

    def _start_queued(self) -> None:
        """Start the first waiting job when no CPU job runs any more."""
        while self._queued and self._cpu_job() is None:
            kind = next(iter(self._queued))
            target, kwargs = self._queued.pop(kind)
            title = self._titles.get(kind, kind)
            if not self._launch(kind, target, kwargs, title):
                self.running_changed.emit(kind, False)


def failure_text(message: JobMessage) -> str:
    """The dialog text for an error message: the user-facing text, or for an internal error what to
    do plus the traceback (which the user can copy into a bug report)."""
    if message.error == "internal":
        return (f"{message.text}\n\nThis is a bug in labeltool, not something you did; your labels are "
                "safe (every edit is saved as it happens). Please report it with the details below.\n\n"
                f"{message.traceback}").rstrip()
    return message.text
