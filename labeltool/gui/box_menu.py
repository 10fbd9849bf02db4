"""The right-click menu of a box on the canvas: change its class, copy it, delete it.

The same actions as the keys (1–9, Ctrl+C, Delete; the ``?`` sheet lists them), for a user who looks
for them with the mouse. Built by :func:`box_menu` without showing it, so tests can trigger its actions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMenu

from . import geometry as geo
from .shortcuts import keys_of

if TYPE_CHECKING:
    from .canvas import Canvas

MAX_NUMBERED_CLASSES = 9  # number keys 1-9 reach the first nine classes


def _key_text(action: str) -> str:
    keys = keys_of(action)
    return keys[0].toString() if keys else ""


def box_menu(canvas: Canvas, point: geo.Point) -> QMenu | None:
    """The menu for the box under image point ``point`` (which becomes the selection, unless it is
    already part of a multi-selection, which the menu then acts on); None when no box is there."""
    hit = canvas.hit_at(point) if canvas.image is not None else None
    if hit is None or hit[0] != "box":
        return None
    box_id = hit[1]
    if box_id not in canvas.selected:
        canvas.select_box(box_id)
    chosen = [b for b in canvas.boxes if b.id in canvas.selected]
    menu = QMenu(canvas)
    what = "box" if len(chosen) == 1 else f"{len(chosen)} boxes"
    classes = menu.addMenu(f"Change class of the {what}")
    current = {b.class_id for b in chosen}
    for position, cls in enumerate(canvas.classes, start=1):
        key = f"\t{position}" if position <= MAX_NUMBERED_CLASSES else ""
        action = classes.addAction(f"{cls.name}{key}")
        action.setCheckable(True)
        action.setChecked(current == {cls.id})
        action.triggered.connect(lambda _checked=False, class_id=cls.id: canvas.set_selected_class(class_id))
    menu.addSeparator()
    menu.addAction(f"Copy\t{_key_text('copy')}", canvas.copy_selected)
    menu.addAction(f"Delete the {what}\t{_key_text('delete')}", canvas.delete_selected)
    canvas.viewport().update()
    return menu
