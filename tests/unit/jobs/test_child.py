"""Jobs in a spawned child process (labeltool.jobs.child): results, errors, throttling, cancel of a
real training, a killed child, a child whose parent dies. No Qt."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labeltool.core.progress import Progress
from labeltool.core.runs import current_run, list_runs
from labeltool.core.store import Project
from labeltool.jobs import drive
from labeltool.jobs.child import PROGRESS_INTERVAL_S, ChildJob, JobMessage, _Outbox
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job
from labeltool.jobs.eta import ProgressClock, format_duration

REPO = Path(__file__).resolve().parents[3]


def run_to_end(job: ChildJob, timeout_s: float = 90.0) -> list[JobMessage]:
    job.start()
    messages = job.wait(timeout_s)
    assert job.final is not None, f"no final message within {timeout_s} s: {messages}"
    assert messages[-1] is job.final and all(not m.final for m in messages[:-1])
    return messages


def wait_for(job: ChildJob, pred, timeout_s: float = 120.0) -> list[JobMessage]:
    """Poll until a progress event satisfies ``pred``; returns the messages read."""
    seen: list[JobMessage] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen += job.poll()
        if any(m.kind == "progress" and pred(m.progress) for m in seen):
            return seen
        assert job.final is None, f"the job ended early: {seen[-1]}"
        time.sleep(0.05)
    raise AssertionError(f"no matching progress within {timeout_s} s: {seen[-3:]}")


def test_a_real_job_runs_to_completion_and_returns_its_result(tmp_path: Path) -> None:
    job = ChildJob("labeltool.jobs.demo:demo_data_job", {"dest": tmp_path / "d", "n_images": 4, "size": 64})
    messages = run_to_end(job)
    assert [m.kind for m in messages] == ["progress", "progress", "done"]
    assert messages[0].progress == Progress("generate", 0, 4, "rendering parts with defects")
    assert messages[1].progress == Progress("generate", 4, 4, "written")
    result = messages[-1].result
    assert result["images"] == 4 and Path(result["annotations"]).is_file()
    assert len(list((tmp_path / "d" / "images").iterdir())) == 4


def test_a_labeltool_error_arrives_as_a_user_error_with_its_message(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("not empty")
    final = run_to_end(ChildJob("labeltool.jobs.demo:demo_data_job", {"dest": tmp_path / "d"}))[-1]
    assert (final.kind, final.error) == ("error", "user")
    assert final.text == f"{tmp_path / 'd'} is not empty; pick a new folder for the demo data"
    assert final.traceback == ""


def test_any_other_exception_is_an_internal_error_with_its_traceback() -> None:
    final = run_to_end(ChildJob("labeltool.jobs.child:sleep_job", {"steps": 0}))[-1]
    assert (final.kind, final.error) == ("error", "internal")
    assert final.text == "ValueError: steps must be at least 1, got 0"
    assert "in sleep_job" in final.traceback and final.traceback.rstrip().endswith(final.text)
    missing = run_to_end(ChildJob("labeltool.jobs.child:no_such_job"))[-1]
    assert missing.error == "internal" and "has no function no_such_job" in missing.text
    with pytest.raises(ValueError, match="package.module:function"):
        ChildJob("labeltool.jobs.child.sleep_job")


def test_progress_is_coalesced_but_the_last_event_arrives() -> None:
    t0 = time.monotonic()
    messages = run_to_end(ChildJob("labeltool.jobs.child:sleep_job", {"seconds": 1.0, "steps": 1000}))
    wall = time.monotonic() - t0
    progress = [m.progress for m in messages if m.kind == "progress"]
    assert progress[0].done == 0 and progress[-1].done == 1000  # the first and the last always go out
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert len(progress) <= 3 + wall / PROGRESS_INTERVAL_S < 1000, (len(progress), wall)
    assert messages[-1].result["steps"] == 1000


def test_stage_changes_and_eval_events_are_never_coalesced() -> None:
    recv, send = mp.Pipe(duplex=False)
    box = _Outbox(send, interval_s=60.0)  # nothing goes out for being due: only what must
    for epoch in (1, 2, 3):
        for step in range(1, 51):
            box.progress(Progress("train", step, 50, f"epoch {epoch}"))
        box.progress(Progress("eval", epoch, 3, "val", metrics={"epoch": epoch, "map50": epoch / 10}))
    box.close(JobMessage("done", result={"ok": True}))
    send.close()
    got: list[JobMessage] = []
    while recv.poll(5):
        try:
            got.append(recv.recv())
        except EOFError:
            break
    assert got[-1] == JobMessage("done", result={"ok": True})
    events = [(m.progress.stage, m.progress.done) for m in got[:-1]]
    # first train event (new stage), the newest train event before eval, then eval — every epoch
    assert events == [("train", 1), ("train", 50), ("eval", 1), ("train", 1), ("train", 50), ("eval", 2),
                      ("train", 1), ("train", 50), ("eval", 3)]
    assert [m.progress.metrics["map50"] for m in got if m.progress and m.progress.stage == "eval"] == [0.1, 0.2, 0.3]


def tiny_project(tmp_path: Path, *, n: int, size: int = 64) -> Path:
    drive(demo_data_job(tmp_path / "data", n_images=n, noise=0.0, seed=0, size=size), lambda p: None)
    Project.create(tmp_path / "p").close()
    drive(import_job(tmp_path / "p", tmp_path / "data" / "annotations.json"), lambda p: None)
    return tmp_path / "p"


def project_state(project: Path) -> dict:
    with Project.open(project) as p:
        edits = p.history(limit=10_000)
        return {
            "splits": {im.id: im.split for im in p.images()},
            "boxes": p.box_count(),
            "edits": {e.id: (e.action, e.state) for e in edits},
            "undoable": [e.id for e in edits if e.state == "done" and e.action not in ("undo", "redo")],
            "runs": [r.id for r in list_runs(p)],
            "current": current_run(p),
            "folders": sorted(str(f.relative_to(project)) for f in project.rglob("*") if f.is_dir()),
        }


@pytest.mark.slow
def test_cancel_of_a_real_training_leaves_the_project_as_it_was(tmp_path: Path) -> None:
    project = tiny_project(tmp_path, n=8)
    before = project_state(project)
    assert set(before["splits"].values()) == {None}  # training will assign a split, then must take it back
    job = ChildJob("labeltool.jobs.model:train_job",
                   {"project_dir": project, "epochs": 50, "image_size": 64, "batch_size": 2},
                   cancel_grace_s=300)  # the cooperative path only, however slow a step is under load
    job.start()
    seen = wait_for(job, lambda p: p.stage == "train" and p.metrics["step"] >= 2)
    assert [m.progress.stage for m in seen][:2] == ["prepare", "prepare"]
    job.cancel()
    job.wait(120)
    assert job.final == JobMessage("cancelled"), job.final
    after = project_state(project)
    assert after["runs"] == [] and after["current"] is None
    assert after["folders"] == before["folders"]  # no run folder, no runs/.tmp-*
    assert after["splits"] == before["splits"] and after["boxes"] == before["boxes"]
    assert after["undoable"] == before["undoable"]  # Ctrl+Z still undoes the user's own last edit
    new = sorted(set(after["edits"]) - set(before["edits"]))
    # the edit log is never rewritten: the training's split edit and its undo are logged; the split
    # edit is 'dropped', so Redo cannot bring back the cancelled training's split
    assert [after["edits"][i] for i in new] == [("assign train/val split", "dropped"), ("undo", "done")]
    with Project.open(project) as p:
        assert not p.can_redo()


def test_a_killed_child_is_reported_as_an_error_saying_what_to_do() -> None:
    job = ChildJob("labeltool.jobs.child:sleep_job", {"seconds": 60, "steps": 600})
    job.start()
    wait_for(job, lambda p: p.done >= 1, timeout_s=60)
    os.kill(job.pid, signal.SIGKILL)
    job.wait(30)
    final = job.final
    assert final is not None and (final.kind, final.error) == ("error", "died")
    assert "killed by signal SIGKILL" in final.text and "What to do:" in final.text
    assert job.exitcode == -signal.SIGKILL


def test_a_job_that_does_not_react_to_cancel_gets_sigterm_and_still_reports_cancelled() -> None:
    job = ChildJob("labeltool.jobs.child:sleep_job", {"seconds": 120, "steps": 1}, cancel_grace_s=0.5)
    job.start()
    wait_for(job, lambda p: p.stage == "sleep", timeout_s=60)  # then it sleeps 120 s without an event
    t_cancel = time.monotonic()
    job.cancel()
    job.wait(30)
    assert job.final == JobMessage("cancelled")  # SIGTERM became JobCancelled inside the job: clean exit
    assert time.monotonic() - t_cancel < 10
    deadline = time.monotonic() + 10
    while job.is_alive and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.05)
    assert job.exitcode == 0


def test_the_child_cancels_itself_when_its_parent_dies(tmp_path: Path) -> None:
    """A window that crashes must not leave a training running: the parent here exits hard."""
    script = (
        "import os, sys, time\n"
        "from labeltool.jobs.child import ChildJob\n"
        "job = ChildJob('labeltool.jobs.child:sleep_job', {'seconds': 120, 'steps': 1200})\n"
        "job.start()\n"
        "while not job.poll(): time.sleep(0.05)\n"
        "print(job.pid, flush=True)\n"
        "os._exit(3)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), f"job process {pid} still runs after its parent died"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_progress_clock_estimates_per_stage_and_formats_durations() -> None:
    clock = ProgressClock(now=0.0)
    clock.update(Progress("train", 0, 100), now=0.0)
    clock.update(Progress("train", 10, 100), now=1.0)
    assert clock.eta(now=1.0) is None  # too early to say
    clock.update(Progress("train", 40, 100), now=4.0)
    assert clock.eta(now=4.0) == pytest.approx(6.0)  # 10 per second, 60 left
    assert clock.eta(now=5.0) == pytest.approx(5.0)
    clock.update(Progress("eval", 1, 0), now=5.0)
    assert clock.eta(now=5.0) is None  # unknown total
    clock.update(Progress("train", 50, 100), now=8.0)  # the train stage keeps its rate (eval time included)
    assert clock.eta(now=8.0) == pytest.approx(50 / (50 / 8))
    clock.update(Progress("train", 5, 200), now=9.0)  # a new total: starts over
    assert clock.eta(now=9.0) is None
    assert clock.elapsed(now=9.0) == 9.0
    assert [format_duration(s) for s in (0.4, 42, 185, 3720)] == ["0 s", "42 s", "3 min 05 s", "1 h 02 min"]
