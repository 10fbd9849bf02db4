"""The review side of the loop in the main window (the base of :class:`~labeltool.gui.loop.LoopMixin`).

The review queue's ``show_issue`` shows the issue's image with its box selected and the suggested fix
as a ghost; an accept / reject reloads the canvas, counts and panels; a canvas edit, undo or redo
refreshes the queue. N / Shift+N step through the queue; Y / Enter, R and S reach the queue from the
canvas while the Review dock is in view (not from text fields of other docks).

Uses the window's ``project``, ``canvas``, ``review_panel``, ``review_dock``,
``dashboard``, ``train_panel``, ``show_image`` and ``_edited``.
"""

from __future__ import annotations

import sqlite3

from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QDockWidget

from labeltool.core.errors import LabeltoolError
from labeltool.core.model import Issue

from . import dialogs
from .shortcuts import binding_for

REVIEW_KEYS = frozenset({"review_accept", "review_reject", "review_skip"})  # shortcuts.BINDINGS actions


def in_view(dock: QDockWidget) -> bool:
    """The dock is shown and not behind another dock's tab (Qt keeps such docks "visible", off screen)."""
    return dock.isVisible() and not dock.visibleRegion().isEmpty()


class ReviewLoopMixin:
    """Review queue ↔ canvas wiring, N / Shift+N, and the review keys."""

    def show_dock(self, dock: QDockWidget) -> None:
        dock.show()
        dock.raise_()

    def show_review(self) -> None:
        self.show_dock(self.review_dock)

    def open_class_issues(self, class_id: int) -> None:
        """The dashboard's "Show issues": the queue filtered to that class."""
        self.show_review()
        try:
            self.review_panel.set_filter(class_id=class_id)
        except ValueError as exc:  # the class was deleted since the dashboard was drawn
            self.statusBar().showMessage(str(exc), 5000)

    def _show_issue(self, issue: Issue | None) -> None:
        """The queue moved to ``issue``: its image, its box selected, the fix drawn as a ghost."""
        if issue is None:
            self.canvas.set_ghost(None)
            return
        focus = self.focusWidget()  # this window's (a closed dialog may still hold the application's)
        in_queue = focus is not None and self.review_panel.isAncestorOf(focus)
        if self.canvas.image is None or self.canvas.image.id != issue.image_id:
            self.show_image(issue.image_id)
        if self.canvas.image is not None and self.canvas.image.id == issue.image_id:
            self.canvas.select_box(issue.box_id)
            self.canvas.set_ghost(issue)
        if in_queue:  # showing the image focused the canvas: keep the arrow keys in the queue
            self.review_panel.table.setFocus()

    def _review_edited(self) -> None:
        """An issue was accepted / rejected (one edit): the canvas, list row, counts and panels."""
        self.canvas.reload()
        self._edited()
        self.dashboard.refresh()
        self.train_panel.refresh()

    def _canvas_edited(self) -> None:
        """A canvas edit, undo or redo may have decided (or re-opened) an issue, and changes the labels
        the analysis saw (the dashboard's warning says so)."""
        self.review_panel.refresh()
        self.dashboard.update_texts()

    def step_issue(self, step: int) -> Issue | None:
        """N / Shift+N: the next (+1) / previous (-1) issue of the review queue (wrapping around), shown
        on the canvas with its fix as a ghost; the Review dock is shown."""
        if self.project is None:
            return None
        panel = self.review_panel
        try:
            panel.refresh()
            if not panel.issues and any(i.status == "open" for i in panel.all_issues):
                panel.set_filter()  # the filters hide every open issue: show them all
        except (LabeltoolError, sqlite3.Error) as exc:
            dialogs.show_error(self, "Cannot read the issues", exc)
            return None
        if not panel.issues:
            self.canvas.set_ghost(None)
            self.statusBar().showMessage("No open issues (Loop ▸ Analyze labels looks for label errors)", 5000)
            return None
        self.show_review()
        panel.step(step)
        issue = panel.current_issue()
        if issue is not None:
            row = panel.issues.index(issue)
            fix = panel.model.rows[row].fix
            self.statusBar().showMessage(f"issue {row + 1}/{len(panel.issues)}: {issue.type} "
                                         f"({panel.model.rows[row].class_name}), score {issue.score:.2f} — {fix}")
        return issue

    def _loop_key(self, event: QKeyEvent) -> bool:
        """Review keys that reached the window (from the canvas or the queue) while the Review dock shows."""
        binding = binding_for(event)
        if binding is None or binding.action not in REVIEW_KEYS or not in_view(self.review_dock):
            return False
        focus = self.focusWidget()  # within this window: the key came through it
        if focus is not None and not any(w is focus or w.isAncestorOf(focus)
                                         for w in (self.canvas, self.review_panel)):
            return False  # e.g. Enter in a text field of the Export panel
        issue = self.review_panel.current_issue()
        on_canvas = focus is not None and (focus is self.canvas or self.canvas.isAncestorOf(focus))
        if on_canvas and binding.action != "review_skip" and issue is not None and (
                self.canvas.image is None or self.canvas.image.id != issue.image_id):
            # the user moved on to another image: never decide an issue that is not on screen
            self.statusBar().showMessage("The selected issue is on another image: press N to show the next issue "
                                         "here, or pick one in the Review panel.", 6000)
            return True
        return self.review_panel.handle_key(event)
