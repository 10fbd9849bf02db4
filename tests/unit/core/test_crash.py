"""A real process killed with SIGKILL in the middle of a session loses no committed edit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labeltool.core.store import Project

CHILD = textwrap.dedent(
    """
    import sys, time
    from labeltool.core.store import Project
    p = Project.open(sys.argv[1])
    cid = p.classes()[0].id
    iid = p.images()[0].id
    for i in range(40):
        bid = p.add_box(iid, cid, (i, i, i + 10, i + 10))
        if i % 3 == 0:
            p.move_box(bid, (i + 1, i, i + 11, i + 10))
        print("committed", bid, flush=True)
    with p.edit("never finished") as e:
        for i in range(5):
            e.add_box(image_id=iid, class_id=cid, xyxy=(50, 50, 60 + i, 60))
        print("in-transaction", flush=True)
        time.sleep(60)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_mid_session_loses_no_committed_edit(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as p:
        cid = p.add_class("scratch")
        with p.edit("add image") as e:
            e.insert("images", {"path": "images/a.png", "sha256": "h", "width": 200, "height": 200,
                                "split": None, "added_at": "t", "origin": None, "labeled": 0})
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "p")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    committed: list[int] = []
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("committed"):
            committed.append(int(line.split()[1]))
        elif line.startswith("in-transaction"):
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert len(committed) == 40

    with Project.open(tmp_path / "p") as p:
        assert p.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        boxes = {b.id: b for b in p.boxes(p.images()[0].id)}
        assert sorted(boxes) == committed  # every committed box, none of the unfinished edit
        assert boxes[committed[3]].xyxy == (4.0, 3.0, 14.0, 13.0)  # the move of box #3 was kept
        assert all(h.action != "never finished" for h in p.history(limit=1000))
        # the edit log is intact: undo walks back the last committed edits (move, then add of box #39)
        last = committed[-1]
        assert boxes[last].xyxy == (40.0, 39.0, 50.0, 49.0)
        p.undo()
        assert p.box(last).xyxy == (39.0, 39.0, 49.0, 49.0)
        p.undo()
        assert len(p.boxes(p.images()[0].id)) == 39
        assert cid == p.classes()[0].id
