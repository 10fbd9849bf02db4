"""The command line's progress line estimates time left with the window's clock (jobs/eta.py)."""

from __future__ import annotations

import io

import pytest

from labeltool.cli import common
from labeltool.core.progress import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_restarted_stage_gets_a_fresh_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: now[0])
    stream = Tty()
    printer = common.ProgressPrinter(stream=stream)
    printer._clock.started = 0.0

    def line(done: int, total: int, t: float) -> str:
        now[0] = t
        printer(Progress("train", done, total, "epoch"))
        return printer._line(Progress("train", done, total, "epoch"), t)

    assert "ETA" not in line(0, 120, 0.0)
    assert "ETA   60s" in line(60, 120, 60.0)  # 1 step/s
    line(120, 120, 120.0)
    # a second training in the same process (the demo's fine-tune): its first steps say nothing yet …
    assert "ETA" not in line(1, 156, 300.0)
    # … then its own rate: 26 steps in 20 s -> 129 left / 1.3 per s = 99 s (not the first training's rate)
    assert "ETA   99s" in line(27, 156, 320.0)
