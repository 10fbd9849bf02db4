"""Two model jobs started together from the window vs one after the other; prints JSON.

  QT_QPA_PLATFORM=offscreen python bench/job_queue.py [--images 60] [--epochs 3]

Both through the window's JobRunner (child processes, as the window runs them): a training and a
2-fold analysis of a small generated project. "together" starts both at once (the runner queues the
second: one model job at a time); "one after the other" starts the second when the first has finished.
Without the queue the two would share the 2 cores (each ~8x slower on this machine) — and since the
project's writer lock, the second would be refused.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

from labeltool.core.store import Project
from labeltool.gui.job_runner import JobRunner
from labeltool.jobs import drive
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job

TRAIN = "labeltool.jobs.model:train_job"
ANALYZE = "labeltool.jobs.analysis:analyze_job"


def make_project(root: Path, images: int) -> Path:
    drive(demo_data_job(root / "data", n_images=images, noise=0.1), lambda e: None)
    Project.create(root / "p").close()
    drive(import_job(root / "p", root / "data" / "annotations.json", fmt="coco"), lambda e: None)
    return root / "p"


def run(runner: JobRunner, jobs: list[tuple[str, str, dict]], *, together: bool) -> tuple[float, list[str]]:
    """Wall time until every job ended, and how each ended."""
    loop = QEventLoop()
    ends: list[str] = []

    def ended(kind: str, how: str) -> None:
        ends.append(f"{kind}: {how}")
        if not together and len(ends) < len(jobs):
            runner.start(*jobs[len(ends)])
        if len(ends) == len(jobs):
            loop.quit()

    runner.finished.connect(lambda kind, _: ended(kind, "finished"))
    runner.failed.connect(lambda kind, title, msg: ended(kind, f"failed: {msg[:200]}"))
    t0 = time.monotonic()
    for job in jobs if together else jobs[:1]:
        assert runner.start(*job)
    QTimer.singleShot(30 * 60 * 1000, loop.quit)
    loop.exec()
    runner.finished.disconnect()
    runner.failed.disconnect()
    return time.monotonic() - t0, ends


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    app = QCoreApplication.instance() or QCoreApplication([])
    runner = JobRunner(app)
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        out = {"benchmark": "job_queue", "images": args.images, "epochs": args.epochs}
        for mode in ("one_after_the_other", "together", "one_after_the_other_again"):
            project = make_project(Path(tmp) / mode, args.images)
            jobs = [("train", TRAIN, {"project_dir": str(project), "epochs": args.epochs}),
                    ("analyze", ANALYZE, {"project_dir": str(project), "folds": 2, "epochs_per_fold": args.epochs})]
            wall, ends = run(runner, jobs, together=mode == "together")
            out[mode] = {"wall_s": round(wall, 1), "ends": ends}
        sequential = (out["one_after_the_other"]["wall_s"] + out["one_after_the_other_again"]["wall_s"]) / 2
        out["ratio_together_vs_sequential"] = round(out["together"]["wall_s"] / sequential, 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
