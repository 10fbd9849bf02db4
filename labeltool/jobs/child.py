"""Run a job in a spawned child process and read its events without ever blocking (no Qt here).

The GUI starts a :class:`ChildJob` and calls :meth:`ChildJob.poll` from a timer. The child
(:func:`run_child`) imports the job function named by a target string such as
``"labeltool.jobs.model:train_job"``, runs it with :func:`labeltool.jobs.drive` and sends
:class:`JobMessage` objects back over a one-way pipe:

- ``progress``: one :class:`Progress` event. At most ~20 a second (``PROGRESS_INTERVAL_S``): events
  of the same stage are coalesced to the newest, but a new stage, an ``eval`` event (per-epoch
  metrics for the training plot) and the last event before the end always go out.
- ``done``: the job's return value (``result``).
- ``error``: ``error="user"`` for a :class:`LabeltoolError` (``text`` is its message: what happened
  and what to do), ``"internal"`` for anything else (``text`` + ``traceback``), ``"died"`` when the
  process ended without a word (killed, out of memory), synthesised by the parent.
- ``cancelled``: the job stopped after Cancel and its clean-up ran (``text`` is empty), or it had to
  be killed (``text`` says so).

Cancel is cooperative first: a multiprocessing Event checked before each progress event is passed
on; :class:`JobCancelled` is raised there, so ``drive`` closes the job and its ``finally`` blocks run
(a training takes back its split and removes its temporary run folder). A job that does not reach a
progress event within ``CANCEL_GRACE_S`` gets SIGTERM, turned into the same :class:`JobCancelled`
inside whatever the job is doing (ignored once a clean-up runs); ``TERMINATE_GRACE_S`` later, SIGKILL.

The child runs at a lower priority (``CHILD_NICE``) so the window's thread wins the CPU; the job keeps
its own thread choice (training uses every core). If the parent dies, the child cancels itself.
"""

from __future__ import annotations

import _thread
import importlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from labeltool.core.errors import LabeltoolError
from labeltool.core.progress import Progress

from . import Job, drive

CHILD_NICE = 10  # Unix nice increment of the job process: the GUI thread (nice 0) preempts it at once
PROGRESS_INTERVAL_S = 0.05  # coalesce progress to at most ~20 messages a second
ALWAYS_SENT_STAGES = frozenset({"eval"})  # never coalesced: per-epoch metrics the training plot needs
CANCEL_GRACE_S = 10.0  # after Cancel: time to reach the next progress event before SIGTERM is sent
TERMINATE_GRACE_S = 5.0  # after SIGTERM (the job's clean-up runs): time before SIGKILL
LINGER_S = 5.0  # after its last message: time the process may take to exit before it is terminated

KINDS = ("progress", "done", "error", "cancelled")


class JobCancelled(BaseException):
    """Raised inside the job process when the job is cancelled (Cancel, window closing, SIGTERM).

    A BaseException, like KeyboardInterrupt: when SIGTERM raises it inside job code, an
    ``except Exception`` there must not swallow it."""


@dataclass(frozen=True, slots=True)
class JobMessage:
    """One message from the job process. ``kind``: progress | done | error | cancelled."""

    kind: str
    progress: Progress | None = None  # kind == "progress"
    result: Any = None  # kind == "done": the job's return value
    error: str = ""  # kind == "error": "user" | "internal" | "died"
    text: str = ""  # error: the message to show; cancelled: a note when the job had to be killed
    traceback: str = ""  # error == "internal": the child's traceback

    @property
    def final(self) -> bool:
        """True for the last message of a job (done, error, cancelled)."""
        return self.kind != "progress"


def _split_target(target: str) -> tuple[str, str]:
    module, sep, name = target.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"job target must look like 'package.module:function', got {target!r}")
    return module, name


def resolve_target(target: str) -> Callable[..., Any]:
    """The function named ``"package.module:function"``."""
    module, name = _split_target(target)
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"job target {target!r}: module {module} has no function {name}")
    return fn


