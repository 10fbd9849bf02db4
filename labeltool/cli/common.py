"""Shared by the commands: exit codes, rendering job Progress (terminal bar, log lines, JSON lines)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from labeltool.core.progress import Progress
from labeltool.jobs.eta import ProgressClock

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class ProgressPrinter:
    """Renders Progress events: a one-line bar on a terminal, plain lines otherwise, or JSON lines.

    Without a terminal (a pipe, a CI log) it prints a line when the stage changes and then at most
    every ``LOG_EVERY_S`` seconds, so long work still shows it is alive.
    """

    LOG_EVERY_S = 30.0
    FULL_MESSAGE_STAGES = ("model",)
    NO_ETA_STAGES = ("demo",)  # steps of very different lengths: a rate says nothing

    def __init__(self, *, json_lines: bool = False, stream: Any = None) -> None:
        self.json_lines = json_lines
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stage = ""
        self._clock = ProgressClock()  # the window's job panel estimates with the same clock
        self._last_draw = 0.0

    def __call__(self, p: Progress) -> None:
        if self.json_lines:
            event = {"event": "progress", "stage": p.stage, "done": p.done, "total": p.total, "message": p.message}
            if p.metrics:
                event["metrics"] = p.metrics
            print(json.dumps(event), flush=True)
            return
        if p.stage in self.FULL_MESSAGE_STAGES:  # e.g. which weights were used: shown whole, once
            self.close()
            self.stream.write(p.message + "\n")
            self.stream.flush()
            return
        now = time.monotonic()
        self._clock.update(p, now)
        changed = p.stage != self._stage
        if changed and self._stage and self.tty:
            self.stream.write("\n")
        self._stage = p.stage
        finished = p.total > 0 and p.done >= p.total
        if self.tty:
            if changed or finished or now - self._last_draw > 0.1:
                self._last_draw = now
                self.stream.write("\r" + self._line(p, now) + "\x1b[K")
        elif changed or now - self._last_draw > self.LOG_EVERY_S:
            self._last_draw = now
            self.stream.write(self._line(p, now).strip() + "\n")
        self.stream.flush()

    def _line(self, p: Progress, now: float) -> str:
        if p.total <= 0:
            return f"{p.stage:>8} {p.message[:70]}"
        frac = min(1.0, p.done / p.total)
        filled = int(frac * 30)
        left = self._clock.eta(now) if 0 < frac < 1 and p.stage not in self.NO_ETA_STAGES else None
        eta = f" ETA {left:4.0f}s" if left is not None else ""
        return f"{p.stage:>8} [{'#' * filled}{'.' * (30 - filled)}] {p.done}/{p.total}{eta} {p.message[:40]}"

    def close(self) -> None:
        if self.tty and self._stage and not self.json_lines:
            self.stream.write("\n")
            self.stream.flush()
        self._stage = ""


def run_job(job: Any, args: argparse.Namespace) -> Any:
    """Drive ``job`` in this process with a progress bar (or JSON lines with ``--json``)."""
    from labeltool.jobs import drive

    printer = ProgressPrinter(json_lines=getattr(args, "json", False))
    try:
        return drive(job, printer)
    finally:
        printer.close()
