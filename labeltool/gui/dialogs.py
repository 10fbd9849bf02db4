"""Import / export dialogs and their summaries; the work runs in-process with a progress dialog.

``run_import`` and ``run_export`` take paths (tests call them directly, without native file
dialogs). Imports run the existing ``import_job`` generator, fed into a QProgressDialog; cancelling
closes the generator, and the import (all-or-nothing) removes what it copied.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from labeltool.core.errors import LabeltoolError, ProjectLockedError
from labeltool.core.exporting import EXPORT_FORMATS, export_project
from labeltool.core.formats import detect_format
from labeltool.core.ingest import ImportSummary
from labeltool.core.labels import LabelSet, Report, ReportEntry
from labeltool.core.progress import Progress
from labeltool.core.store import Project
from labeltool.jobs import drive
from labeltool.jobs.data import import_job

IMPORT_FORMATS = ("coco", "yolo", "voc", "folder")
FORMAT_TEXT = {"coco": "COCO (.json)", "yolo": "YOLO (data.yaml + labels/)", "voc": "Pascal VOC (.xml)",
               "folder": "Image folder (no labels)"}


class Cancelled(Exception):
    """The user pressed Cancel in a progress dialog."""


# -- errors ---------------------------------------------------------------------------------------------
def error_text(exc: BaseException) -> str:
    """What happened and what to do, for a dialog. Core messages already say what to do; a few kinds
    get an extra hint."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ProjectLockedError):
        text += ("\n\nWhat to do: another labeltool window, command or training job is writing to this "
                 "project. Wait for it to finish or close it, then try again.")
    elif isinstance(exc, OSError):
        text += "\n\nWhat to do: check that the disk is not full and that you may write to this folder."
    elif not isinstance(exc, LabeltoolError):
        text = f"{type(exc).__name__}: {text}"
    return text


def show_error(parent: QWidget | None, title: str, exc: BaseException) -> None:
    """A dialog with the user-facing message of ``exc`` (what happened and what to do)."""
    QMessageBox.critical(parent, title, error_text(exc))


# -- progress -------------------------------------------------------------------------------------------
class ProgressFeed:
    """Turns job Progress events into a QProgressDialog; raises Cancelled when the user cancels."""

    def __init__(self, parent: QWidget | None, title: str) -> None:
        self.dialog = QProgressDialog(title, "Cancel", 0, 0, parent)
        self.dialog.setWindowTitle(title)
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setMinimumDuration(300)
        self.events: list[Progress] = []

    def __call__(self, event: Progress) -> None:
        self.events.append(event)
        self.dialog.setMaximum(max(event.total, 0))
        if event.total:
            self.dialog.setValue(min(event.done, event.total))
        self.dialog.setLabelText(event.message or event.stage)
        QApplication.processEvents()
        if self.dialog.wasCanceled():
            raise Cancelled

    def close(self) -> None:
        self.dialog.reset()
        self.dialog.close()


# -- import ---------------------------------------------------------------------------------------------
def guess_format(source: Path) -> str | None:
    """The detected format of ``source``, or None when it cannot be told (the dialog asks)."""
    try:
        return detect_format(source)
    except LabeltoolError:
        return None


def run_import(parent: QWidget | None, project_dir: Path, source: Path, *, fmt: str | None = None,
               ) -> ImportSummary | None:
    """Import ``source`` with a progress dialog; None when cancelled or failed (an error dialog was shown)."""
    feed = ProgressFeed(parent, f"Importing {Path(source).name}")
    try:
        return drive(import_job(Path(project_dir), Path(source), fmt=fmt), feed)
    except Cancelled:
        return None
    except (LabeltoolError, OSError) as exc:
        show_error(parent, "Import failed: nothing was added", exc)
        return None
    finally:
        feed.close()


def import_summary_lines(summary: ImportSummary) -> list[str]:
    lines = [f"{summary.images_added} image(s) added", f"{summary.boxes_added} box(es) added"]
    if summary.images_labeled_existing:
        lines.append(f"{summary.images_labeled_existing} image(s) already in the project got their boxes")
    if summary.classes_added:
        lines.append(f"new classes: {', '.join(summary.classes_added)}")
    if summary.images_skipped or summary.boxes_skipped:
        lines.append(f"not added: {summary.images_skipped} image(s), {summary.boxes_skipped} box(es)")
    errors, warnings = len(summary.report.errors), len(summary.report.warnings)
    if errors or warnings:
        lines.append(f"{errors} record(s) skipped, {warnings} fixed up — why is listed below")
    return lines


