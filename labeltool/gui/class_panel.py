"""The class panel: classes with box / image counts; add, rename, merge, change colour.

Counts come from one grouped COUNT query (``class_counts``), not ``project_stats``, so refreshing
after every edit stays cheap with thousands of images. Each button is one undoable edit through the
store; the ``*_interactive`` methods ask with a dialog, the plain ones take values (tests call them).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QGridLayout,
    QHeaderView,
    QInputDialog,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from labeltool.core.errors import LabeltoolError
from labeltool.core.queries import ClassCount, class_counts
from labeltool.core.store import Project


def swatch(color: str, side: int = 14) -> QIcon:
    pixmap = QPixmap(side, side)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


class ClassPanel(QWidget):
    """Class table (name with colour swatch, boxes, images) and Add / Rename / Merge / Colour buttons."""

    chosen = Signal(int)  # class id clicked: the class for new boxes
    changed = Signal()  # a class edit was saved (the window reloads canvas and lists)
    error = Signal(str, object)  # (title, exception)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.counts: list[ClassCount] = []
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["class", "boxes", "images"])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the canvas
        self.table.cellClicked.connect(self._clicked)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.rename_interactive())
        buttons = QGridLayout()
        for i, (text, tip, slot) in enumerate((
                ("Add…", "Add a class", self.add_interactive),
                ("Rename…", "Rename the selected class (double-click works too)", self.rename_interactive),
                ("Merge into…", "Relabel every box of the selected class as another class, then remove it",
                 self.merge_interactive),
                ("Colour…", "Change the colour of the selected class", self.color_interactive))):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(slot)
            buttons.addWidget(button, i // 2, i % 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)

    # -- data -------------------------------------------------------------------------------------------
    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.refresh()

    def refresh(self, current_class_id: int | None = None) -> None:
        self.counts = class_counts(self.project) if self.project is not None else []
        self.table.setRowCount(len(self.counts))
        for row, c in enumerate(self.counts):
            name = QTableWidgetItem(c.name)
            name.setIcon(swatch(c.color))
            name.setToolTip(f"{c.name} ({c.color}); key {row + 1}" if row < 9 else c.name)
            self.table.setItem(row, 0, name)
            for col, value in ((1, c.boxes), (2, c.images)):
                item = QTableWidgetItem(str(value))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        rows = [i for i, c in enumerate(self.counts) if c.id == current_class_id]
        if rows:
            self.table.selectRow(rows[0])

    def selected_class(self) -> ClassCount | None:
        row = self.table.currentRow()
        return self.counts[row] if 0 <= row < len(self.counts) else None

    def _clicked(self, row: int, _column: int = 0) -> None:
        if 0 <= row < len(self.counts):
            self.chosen.emit(self.counts[row].id)

    # -- edits (one undoable edit each) --------------------------------------------------------------------
    def _run(self, title: str, change) -> object:  # type: ignore[no-untyped-def]
        if self.project is None:
            return None
        try:
            result = change(self.project)
        except LabeltoolError as exc:
            self.error.emit(title, exc)
            return None
        self.changed.emit()
        return result

    def add_class(self, name: str, color: str | None = None) -> int | None:
        return self._run("Cannot add the class", lambda p: p.add_class(name, color=color))  # type: ignore[return-value]

    def rename_class(self, class_id: int, name: str) -> None:
        self._run("Cannot rename the class", lambda p: p.rename_class(class_id, name))

    def merge_class(self, source_id: int, target_id: int) -> int | None:
        return self._run("Cannot merge the classes",  # type: ignore[return-value]
                         lambda p: p.merge_classes(source_id, target_id))

    def set_color(self, class_id: int, color: str) -> None:
        self._run("Cannot change the colour", lambda p: p.set_class_color(class_id, color))

    # -- with dialogs -----------------------------------------------------------------------------------
    def add_interactive(self) -> None:
        if self.project is None:
            return
        name, ok = QInputDialog.getText(self, "Add class", "Name of the new class (defect type):")
        if ok and name.strip():
            self.add_class(name)

    def rename_interactive(self) -> None:
        cls = self.selected_class()
        if cls is None:
            return
        name, ok = QInputDialog.getText(self, "Rename class", f"New name for '{cls.name}':", text=cls.name)
        if ok and name.strip() and name.strip() != cls.name:
            self.rename_class(cls.id, name)

    def merge_interactive(self) -> None:
        cls = self.selected_class()
        others = [c for c in self.counts if cls is not None and c.id != cls.id]
        if cls is None or not others:
            return
        target, ok = QInputDialog.getItem(
            self, "Merge classes",
            f"Relabel the {cls.boxes} box(es) of '{cls.name}' as (then '{cls.name}' is removed; Ctrl+Z undoes):",
            [c.name for c in others], 0, False)
        if ok:
            chosen = next(c for c in others if c.name == target)
            self.merge_class(cls.id, chosen.id)

    def color_interactive(self) -> None:
        cls = self.selected_class()
        if cls is None:
            return
        color = QColorDialog.getColor(QColor(cls.color), self, f"Colour of '{cls.name}'")
        if color.isValid():
            self.set_color(cls.id, color.name())
