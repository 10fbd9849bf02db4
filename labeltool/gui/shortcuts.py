"""The one table of keys and mouse gestures: the canvas and window dispatch from it, and the
shortcut sheet (``?``) is generated from it, so the sheet cannot go stale."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QKeyCombination, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


@dataclass(frozen=True, slots=True)
class Binding:
    """``action``: the name the canvas/window dispatch on; ``keys``: QKeySequence strings (empty for
    mouse gestures, whose text is in ``gesture``); ``arg``: passed to the action (class number, step)."""

    action: str
    keys: tuple[str, ...]
    text: str
    group: str
    arg: int = 0
    gesture: str = ""


BINDINGS: tuple[Binding, ...] = (
    Binding("undo", ("Ctrl+Z",), "Undo the last edit (any image)", "Edit"),
    Binding("redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Redo", "Edit"),
    Binding("delete", ("Delete", "Backspace"), "Delete the selected boxes (or reject the model box)", "Edit"),
    Binding("copy", ("Ctrl+C",), "Copy the selected boxes", "Edit"),
    Binding("paste", ("Ctrl+V",), "Paste the copied boxes onto this image (cut to its size)", "Edit"),
    Binding("mark_labeled", ("L",), "Mark this image labeled (no boxes = checked, defect-free)", "Edit"),
    Binding("mark_unlabeled", ("Shift+L",), "Mark this image unlabeled again", "Edit"),
    *(Binding("class", (str(n),), f"Class {n}: for new boxes, and relabel the selection", "Edit", arg=n)
      for n in range(1, 10)),
    Binding("accept", ("A",), "Accept the selected model box", "Model boxes"),
    Binding("accept_all", ("Shift+A",), "Accept all shown model boxes", "Model boxes"),
    Binding("next", ("Right", "PgDown"), "Next image", "Images", arg=1),
    Binding("previous", ("Left", "PgUp"), "Previous image", "Images", arg=-1),
    Binding("next_issue", ("N",), "Next issue of the review queue (shows its image, the box and the fix)",
            "Review", arg=1),
    Binding("previous_issue", ("Shift+N",), "Previous issue of the review queue", "Review", arg=-1),
    Binding("review_accept", ("Y", "Return", "Enter"), "Review queue shown: accept the suggested fix (one edit, "
            "Ctrl+Z undoes it)", "Review"),
    Binding("review_reject", ("R",), "Review queue shown: reject — the label is right (not raised again)", "Review"),
    Binding("review_skip", ("S",), "Review queue shown: skip to the next issue without deciding", "Review"),
    Binding("fit", ("F",), "Fit the image into the view", "View"),
    Binding("one_to_one", ("0",), "Zoom 1:1 (one image pixel per screen pixel)", "View"),
    Binding("deselect", ("Esc",), "Cancel the drag / deselect", "Edit"),
    Binding("pan_key", ("Space",), "Hold and drag to pan", "View", gesture="Space + drag"),
    Binding("shortcuts", ("?",), "Show this sheet", "Help"),
    Binding("open", ("Ctrl+O",), "Open a project", "File"),
    Binding("new", ("Ctrl+N",), "New project", "File"),
    Binding("import", ("Ctrl+I",), "Import labels or images", "File"),
    Binding("export", ("Ctrl+E",), "Export labels", "File"),
    Binding("draw", (), "Draw a box of the current class (Shift: also over a box)", "Mouse",
            gesture="Drag on the image"),
    Binding("select", (), "Select a box (Ctrl+click: add to the selection)", "Mouse", gesture="Click a box"),
    Binding("move", (), "Move / resize the box (drag inside / a handle)", "Mouse", gesture="Drag a box"),
    Binding("zoom", (), "Zoom at the cursor", "Mouse", gesture="Wheel"),
    Binding("pan", (), "Pan", "Mouse", gesture="Middle-drag"),
)

CANVAS_ACTIONS = frozenset({"undo", "redo", "delete", "class", "accept", "accept_all", "next", "previous", "fit",
                            "one_to_one", "deselect", "pan_key", "copy", "paste", "mark_labeled",
                            "mark_unlabeled"})
WINDOW_ACTIONS = ("open", "new", "import", "export", "shortcuts", "next_issue", "previous_issue",
                  "review_accept", "review_reject", "review_skip")


def _combination(key: str) -> QKeyCombination:
    return QKeySequence(key)[0]


_BY_KEY: dict[QKeyCombination, Binding] = {_combination(k): b for b in BINDINGS for k in b.keys}


def binding_for(event: QKeyEvent) -> Binding | None:
    """The binding of a key press (keypad keys count as the plain ones; '?' with or without Shift)."""
    mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    try:
        key = Qt.Key(event.key())
    except ValueError:
        return None
    found = _BY_KEY.get(QKeyCombination(mods, key))
    if found is None and event.key() == Qt.Key.Key_Question:
        found = _BY_KEY.get(QKeyCombination(Qt.Key.Key_Question))
    return found


def keys_of(action: str) -> list[QKeySequence]:
    return [QKeySequence(k) for b in BINDINGS if b.action == action for k in b.keys]


def sheet_rows() -> list[tuple[str, str, str]]:
    """(group, keys as shown to people, what it does) for every binding, grouped (groups in order of
    first appearance); the class keys 1–9 share one row."""
    rows = []
    n_class = sum(b.action == "class" for b in BINDINGS)
    for group in dict.fromkeys(b.group for b in BINDINGS):
        for b in BINDINGS:
            if b.group != group or (b.action == "class" and b.arg != 1):
                continue
            if b.action == "class":
                rows.append((group, f"1 … {n_class}", f"Class 1 … {n_class} (order of the class list): "
                                                       "for new boxes, and relabel the selection"))
                continue
            keys = " / ".join(QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText) for k in b.keys)
            rows.append((group, keys or b.gesture, b.text))
    return rows


class ShortcutSheet(QDialog):
    """Every key and gesture, from ``BINDINGS``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = sheet_rows()
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["", "key", "does"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        previous = None
        for r, (group, keys, text) in enumerate(rows):
            head = QTableWidgetItem(group if group != previous else "")
            font = head.font()
            font.setBold(True)
            head.setFont(font)
            self.table.setItem(r, 0, head)
            self.table.setItem(r, 1, QTableWidgetItem(keys))
            self.table.setItem(r, 2, QTableWidgetItem(text))
            previous = group
        height = self.table.verticalHeader().defaultSectionSize() * (len(rows) + 1) + 60
        self.resize(720, min(height, 900))
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
