"""GUI entry: the labeling workspace window.

Image list on the left, the canvas in the centre, classes (counts, current class) and the model-box
score threshold on the right, image i/n, size and zoom in the status bar. Every edit is saved as it
happens; errors from core/ appear as a dialog that says what happened and what to do.
"""

from __future__ import annotations

import sqlite3
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QKeyEvent,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from labeltool.core.config import DB_FILENAME
from labeltool.core.errors import LabeltoolError
from labeltool.core.queries import image_counts
from labeltool.core.store import Project
from labeltool.jobs.demo import DEMO_MARKER

from . import constants as C
from . import dialogs
from .canvas import Canvas
from .class_panel import ClassPanel
from .image_list import ImageListModel, ImageListView, ImageRow, filter_choices
from .loop import LoopMixin
from .shortcuts import ShortcutSheet, binding_for, keys_of
from .transfer import TransferMixin


def default_settings() -> QSettings:
    """Where the recent-projects list lives (tests replace this with a file in a temporary folder)."""
    return QSettings("labeltool", "labeltool")


def default_window_size(widget: QWidget) -> tuple[int, int]:
    """1440×900 on a large screen, 1280×800 otherwise, never larger than 95 % of the free screen."""
    screen = widget.screen() or QApplication.primaryScreen()
    avail = screen.availableGeometry() if screen is not None else None
    if avail is None or avail.width() < 640 or avail.height() < 480:  # no real screen (offscreen tests)
        return C.WINDOW_SIZE
    big = avail.width() >= 1600 and avail.height() >= 1000
    w, h = C.WINDOW_SIZE_LARGE if big else C.WINDOW_SIZE
    return min(w, int(avail.width() * 0.95)), min(h, int(avail.height() * 0.95))