def sleep_job(seconds: float = 1.0, steps: int = 10) -> Job[dict[str, Any]]:
    """A deliberately trivial job for smoke checks of the runner: ``steps`` progress events spread
    over ``seconds`` of sleeping (stage ``sleep``); returns ``{"steps", "seconds", "pid"}``."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if seconds < 0:
        raise ValueError(f"seconds must not be negative, got {seconds}")
    yield Progress("sleep", 0, steps, f"sleeping {seconds:g} s in {steps} steps")
    for i in range(steps):
        time.sleep(seconds / steps)
        yield Progress("sleep", i + 1, steps, f"step {i + 1}/{steps}")
    return {"steps": steps, "seconds": seconds, "pid": os.getpid()}


# -- the child side -----------------------------------------------------------------------------------
class _Outbox:
    """Sends messages from a thread of its own, so the job never waits on the pipe and a SIGTERM
    (handled in the main thread) can never cut a message in half. Progress is coalesced."""

    def __init__(self, conn: Connection, *, interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self._conn = conn
        self._interval = interval_s
        self._cond = threading.Condition()
        self._queue: list[JobMessage] = []  # goes out in order, as soon as possible
        self._latest: Progress | None = None  # newest coalesced event, goes out when due
        self._stage: str | None = None
        self._last_sent = 0.0
        self._closed = False
        self.broken = False  # the parent is gone
        self._thread = threading.Thread(target=self._run, name="labeltool-job-outbox", daemon=True)
        self._thread.start()

    def progress(self, event: Progress) -> None:
        with self._cond:
            if event.stage in ALWAYS_SENT_STAGES or event.stage != self._stage:
                self._flush_latest()  # the last state of the previous stage first
                self._queue.append(JobMessage("progress", progress=event))
                self._cond.notify()
            else:
                if self._latest is None:
                    self._cond.notify()  # the thread may be waiting without a time-out
                self._latest = event
            self._stage = event.stage

    def close(self, final: JobMessage, *, timeout_s: float = 60.0) -> None:
        """Send what is pending, then ``final``, and stop the thread."""
        with self._cond:
            self._flush_latest()
            self._queue.append(final)
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout_s)

    def _flush_latest(self) -> None:
        if self._latest is not None:
            self._queue.append(JobMessage("progress", progress=self._latest))
            self._latest = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    due = self._latest is not None and time.monotonic() - self._last_sent >= self._interval
                    if self._queue or due or (self._closed and self._latest is None):
                        break
                    wait_s = self._interval - (time.monotonic() - self._last_sent) if self._latest else None
                    self._cond.wait(wait_s)
                batch, self._queue = self._queue, []
                if due and not batch:
                    batch, self._latest = [JobMessage("progress", progress=self._latest)], None
                stop = self._closed and not self._queue and self._latest is None
            for message in batch:
                self._send(message)
            self._last_sent = time.monotonic()
            if stop or self.broken:
                return

    def _send(self, message: JobMessage) -> None:
        if self.broken:
            return
        try:
            self._conn.send(message)  # pickles first: a failure here writes nothing
        except OSError:  # the parent closed its end (gone)
            self.broken = True
        except Exception as exc:  # noqa: BLE001 - an unpicklable result must still end the job visibly
            if message.final:
                self._send(JobMessage("error", error="internal", text=(
                    f"the job ended ({message.kind}) but its result could not be sent back: "
                    f"{type(exc).__name__}: {exc}. This is a bug in labeltool; please report it.")))


def _lower_priority(increment: int) -> None:
    """Lower this process's CPU priority (Unix nice; Windows: below-normal class)."""
    if increment <= 0:
        return
    try:
        if hasattr(os, "nice"):
            os.nice(increment)
        elif sys.platform == "win32":  # not exercised by the tests (Linux)
            import ctypes

            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
            kernel32.SetPriorityClass(kernel32.GetCurrentProcess(), 0x4000)  # BELOW_NORMAL_PRIORITY_CLASS
    except (OSError, AttributeError):
        pass  # a job at normal priority still works; the window may only stutter more


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the clean-up must not be interrupted again
    raise JobCancelled("stopped by the parent (SIGTERM)")