class ReportDialog(QDialog):
    """A summary text and the Report entries (severity, file, field, what was done) in a table."""

    def __init__(self, parent: QWidget | None, title: str, lines: Sequence[str],
                 entries: Sequence[ReportEntry]) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(760, 420)
        layout = QVBoxLayout(self)
        text = [html.escape(line) for line in lines]
        self.summary = QLabel("<br>".join(f"<b>{line}</b>" if i == 0 else line for i, line in enumerate(text)))
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.summary)
        self.table = QTableWidget(len(entries), 4)
        self.table.setHorizontalHeaderLabels(["", "file", "field", "what happened"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        for row, e in enumerate(entries):
            values = ("skipped" if e.severity == "error" else "fixed", e.file, e.field, e.message)
            for col, value in enumerate(values):
                self.table.setItem(row, col, QTableWidgetItem(value))
        if entries:
            layout.addWidget(QLabel(f"{len(entries)} problem(s): 'skipped' records were left out, "
                                    "'fixed' ones were imported after the change described."))
            layout.addWidget(self.table, 1)
        else:
            self.table.hide()
            layout.addWidget(QLabel("No problems."))
            layout.addStretch(1)
            self.resize(440, 180)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)


def import_report_dialog(parent: QWidget | None, summary: ImportSummary) -> ReportDialog:
    return ReportDialog(parent, "Import finished", import_summary_lines(summary), summary.report.entries)


class ImportDialog(QDialog):
    """Confirms the source and its format (detected, changeable) before importing."""

    def __init__(self, parent: QWidget | None, source: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import labels or images")
        form = QFormLayout(self)
        self.path = QLineEdit()
        self.path.textChanged.connect(self._detect)
        file_btn, dir_btn = QPushButton("File…"), QPushButton("Folder…")
        file_btn.clicked.connect(self._pick_file)
        dir_btn.clicked.connect(self._pick_dir)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(file_btn)
        row.addWidget(dir_btn)
        form.addRow("Import from", row)
        self.format = QComboBox()
        for name in IMPORT_FORMATS:
            self.format.addItem(FORMAT_TEXT[name], name)
        form.addRow("Format", self.format)
        self.note = QLabel()
        self.note.setWordWrap(True)
        form.addRow(self.note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        if source is not None:
            self.path.setText(str(source))
        else:
            self._detect("")

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Annotation file", "", "Annotations (*.json *.yaml *.yml)")
        if path:
            self.path.setText(path)

    def _pick_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder to import")
        if path:
            self.path.setText(path)

    def _detect(self, text: str) -> None:
        fmt = guess_format(Path(text)) if text else None
        if fmt is not None:
            self.format.setCurrentIndex(IMPORT_FORMATS.index(fmt))
            self.note.setText(f"Detected: {FORMAT_TEXT[fmt]}.")
        else:
            self.note.setText("Pick an annotation file (COCO .json, YOLO data.yaml) or a folder "
                              "(YOLO, VOC or plain images); the format is detected." if not text else
                              "The format could not be detected: choose it above.")

    @property
    def source(self) -> Path:
        return Path(self.path.text())

    @property
    def fmt(self) -> str:
        return str(self.format.currentData())


# -- export ---------------------------------------------------------------------------------------------
class ExportDialog(QDialog):
    """Format, destination folder and include-unlabeled, before exporting."""

    def __init__(self, parent: QWidget | None, *, start: Path | None = None, name: str = "labels") -> None:
        """``start``: the folder the last export went into (its parent holds the suggestion);
        ``name``: the project's name, for a suggested ``<name>-<format>`` folder that does not exist yet."""
        super().__init__(parent)
        self._start, self._name, self._suggested = start, name, ""
        self.setWindowTitle("Export labels")
        self.setMinimumWidth(620)
        form = QFormLayout(self)
        self.format = QComboBox()
        for name in EXPORT_FORMATS:
            self.format.addItem(FORMAT_TEXT[name], name)
        form.addRow("Format", self.format)
        self.dest = QLineEdit()
        browse = QPushButton("Folder…")
        browse.clicked.connect(self._pick)
        row = QHBoxLayout()
        row.addWidget(self.dest, 1)
        row.addWidget(browse)
        form.addRow("Into (new or empty folder)", row)
        self.include_unlabeled = QCheckBox("Include unlabeled images (they would count as defect-free)")
        form.addRow(self.include_unlabeled)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.format.currentIndexChanged.connect(self._suggest)
        self._suggest()

    def _suggest(self) -> None:
        """Propose ``<name>-<format>`` (numbered when taken) beside the last export, unless the user typed a folder."""
        if self._start is None or self.dest.text() not in ("", self._suggested):
            return
        parent = self._start.parent
        base = f"{self._name}-{self.fmt}"
        candidate = parent / base
        n = 2
        while candidate.exists():
            candidate, n = parent / f"{base}-{n}", n + 1
        self._suggested = str(candidate)
        self.dest.setText(self._suggested)

    def _pick(self) -> None:
        start = str(Path(self.dest.text()).parent) if self.dest.text() else ""
        path = QFileDialog.getExistingDirectory(self, "Export into folder", start)
        if path:
            self.dest.setText(path)

    @property
    def fmt(self) -> str:
        return str(self.format.currentData())


def run_export(parent: QWidget | None, project: Project, dest: Path, *, fmt: str,
               include_unlabeled: bool = False, labels: LabelSet | None = None) -> Report | None:
    """Export (``labels``: see ``export_project``) with a busy dialog; None when it failed (an error
    dialog was shown)."""
    feed = ProgressFeed(parent, f"Exporting {fmt.upper()}")
    feed(Progress("export", 0, 0, f"writing {fmt.upper()} into {dest}"))
    try:
        return export_project(project, Path(dest), fmt=fmt, include_unlabeled=include_unlabeled, labels=labels)
    except (LabeltoolError, OSError, ValueError) as exc:
        show_error(parent, "Export failed", exc)
        return None
    finally:
        feed.close()


def export_report_dialog(parent: QWidget | None, report: Report, dest: Path, fmt: str,
                         counts: dict[str, int] | None = None) -> ReportDialog:
    """``counts``: ``images``, ``boxes`` and ``classes`` written (the summary's second line)."""
    lines = [f"Exported {fmt.upper()} into {dest}."]
    if counts is not None and not report.errors:
        lines.append(f"{counts['images']} images with {counts['boxes']} boxes of {counts['classes']} classes. "
                     "Every image file was copied: the folder is complete on its own.")
    elif counts is not None:
        lines.append(f"Of {counts['images']} images with {counts['boxes']} boxes, the problems below were not "
                     "written: the folder is incomplete.")
    return ReportDialog(parent, "Export finished", lines, report.entries)
