"""JobRunner (jobs in child processes → Qt signals) and JobPanel (rows with progress and Cancel), offscreen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from labeltool.gui.job_panel import JobPanel
from labeltool.gui.job_runner import JobRunner

pytestmark = pytest.mark.gui

SLEEP = "labeltool.jobs.child:sleep_job"
DEMO_DATA = "labeltool.jobs.demo:demo_data_job"


def record(runner: JobRunner) -> list[tuple]:
    events: list[tuple] = []
    runner.running_changed.connect(lambda kind, running: events.append(("running", kind, running)))
    runner.progress.connect(lambda kind, p: events.append(("progress", kind, p.stage, p.done)))
    runner.finished.connect(lambda kind, result: events.append(("finished", kind, result)))
    runner.failed.connect(lambda kind, title, message: events.append(("failed", kind, title, message)))
    runner.cancelled.connect(lambda kind: events.append(("cancelled", kind)))
    return events


def ended(kind: str):
    return lambda k, running: k == kind and not running


def test_signals_arrive_in_order_progress_then_finished(qtbot, tmp_path: Path) -> None:
    runner = JobRunner()
    events = record(runner)
    with qtbot.waitSignal(runner.running_changed, timeout=60_000, check_params_cb=ended("demo")):
        assert runner.start("demo", DEMO_DATA, {"dest": tmp_path / "d", "n_images": 4, "size": 64}, title="Demo data")
        assert runner.is_running("demo") and runner.pid("demo") not in (None, os.getpid())
    assert events[:3] == [("running", "demo", True), ("progress", "demo", "generate", 0),
                          ("progress", "demo", "generate", 4)]
    assert [e[0] for e in events[3:]] == ["finished", "running"] and events[-1] == ("running", "demo", False)
    assert events[3][2]["images"] == 4 and (tmp_path / "d" / "annotations.json").is_file()
    assert not runner.is_running("demo") and runner.kinds() == []


def test_one_job_of_a_kind_at_a_time_and_kinds_run_side_by_side(qtbot) -> None:
    runner = JobRunner()
    events = record(runner)
    assert runner.start("train", SLEEP, {"seconds": 60, "steps": 600})
    assert not runner.start("train", SLEEP, {"seconds": 1, "steps": 1})
    assert [e for e in events if e[0] == "running"] == [("running", "train", True)]  # the refused one: nothing
    with qtbot.waitSignal(runner.finished, timeout=60_000):
        assert runner.start("other", SLEEP, {"seconds": 0.2, "steps": 2})
    assert runner.is_running("train") and not runner.is_running("other")
    with qtbot.waitSignal(runner.cancelled, timeout=30_000) as blocker:
        runner.cancel("train")
    assert blocker.args == ["train"] and not runner.is_running("train")
    assert runner.start("train", SLEEP, {"seconds": 0.1, "steps": 1})  # the kind is free again
    runner.shutdown(5.0)


def test_panel_shows_the_stage_and_cancel_stops_the_job(qtbot) -> None:
    runner = JobRunner()
    panel = JobPanel(runner, hide_after_ms=300)
    qtbot.addWidget(panel)
    panel.show()
    assert runner.start("train", SLEEP, {"seconds": 60, "steps": 600}, title="Training")
    row = panel.row("train")
    assert row is not None and row.title_label.text() == "Training" and row.stage_label.text() == "starting…"
    assert row.bar.maximum() == 0  # busy indicator until the first event
    qtbot.waitUntil(lambda: row.stage_label.text() == "sleep" and row.bar.value() >= 1, timeout=30_000)
    assert row.bar.maximum() == 600 and row.message_label.text().startswith("step ")
    assert row.time_label.text().startswith("elapsed ") and "estimating…" in row.time_label.text()
    qtbot.waitUntil(lambda: "left" in row.time_label.text(), timeout=30_000)  # ETA once the rate is known
    with qtbot.waitSignal(runner.cancelled, timeout=30_000):
        qtbot.mouseClick(row.button, Qt.MouseButton.LeftButton)
        assert row.button.text() == "Cancelling…" and not row.button.isEnabled()
    assert row.stage_label.text() == "cancelled" and not runner.is_running("train")
    assert panel.visible_kinds() == ["train"]
    qtbot.waitUntil(lambda: row.isHidden(), timeout=5_000)
    assert panel.visible_kinds() == []


def test_failures_say_what_happened_and_stay_until_closed(qtbot, tmp_path: Path) -> None:
    runner = JobRunner()
    panel = JobPanel(runner, hide_after_ms=100)
    qtbot.addWidget(panel)
    panel.show()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("not empty")
    with qtbot.waitSignal(runner.failed, timeout=60_000) as blocker:
        runner.start("demo", DEMO_DATA, {"dest": tmp_path / "d"}, title="Demo data")
    kind, title, message = blocker.args
    assert (kind, title) == ("demo", "Demo data failed")
    assert message == f"{tmp_path / 'd'} is not empty; pick a new folder for the demo data"
    row = panel.row("demo")
    assert row.stage_label.text() == "failed" and row.message_label.text() == message
    assert row.button.text() == "Close"
    qtbot.wait(300)
    assert not row.isHidden()  # a failure is not hidden by the timer
    qtbot.mouseClick(row.button, Qt.MouseButton.LeftButton)
    assert row.isHidden()

    with qtbot.waitSignal(runner.failed, timeout=60_000) as blocker:  # a bug: the traceback comes along
        runner.start("demo", SLEEP, {"steps": 0}, title="Sleep")
    message = blocker.args[2]
    assert message.startswith("ValueError: steps must be at least 1, got 0\n\nThis is a bug in labeltool")
    assert "Traceback (most recent call last)" in message
    assert panel.row("demo").message_label.text() == "ValueError: steps must be at least 1, got 0"


def test_shutdown_stops_every_job_process(qtbot) -> None:
    runner = JobRunner()
    events = record(runner)
    with qtbot.waitSignal(runner.progress, timeout=30_000):
        runner.start("a", SLEEP, {"seconds": 60, "steps": 600})
    # a job that never reaches another progress event: cancel alone cannot stop it, SIGTERM does
    with qtbot.waitSignal(runner.progress, timeout=30_000, check_params_cb=lambda kind, p: kind == "b"):
        runner.start("b", SLEEP, {"seconds": 120, "steps": 1})
    pids = [runner.pid("a"), runner.pid("b")]
    runner.shutdown(timeout_s=1.0)
    assert runner.kinds() == [] and all(_ended(pid) for pid in pids)
    assert not any(e[0] in ("finished", "failed", "cancelled") for e in events)  # silent: the window closes


def _ended(pid: int | None) -> bool:
    assert pid is not None
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"  # ended, not yet reaped
    except FileNotFoundError:
        return True


def test_model_jobs_wait_their_turn_instead_of_sharing_the_cores(qtbot) -> None:
    runner = JobRunner()
    events = record(runner)
    assert runner.start("train", SLEEP, {"seconds": 1.0, "steps": 5})
    assert runner.start("analyze", SLEEP, {"seconds": 0.2, "steps": 2})  # accepted, but queued
    assert runner.is_running("analyze") and runner.is_queued("analyze") and runner.pid("analyze") is None
    assert not runner.start("analyze", SLEEP, {"seconds": 0.1, "steps": 1})  # one of a kind, queued included
    queued = [e for e in events if e[:3] == ("progress", "analyze", "queued")]
    assert len(queued) == 1
    with qtbot.waitSignal(runner.finished, timeout=60_000, check_params_cb=lambda kind, _: kind == "analyze"):
        pass
    finished = [e[1] for e in events if e[0] == "finished"]
    assert finished == ["train", "analyze"]  # one after the other
    first_analyze = next(i for i, e in enumerate(events) if e[:2] == ("progress", "analyze") and e[2] != "queued")
    assert first_analyze > events.index(next(e for e in events if e[:2] == ("finished", "train")))
    # a queued job can be cancelled before it starts
    assert runner.start("train", SLEEP, {"seconds": 30, "steps": 300})
    assert runner.start("augment", SLEEP, {"seconds": 0.1, "steps": 1})
    with qtbot.waitSignal(runner.cancelled, timeout=5_000) as blocker:
        runner.cancel("augment")
    assert blocker.args == ["augment"] and not runner.is_running("augment") and runner.is_running("train")
    runner.shutdown(5.0)
