"""The Fine-tune panel: one-click training with sensible defaults, a live plot, and "now vs before".

A thin view: the options come from ``labeltool.ml.train_defaults``, the table rows and sentences from
``labeltool.jobs.panel_views``. The panel never runs a job itself: "Fine-tune" emits
``start_requested(target, kwargs)`` and the window's job runner feeds the events back through
``on_progress`` / ``on_finished`` / ``on_failed`` / ``on_cancelled`` / ``set_running``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from labeltool.core.model import Run
from labeltool.core.progress import Progress
from labeltool.core.queries import labeled_totals
from labeltool.core.runs import current_run
from labeltool.core.store import Project
from labeltool.jobs.panel_views import (
    TRAIN_TARGET,
    Verdict,
    ap_text,
    compare_rows,
    compare_summary,
    points,
    train_footer,
)
from labeltool.ml.presets import current_preset_for
from labeltool.ml.train_defaults import TrainDefaults, choose_train_defaults, detect_device

from .loss_plot import LossPlot

VERDICT_COLORS: dict[str, tuple[str, str]] = {  # text, background
    "better": ("#1b6e34", "#e3f4e8"),
    "worse": ("#b3261e", "#fbe6e4"),
}
WARNING_STYLE = "color: #8a4b00; background: #fff4e0; padding: 6px; border-radius: 4px;"
STAGE_WORDS = {"prepare": "Preparing", "model": "Building the model", "load": "Decoding images",
               "compare": "Scoring the previous model", "save": "Saving the run"}


def verdict_item(text: str, verdict: Verdict | str, *, align_right: bool = True) -> QTableWidgetItem:
    """A read-only table cell; better / worse values get green / red text on a light tint."""
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if verdict in VERDICT_COLORS:
        fg, bg = VERDICT_COLORS[verdict]
        item.setForeground(QColor(fg))
        item.setBackground(QColor(bg))
        font = item.font()
        font.setBold(True)
        item.setFont(font)
    return item


def read_only_table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # no focus frame on a read-only table
    header = table.horizontalHeader()
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for i in range(1, len(headers)):
        header.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
    return table


def title_label(text: str) -> QLabel:
    label = QLabel(text)
    font = QFont(label.font())
    font.setPointSizeF(font.pointSizeF() * 1.3)
    font.setBold(True)
    label.setFont(font)
    return label


def wrapped(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def minutes_left(seconds: float) -> str:
    """Remaining time in words; training may stop earlier (early stopping)."""
    return "less than a minute left" if seconds < 60 else f"at most about {round(seconds / 60)} min left"


class TrainPanel(QWidget):
    """Fine-tune button with the defaults explained, live loss / mAP plot, per-class comparison."""

    KIND = "train"  # the job-runner kind the window should use for this panel's requests
    start_requested = Signal(str, dict)  # target, kwargs (JSON-able): run ``target(**kwargs)``
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None, *, device: str | None = None,
                 cpu_count: int | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None  # the window's open project (it calls set_project(None) on close)
        self.project_dir: str | None = None
        self.defaults: TrainDefaults | None = None
        self.last_result: dict[str, Any] | None = None
        self._device = device  # None: detected on the first set_project
        self._cpu_count = cpu_count or os.cpu_count() or 2
        self._running = False
        self._t_train: float | None = None  # monotonic time of the first 'train' event
        self.plan_label = wrapped("Open a project to fine-tune its detector.")
        self.warning_label = wrapped()
        self.warning_label.setStyleSheet(WARNING_STYLE)
        self.warning_label.hide()
        self.train_button = QPushButton("Fine-tune")
        self.train_button.setToolTip("Train a new model on the project's labels with the options above")
        self.train_button.clicked.connect(self.request_start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the training; nothing is saved and the project stays as it was")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.status_label = wrapped()
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(10)
        self.weights_label = wrapped()
        self.weights_label.setStyleSheet(WARNING_STYLE)
        self.weights_label.hide()
        self.plot = LossPlot()
        self.summary_label = wrapped()
        self.table = read_only_table(["class", "boxes", "AP@.5 now", "previous model", "change (points)"])
        self.table.setMinimumHeight(120)
        self.table.hide()  # until a training finished
        self.footer_label = wrapped()
        self.footer_label.setStyleSheet("color: #555555;")

        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.status_label, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(title_label("Fine-tune the detector"))
        layout.addWidget(self.plan_label)
        layout.addWidget(self.warning_label)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.weights_label)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.footer_label)
        self._update_buttons()

    # -- project -----------------------------------------------------------------------------------
    def set_project(self, project: Project | None) -> None:
        """Show the defaults for ``project`` (counts with two COUNT queries); None: no project open."""
        self.project = project
        if project is None:
            self.project_dir, self.defaults = None, None
            self.plan_label.setText("Open a project to fine-tune its detector.")
            self.warning_label.hide()
            self._update_buttons()
            return
        self.project_dir = str(project.root)
        n_images, n_boxes = labeled_totals(project)
        run = current_run(project)
        if self._device is None:
            self._device = detect_device()
        self.defaults = choose_train_defaults(
            n_images=n_images, n_boxes=n_boxes, device="cuda" if self._device == "cuda" else "cpu",
            cpu_count=self._cpu_count, has_previous_run=run is not None, previous_preset=_preset_name(run))
        self.plan_label.setText(self.defaults.explanation)
        self.warning_label.setText("\n".join(self.defaults.warnings))
        self.warning_label.setVisible(bool(self.defaults.warnings))
        self._update_buttons()

    def refresh(self) -> None:
        """Recount (after edits, or after a training made a new current model)."""
        self.set_project(self.project)

    def request_kwargs(self) -> dict[str, Any] | None:
        """What "Fine-tune" sends to ``train_job`` (None when there is nothing to train on)."""
        if self.project_dir is None or self.defaults is None or not self.defaults.ready:
            return None
        return {"project_dir": self.project_dir, **self.defaults.kwargs}

    @Slot()
    def request_start(self) -> bool:
        """Emit ``start_requested`` for a training with the defaults; False when not possible now."""
        kwargs = self.request_kwargs()
        if kwargs is None or self._running:
            return False
        self.start_requested.emit(TRAIN_TARGET, kwargs)
        return True

    # -- job events --------------------------------------------------------------------------------
    @Slot(bool)
    def set_running(self, running: bool) -> None:
        if running and not self._running:
            self._reset_for_run()
        self._running = running
        self._update_buttons()

    def _reset_for_run(self) -> None:
        self.plot.clear()
        self.table.setRowCount(0)
        self.table.hide()
        self.summary_label.clear()
        self.footer_label.clear()
        self.weights_label.hide()
        self.progress_bar.setRange(0, 0)  # busy until the first counted event
        self.status_label.setText("Starting…")
        self._t_train = None

    @Slot(object)
    def on_progress(self, progress: Progress) -> None:
        self.plot.add(progress)
        stage, m = progress.stage, progress.metrics
        if stage == "model" and m.get("warning"):
            self.weights_label.setText(progress.message)
            self.weights_label.show()
        if stage == "train":
            now = time.monotonic()
            if self._t_train is None:
                self._t_train = now
            self._set_bar(progress.done, progress.total)
            text = f"Training: {progress.message}, loss {m.get('loss', 0):.3f}"
            if progress.total and progress.done:
                left = (now - self._t_train) * (progress.total - progress.done) / progress.done
                text += f" — {minutes_left(left)}"
            self.status_label.setText(text)
        elif stage == "eval":
            self.status_label.setText(f"Epoch {progress.done}: {progress.message}")
        else:
            self._set_bar(progress.done, progress.total)
            word = STAGE_WORDS.get(stage, stage.capitalize())
            if stage == "model" and m.get("warning"):
                detail = "no pretrained weights (see the warning)"
            elif stage == "load" and progress.total:
                detail = f"{progress.done}/{progress.total}"
            else:
                detail = progress.message
            self.status_label.setText(f"{word}: {detail}" if detail else f"{word}…")

    def _set_bar(self, done: int, total: int) -> None:
        if total > 0:
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(min(done, total))
        else:
            self.progress_bar.setRange(0, 0)

    @Slot(object)
    def on_finished(self, result: dict[str, Any]) -> None:
        """Show a ``train_job`` result: overall line, per-class AP now vs the previous model."""
        self.last_result = result
        self._finish_bar("Done: the new model is the project's current model.")
        summary, v = compare_summary(result)
        self.summary_label.setText(summary)
        color = {"better": "#1b6e34", "worse": "#b3261e"}.get(v)
        self.summary_label.setStyleSheet(f"color: {color}; font-weight: bold;" if color else "font-weight: bold;")
        rows = compare_rows(result)
        self.table.setRowCount(len(rows))
        for column in (3, 4):  # no previous model: nothing to show in its columns
            self.table.setColumnHidden(column, result.get("previous_run_id") is None)
        self.table.show()
        for i, row in enumerate(rows):
            self.table.setItem(i, 0, verdict_item(row.name, "none", align_right=False))
            self.table.setItem(i, 1, verdict_item("–" if row.n_gt is None else str(row.n_gt), "none"))
            self.table.setItem(i, 2, verdict_item(ap_text(row.now), "none"))
            self.table.setItem(i, 3, verdict_item(ap_text(row.before), "none"))
            self.table.setItem(i, 4, verdict_item(points(row.delta), row.verdict))
        self.footer_label.setText(train_footer(result))
        self.refresh()  # the next click compares with this model

    @Slot(str, str)
    def on_failed(self, title: str, message: str) -> None:
        self._finish_bar(f"{title}: {message}")
        self.status_label.setStyleSheet("color: #b3261e;")

    @Slot()
    def on_cancelled(self) -> None:
        self._finish_bar("Cancelled: no model was saved and the project is as it was.")

    def _finish_bar(self, text: str) -> None:
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
        self.status_label.setStyleSheet("")
        self.status_label.setText(text)

    def _update_buttons(self) -> None:
        ready = self.defaults is not None and self.defaults.ready
        self.train_button.setEnabled(ready and not self._running)
        self.cancel_button.setEnabled(self._running)


def _preset_name(run: Run | None) -> str | None:
    """Today's name of the preset that builds the current model's network (names changed meaning: the
    earlier 'edge' was MobileNetV3, today's is EfficientNet-Lite0); None when no preset does."""
    if run is None:
        return None
    found = current_preset_for(run.config.get("preset"))
    return found.name if found else None