def _watch_parent(cancel: Any) -> None:
    """Cancel the job when the parent process dies (the window crashed or was killed)."""
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        cancel.set()
        time.sleep(CANCEL_GRACE_S)
        _thread.interrupt_main(signal.SIGTERM)  # the job did not reach a progress event: SIGTERM path

    threading.Thread(target=watch, name="labeltool-job-parent-watch", daemon=True).start()


def run_child(target: str, kwargs: Mapping[str, Any], conn: Connection, cancel: Any, nice: int) -> None:
    """Entry point of the job process (spawned): run ``target(**kwargs)``, report over ``conn``."""
    _lower_priority(nice)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the terminal is the parent's to handle
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _on_sigterm)
    _watch_parent(cancel)
    outbox = _Outbox(conn)

    def on_progress(event: Progress) -> None:
        if cancel.is_set() or outbox.broken:
            if hasattr(signal, "SIGTERM"):  # the job's clean-up runs next: a SIGTERM must not cut it short
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            raise JobCancelled("cancelled")
        outbox.progress(event)

    try:
        job = resolve_target(target)(**kwargs)
        if not isinstance(job, Generator):
            raise TypeError(f"job target {target!r} returned {type(job).__name__}, not a generator of Progress")
        final = JobMessage("done", result=drive(job, on_progress))
    except JobCancelled:
        final = JobMessage("cancelled")
    except LabeltoolError as exc:
        final = JobMessage("error", error="user", text=str(exc) or type(exc).__name__)
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent, which shows it
        final = JobMessage("error", error="internal", text=f"{type(exc).__name__}: {exc}",
                           traceback=traceback.format_exc())
    try:
        outbox.close(final)
    except JobCancelled:  # a SIGTERM while the last message was going out: it still goes out
        outbox.close(final)
    finally:
        conn.close()


