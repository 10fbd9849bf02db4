"""The running jobs, one row per kind: title, stage, message, progress bar, elapsed / ETA, Cancel.

``JobPanel(runner)`` connects itself to a :class:`JobRunner`. A finished or cancelled job's row
hides itself a few seconds later; a failed job's row keeps the message until Close is pressed (the
main window also shows the full text in a dialog).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from labeltool.core.progress import Progress
from labeltool.jobs.eta import ProgressClock, format_duration

from .job_runner import JobRunner

HIDE_AFTER_MS = 4000  # a finished / cancelled job's row stays this long, then hides
TICK_MS = 1000  # elapsed / ETA refresh while a job runs (progress events refresh it too)
ERROR_STYLE = "color: #b00020;"  # failure message text


class JobRow(QFrame):
    """One job: ``title_label``, ``stage_label``, ``message_label``, ``bar``, ``time_label``, ``button``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title_label = QLabel()
        self.title_label.setStyleSheet("font-weight: bold;")
        self.stage_label = QLabel()
        self.time_label = QLabel()
        self.button = QPushButton("Cancel")
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(self.title_label)
        top.addWidget(self.stage_label, 1)
        top.addWidget(self.time_label)
        top.addWidget(self.button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.message_label)
        self.clock = ProgressClock()
        self.running = False
        self.failed = False

    def begin(self, title: str) -> None:
        self.clock = ProgressClock()
        self.running, self.failed = True, False
        self.title_label.setText(title)
        self.stage_label.setText("starting…")
        self.message_label.setText("")
        self.message_label.setStyleSheet("")
        self.message_label.setToolTip("")
        self.bar.setRange(0, 0)  # busy until the first event says how much there is
        self.button.setText("Cancel")
        self.button.setEnabled(True)
        self.button.setVisible(True)
        self.refresh_time()
        self.setVisible(True)

    def show_progress(self, event: Progress) -> None:
        self.clock.update(event)
        self.stage_label.setText(event.stage)
        self.message_label.setText(event.message)
        if event.total > 0:
            self.bar.setRange(0, event.total)
            self.bar.setValue(min(event.done, event.total))
        else:
            self.bar.setRange(0, 0)
        self.refresh_time()

    def refresh_time(self) -> None:
        text = f"elapsed {format_duration(self.clock.elapsed())}"
        if self.running and self.bar.maximum() > 0:
            eta = self.clock.eta()
            text += " · estimating…" if eta is None else f" · about {format_duration(eta)} left"
        self.time_label.setText(text)

    def end(self, stage: str, *, message: str | None = None, error: bool = False) -> None:
        self.running, self.failed = False, error
        self.refresh_time()  # elapsed only: no "estimating…" / time left on an ended job
        self.stage_label.setText(stage)
        if message is not None:
            self.message_label.setText(message)
        if error:
            self.message_label.setStyleSheet(ERROR_STYLE)
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.button.setText("Close")
            self.button.setEnabled(True)
        else:
            if stage == "done":
                self.bar.setRange(0, 1)
                self.bar.setValue(1)
            elif self.bar.maximum() == 0:
                self.bar.setRange(0, 1)
                self.bar.setValue(0)
            self.button.setVisible(False)


class JobPanel(QWidget):
    """Rows of the jobs a :class:`JobRunner` runs (one per kind); Cancel calls ``runner.cancel``."""

    def __init__(self, runner: JobRunner, parent: QWidget | None = None, *, hide_after_ms: int = HIDE_AFTER_MS) -> None:
        super().__init__(parent)
        self.runner = runner
        self.hide_after_ms = hide_after_ms
        self._rows: dict[str, JobRow] = {}
        self._hide_timers: dict[str, QTimer] = {}
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self._refresh_times)
        runner.running_changed.connect(self._on_running_changed)
        runner.progress.connect(self._on_progress)
        runner.finished.connect(self._on_finished)
        runner.cancelled.connect(self._on_cancelled)
        runner.failed.connect(self._on_failed)

    def row(self, kind: str) -> JobRow | None:
        """The row of ``kind`` (hidden or not), None if that kind never ran."""
        return self._rows.get(kind)

    def visible_kinds(self) -> list[str]:
        return [kind for kind, row in self._rows.items() if not row.isHidden()]

    # -- runner signals ---------------------------------------------------------------------------
    def _row_for(self, kind: str) -> JobRow:
        row = self._rows.get(kind)
        if row is None:
            row = JobRow(self)
            row.button.clicked.connect(lambda: self._on_button(kind))
            timer = QTimer(self)
            timer.setSingleShot(True)
            timer.timeout.connect(row.hide)
            self._rows[kind], self._hide_timers[kind] = row, timer
            self._layout.addWidget(row)
        return row

    def _on_running_changed(self, kind: str, running: bool) -> None:
        if running:
            if kind in self._hide_timers:
                self._hide_timers[kind].stop()
            self._row_for(kind).begin(self.runner.title(kind))
            self._tick.start()
        elif not any(row.running for row in self._rows.values()):
            self._tick.stop()

    def _on_progress(self, kind: str, event: Progress) -> None:
        self._row_for(kind).show_progress(event)

    def _on_finished(self, kind: str, result: object) -> None:
        self._end(kind, "done")

    def _on_cancelled(self, kind: str) -> None:
        self._end(kind, "cancelled")

    def _on_failed(self, kind: str, title: str, message: str) -> None:
        row = self._row_for(kind)
        if not row.running:  # the job's process could not even start
            row.begin(title)
        first = message.split("\n\n")[0]
        row.end("failed", message=first, error=True)
        row.message_label.setToolTip(message)

    def _end(self, kind: str, stage: str) -> None:
        row = self._row_for(kind)
        row.end(stage)
        self._hide_timers[kind].start(self.hide_after_ms)

    def _on_button(self, kind: str) -> None:
        row = self._rows[kind]
        if row.running:
            row.button.setEnabled(False)
            row.button.setText("Cancelling…")
            self.runner.cancel(kind)
        else:  # "Close" on a failed job
            row.hide()

    def _refresh_times(self) -> None:
        for row in self._rows.values():
            if row.running:
                row.refresh_time()
