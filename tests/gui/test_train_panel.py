"""The Fine-tune panel: the request it emits, the live plot and the per-class table fed by real trainings."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QColor

from labeltool.core.progress import Progress
from labeltool.core.store import Project
from labeltool.gui.loss_plot import LOSS_COLOR, MAP_COLOR
from labeltool.gui.train_panel import TrainPanel, verdict_item
from labeltool.jobs import drive
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job
from labeltool.jobs.panel_views import TRAIN_TARGET

pytestmark = pytest.mark.gui
TINY = {"epochs": 2, "image_size": 64, "batch_size": 4}  # the tiniest training tests/unit/ml/test_train.py uses


def run_request(target: str, kwargs: dict[str, Any], on_progress: Callable[[Progress], None]) -> Any:
    """What the job runner does with a request, in this process: ``target(**kwargs)`` driven to its end."""
    module, name = target.split(":")
    return drive(getattr(importlib.import_module(module), name)(**kwargs), on_progress)


def tiny_project(tmp_path: Path, n: int = 10) -> Path:
    drive(demo_data_job(tmp_path / "data", n_images=n, noise=0.0, seed=0, size=64), lambda p: None)
    Project.create(tmp_path / "p").close()
    drive(import_job(tmp_path / "p", tmp_path / "data" / "annotations.json"), lambda p: None)
    return tmp_path / "p"


def count_color(widget: Any, color: QColor, tol: int = 40) -> int:
    """Pixels of the rendered widget within ``tol`` of ``color`` (per channel)."""
    image = widget.grab().toImage()
    n = 0
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            c = image.pixelColor(x, y)
            if abs(c.red() - color.red()) + abs(c.green() - color.green()) + abs(c.blue() - color.blue()) < tol:
                n += 1
    return n


def test_fine_tune_emits_a_train_job_request_with_the_defaults(qtbot, tmp_path: Path) -> None:
    project_dir = tiny_project(tmp_path)
    panel = TrainPanel(device="cpu", cpu_count=2)
    qtbot.addWidget(panel)
    assert not panel.train_button.isEnabled() and not panel.request_start()  # no project yet
    with Project.open(project_dir) as project:
        panel.set_project(project)
        assert panel.defaults is not None and panel.defaults.ready
        assert panel.plan_label.text() == panel.defaults.explanation
        assert "edge preset" in panel.plan_label.text() and "over 8 training images" in panel.plan_label.text()
        assert panel.warning_label.isVisibleTo(panel) and "Only 10 labeled images" in panel.warning_label.text()
        with qtbot.waitSignal(panel.start_requested, timeout=1000) as blocker:
            panel.train_button.click()
    target, kwargs = blocker.args
    assert target == TRAIN_TARGET == "labeltool.jobs.model:train_job"
    assert kwargs == {"project_dir": str(project_dir.resolve()), "preset": "edge", "epochs": 40, "patience": 10}
    panel.set_running(True)
    assert not panel.train_button.isEnabled() and panel.cancel_button.isEnabled()
    with qtbot.waitSignal(panel.cancel_requested, timeout=1000):
        panel.cancel_button.click()
    panel.on_cancelled()
    panel.set_running(False)
    assert panel.train_button.isEnabled() and "Cancelled" in panel.status_label.text()


@pytest.mark.slow
def test_real_trainings_draw_the_plot_and_fill_the_comparison(qtbot, tmp_path: Path) -> None:
    project_dir = tiny_project(tmp_path)
    panel = TrainPanel(device="cpu", cpu_count=2)
    qtbot.addWidget(panel)
    panel.resize(760, 720)
    with Project.open(project_dir) as project:
        panel.set_project(project)
        assert "compared" not in panel.plan_label.text()
        assert count_color(panel.plot, LOSS_COLOR, tol=30) == 0  # empty plot: only the hint text
        events: list[Progress] = []

        def feed(p: Progress) -> None:
            events.append(p)
            panel.on_progress(p)

        panel.set_running(True)
        first = run_request(TRAIN_TARGET, {"project_dir": str(project_dir), **TINY}, feed)
        n_train = sum(e.stage == "train" for e in events)
        assert n_train >= 2 and panel.plot.n_loss_points == n_train
        assert panel.plot.n_map_points == 2 == sum(e.stage == "eval" for e in events)
        assert not panel.weights_label.isVisibleTo(panel)  # pretrained from the installed package: no warning
        assert count_color(panel.plot, LOSS_COLOR) > 20 and count_color(panel.plot, MAP_COLOR) > 20
        panel.on_finished(first)
        panel.set_running(False)
        assert panel.table.rowCount() == 5
        assert [panel.table.item(r, 0).text() for r in range(5)] == ["scratch", "dent", "crack", "stain", "chip"]
        assert panel.table.isVisibleTo(panel)
        assert panel.table.item(0, 2).text() == f"{first['eval']['per_class'][0]['ap50']:.3f}"
        assert panel.table.isColumnHidden(3) and panel.table.isColumnHidden(4)  # no previous model
        assert "first model" in panel.summary_label.text()
        assert "compared with the current one" in panel.plan_label.text()  # the next run has a previous one

        events.clear()
        panel.set_running(True)
        assert panel.plot.n_loss_points == 0 and panel.table.rowCount() == 0  # a new run starts clean
        assert not panel.table.isVisibleTo(panel)
        second = run_request(TRAIN_TARGET, {"project_dir": str(project_dir), **TINY, "epochs": 1, "seed": 1}, feed)
        panel.on_finished(second)
        panel.set_running(False)
    assert second["previous_run_id"] == first["run_id"]
    assert panel.plot.n_map_points == 1
    assert not panel.table.isColumnHidden(3) and not panel.table.isColumnHidden(4)
    for r in range(5):
        now, before, change = (float(panel.table.item(r, c).text()) for c in (2, 3, 4))
        delta = next(d for d in second["delta"] if d["name"] == panel.table.item(r, 0).text())
        assert now == pytest.approx(delta["ap50_now"], abs=5e-4)
        assert before == pytest.approx(delta["ap50_before"], abs=5e-4)
        assert change == pytest.approx(delta["ap50_delta"] * 100, abs=0.05)
    assert f"previous model (run {first['run_id']}" in panel.summary_label.text()
    assert f"Run {second['run_id']}" in panel.footer_label.text()


def test_changes_are_coloured() -> None:
    better, worse, same = verdict_item("+2.0", "better"), verdict_item("-3.1", "worse"), verdict_item("+0.0", "same")
    assert better.foreground().color().green() > better.foreground().color().red()
    assert worse.foreground().color().red() > worse.foreground().color().green()
    assert better.font().bold() and worse.font().bold() and not same.font().bold()


def test_a_failure_is_shown_in_words(qtbot) -> None:
    panel = TrainPanel(device="cpu", cpu_count=2)
    qtbot.addWidget(panel)
    panel.set_running(True)
    panel.on_failed("Fine-tune failed", "no labeled training images; label some images first")
    panel.set_running(False)
    assert "label some images first" in panel.status_label.text() and "b3261e" in panel.status_label.styleSheet()
