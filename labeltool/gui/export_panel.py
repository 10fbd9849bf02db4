"""The Export panel: edge bundle (FP32 / FP32+INT8) → verification against PyTorch → deploy / roll back.

A thin view with a small chain: "Export and verify" emits the export request; when the export
result comes back (``on_finished``), the panel emits the verification request for the new bundle
itself (the job runner allows starting the next job from a ``finished`` slot). Results are told
apart by their keys. Rows and sentences come from ``labeltool.jobs.panel_views``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from labeltool.core.deploy import parse_target
from labeltool.core.errors import DeployError
from labeltool.core.progress import Progress
from labeltool.core.runs import current_run
from labeltool.core.store import Project
from labeltool.jobs.panel_views import (
    DEPLOY_TARGET,
    EXPORT_TARGET,
    VERIFY_TARGET,
    class_rows,
    default_bundle_dir,
    deploy_sentence,
    export_summary,
    latest_bundle,
    read_verification,
    speed_note,
    speed_rows,
    variants,
    verification_verdict,
    weak_model_note,
)

from .train_panel import read_only_table, title_label, verdict_item, wrapped

Confirm = Callable[[str], bool]
VERIFIED_STYLE = "color: #1b6e34; background: #e3f4e8; padding: 6px; border-radius: 4px; font-weight: bold;"
NOT_VERIFIED_STYLE = "color: #b3261e; background: #fbe6e4; padding: 6px; border-radius: 4px; font-weight: bold;"
WEAK_MODEL_STYLE = "color: #8a4b00; background: #fff4e0; padding: 6px; border-radius: 4px; font-weight: bold;"


class ExportPanel(QWidget):
    """Export choices, the verification tables, and the deploy / roll back section."""

    KIND = "export"  # the job-runner kind for every request of this panel (one job at a time)
    start_requested = Signal(str, dict)  # target, kwargs (JSON-able): run ``target(**kwargs)``
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project_dir: str | None = None
        self.run_id: int | None = None
        self.bundle: str | None = None  # the bundle verify / deploy work on
        self.verification: dict[str, Any] | None = None  # that bundle's verification report
        self.last_deploy: dict[str, Any] | None = None
        self._running = False
        self._verify_next = False  # "Export and verify": verify when the export result arrives
        self._pending: str | None = None  # target of the last request (where its failure is shown)
        self._out_edited = False  # the user typed an output folder: keep it

        self.model_label = wrapped("Open a project with a trained model to export it.")
        self.int8_radio = QRadioButton("FP32 + INT8 (recommended)")
        self.fp32_radio = QRadioButton("FP32 only")
        precision_note = wrapped("INT8 is about 3× smaller and faster on the line PC, calibrated on 32 project "
                                 "images; FP32 computes exactly what PyTorch does.")
        precision_note.setStyleSheet("color: #555555;")
        self.int8_radio.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.int8_radio)
        group.addButton(self.fp32_radio)
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("bundle folder to create")
        self.out_edit.textEdited.connect(lambda _text: setattr(self, "_out_edited", True))
        out_browse = QPushButton("Choose…")
        out_browse.clicked.connect(self._choose_out)
        self.export_button = QPushButton("Export and verify")
        self.export_button.setToolTip("Write the edge bundle, then check it against PyTorch on the validation images")
        self.export_button.clicked.connect(lambda: self.request_export())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.status_label = wrapped()
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(10)

        self.bundle_label = wrapped("No bundle yet.")
        choose_bundle = QPushButton("Choose bundle…")
        choose_bundle.clicked.connect(self._choose_bundle)
        self.verify_button = QPushButton("Verify")
        self.verify_button.setToolTip("Compare this bundle with PyTorch on the validation images")
        self.verify_button.clicked.connect(lambda: self.request_verify())
        self.verdict_label = wrapped()
        self.verdict_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.verdict_label.hide()
        self.speed_table = read_only_table(["", "PyTorch FP32", "ONNX FP32", "ONNX INT8"])
        self.speed_note = wrapped()
        self.speed_note.setStyleSheet("color: #555555;")
        self.class_title = QLabel("AP@.5 per class (Δ: points against PyTorch)")
        self.class_table = read_only_table(["class", "PyTorch", "ONNX FP32", "Δ", "ONNX INT8", "Δ"])
        self._details = (self.speed_table, self.speed_note, self.class_title, self.class_table)
        for widget in self._details:
            widget.hide()

        self.target_edit = QLineEdit()
        self.target_edit.setPlaceholderText("folder, mounted device, or ssh://user@host/path")
        target_browse = QPushButton("Folder…")
        target_browse.clicked.connect(self._choose_target)
        self.key_edit = QLineEdit()
        self.key_edit.setPlaceholderText("SSH key file (optional; default: your SSH agent and ~/.ssh keys)")
        self.deploy_button = QPushButton("Deploy")
        self.deploy_button.setToolTip("Install the bundle on the target; the line then runs TARGET/current/infer.py")
        self.deploy_button.clicked.connect(lambda: self.request_deploy())
        self.rollback_button = QPushButton("Roll back")
        self.rollback_button.setToolTip("Make the bundle deployed before the current one live again")
        self.rollback_button.clicked.connect(lambda: self.request_rollback())
        self.deploy_label = wrapped()

        layout = QVBoxLayout(self)
        layout.addWidget(title_label("Export to the line"))
        layout.addWidget(self.model_label)
        radios = QHBoxLayout()
        radios.addWidget(self.int8_radio)
        radios.addWidget(self.fp32_radio)
        radios.addStretch(1)
        layout.addLayout(radios)
        layout.addWidget(precision_note)
        out_row = QHBoxLayout()
        out_row.addWidget(QLabel("Bundle folder:"))
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(out_browse)
        layout.addLayout(out_row)
        run_row = QHBoxLayout()
        run_row.addWidget(self.export_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.status_label, 1)
        layout.addLayout(run_row)
        layout.addWidget(self.progress_bar)

        check = QGroupBox("Verification: the bundle against PyTorch")
        check_layout = QVBoxLayout(check)
        bundle_row = QHBoxLayout()
        bundle_row.addWidget(self.bundle_label, 1)
        bundle_row.addWidget(choose_bundle)
        bundle_row.addWidget(self.verify_button)
        check_layout.addLayout(bundle_row)
        check_layout.addWidget(self.verdict_label)
        check_layout.addWidget(self.speed_table)
        check_layout.addWidget(self.speed_note)
        check_layout.addWidget(self.class_title)
        check_layout.addWidget(self.class_table)
        layout.addWidget(check)

        deploy = QGroupBox("Deploy")
        grid = QGridLayout(deploy)
        grid.addWidget(QLabel("Target:"), 0, 0)
        grid.addWidget(self.target_edit, 0, 1)
        grid.addWidget(target_browse, 0, 2)
        grid.addWidget(QLabel("SSH key:"), 1, 0)
        grid.addWidget(self.key_edit, 1, 1, 1, 2)
        deploy_buttons = QHBoxLayout()
        deploy_buttons.addWidget(self.deploy_button)
        deploy_buttons.addWidget(self.rollback_button)
        deploy_buttons.addStretch(1)
        grid.addLayout(deploy_buttons, 2, 0, 1, 3)
        grid.addWidget(self.deploy_label, 3, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        layout.addWidget(deploy)
        layout.addStretch(1)  # short tables keep their height; free space goes below everything
        self._update_buttons()

    # -- project and bundle ------------------------------------------------------------------------
    def set_project(self, project: Project | None) -> None:
        """Show the project's current model and its newest bundle (with its verification, if any)."""
        self._out_edited = False
        if project is None:
            self.project_dir, self.run_id = None, None
            self.model_label.setText("Open a project with a trained model to export it.")
            self.out_edit.clear()
            self.set_bundle(None)
            return
        self.project_dir = str(project.root)
        run = current_run(project)
        self.run_id = run.id if run else None
        if run is None:
            self.model_label.setText("This project has no trained model yet: fine-tune one first, then export it.")
        else:
            map50 = run.metrics.get("map50")
            score = f", validation mAP@.5 {map50:.3f}" if isinstance(map50, int | float) else ""
            backbone = (run.config.get("preset") or {}).get("backbone")  # names changed meaning: say which network
            net = f", {backbone}" if isinstance(backbone, str) else ""
            self.model_label.setText(f"Exports the current model: run {run.id} ({run.preset} preset{net}{score}).")
        self._new_out_dir()
        self.set_bundle(latest_bundle(project.root))

    def _new_out_dir(self) -> None:
        if self.project_dir is not None and not self._out_edited:
            self.out_edit.setText(str(default_bundle_dir(Path(self.project_dir), self.run_id)))

    def set_bundle(self, bundle: str | Path | None) -> None:
        """Work on ``bundle`` (folder or .zip); shows its verification report when it has one."""
        self.bundle = str(bundle) if bundle is not None else None
        self.show_verification(read_verification(bundle) if bundle is not None else None)
        self.bundle_label.setText(f"Bundle: {self.bundle}" if self.bundle else "No bundle yet.")
        self._update_buttons()

    def show_verification(self, report: dict[str, Any] | None) -> None:
        """Fill the verdict line and both tables from a ``verify_job`` result (None: clear them)."""
        self.verification = report
        for widget in self._details:
            widget.setVisible(report is not None)
        if report is None:
            self.verdict_label.setVisible(self.bundle is not None)
            self.verdict_label.setStyleSheet("")
            self.verdict_label.setText("This bundle has not been verified yet: Verify checks it against PyTorch.")
            return
        self.verdict_label.setText(verification_verdict(report))
        self.verdict_label.setStyleSheet(NOT_VERIFIED_STYLE if not report.get("verified") else
                                         WEAK_MODEL_STYLE if weak_model_note(report) else VERIFIED_STYLE)
        self.verdict_label.show()
        labels = [label for _, label in variants(report)]
        self.speed_table.setColumnCount(1 + len(labels))
        self.speed_table.setHorizontalHeaderLabels(["", *labels])
        speed = speed_rows(report)
        self.speed_table.setRowCount(len(speed))
        for i, (name, cells) in enumerate(speed):
            self.speed_table.setItem(i, 0, verdict_item(name, "none", align_right=False))
            for j, text in enumerate(cells):
                self.speed_table.setItem(i, 1 + j, verdict_item(text, "none"))
        self.speed_note.setText(speed_note(report))
        headers = ["class", "PyTorch"]
        for label in labels[1:]:
            headers += [label, "Δ"]
        self.class_table.setColumnCount(len(headers))
        self.class_table.setHorizontalHeaderLabels(headers)
        rows = class_rows(report)
        self.class_table.setRowCount(len(rows))
        for i, (name, cells) in enumerate(rows):
            self.class_table.setItem(i, 0, verdict_item(name, "none", align_right=False))
            for j, (text, v) in enumerate(cells):
                self.class_table.setItem(i, 1 + j, verdict_item(text, v))
        for table in (self.speed_table, self.class_table):
            fit_height(table)

    # -- requests ----------------------------------------------------------------------------------
    def request_export(self, *, verify: bool = True) -> bool:
        """Emit the export request (then, with ``verify``, the verification when it is written)."""
        if self._running or self.project_dir is None or self.run_id is None:
            return False
        out = self.out_edit.text().strip()
        if not out:
            self.status_label.setText("Give the folder the bundle should be written to.")
            return False
        self._verify_next = verify
        self._emit(EXPORT_TARGET, {"project_dir": self.project_dir, "out": out,
                                                  "run_id": self.run_id, "int8": self.int8_radio.isChecked(),
                                                  "fp16": False})
        return True

    def request_verify(self) -> bool:
        """Emit the verification request for the current bundle."""
        if self._running or self.bundle is None or self.project_dir is None:
            return False
        self._emit(VERIFY_TARGET, {"bundle": self.bundle, "project_dir": self.project_dir})
        return True

    def _target(self) -> str | None:
        target = self.target_edit.text().strip()
        if not target:
            self.deploy_label.setText("Enter the target: a folder, a mounted device, or ssh://user@host/path.")
            return None
        try:
            parse_target(target)
        except DeployError as exc:
            self.deploy_label.setText(str(exc))
            return None
        return target

    def _ssh_options(self, target: str) -> dict[str, str]:
        key = self.key_edit.text().strip()
        return {"key_file": key} if key and target.lower().startswith(("ssh://", "sftp://")) else {}

    def request_deploy(self, *, confirm: Confirm | None = None) -> bool:
        """Emit the deploy request. A bundle that is not verified (or failed) is deployed only when
        ``confirm(question)`` says yes (default: a dialog)."""
        if self._running or self.bundle is None:
            return False
        target = self._target()
        if target is None:
            return False
        report = self.verification
        if report is None or not report.get("verified"):
            why = ("has not been verified against PyTorch" if report is None
                   else "did NOT pass verification (it loses more accuracy than allowed)")
            question = f"This bundle {why}.\n\nDeploy it to {target} anyway?"
            if not (confirm or self._ask)(question):
                self.deploy_label.setText("Not deployed.")
                return False
        self._emit(DEPLOY_TARGET, {"bundle": self.bundle, "target": target, "rollback": False,
                                                  **self._ssh_options(target)})
        return True

    def request_rollback(self) -> bool:
        """Emit the roll-back request for the target."""
        target = self._target() if not self._running else None
        if target is None:
            return False
        self._emit(DEPLOY_TARGET, {"bundle": None, "target": target, "rollback": True,
                                                  **self._ssh_options(target)})
        return True

    def _emit(self, target: str, kwargs: dict[str, Any]) -> None:
        self._pending = target
        self.start_requested.emit(target, kwargs)

    def _ask(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Deploy an unverified bundle?", question,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # -- job events --------------------------------------------------------------------------------
    @Slot(bool)
    def set_running(self, running: bool) -> None:
        self._running = running
        if running:
            self.progress_bar.setRange(0, 0)
        self._update_buttons()

    @Slot(object)
    def on_progress(self, progress: Progress) -> None:
        if progress.total > 0:
            self.progress_bar.setRange(0, progress.total)
            self.progress_bar.setValue(min(progress.done, progress.total))
        self.status_label.setStyleSheet("")
        self.status_label.setText(f"{progress.stage.capitalize()}: {progress.message}")

    @Slot(object)
    def on_finished(self, result: dict[str, Any]) -> None:
        """An export, verification or deploy result (told apart by its keys)."""
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
        self.status_label.setStyleSheet("")
        if "per_class_ap50" in result:  # verify_job
            self.show_verification(result)
            self.status_label.setText("Verification finished.")
        elif result.get("action") in ("deploy", "rollback"):  # deploy_job
            self.last_deploy = result
            self.deploy_label.setStyleSheet("")
            self.deploy_label.setText(deploy_sentence(result))
            self.status_label.setText("Rolled back." if result["action"] == "rollback" else "Deployed.")
        elif "files" in result:  # export_model_job
            self.set_bundle(result["bundle"])
            self._out_edited = False
            self._new_out_dir()
            self.status_label.setText(export_summary(result))
            if self._verify_next:
                self._verify_next = False
                self._running = False  # the runner starts the next job from this slot
                self.request_verify()
        self._update_buttons()

    @Slot(str, str)
    def on_failed(self, title: str, message: str) -> None:
        self._verify_next = False
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        label = self.deploy_label if self._pending == DEPLOY_TARGET else self.status_label
        label.setStyleSheet("color: #b3261e;")
        label.setText(f"{title}: {message}")

    @Slot()
    def on_cancelled(self) -> None:
        self._verify_next = False
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label.setStyleSheet("")
        self.status_label.setText("Cancelled.")

    def _update_buttons(self) -> None:
        idle = not self._running
        self.export_button.setEnabled(idle and self.project_dir is not None and self.run_id is not None)
        self.verify_button.setEnabled(idle and self.bundle is not None and self.project_dir is not None)
        self.deploy_button.setEnabled(idle and self.bundle is not None)
        self.rollback_button.setEnabled(idle)
        self.cancel_button.setEnabled(self._running)

    # -- file choosers -----------------------------------------------------------------------------
    def _choose_out(self) -> None:
        start = str(Path(self.project_dir) / "exports") if self.project_dir else ""
        folder = QFileDialog.getExistingDirectory(self, "Folder for the new bundle (empty)", start)
        if folder:
            self.out_edit.setText(folder)
            self._out_edited = True

    def _choose_bundle(self) -> None:
        start = str(Path(self.project_dir) / "exports") if self.project_dir else ""
        folder = QFileDialog.getExistingDirectory(self, "Bundle folder (with manifest.json)", start)
        if folder:
            self.set_bundle(folder)

    def _choose_target(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Deploy target folder (or mounted device)")
        if folder:
            self.target_edit.setText(folder)


def fit_height(table: QTableWidget) -> None:
    """Make a short table exactly as tall as its rows (no inner scroll bar for a few rows)."""
    table.resizeRowsToContents()
    height = table.horizontalHeader().height() + 2 * table.frameWidth()
    height += sum(table.rowHeight(r) for r in range(table.rowCount()))
    table.setMinimumHeight(min(height, 360))
    table.setMaximumHeight(height)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