# -- the parent side ----------------------------------------------------------------------------------
class ChildJob:
    """A job running in a spawned child process. Nothing here blocks unless asked (:meth:`wait`).

    ``target`` is ``"package.module:function"``; ``kwargs`` must be picklable (paths, numbers,
    strings). Call :meth:`poll` regularly: it returns the messages that arrived, applies the cancel
    time-outs, and ends with one final message (done / error / cancelled), also when the child died.
    """

    def __init__(self, target: str, kwargs: Mapping[str, Any] | None = None, *, nice: int = CHILD_NICE,
                 cancel_grace_s: float = CANCEL_GRACE_S, terminate_grace_s: float = TERMINATE_GRACE_S) -> None:
        _split_target(target)  # a malformed target fails here, not in the child
        self.target = target
        self.kwargs = dict(kwargs or {})
        self.nice = nice
        self.cancel_grace_s = cancel_grace_s
        self.terminate_grace_s = terminate_grace_s
        self._ctx = mp.get_context("spawn")
        self._cancel = self._ctx.Event()
        self._process: Any = None
        self._conn: Connection | None = None
        self._final: JobMessage | None = None
        self._final_at: float | None = None
        self._cancel_at: float | None = None
        self._term_at: float | None = None
        self._kill_at: float | None = None
        self.started_at: float | None = None  # time.monotonic() at start

    # -- state --------------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def is_alive(self) -> bool:
        """The child process is still running (it may outlive its final message by a moment)."""
        return self._process is not None and self._process.is_alive()

    @property
    def exitcode(self) -> int | None:
        """The child's exit code once it ended (negative: killed by that signal), else None."""
        return None if self._process is None else self._process.exitcode

    @property
    def final(self) -> JobMessage | None:
        """The final message (done / error / cancelled) once :meth:`poll` delivered it."""
        return self._final

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_at is not None

    # -- control ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn the child process (returns at once; the child imports and starts the job)."""
        if self._process is not None:
            raise RuntimeError(f"job {self.target} was already started")
        recv, send = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(target=run_child, name=f"labeltool job {self.target}",
                                    args=(self.target, self.kwargs, send, self._cancel, self.nice))
        try:
            process.start()
        except BaseException:
            recv.close()
            raise
        finally:
            send.close()  # the child holds its own copy; ours must go, or a dead child is never noticed
        self._process, self._conn = process, recv
        self.started_at = time.monotonic()

    def cancel(self) -> None:
        """Ask the job to stop at its next progress event; SIGTERM and SIGKILL follow if it does not."""
        if self._process is None or self._final is not None:
            return
        self._cancel.set()
        if self._cancel_at is None:
            self._cancel_at = time.monotonic()

    def terminate(self) -> None:
        """Stop now: SIGTERM (the job's clean-up still runs in the child); SIGKILL follows after
        ``terminate_grace_s`` (see :meth:`poll`)."""
        if self._process is None or not self._process.is_alive():
            return
        self.cancel()
        if self._term_at is None:
            self._process.terminate()
            self._term_at = time.monotonic()

    def kill(self) -> None:
        """SIGKILL: no clean-up runs in the child."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._kill_at = time.monotonic()

    # -- reading ------------------------------------------------------------------------------------
    def poll(self) -> list[JobMessage]:
        """Messages that arrived since the last call, without blocking. The last message of a job is
        final; after it the list stays empty (and a child that does not exit is terminated)."""
        if self._process is None:
            raise RuntimeError(f"job {self.target} was not started")
        if self._final is not None:
            self._reap()
            return []
        out = self._drain()
        if self._final is None:
            self._escalate()
            if self._process.exitcode is not None:  # ended: everything it sent is in the pipe now
                out += self._drain()
                if self._final is None:
                    self._set_final(self._died_message())
                    out.append(self._final)  # type: ignore[arg-type]
        if self._final is not None:
            self._reap()
        return out

    def wait(self, timeout_s: float | None = None) -> list[JobMessage]:
        """Block until the final message (or ``timeout_s``); returns every message read meanwhile."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        out = self.poll()
        while self._final is None:
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                break
            handles: list[Any] = [self._process.sentinel] + ([self._conn] if self._conn else [])
            wait(handles, timeout=left)
            out += self.poll()
        return out

    def _drain(self) -> list[JobMessage]:
        out: list[JobMessage] = []
        while self._conn is not None and self._final is None:
            try:
                if not self._conn.poll():
                    break
                message = self._conn.recv()
            except (EOFError, OSError):  # the child closed its end (it ended, or is ending)
                self._conn.close()
                self._conn = None
                break
            out.append(message)
            if message.final:
                self._set_final(message)
        return out

    def _set_final(self, message: JobMessage) -> None:
        self._final, self._final_at = message, time.monotonic()

    def _escalate(self) -> None:
        now = time.monotonic()
        if self._cancel_at is not None and self._term_at is None and now - self._cancel_at >= self.cancel_grace_s:
            self.terminate()
        elif self._term_at is not None and self._kill_at is None and now - self._term_at >= self.terminate_grace_s:
            self.kill()

    def _reap(self) -> None:
        """After the final message: close the pipe; a child that lingers is terminated, then killed."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if not self._process.is_alive():
            self._process.join(0)
            return
        now = time.monotonic()
        if self._term_at is None and self._final_at is not None and now - self._final_at >= LINGER_S:
            self._process.terminate()
            self._term_at = now
        elif self._term_at is not None and self._kill_at is None and now - self._term_at >= self.terminate_grace_s:
            self.kill()

    def _died_message(self) -> JobMessage:
        code = self._process.exitcode
        if code is not None and code < 0:
            try:
                how = f"was killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        if self._cancel_at is not None:
            return JobMessage("cancelled", text=(
                f"the job did not stop in time after Cancel and {how}; its clean-up could not run, so it may "
                "have left temporary files (e.g. runs/.tmp-*) in the project, which are safe to delete"))
        return JobMessage("error", error="died", text=(
            f"The job's process {how} without reporting a result. This usually means the computer ran out "
            "of memory, or something outside labeltool stopped it. What to do: close other programs, or use "
            "smaller settings (a smaller image size or batch size, fewer images), then try again."))


__all__ = ["ChildJob", "JobCancelled", "JobMessage", "resolve_target", "run_child", "sleep_job"]
