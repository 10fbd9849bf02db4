"""Screenshots of the data-centric loop in the real app on a real X display, for docs/screenshots/.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/loop_screenshots.py WORK [--out DIR]

WORK/demo gets a small demo project (60 images, a 1-minute model, a 2-minute analysis; made
in-process the first time, reused after). Then, driven the way a user would (Loop menu actions,
panel buttons, the N key), with every job in a child process, the screen is grabbed
(``QScreen.grabWindow``, through the xcb platform plugin) for:

- ``welcome.png``: the first-run screen (no project open);
- ``loop_review.png``: the review queue with an issue's suggested fix drawn as a ghost on the canvas;
- ``loop_dashboard.png``: the weak-class dashboard;
- ``loop_training.png``: a fine-tune in progress (live loss / val mAP plot);
- ``loop_export.png``: an export with its verification table.

Without pretrained backbone weights (``models/``) a few minutes of CPU training find too few defects
for the analysis to flag anything; then, and only then, the script records a stand-in analysis
whose issues are the label errors the demo injected on purpose (``dataset/noise.json``, fixes from
the clean labels), with the real analysis' weak-class table and notes, so the review screenshot
shows a queue. It says so when it does.

While the training runs, a 10 ms timer measures the event loop's stall (how late each tick comes);
p50 / p99 / max during training are printed as JSON (issue 8's target: p99 < 100 ms). PNGs larger
than 300 KB are recompressed / reduced to 256 colours.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# module level stays light: a spawned job process imports this file again (as __mp_main__)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LIMIT = 300_000  # bytes per PNG
TICK_MS = 10  # stall probe interval


def png_bytes(pixmap: object) -> bytes:
    from PIL import Image as PILImage
    from PySide6.QtCore import QBuffer, QIODevice

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    pixmap.save(buffer, "PNG")  # type: ignore[attr-defined]
    data = bytes(buffer.data())
    if len(data) > LIMIT:  # recompress; then 256 colours (octree keeps small swatches' hues)
        image = PILImage.open(io.BytesIO(data)).convert("RGB")
        for candidate in (image, image.quantize(colors=256, method=PILImage.Quantize.FASTOCTREE)):
            out = io.BytesIO()
            candidate.save(out, "PNG", optimize=True)
            data = out.getvalue()
            if len(data) <= LIMIT:
                break
    return data


def ensure_demo(root: Path) -> Path:
    from labeltool.jobs import drive
    from labeltool.jobs.demo import demo_job
    from labeltool.jobs.panel_views import existing_demo_project

    found = existing_demo_project(root)
    if found is not None:
        return found
    sys.stdout.write(f"making the demo project in {root} (a few minutes)…\n")
    drive(demo_job(root, n_images=60, train_minutes=1, analyze_minutes=2, export=False), lambda p: None)
    found = existing_demo_project(root)
    if found is None:
        sys.exit(f"the demo job did not leave a trained project in {root}")
    return found


NOISE_TO_ISSUE = {"swap": "swap", "drop": "overlooked", "shift": "badloc", "spurious": "spurious"}


def stand_in_analysis(project_dir: Path, dataset: Path) -> int:
    """Record an analysis whose issues are the demo's injected label errors; returns how many."""
    from labeltool.core.issues import NewIssue, latest_analysis, record_analysis
    from labeltool.core.store import Project

    records = json.loads((dataset / "noise.json").read_text(encoding="utf-8"))["records"]
    with Project.open(project_dir) as project:
        real = latest_analysis(project)
        classes = {c.name: c.id for c in project.classes()}
        images = {Path(path).name: i for i, path in project.connection.execute("SELECT id, path FROM images")}
        issues = []
        for k, rec in enumerate(records):
            image_id, kind = images.get(rec["file_name"]), NOISE_TO_ISSUE.get(rec["kind"])
            if image_id is None or kind is None:
                continue
            before, after = rec.get("before"), rec.get("after")
            box = None
            if after is not None:  # the corrupted box as it is in the project
                xyxy = [after[c] for c in ("x1", "y1", "x2", "y2")]
                box = next((b for b in project.boxes(image_id) if b.class_id == classes.get(after["label"])
                            and max(abs(u - v) for u, v in zip(b.xyxy, xyxy, strict=True)) < 0.5), None)
                if box is None:
                    continue
            score = round(0.05 + 0.4 * k / max(1, len(records)), 3)
            fix: dict[str, object]
            if kind == "overlooked":
                fix = {"action": "add_box", "class_id": classes[before["label"]],
                       "xyxy": [before[c] for c in ("x1", "y1", "x2", "y2")]}
                issues.append(NewIssue(kind, image_id, None, classes[before["label"]], score, fix))
                continue
            if kind == "swap":
                fix = {"action": "set_class", "box_id": box.id, "class_id": classes[before["label"]]}
            elif kind == "badloc":
                fix = {"action": "move_box", "box_id": box.id, "xyxy": [before[c] for c in ("x1", "y1", "x2", "y2")]}
            else:
                fix = {"action": "delete_box", "box_id": box.id}
            issues.append(NewIssue(kind, image_id, box.id, box.class_id, score, fix))
        summary = dict(real.summary) if real is not None else {}
        config = {**(real.config if real is not None else {}), "stand_in": "the demo's injected label errors"}
        record_analysis(project, snapshot_id=project.create_snapshot(note="screenshot stand-in"), run_id=None,
                        mode="kfold", folds=3, config=config, summary=summary, issues=issues)
    return len(issues)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="folder for the demo project (reused when it exists)")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--train-minutes", type=float, default=2.0, help="the fine-tune's time budget")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        sys.exit("no X display: run under xvfb-run (see the docstring)")
    demo_root = args.work.resolve() / "demo"
    project_dir = ensure_demo(demo_root)
    args.out.mkdir(parents=True, exist_ok=True)
    from labeltool.core.issues import list_issues
    from labeltool.core.store import Project

    with Project.open(project_dir) as project:
        has_issues = bool(list_issues(project))
    if not has_issues:
        n = stand_in_analysis(project_dir, demo_root / "dataset")
        sys.stdout.write(f"the analysis flagged nothing (weak model): recorded a stand-in analysis with the "
                         f"{n} injected label errors for the review screenshot\n")

    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from labeltool.gui import main as gui_main
    from labeltool.jobs.panel_views import TRAIN_TARGET

    app = QApplication(sys.argv[:1])
    sys.stdout.write(f"platform: {app.platformName()}\n")
    settings = QSettings(str(args.work / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("recent_projects", [str(project_dir)])
    gui_main.default_settings = lambda: settings  # leave the user's recent-projects list alone
    window = gui_main.MainWindow()
    window.welcome.demo_root = demo_root
    window.welcome.refresh_demo()
    window.move(0, 0)
    window.show()

    def wait(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Run the event loop until ``pred()`` (checked every 50 ms) or fail after ``timeout_s``."""
        loop, deadline = QEventLoop(), time.monotonic() + timeout_s
        timer = QTimer()
        timer.timeout.connect(lambda: loop.quit() if pred() or time.monotonic() > deadline else None)
        timer.start(50)
        if not pred():
            loop.exec()
        timer.stop()
        if not pred():
            window.confirm_quit = lambda q: True
            window.close()
            sys.exit(f"timed out waiting for: {what}")

    def grab(name: str, settle_ms: int = 800) -> None:
        end = time.monotonic() + settle_ms / 1000
        wait(lambda: time.monotonic() >= end, settle_ms / 1000 + 5, "settle")
        g = window.frameGeometry()
        data = png_bytes(app.primaryScreen().grabWindow(0, g.x(), g.y(), g.width(), g.height()))
        (args.out / name).write_bytes(data)
        sys.stdout.write(f"{args.out / name}: {g.width()}x{g.height()}, {len(data) // 1024} KB\n")

    errors: list[str] = []
    window.runner.failed.connect(lambda kind, title, message: errors.append(f"{title}: {message}"))
    grab("welcome.png")

    window.open_demo()  # the welcome screen's "Open the demo project" (it exists: opens at once)
    panel = window.review_panel
    wait(lambda: window.project is not None and panel.analysis is not None, 10, "the demo project")
    rank = {"badloc": 0, "swap": 1, "overlooked": 2, "duplicate": 3, "spurious": 4}
    issue = min(panel.issues, key=lambda i: (rank.get(i.type, 9), i.score), default=None)
    if issue is not None:
        panel.select_issue(issue.id)  # as a click on its row: image, box and ghost on the canvas
    grab("loop_review.png")

    window.loop_actions["weak"].trigger()
    grab("loop_dashboard.png")

    window.job_overrides[TRAIN_TARGET] = {"epochs": None, "minutes": args.train_minutes}
    ticks: list[tuple[float, float, str]] = []  # (time, stall ms, the job's stage then)
    last, stage = [time.monotonic()], ["start"]
    window.runner.progress.connect(lambda kind, p: stage.__setitem__(0, p.stage))
    window.runner.finished.connect(lambda kind, r: stage.__setitem__(0, f"{kind} finished"))

    def tick() -> None:
        now = time.monotonic()
        ticks.append((now, max(0.0, (now - last[0]) * 1000 - TICK_MS), stage[0]))
        last[0] = now

    probe = QTimer()
    probe.setInterval(TICK_MS)
    probe.timeout.connect(tick)
    probe.start()
    started: list[float] = []
    window.runner.progress.connect(lambda kind, p: started.append(time.monotonic())
                                   if kind == "train" and p.stage == "train" and not started else None)
    window.loop_actions["train"].trigger()
    plot = window.train_panel.plot
    wait(lambda: plot.n_map_points >= 1 and plot.n_loss_points >= 8 or not window.runner.is_running("train"),
         900, "an epoch of training")
    grab("loop_training.png", settle_ms=300)
    wait(lambda: not window.runner.is_running("train"), 900, "the end of the training")
    ended = time.monotonic()
    probe.stop()
    during = [(s, st) for t, s, st in ticks if started and started[0] <= t <= ended]
    stalls = sorted(s for s, _ in during)
    if stalls:
        stats = {"ticks": len(stalls), "p50_ms": round(statistics.median(stalls), 1),
                 "p99_ms": round(stalls[min(len(stalls) - 1, int(0.99 * len(stalls)))], 1),
                 "max_ms": round(stalls[-1], 1), "over_100ms": sum(s > 100 for s in stalls),
                 "training_s": round(ended - started[0], 1),
                 "worst": [(round(s), st) for s, st in sorted(during, reverse=True)[:3]]}
        sys.stdout.write(json.dumps({"stall_during_training": stats}) + "\n")

    window.loop_actions["export"].trigger()
    export = window.export_panel
    verified: list[dict] = []
    window.runner.finished.connect(lambda kind, r: verified.append(r) if "per_class_ap50" in r else None)
    export.export_button.click()  # export, then verification (chained by the panel)
    wait(lambda: bool(verified) or bool(errors), 900, "export and verification")
    export_scroll = export.class_table
    export_scroll.scrollToTop()
    grab("loop_export.png")

    window.confirm_quit = lambda q: True
    window.close()
    for error in errors:
        sys.stdout.write(f"job failed: {error}\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
