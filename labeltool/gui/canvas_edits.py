"""The canvas's edit commands (a mixin of :class:`~labeltool.gui.canvas.Canvas`): every change to the
labels is one edit run through ``_edit``, which reports errors and reloads the canvas from the database.

Delete, copy / paste, relabel (number keys, box menu), mark labeled, accept model boxes, undo / redo.
Uses the canvas's ``project``, ``image``, ``boxes``, ``classes``, ``selected``, ``selected_prediction``,
``clipboard``, ``current_class_id``, ``reload``, ``visible_predictions`` and its ``edited``, ``error`` and
``show_image_requested`` signals.
"""

from __future__ import annotations

from collections.abc import Callable

from labeltool.core import runs
from labeltool.core.errors import LabeltoolError
from labeltool.core.queries import images_changed_by_edit
from labeltool.core.store import Project

from . import geometry as geo


class CanvasEdits:
    """Edit commands of the canvas."""

    def _edit(self, change: Callable[[Project], object]) -> object:
        """Run one edit on the project; errors go to ``error``; reload from the database either way."""
        if self.project is None:
            return None
        result = None
        try:
            result = change(self.project)
        except LabeltoolError as exc:
            self._report("The change was not saved", exc)
        self.reload()
        self.edited.emit()
        return result

    def _report(self, title: str, exc: BaseException) -> None:
        self.error.emit(title, exc)

    def undo(self) -> None:
        self._follow(self._edit(lambda p: p.undo()))

    def redo(self) -> None:
        self._follow(self._edit(lambda p: p.redo()))

    def _follow(self, edit_id: object) -> None:
        """After undo/redo: ask to show the image the edit changed, when it is not this one."""
        if self.project is None or self.image is None or not isinstance(edit_id, int):
            return
        touched = images_changed_by_edit(self.project, edit_id)
        if touched and self.image.id not in touched:
            self.show_image_requested.emit(min(touched))

    def delete_selected(self) -> None:
        ids = list(self.selected)
        if ids:
            self._edit(lambda p: p.delete_boxes(ids))
        elif self.selected_prediction is not None:
            pid = self.selected_prediction
            self._edit(lambda p: runs.reject_predictions(p, [pid]))

    def copy_selected(self) -> int:
        """Keep the selected boxes (class and coordinates) for ``paste``; returns how many."""
        chosen = [(b.class_id, b.xyxy) for b in self.boxes if b.id in self.selected]
        if chosen:
            self.clipboard = chosen
        return len(chosen)

    def paste(self) -> list[int]:
        """Add the copied boxes to this image in one edit, cut to its size; selects and returns the new ids."""
        if self.image is None or not self.clipboard:
            return []
        size = (self.image.width, self.image.height)
        rects = [(cid, r) for cid, rect in self.clipboard
                 if (r := geo.clamped_rect(rect, image_size=size)) is not None]
        if not rects:
            return []
        image_id = self.image.id

        def add(p: Project) -> list[int]:
            with p.edit(f"paste {len(rects)} box{'es' if len(rects) != 1 else ''}") as e:
                return [e.add_box(image_id=image_id, class_id=cid, xyxy=r) for cid, r in rects]
        new = self._edit(add)
        self.selected = list(new) if isinstance(new, list) else []
        self.viewport().update()
        return self.selected

    def mark_labeled(self, labeled: bool = True) -> None:
        """Mark this image labeled (checked; without boxes: defect-free) or unlabeled, as one edit."""
        if self.image is not None and bool(self.image.labeled) != labeled:
            image_id = self.image.id
            self._edit(lambda p: p.set_labeled([image_id], labeled))

    def set_class_by_number(self, number: int) -> None:
        """Number key ``number`` (1-based class position): current class, and class of the selection."""
        if not 1 <= number <= len(self.classes):
            return
        self.current_class_id = self.classes[number - 1].id
        self.set_selected_class(self.current_class_id)

    def set_selected_class(self, class_id: int) -> None:
        """Change the class of the selected boxes (one edit); the class for new boxes stays."""
        ids = [b.id for b in self.boxes if b.id in self.selected and b.class_id != class_id]
        if len(ids) == 1:
            self._edit(lambda p: p.set_box_class(ids[0], class_id))
        elif ids:
            def relabel(p: Project) -> None:
                with p.edit(f"change class of {len(ids)} boxes") as e:
                    for box_id in ids:
                        e.update_box(box_id, class_id=class_id)
            self._edit(relabel)

    def accept_selected(self) -> None:
        if self.selected_prediction is not None:
            pid = self.selected_prediction
            self.selected = self._edit(lambda p: runs.accept_predictions(p, [pid])) or []  # type: ignore[assignment]
            self.viewport().update()

    def accept_all_visible(self) -> None:
        ids = [p.id for p in self.visible_predictions()]
        if ids:
            self.selected = self._edit(lambda p: runs.accept_predictions(p, ids)) or []  # type: ignore[assignment]
            self.viewport().update()
