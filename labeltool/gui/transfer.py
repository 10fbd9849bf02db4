"""Import, export and drag-and-drop of the main window (a mixin of :class:`~labeltool.gui.main.MainWindow`).

Uses the window's ``project``, ``canvas``, ``settings``, ``report_dialog`` and ``_reload_all``; the dialogs and the
import/export runs themselves are in :mod:`labeltool.gui.dialogs`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QDialog, QMessageBox, QWidget

from labeltool.core.exporting import project_labelset
from labeltool.core.ingest import ImportSummary
from labeltool.core.labels import Report

from . import dialogs

LAST_EXPORT_KEY = "last_export_dir"  # QSettings: the folder the last label export went into


class TransferMixin:
    """File ▸ Import / Export and dropping a folder or annotation file onto the window."""

    def _need_project(self) -> bool:
        if self.project is None:
            QMessageBox.information(self, "No project open",
                                    "Open a project (File ▸ Open) or create one (File ▸ New) first.")
            return False
        return True

    def import_dialog(self, source: Path | None = None) -> None:
        """Ask for the source and format (detected), then import."""
        if not self._need_project():
            return
        dialog = dialogs.ImportDialog(self, source)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.path.text():
            self.import_source(dialog.source, fmt=dialog.fmt)

    def import_source(self, source: Path, *, fmt: str | None = None) -> ImportSummary | None:
        """Import ``source`` into the open project, refresh everything and show what was added/skipped."""
        if not self._need_project():
            return None
        assert self.project is not None
        keep = self.canvas.image.id if self.canvas.image is not None else None
        summary = dialogs.run_import(self, self.project.root, source, fmt=fmt)
        if summary is None:
            return None
        self._reload_all(keep)
        self._show_report(dialogs.import_report_dialog(self, summary))
        return summary

    def export_dialog(self) -> None:
        if not self._need_project():
            return
        assert self.project is not None
        last = self.settings.value(LAST_EXPORT_KEY, "")
        start = Path(str(last)) if last else self.project.root
        dialog = dialogs.ExportDialog(self, start=start, name=self.project.root.name)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.dest.text():
            dest = Path(dialog.dest.text())
            if self.export_to(dest, fmt=dialog.fmt, include_unlabeled=dialog.include_unlabeled.isChecked()):
                self.settings.setValue(LAST_EXPORT_KEY, str(dest))

    def export_to(self, dest: Path, *, fmt: str, include_unlabeled: bool = False) -> Report | None:
        if not self._need_project():
            return None
        assert self.project is not None
        labels = project_labelset(self.project, include_unlabeled=include_unlabeled)
        report = dialogs.run_export(self, self.project, dest, fmt=fmt, include_unlabeled=include_unlabeled,
                                    labels=labels)
        if report is not None:
            counts = {"images": len(labels.images), "boxes": sum(len(r.boxes) for r in labels.images),
                      "classes": len(labels.classes)}
            self._show_report(dialogs.export_report_dialog(self, report, dest, fmt, counts))
        return report

    def _show_report(self, dialog: QWidget) -> None:
        if self.report_dialog is not None:
            self.report_dialog.close()
        self.report_dialog = dialog
        dialog.show()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if _dropped_path(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        path = _dropped_path(event)
        if path is not None:
            event.acceptProposedAction()
            self.import_dialog(path)


def _dropped_path(event: QDragEnterEvent | QDropEvent) -> Path | None:
    urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
    local = [u.toLocalFile() for u in urls if u.isLocalFile()]
    return Path(local[0]) if local else None


