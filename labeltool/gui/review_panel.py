"""The review queue: the latest analysis's issues, most likely label errors first (or, chosen in the
order box, biggest expected model gain first: ``core/fix_priority.py``).

Filters (problem type, class, status — open by default), a line of counts, the list, the selected
issue's suggestion in words, and Accept / Reject / Skip / Previous / Next. Accepting applies the fix
through ``issues.accept_issues`` (one undoable edit, so Ctrl+Z on the canvas takes it back) and moves
on to the next issue; rejecting marks it rejected (a later analysis will not raise it again while
the image's labels stay the same). The filtering, counting and wording live in ``core/review.py``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from labeltool.core import review
from labeltool.core.errors import LabeltoolError
from labeltool.core.issue_order import issue_queue
from labeltool.core.issue_types import issue_types
from labeltool.core.issues import accept_issues, latest_analysis, reject_issues
from labeltool.core.model import Analysis, Issue
from labeltool.core.queries import image_paths
from labeltool.core.store import Project

_Index = QModelIndex | QPersistentModelIndex
COLUMNS = ("score", "gain", "problem", "class", "suggested fix", "image")  # "gain": shown in the impact order
ORDER_CHOICES = (  # (order for issue_order.issue_queue, text, tooltip)
    ("likely", "Most likely first", "The surest label errors first (lowest score)"),
    ("impact", "Biggest gain first",
     "Likely errors in the classes the model finds worst first: the fixes expected to improve the model most "
     "(likelihood × (1 − the class's AP in this analysis))"),
)
WARNING_STYLE = "background:#fff3cd; color:#5c4400; border:1px solid #e0a800; border-radius:4px; padding:4px;"
MESSAGE_STYLE = "color:palette(text); padding:12px 4px; font-size:14px;"


def header_labels(title: str) -> tuple[QLabel, QLabel, QLabel, QLabel]:
    """The top of a loop panel: bold title, header line, amber warning box, empty-state message."""
    title_label = QLabel(title)
    font = title_label.font()
    font.setBold(True)
    font.setPointSizeF(font.pointSizeF() * 1.15)
    title_label.setFont(font)
    warning, message = QLabel(), QLabel()
    for label, style in ((warning, WARNING_STYLE), (message, MESSAGE_STYLE)):
        label.setWordWrap(True)
        label.setStyleSheet(style)
    return title_label, QLabel(), warning, message
# keys while the panel has the focus (the window may pass canvas keys to ``handle_key`` too)
KEYS: dict[tuple[Qt.Key, bool], str] = {  # (key, with Shift) -> action
    (Qt.Key.Key_Y, False): "accept", (Qt.Key.Key_Return, False): "accept", (Qt.Key.Key_Enter, False): "accept",
    (Qt.Key.Key_R, False): "reject", (Qt.Key.Key_S, False): "skip",
    (Qt.Key.Key_N, False): "next", (Qt.Key.Key_N, True): "previous",
}


class IssueTableModel(QAbstractTableModel):
    """Rows of ``review.issue_rows``; ``UserRole`` holds the issue id."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[review.IssueRow] = []

    def set_rows(self, rows: list[review.IssueRow]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 (Qt signature)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole and section == 0:
            return "0–1: lower = more likely a label error (the list is sorted by it in 'Most likely first')"
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole and section == 1:
            return ("Expected model gain of the fix: (1 − score) × the headroom (about 1 − AP) of the weakest class "
                    "it touches; the list is sorted by it in 'Biggest gain first'")
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return (row.score, row.gain, row.problem, row.class_name, row.fix, row.image)[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.tooltip
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() in (0, 1):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return row.id
        return None


class ReviewPanel(QWidget):
    """The issue queue of the latest analysis with filters and Accept / Reject / Skip.

    Signals: ``show_issue(Issue | None)`` when the user moves to an issue (show its image, select
    its box, ``Canvas.set_ghost(issue)``; None: nothing left to show); ``edited()`` after an
    accept/reject was saved (reload the canvas and counts); ``error(title, exception)``.
    ``refresh()`` re-reads the database without emitting ``show_issue`` (call it after any edit).
    """

    show_issue = Signal(object)
    edited = Signal()
    error = Signal(str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.analysis: Analysis | None = None
        self.all_issues: list[Issue] = []  # every issue of the latest analysis, in the chosen order
        self.gains: dict[int, float] | None = None  # issue id -> expected gain, in the impact order only
        self.order_note: str | None = None  # why the impact order could not be used (None: it could, or not asked)
        self.issues: list[Issue] = []  # the ones the filters let through (the table's rows)
        self._quiet = False  # selection changes made by refresh() do not emit show_issue
        self.title, self.header, self.warning, self.message = header_labels("Review queue")
        self.type_combo, self.class_combo, self.status_combo = QComboBox(), QComboBox(), QComboBox()
        self.type_combo.addItem("All problems", None)
        for kind in issue_types():
            self.type_combo.addItem(kind.title, kind.name)
            self.type_combo.setItemData(self.type_combo.count() - 1, kind.meaning, Qt.ItemDataRole.ToolTipRole)
        for value, text in review.STATUS_CHOICES:
            self.status_combo.addItem(text, value)
        self.order_combo = QComboBox()
        for value, text, tip in ORDER_CHOICES:
            self.order_combo.addItem(text, value)
            self.order_combo.setItemData(self.order_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.order_combo.setToolTip("Which issues come first")
        self.order_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.order_combo.activated.connect(lambda _i: self._order_changed())
        self.class_combo.addItem("All classes", None)
        for combo, tip in ((self.type_combo, "Show one kind of problem"), (self.class_combo, "Show one class"),
                           (self.status_combo, "To review = not decided yet")):
            combo.setToolTip(tip)
            combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            combo.activated.connect(lambda _i: self._filters_changed())
        self.counts = QLabel()
        self.counts.setWordWrap(True)
        self.shown = QLabel()
        self.shown.setWordWrap(True)  # the impact order's fallback note is long: wrap, do not widen the dock
        self.model = IssueTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        # every column fits its contents but the suggested fix, which takes the rest and is elided at its
        # end (the detail line under the table says it in full): a file name squeezed to "pa…ng" says nothing
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("suggested fix"), QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _prev: self._current_changed(cur.row()))
        # a click moves the current row before it selects it: the buttons (which need a selected row)
        # follow the selection too
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_detail())
        self.table.installEventFilter(self)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setTextFormat(Qt.TextFormat.RichText)
        self.detail.setMinimumHeight(2 * self.fontMetrics().height() + 6)
        self.buttons: dict[str, QPushButton] = {}
        for name, text, tip, slot in (
                ("accept", "Accept (Y)", "Apply the suggested fix (one edit: Ctrl+Z undoes it) and go to the next",
                 self.accept_current),
                ("reject", "Reject (R)", "The label is right: keep it; a later analysis will not raise this again",
                 self.reject_current),
                ("skip", "Skip (S)", "Go to the next issue without deciding", self.skip),
                ("previous", "◀ Previous", "Previous issue (Shift+N)", lambda: self.step(-1)),
                ("next", "Next ▶", "Next issue (N)", lambda: self.step(1))):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(slot)
            self.buttons[name] = button
        self.buttons["accept"].setStyleSheet("font-weight:600;")
        filters = QHBoxLayout()
        for combo in (self.type_combo, self.class_combo, self.status_combo, self.order_combo):
            filters.addWidget(combo, 1)
        decide = QGridLayout()
        decide.addWidget(self.buttons["accept"], 0, 0)
        decide.addWidget(self.buttons["reject"], 0, 1)
        decide.addWidget(self.buttons["skip"], 0, 2)
        decide.addWidget(self.buttons["previous"], 1, 0)
        decide.addWidget(self.buttons["next"], 1, 1, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        for widget in (self.title, self.header, self.warning, self.counts):
            layout.addWidget(widget)
        layout.addWidget(self.message, 1)  # takes the room of the hidden list when there is no analysis
        self.message.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout.addLayout(filters)
        layout.addWidget(self.shown)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.detail)
        layout.addLayout(decide)
        self.set_project(None)

    # -- data -------------------------------------------------------------------------------------------
    def set_project(self, project: Project | None) -> None:
        """Show ``project``'s latest analysis with the default filters (open issues of any type/class); the
        chosen order stays (it is how this user likes to work, not a property of the project)."""
        self.project = project
        for combo in (self.type_combo, self.class_combo, self.status_combo):
            combo.setCurrentIndex(0)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the latest analysis and its issues; keeps the filters and the selected issue (no signal)."""
        current = self.current_issue()
        self.analysis = latest_analysis(self.project) if self.project is not None else None
        self._read_issues()
        self._fill_classes()
        self._fill_rows(current.id if current is not None else None)
        self._update_texts()

    def _fill_classes(self) -> None:
        chosen = self.class_combo.currentData()
        self.class_combo.clear()
        self.class_combo.addItem("All classes", None)
        for c in self.project.classes() if self.project is not None else []:
            self.class_combo.addItem(c.name, c.id)
        self.class_combo.setCurrentIndex(max(0, self.class_combo.findData(chosen)) if chosen is not None else 0)

    def filters(self) -> dict[str, object]:
        """The filters now: ``{"type": str | None, "class_id": int | None, "status": str | None}``."""
        return {"type": self.type_combo.currentData(), "class_id": self.class_combo.currentData(),
                "status": self.status_combo.currentData()}

    def set_filter(self, type: str | None = None, class_id: int | None = None, status: str | None = "open") -> None:
        """Set the filters (e.g. the dashboard's "Show issues" of a class), then show the first match."""
        for combo, value, what in ((self.type_combo, type, "issue type"), (self.class_combo, class_id, "class id"),
                                   (self.status_combo, status, "status")):
            index = combo.findData(value)
            if index < 0:
                raise ValueError(f"unknown {what} {value!r} for the review filter")
            combo.setCurrentIndex(index)
        self._filters_changed()

    def order(self) -> str:
        """'likely' (most likely errors first) or 'impact' (biggest expected model gain first)."""
        return str(self.order_combo.currentData())

    def set_order(self, order: str) -> None:
        """Choose the order (as the order box does) and show its first issue."""
        index = self.order_combo.findData(order)
        if index < 0:
            raise ValueError(f"unknown review order {order!r}; known: {', '.join(v for v, _, _ in ORDER_CHOICES)}")
        self.order_combo.setCurrentIndex(index)
        self._order_changed()

    def _read_issues(self) -> None:
        queue = issue_queue(self.project, order=self.order(), status=None) \
            if self.analysis is not None and self.project is not None else None
        self.all_issues = queue.issues if queue else []
        self.gains = queue.gains if queue and self.order() == "impact" else None
        self.order_note = queue.note if queue else None
        self.table.setColumnHidden(COLUMNS.index("gain"), self.gains is None)

    def _order_changed(self) -> None:
        self._read_issues()
        self._filters_changed()

    def _filters_changed(self) -> None:
        self._fill_rows(None)
        self._update_texts()
        self.select_row(0 if self.issues else -1)

    def _fill_rows(self, keep_id: int | None) -> None:
        """Rows under the filters; re-selects ``keep_id`` if it is still there (quietly)."""
        self.issues = review.filter_issues(self.all_issues, **self.filters())  # type: ignore[arg-type]
        names = {c.id: c.name for c in self.project.classes()} if self.project is not None else {}
        paths = image_paths(self.project) if self.project is not None and self.issues else {}
        self._quiet = True
        try:
            self.model.set_rows(review.issue_rows(self.issues, names=names, paths=paths, gains=self.gains))
            ids = [i.id for i in self.issues]
            if keep_id in ids:
                self.table.selectRow(ids.index(keep_id))
        finally:
            self._quiet = False
        self._update_detail()

    def _update_texts(self) -> None:
        has = self.analysis is not None
        self.header.setText(review.analysis_text(self.analysis) if self.analysis is not None else "")
        warning = review.analysis_warning(self.analysis, self.project)
        self.warning.setText(warning or "")
        self.warning.setVisible(warning is not None)
        if self.project is None:
            self.message.setText("Open a project to review its labels.")
        elif not has:
            self.message.setText(review.NO_ANALYSIS)
        self.message.setVisible(not has)
        for widget in (self.header, self.counts, self.shown, self.table, self.detail, self.type_combo,
                       self.class_combo, self.status_combo, self.order_combo, *self.buttons.values()):
            widget.setVisible(has)
        self.counts.setText(review.counts_text(self.all_issues) if has else "")
        filtered = any(v is not None for v in (self.filters()["type"], self.filters()["class_id"]))
        base = review.filter_issues(self.all_issues, status=self.filters()["status"])  # type: ignore[arg-type]
        shown = review.shown_text(len(self.issues), len(base), filtered=filtered)
        if has and self.order_note is not None:
            shown += f" · {self.order_note}"
        self.shown.setText(shown)
        self._update_buttons()

    def _update_buttons(self) -> None:
        current = self.current_issue()
        can_decide = current is not None and current.status == "open"
        self.buttons["accept"].setEnabled(can_decide)
        self.buttons["reject"].setEnabled(can_decide)
        for name in ("skip", "previous", "next"):
            self.buttons[name].setEnabled(bool(self.issues))

    def _update_detail(self) -> None:
        row = self.table.currentIndex().row() if self.table.currentIndex().isValid() else -1
        if not 0 <= row < len(self.model.rows):
            self.detail.setText("<i>Select an issue to see it on the image.</i>" if self.issues else "")
        else:
            r = self.model.rows[row]
            decided = "" if r.status == "open" else f" <i>({r.status})</i>"
            gain = f" · expected gain {r.gain}" if r.gain else ""
            self.detail.setText(f"<b>{html.escape(r.problem)}</b> · {html.escape(r.class_name)} · score {r.score}{gain} · "
                                f"{html.escape(r.image)}{decided}<br>Suggested: <b>{html.escape(r.fix)}</b>")
        self._update_buttons()

    # -- moving through the queue -----------------------------------------------------------------------
    def current_issue(self) -> Issue | None:
        index = self.table.currentIndex()
        row = index.row() if index.isValid() and self.table.selectionModel().isRowSelected(index.row()) else -1
        return self.issues[row] if 0 <= row < len(self.issues) else None

    def select_row(self, row: int) -> None:
        """Select row ``row`` (-1 or out of range: none) and emit ``show_issue`` once (None when none)."""
        self._quiet = True
        try:
            if 0 <= row < len(self.issues):
                self.table.selectRow(row)
                self.table.scrollTo(self.model.index(row, 0))
            else:
                self.table.clearSelection()
                self.table.setCurrentIndex(QModelIndex())
        finally:
            self._quiet = False
        self._update_detail()
        self.show_issue.emit(self.current_issue())

    def select_issue(self, issue_id: int) -> bool:
        """Select the issue with id ``issue_id`` if the filters show it; False otherwise."""
        ids = [i.id for i in self.issues]
        if issue_id not in ids:
            return False
        self.select_row(ids.index(issue_id))
        return True

    def _current_changed(self, row: int) -> None:
        """The user moved in the table (click, arrow keys)."""
        self._update_detail()
        if not self._quiet and 0 <= row < len(self.issues):
            self.show_issue.emit(self.issues[row])

    def step(self, step: int) -> None:
        """Next (+1) / previous (-1) issue of the list, wrapping around."""
        current = self.current_issue()
        row = self.issues.index(current) if current is not None else -1
        self.select_row(review.step_index(len(self.issues), row, step))

    def skip(self) -> None:
        """Next issue without deciding this one."""
        self.step(1)

    # -- deciding ---------------------------------------------------------------------------------------
    def accept_current(self) -> bool:
        """Apply the selected issue's fix (one undoable edit) and move on; False when nothing was saved."""
        return self._decide(accept_issues, "The suggested fix was not applied")

    def reject_current(self) -> bool:
        """Mark the selected issue rejected (one undoable edit) and move on."""
        return self._decide(reject_issues, "The issue was not rejected")

    def _decide(self, action: Callable[[Project, Sequence[int]], None], title: str) -> bool:
        issue = self.current_issue()
        if self.project is None or issue is None:
            return False
        following = review.after_decision([i.id for i in self.issues], issue.id)
        try:
            action(self.project, [issue.id])
        except LabeltoolError as exc:  # e.g. stale: the labels changed since the analysis
            self.refresh()
            self.error.emit(title, exc)
            return False
        self.refresh()
        self.edited.emit()
        if following is None or not self.select_issue(following):
            self.select_row(-1)
        return True

    # -- keys -------------------------------------------------------------------------------------------
    def handle_key(self, event: QKeyEvent) -> bool:
        """Do the review action of a key press (see ``KEYS``); True when it was one."""
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if mods not in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier):
            return False
        action = KEYS.get((Qt.Key(event.key()), mods == Qt.KeyboardModifier.ShiftModifier))
        if action is None or self.analysis is None:
            return False
        {"accept": self.accept_current, "reject": self.reject_current, "skip": self.skip,
         "next": lambda: self.step(1), "previous": lambda: self.step(-1)}[action]()
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if watched is self.table and event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            return self.handle_key(event)  # before the table's type-to-search eats the letters
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if not self.handle_key(event):
            super().keyPressEvent(event)