class MainWindow(LoopMixin, TransferMixin, QMainWindow):
    """Top-level window. ``open_project`` loads a project folder and shows its first image."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("labeltool")
        self.resize(*default_window_size(self))
        self._sized = False  # splitter sizes set on the first show (they need the real width)
        self.project: Project | None = None
        self.settings = default_settings()
        self.image_model = ImageListModel(self)
        self.image_list = ImageListView()
        self.image_list.setModel(self.image_model)
        self.image_list.selectionModel().currentRowChanged.connect(lambda cur, _prev: self._show_row(cur.row()))
        self.filter_combo = QComboBox()
        self.filter_combo.setToolTip("Which images the list shows")
        self.filter_combo.activated.connect(self._filter_changed)
        self.list_count = QLabel()
        self.report_dialog: QWidget | None = None  # the last import/export summary (kept alive)
        self.sheet: ShortcutSheet | None = None
        self.setAcceptDrops(True)
        self.canvas = Canvas()
        self.canvas.step_image.connect(self.step_image)
        self.canvas.show_image_requested.connect(self.show_image)
        self.canvas.edited.connect(self._edited)
        self.canvas.view_changed.connect(self._update_status)
        self.canvas.error.connect(lambda title, exc: show_error(self, title, exc))
        self.class_panel = ClassPanel()
        self.class_table = self.class_panel.table
        self.class_panel.chosen.connect(self.canvas.set_current_class)
        self.class_panel.changed.connect(self._classes_edited)
        self.class_panel.error.connect(lambda title, exc: show_error(self, title, exc))
        self._class_names: tuple[tuple[int, str], ...] = ()
        self._issue_id: int | None = None  # the issue N / Shift+N showed last
        self.summary = QLabel("Open a project folder (File ▸ Open) or create one with `labeltool new DIR`.")
        self.summary.setWordWrap(True)
        self.score_label = QLabel()
        self.score_label.setWordWrap(True)
        self.score_slider = QSlider(Qt.Orientation.Horizontal)
        self.score_slider.setRange(0, 100)
        self.score_slider.valueChanged.connect(self._set_score_threshold)
        self.score_slider.setValue(round(C.SCORE_THRESHOLD * 100))
        self._set_score_threshold(self.score_slider.value())
        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.addWidget(self.summary)
        classes_title = QLabel("Classes — keys 1–9 in this order; click one to draw it")
        classes_title.setWordWrap(True)
        layout.addWidget(classes_title)
        layout.addWidget(self.class_panel, 1)
        layout.addWidget(self.score_label)
        layout.addWidget(self.score_slider)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.filter_combo)
        left_layout.addWidget(self.list_count)
        left_layout.addWidget(self.image_list, 1)
        splitter = self.splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.canvas)
        splitter.addWidget(panel)
        splitter.setChildrenCollapsible(False)
        for index, stretch in enumerate((0, 1, 0)):  # a wider window widens the canvas, not the panels
            splitter.setStretchFactor(index, stretch)
        left.setMinimumWidth(180)
        panel.setMinimumWidth(220)
        self.setCentralWidget(splitter)
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self._action("&New project…", "new", self._choose_new_project))
        file_menu.addAction(self._action("&Open project…", "open", self._choose_project))
        self.recent_menu = QMenu("Open &recent", self)
        file_menu.addMenu(self.recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Import labels or images…", "import", lambda: self.import_dialog()))
        file_menu.addAction(self._action("&Export labels…", "export", self.export_dialog))
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", "", self.close))
        edit_menu = self.menuBar().addMenu("&Edit")
        edit_menu.addAction(self._action("&Undo", "undo", self.canvas.undo))
        edit_menu.addAction(self._action("&Redo", "redo", self.canvas.redo))
        edit_menu.addSeparator()
        edit_menu.addAction(self._action("&Copy boxes", "copy", self.canvas.copy_selected))
        edit_menu.addAction(self._action("&Paste boxes", "paste", self.canvas.paste))
        edit_menu.addAction(self._hinted("Mark image &labeled (defect-free if no boxes)", "mark_labeled",
                                         lambda: self.canvas.mark_labeled(True)))
        edit_menu.addAction(self._hinted("Mark image &unlabeled", "mark_unlabeled",
                                         lambda: self.canvas.mark_labeled(False)))
        go_menu = self.menuBar().addMenu("&Go")
        go_menu.addAction(self._hinted("&Next image", "next", lambda: self.step_image(1)))
        go_menu.addAction(self._hinted("&Previous image", "previous", lambda: self.step_image(-1)))
        go_menu.addAction(self._hinted("Next open &issue", "next_issue", lambda: self.step_issue(1)))
        go_menu.addAction(self._hinted("Previous open i&ssue", "previous_issue", lambda: self.step_issue(-1)))
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("&Keyboard shortcuts", "shortcuts", self.show_shortcuts))
        self._update_recent_menu()
        self.status = QLabel()
        self.statusBar().addPermanentWidget(self.status)
        self.statusBar().showMessage("no project open")
        self._init_loop()  # Loop menu, docks, job runner, welcome screen (loop.py)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        if not self._sized:
            self._sized = True
            self.fit_panels()

    def fit_panels(self) -> None:
        """Image list and class panel at their working widths; the canvas gets the rest."""
        width = max(self.splitter.width(), self.width())
        side = (C.LIST_PANEL_PX, C.CLASS_PANEL_PX)
        self.splitter.setSizes([side[0], max(300, width - sum(side)), side[1]])

    def _action(self, text: str, name: str, slot) -> QAction:  # type: ignore[no-untyped-def]
        """A menu action whose keys come from the shortcut table (``shortcuts.BINDINGS``)."""
        action = QAction(text, self)
        if name:
            action.setShortcuts(keys_of(name))
        action.triggered.connect(slot)
        return action

    def _hinted(self, text: str, name: str, slot) -> QAction:  # type: ignore[no-untyped-def]
        """A menu entry that shows its keys but does not register them (the canvas / window dispatch
        plain-letter keys, so they never fire while typing in a field)."""
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in keys_of(name)]
        action = QAction(f"{text}\t{', '.join(keys)}" if keys else text, self)
        action.triggered.connect(slot)
        return action

    @property
    def images(self) -> list[ImageRow]:
        """The rows the image list shows (after the filter)."""
        return self.image_model.rows

    # -- projects -------------------------------------------------------------------------------------
    def _dialog_start(self) -> str:
        """Where the project dialogs start: beside the last project (beside the demo's folder for the
        demo project), else the home folder."""
        recent = self.recent_projects()
        parent = Path(recent[0]).parent if recent else Path.home()
        if (parent / DEMO_MARKER).is_file():
            parent = parent.parent
        return str(parent if parent.is_dir() else Path.home())

    def _choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open labeltool project (the folder with project.db)",
                                                  self._dialog_start())
        if folder:
            root = Path(folder)
            inner = root / "project"  # e.g. the demo's folder: the project is one level down
            if not (root / DB_FILENAME).is_file() and (inner / DB_FILENAME).is_file():
                root = inner
            self.open_project(root)

    def _choose_new_project(self) -> None:
        """Type a name for the new project folder (created with its parents); the suggestion is a name
        that does not exist yet (an existing folder's name would only open that folder in the dialog)."""
        start = Path(self._dialog_start())
        name = next(n for n in (f"my-project{'' if i == 1 else f'-{i}'}" for i in range(1, 10_000))
                    if not (start / n).exists())
        path, _ = QFileDialog.getSaveFileName(self, "New project: type a name for the project folder",
                                              str(start / name), "")
        if path:
            self.new_project(Path(path))

    def new_project(self, root: Path) -> bool:
        """Create a project in ``root`` (new or empty folder) and open it."""
        try:
            Project.create(root).close()
        except LabeltoolError as exc:
            show_error(self, "Cannot create the project", exc)
            return False
        return self.open_project(root)

    def open_project(self, root: Path) -> bool:
        try:
            project = Project.open(root)
        except LabeltoolError as exc:
            show_error(self, "Cannot open project", exc)
            return False
        if self.project is not None:
            self.project.close()
        self.project = project
        self.setWindowTitle(f"labeltool — {project.root.name}")
        self._remember(project.root)
        self.statusBar().showMessage(f"{project.root}  ·  schema v{project.schema_version}")
        self._reload_all()
        self._loop_project_changed()
        return True

    def _reload_all(self, keep: int | None = None) -> None:
        """Re-read classes, list rows and counts (after opening or importing); show ``keep`` or the first."""
        project = self.project
        self.canvas.set_project(project)
        self._fill_filters()
        self._issue_id = None
        self.image_model.set_project(project)
        self._refresh_counts()
        self._after_filter(keep)

    def _fill_filters(self) -> None:
        """(Re)fill the filter choices (they name the classes), keeping the chosen one when it still exists."""
        current = self.filter_combo.currentData()
        self.filter_combo.clear()
        for text, flt in filter_choices(self.project):
            self.filter_combo.addItem(text, flt)
        index = next((i for i in range(self.filter_combo.count()) if self.filter_combo.itemData(i) == current), 0)
        self.filter_combo.setCurrentIndex(index)
        self._class_names = tuple((c.id, c.name) for c in self.canvas.classes)
        if current is not None and index == 0 and current != self.filter_combo.itemData(0):
            self._filter_changed()  # the filtered class is gone (merged): show all images

    def recent_projects(self) -> list[str]:
        value = self.settings.value("recent_projects", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [str(v) for v in items if v]

    def _remember(self, root: Path) -> None:
        items = [str(root), *[p for p in self.recent_projects() if p != str(root)]][:C.RECENT_PROJECTS]
        self.settings.setValue("recent_projects", items)
        self.settings.sync()
        self._update_recent_menu()

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_projects()
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_project(Path(p)))
        self.recent_menu.setEnabled(bool(recent))

    # -- image list -----------------------------------------------------------------------------------
    def _filter_changed(self, _index: int = 0) -> None:
        flt = self.filter_combo.currentData()
        if flt is None:
            return
        keep = self.canvas.image.id if self.canvas.image is not None else None
        self.image_model.set_filter(flt)
        self._after_filter(keep)

    def set_filter_index(self, index: int) -> None:
        self.filter_combo.setCurrentIndex(index)
        self._filter_changed(index)

    def _after_filter(self, keep: int | None) -> None:
        total = self.project.image_count() if self.project is not None else 0
        self.list_count.setText(f"{self.image_model.rowCount()} of {total} images")
        row = self.image_model.row_of(keep) if keep is not None else None
        if row is None and self.image_model.rowCount():
            row = 0
        if row is not None:
            if self.image_list.currentRow() == row:
                self._show_row(row)
            else:
                self.image_list.setCurrentRow(row)
            self.image_list.scrollTo(self.image_model.index(row))

    def _show_row(self, row: int) -> None:
        if self.project is None or not 0 <= row < len(self.images):
            return
        try:
            self.canvas.show_image(self.images[row].id)
        except LabeltoolError as exc:
            show_error(self, "Cannot show this image", exc)
        self.canvas.setFocus()
        self._update_status()

    def step_image(self, step: int) -> None:
        """Next (+1) or previous (-1) image in the list."""
        row = self.image_list.currentRow() + step
        if 0 <= row < self.image_list.count():
            self.image_list.setCurrentRow(row)

    def show_image(self, image_id: int) -> None:
        """Select the image with id ``image_id`` in the list (and so show it); shows all images first
        when the filter hides it."""
        self.image_model.refresh_image(image_id)
        row = self.image_model.row_of(image_id)
        if row is None and self.filter_combo.currentIndex() != 0:
            self.set_filter_index(0)
            row = self.image_model.row_of(image_id)
        if row is not None:
            self.image_list.setCurrentRow(row)

    def _choose_class(self, row: int, _column: int = 0) -> None:
        if 0 <= row < len(self.canvas.classes):
            self.canvas.set_current_class(self.canvas.classes[row].id)

    def _classes_edited(self) -> None:
        """A class edit from the panel: reload the canvas (names, colours) and everything counted."""
        if self.project is not None and self.canvas.image is None:
            self.canvas.classes = self.project.classes()
        self.canvas.reload()
        self._edited()

    def _set_score_threshold(self, value: int) -> None:
        self.score_label.setText(f"Model boxes shown from score {value / 100:.2f} (A accepts, Shift+A all)")
        self.canvas.set_score_threshold(value / 100)

    def _edited(self) -> None:
        if self.canvas.image is not None:
            self.image_model.refresh_image(self.canvas.image.id)
        self._refresh_counts()

    def _refresh_counts(self) -> None:
        """Class table and summary from cheap COUNT queries (fast with thousands of images)."""
        if self.project is None:
            return
        try:
            self.class_panel.project = self.project
            self.class_panel.refresh(self.canvas.current_class_id)
            n_images, n_labeled, n_boxes = image_counts(self.project)
        except (LabeltoolError, sqlite3.Error) as exc:
            show_error(self, "Cannot read the project", exc)
            return
        if tuple((c.id, c.name) for c in self.canvas.classes) != self._class_names:
            self._fill_filters()
        self.summary.setText(
            f"<b>{self.project.root.name}</b><br>{n_images} images — {n_labeled} labeled, "
            f"{n_images - n_labeled} unlabeled — {n_boxes} boxes"
        )

    def _update_status(self) -> None:
        image = self.canvas.image
        if image is None:
            self.status.setText("")
            return
        row = self.image_list.currentRow()
        self.status.setText(f"image {row + 1}/{len(self.images)}  ·  {image.path}  ·  "
                            f"{image.width}×{image.height} px  ·  zoom {self.canvas.view_state.zoom * 100:.0f}%")


    # -- import / export --------------------------------------------------------------------------------
    # -- help, closing -------------------------------------------------------------------------------
    def show_shortcuts(self) -> None:
        if self.sheet is None:
            self.sheet = ShortcutSheet(self)
        self.sheet.show()
        self.sheet.raise_()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        """Window keys of the shortcut table that reached the window without triggering their action."""
        if self._loop_key(event):  # review keys while the Review dock is shown
            return
        binding = binding_for(event)
        actions = {"shortcuts": self.show_shortcuts, "import": self.import_dialog, "export": self.export_dialog,
                   "open": self._choose_project, "new": self._choose_new_project,
                   "next_issue": lambda: self.step_issue(1), "previous_issue": lambda: self.step_issue(-1)}
        if binding is not None and binding.action in actions:
            actions[binding.action]()
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self._loop_close():  # a job runs and the user chose to keep it
            event.ignore()
            return
        self.image_model.loader.clear()
        self.image_model.loader.wait(2000)
        if self.project is not None:
            self.project.close()
            self.project = None
        super().closeEvent(event)


def show_error(parent: QWidget | None, title: str, exc: BaseException) -> None:
    """A dialog with the user-facing message of ``exc``: what happened and what to do."""
    dialogs.show_error(parent, title, exc)


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    traceback.print_exception(kind, exc, tb)
    if isinstance(exc, LabeltoolError):
        show_error(None, "labeltool", exc)
    else:
        QMessageBox.critical(
            None, "labeltool: unexpected error",
            f"{kind.__name__}: {exc}\n\nYour labels are safe (every edit is saved as it happens). "
            "Please report this with the text printed in the terminal.",
        )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    app = QApplication.instance() or QApplication(argv)
    sys.excepthook = _excepthook
    window = MainWindow()
    if len(argv) > 1:
        window.open_project(Path(argv[1]))
    window.show()
    return app.exec()
