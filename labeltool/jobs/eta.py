"""Elapsed time and ETA of a running job from its Progress events (the GUI's job panel; no Qt)."""

from __future__ import annotations

import time

from labeltool.core.progress import Progress

ETA_MIN_S = 3.0  # no ETA before a stage has shown progress for this long ("estimating…")


class ProgressClock:
    """Elapsed time of a job and the ETA of its current stage from the done/total rate.

    Each stage keeps its own starting point (``total`` refers to the stage), so a training that
    alternates ``train`` and ``eval`` keeps its ``train`` rate, validation time included. A stage
    whose ``total`` changes or whose ``done`` goes back starts over. Times: ``time.monotonic()``.
    """

    def __init__(self, now: float | None = None) -> None:
        self.started = time.monotonic() if now is None else now
        self._first: dict[str, tuple[float, int, int]] = {}  # stage -> (time, done, total) first seen
        self._last: tuple[float, Progress] | None = None

    def update(self, event: Progress, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        first = self._first.get(event.stage)
        if first is None or first[2] != event.total or event.done < first[1]:
            self._first[event.stage] = (now, event.done, event.total)
        self._last = (now, event)

    def elapsed(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.started

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left in the current stage; None while unknown (no total) or too early to say."""
        if self._last is None:
            return None
        now = time.monotonic() if now is None else now
        t_last, event = self._last
        t_first, done_first, _ = self._first[event.stage]
        if event.total <= 0 or event.done <= done_first or t_last - t_first < ETA_MIN_S:
            return None
        rate = (event.done - done_first) / (t_last - t_first)  # per second
        return max(0.0, (event.total - event.done) / rate - (now - t_last))


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
