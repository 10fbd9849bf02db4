"""One writer per project: concurrent imports, SIGKILLed imports and trainings leave a consistent project."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from labeltool.core import leftovers
from labeltool.core.project_lock import ProjectBusyError, writer_lock
from labeltool.core.store import Project

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX processes and SIGKILL")

IMPORT = textwrap.dedent(
    """
    import sys
    from labeltool.jobs import drive
    from labeltool.jobs.data import import_job
    wait = float(sys.argv[3])
    s = drive(import_job(sys.argv[1], sys.argv[2], fmt="folder", wait_s=wait), lambda e: print(e.stage, flush=True))
    print("added", s.images_added, flush=True)
    """
)


def folder(root: Path, seeds: range, size: int = 24) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        rng = np.random.default_rng(s)
        PILImage.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / f"img{s:04d}.png")
    return root


def start_import(project: Path, source: Path, *, wait_s: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", IMPORT, str(project), str(source), str(wait_s)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def consistency(project: Path) -> tuple[int, list[str], list[str]]:
    """(rows, rows without their file, files in images/ without a row)."""
    with Project.open(project) as p:
        paths = {i.path for i in p.images()}
    on_disk = {f.relative_to(project).as_posix() for f in (project / "images").rglob("*") if f.is_file()}
    return len(paths), sorted(p for p in paths if p not in on_disk), sorted(on_disk - paths)


def test_a_second_writer_is_told_who_is_busy_and_can_wait(tmp_path: Path) -> None:
    Project.create(tmp_path / "p").close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from labeltool.core.project_lock import writer_lock
        with writer_lock(sys.argv[1], "import of /data/line3"):
            print("held", flush=True)
            time.sleep(float(sys.argv[2]))
        """), str(tmp_path / "p"), "1.5"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(ProjectBusyError, match=r"project is busy: import of /data/line3 since .* \(process \d+"):
        with writer_lock(tmp_path / "p", "training"):
            pass
    t0 = time.monotonic()
    with writer_lock(tmp_path / "p", "training", wait_s=30):
        waited = time.monotonic() - t0
    holder.wait(10)
    assert 0.3 < waited < 10


def test_two_imports_of_overlapping_folders_at_once_lose_nothing(tmp_path: Path) -> None:
    a = folder(tmp_path / "a", range(0, 40))
    b = folder(tmp_path / "b", range(20, 60))  # 20 of the same images under the same names
    for trial in range(20):
        project = tmp_path / f"p{trial}"
        Project.create(project).close()
        waits = (0.0, 60.0) if trial % 2 else (60.0, 60.0)  # one refused, or both wait their turn
        procs = [start_import(project, src, wait_s=w) for src, w in zip((a, b), waits, strict=True)]
        outs = [p.communicate(timeout=120) for p in procs]
        refused = [err for p, (_, err) in zip(procs, outs, strict=True) if p.returncode != 0]
        for err in refused:
            assert "project is busy: import of" in err, err
        rows, missing, orphans = consistency(project)
        assert missing == [] and orphans == [], (trial, missing, orphans)
        assert rows == (60 if not refused else 40), (trial, rows, refused)


def test_sigkilled_imports_leave_no_orphans_after_the_next_writer(tmp_path: Path) -> None:
    src = folder(tmp_path / "src", range(400), size=64)
    rng = random.Random(0)
    killed_in_copy = had_partial = 0
    for trial in range(20):
        project = tmp_path / f"p{trial}"
        Project.create(project).close()
        proc = start_import(project, src)
        assert proc.stdout is not None
        target, seen = rng.randint(1, 7), 0  # the copy reports every 50 of its 400 images: kill mid-copy
        while seen < target and (line := proc.stdout.readline().strip()):
            seen += line == "copy"
        killed_in_copy += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        partial = [f for f in (project / "images").rglob("*") if f.is_file()]
        had_partial += any(leftovers.final_name(f) is not None for f in partial)
        with writer_lock(project, "check"):  # whoever writes next cleans up
            pass
        rows, missing, orphans = consistency(project)
        assert missing == [] and orphans == [], (trial, len(partial), missing, orphans)
        with Project.open(project) as p:
            assert p.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert killed_in_copy >= 15 and had_partial >= 10  # the kills hit the copy, not a finished import


def test_leftovers_finish_a_committed_copy_and_drop_the_rest(tmp_path: Path) -> None:
    project = tmp_path / "p"
    Project.create(project).close()
    src = folder(tmp_path / "src", range(2))
    with Project.open(project) as p, p.edit("import") as e:  # as an import that died after its commit
        e.insert("images", {"path": "images/img0000.png", "sha256": "a" * 64, "width": 24, "height": 24,
                            "split": None, "added_at": "t", "origin": "x", "labeled": 0})
    committed = leftovers.incoming_name(project / "images" / "img0000.png")
    stray = leftovers.incoming_name(project / "images" / "img0001.png")
    for tmp, name in ((committed, "img0000.png"), (stray, "img0001.png")):
        tmp.write_bytes((src / name).read_bytes())
    (project / "runs" / ".tmp-deadbeef").mkdir()
    with writer_lock(project, "check") as cleaned:
        pass
    assert (project / "images" / "img0000.png").is_file() and not committed.exists() and not stray.exists()
    assert not (project / "runs" / ".tmp-deadbeef").exists()
    assert len(cleaned) == 3 and any("finished the copy of images/img0000.png" in c for c in cleaned)


@pytest.mark.slow
def test_sigkilled_trainings_leave_no_trace(tmp_path: Path) -> None:
    from labeltool.jobs import drive
    from labeltool.jobs.data import import_job
    from labeltool.jobs.demo import demo_data_job

    drive(demo_data_job(tmp_path / "data", n_images=24, noise=0.0), lambda e: None)
    project = tmp_path / "p"
    Project.create(project).close()
    drive(import_job(project, tmp_path / "data" / "annotations.json", fmt="coco"), lambda e: None)
    with Project.open(project) as p:
        edits_before = len(p.history(limit=1000))
        splits_before = {i.id: i.split for i in p.images()}
    train = textwrap.dedent("""
        import sys
        from labeltool.jobs import drive
        from labeltool.jobs.model import train_job
        drive(train_job(sys.argv[1], epochs=50, preset="edge", image_size=64),
              lambda e: print(e.stage, flush=True))
        """)
    kills = int(os.environ.get("LABELTOOL_TRAINING_KILLS", "4"))  # the closing note's figure: 20
    for stage_to_kill in [("train", "prepare", "load", "model")[k % 4] for k in range(kills)]:
        proc = subprocess.Popen([sys.executable, "-c", train, str(project)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.stdout is not None
        while (line := proc.stdout.readline().strip()) and line != stage_to_kill:
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with writer_lock(project, "check"):
            pass
        with Project.open(project) as p:
            assert {i.id: i.split for i in p.images()} == splits_before  # the split edit was taken back
            assert p.connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
            assert len(p.history(limit=1000)) >= edits_before
        assert [d.name for d in (project / "runs").iterdir()] == []
        assert not list((project / leftovers.PENDING_DIRNAME).glob("*"))
