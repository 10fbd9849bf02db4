"""The labeling canvas: one image with its boxes; every gesture is one edit saved to the Project at once.

A QGraphicsView whose scene is the image in image pixels (scene = image coordinates). Boxes are
painted over it (``overlay``); hit testing and drag maths live in ``geometry`` (no Qt). After each
edit the canvas reloads boxes and model boxes from the database, so it never shows unsaved state.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QKeyEvent, QKeySequence, QMouseEvent, QPainter, QPixmap, QTransform
from PySide6.QtWidgets import QFrame, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QWidget

from labeltool.core import runs
from labeltool.core.errors import EditError
from labeltool.core.images import load_image
from labeltool.core.model import Box, Class, Image, Issue, Prediction
from labeltool.core.review import GhostMark, ghost_marks, issue_status
from labeltool.core.store import Project

from . import constants as C
from . import geometry as geo
from .box_menu import box_menu
from .canvas_edits import CanvasEdits
from .overlay import Shape, paint_ghost, paint_shapes
from .shortcuts import CANVAS_ACTIONS, binding_for

_CURSORS = {"nw": Qt.CursorShape.SizeFDiagCursor, "se": Qt.CursorShape.SizeFDiagCursor,
            "ne": Qt.CursorShape.SizeBDiagCursor, "sw": Qt.CursorShape.SizeBDiagCursor,
            "n": Qt.CursorShape.SizeVerCursor, "s": Qt.CursorShape.SizeVerCursor,
            "e": Qt.CursorShape.SizeHorCursor, "w": Qt.CursorShape.SizeHorCursor}


@dataclass(slots=True)
class _Drag:
    """A gesture in progress: 'draw', 'move', 'resize' or 'pan'; points are view / image pixels."""

    kind: str
    view_start: geo.Point
    image_start: geo.Point
    box_id: int | None = None
    handle: str | None = None
    original: geo.Rect | None = None
    preview: geo.Rect | None = None
    pan_start: geo.ViewState | None = None


class Canvas(CanvasEdits, QGraphicsView):
    """Shows one Image of a Project and edits its Boxes.

    Mouse: drag on empty image (or Shift+drag anywhere) draws a box of the current class; click
    selects (Ctrl+click adds); drag moves; handles resize; wheel zooms at the cursor; middle-drag or
    Space+drag pans. Keys: see ``keyPressEvent``.
    """

    edited = Signal()  # the database changed (an edit, undo or redo)
    view_changed = Signal()  # zoom or pan changed
    step_image = Signal(int)  # +1 next image, -1 previous
    error = Signal(str, object)  # (title, exception) for the window to show
    show_image_requested = Signal(int)  # image id: an undo/redo changed boxes of another image

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._pixmap = QGraphicsPixmapItem()
        self._pixmap.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
        self.scene().addItem(self._pixmap)
        self.setBackgroundBrush(QColor("#3a3a3a"))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.viewport().setMouseTracking(True)
        self.project: Project | None = None
        self.image: Image | None = None
        self.boxes: list[Box] = []
        self.predictions: list[Prediction] = []
        self.classes: list[Class] = []
        self.current_class_id: int | None = None
        self.selected: list[int] = []  # box ids
        self.selected_prediction: int | None = None
        self.score_threshold = C.SCORE_THRESHOLD
        self._state = geo.ViewState()
        self._fit_mode = True
        self._drag: _Drag | None = None
        self._space = False
        self.clipboard: list[tuple[int, geo.Rect]] = []  # (class id, xyxy) of copied boxes
        self.ghost: Issue | None = None  # the issue whose suggested fix is drawn (``set_ghost``)

    # -- content --------------------------------------------------------------------------------------
    def set_project(self, project: Project | None) -> None:
        self.project, self.image, self.ghost = project, None, None
        self.boxes, self.predictions, self.selected, self.selected_prediction = [], [], [], None
        self._pixmap.setPixmap(QPixmap())
        self.classes = project.classes() if project is not None else []
        self.current_class_id = self.classes[0].id if self.classes else None
        self.viewport().update()

    def show_image(self, image_id: int) -> None:
        """Load an image of the project, its boxes and model boxes, and fit it into the view."""
        if self.project is None:
            raise EditError("no project is open")
        image = self.project.image(image_id)
        rgb = load_image(self.project.image_file(image))
        data = rgb.tobytes()
        qimage = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888).copy()
        self._pixmap.setPixmap(QPixmap.fromImage(qimage))
        self.image = image
        if self.ghost is not None and self.ghost.image_id != image_id:
            self.ghost = None
        m = C.SCENE_MARGIN
        self.setSceneRect(QRectF(-m, -m, image.width + 2 * m, image.height + 2 * m))
        self.selected, self.selected_prediction, self._drag = [], None, None
        self.reload()
        self.fit_view()

    def reload(self) -> None:
        """Read classes, boxes and model boxes of the current image from the database."""
        if self.project is None or self.image is None:
            return
        self.classes = self.project.classes()
        ids = {c.id for c in self.classes}
        if self.current_class_id not in ids:
            self.current_class_id = self.classes[0].id if self.classes else None
        self.image = self.project.image(self.image.id)
        self.boxes = self.project.boxes(self.image.id)
        self.predictions = runs.predictions(self.project, self.image.id)
        if self.ghost is not None and issue_status(self.project, self.ghost.id) != "open":
            self.ghost = None  # decided (or gone with its image): nothing left to suggest
        box_ids = {b.id for b in self.boxes}
        self.selected = [i for i in self.selected if i in box_ids]
        if self.selected_prediction not in {p.id for p in self.visible_predictions()}:
            self.selected_prediction = None
        self.viewport().update()

    def visible_predictions(self) -> list[Prediction]:
        return [p for p in self.predictions if p.score >= self.score_threshold]

    def set_score_threshold(self, value: float) -> None:
        self.score_threshold = float(value)
        self.reload()

    def set_current_class(self, class_id: int) -> None:
        self.current_class_id = class_id

    def set_ghost(self, issue: Issue | None) -> None:
        """Draw ``issue``'s box highlighted and its suggested fix as a ghost while its image is shown
        (None clears it; showing another image or deciding the issue clears it too)."""
        self.ghost = issue
        self.viewport().update()

    def ghost_marks(self) -> list[GhostMark]:
        """The marks of the ghost drawn now (image pixels); empty without one on this image."""
        return ghost_marks(self.ghost, image_id=self.image.id if self.image else None, boxes=self.boxes,
                           classes=self.classes)

    # -- view -------------------------------------------------------------------------------------------
    @property
    def view_state(self) -> geo.ViewState:
        return self._state

    def set_view(self, state: geo.ViewState) -> None:
        """Apply zoom and pan (pan is rounded to whole screen pixels: Qt scrolls by integers)."""
        self._fit_mode = False
        self._apply(state)

    def _apply(self, state: geo.ViewState) -> None:
        zoom = geo.clamp_zoom(state.zoom)
        self.setTransform(QTransform.fromScale(zoom, zoom))
        self.horizontalScrollBar().setValue(round(-state.pan_x))
        self.verticalScrollBar().setValue(round(-state.pan_y))
        self._state = geo.ViewState(zoom, -self.horizontalScrollBar().value(), -self.verticalScrollBar().value())
        mode = Qt.TransformationMode.SmoothTransformation if zoom < 1 else Qt.TransformationMode.FastTransformation
        self._pixmap.setTransformationMode(mode)
        self.viewport().update()
        self.view_changed.emit()

    def _view_size(self) -> geo.Size:
        return (float(max(1, self.viewport().width())), float(max(1, self.viewport().height())))

    def fit_view(self) -> None:
        if self.image is not None:
            self._apply(geo.fit(image_size=(self.image.width, self.image.height), view_size=self._view_size()))
        self._fit_mode = True

    def zoom_one(self) -> None:
        self.set_view(geo.one_to_one(self._state, view_size=self._view_size()))

    def zoom_by(self, factor: float, anchor: geo.Point) -> None:
        self.set_view(geo.zoom_at(self._state, factor=factor, anchor=anchor))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit_view()
        else:
            self._apply(self._state)

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120
        if steps:
            pos = event.position()
            self.zoom_by(C.ZOOM_STEP ** steps, (pos.x(), pos.y()))
        event.accept()

    def image_point(self, pos: QPointF) -> geo.Point:
        p = self.viewportTransform().inverted()[0].map(QPointF(pos))
        return (p.x(), p.y())

    # -- painting ---------------------------------------------------------------------------------------
    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        if self.image is None:
            return
        colors = {c.id: c.color for c in self.classes}
        names = {c.id: c.name for c in self.classes}
        drag = self._drag
        shapes = [Shape(p.xyxy, colors.get(p.class_id, "#ffffff"), f"{names.get(p.class_id, '?')} {p.score:.2f}",
                        dashed=True, selected=p.id == self.selected_prediction) for p in self.visible_predictions()]
        for b in self.boxes:
            rect_b = drag.preview if drag and drag.box_id == b.id and drag.preview else b.xyxy
            shapes.append(Shape(rect_b, colors.get(b.class_id, "#ffffff"), names.get(b.class_id, "?"),
                                selected=b.id in self.selected))
        if drag and drag.kind == "draw" and drag.preview:
            shapes.append(Shape(drag.preview, colors.get(self.current_class_id or -1, "#ffffff"), ""))
        ghost = self.ghost_marks()
        paint_ghost(painter, painter.worldTransform(), ghost, layer="under")
        paint_shapes(painter, painter.worldTransform(), shapes)
        paint_ghost(painter, painter.worldTransform(), ghost, layer="over")

    # -- mouse ------------------------------------------------------------------------------------------
    def hit_at(self, point: geo.Point) -> tuple[str, int, str | None] | None:
        """('box', id, handle) or ('prediction', id, None) under an image point."""
        rects = [b.xyxy for b in self.boxes]
        selected = [i for i, b in enumerate(self.boxes) if b.id in self.selected]
        hit = geo.hit_test(rects, point, zoom=self._state.zoom, selected=selected)
        if hit is not None:
            return ("box", self.boxes[hit.index].id, hit.handle)
        preds = self.visible_predictions()
        hit = geo.hit_test([p.xyxy for p in preds], point, zoom=self._state.zoom, tolerance_px=0)
        return None if hit is None else ("prediction", preds[hit.index].id, None)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        view_pt, image_pt = (pos.x(), pos.y()), self.image_point(pos)
        if event.button() == Qt.MouseButton.MiddleButton or (event.button() == Qt.MouseButton.LeftButton and self._space):
            self._drag = _Drag("pan", view_pt, image_pt, pan_start=self._state)
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if event.button() != Qt.MouseButton.LeftButton or self.image is None:
            return
        hit = self.hit_at(image_pt)
        toggle = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if hit is None or event.modifiers() & Qt.KeyboardModifier.ShiftModifier:  # Shift: draw even on a box
            self.selected, self.selected_prediction = [], None
            self._drag = _Drag("draw", view_pt, image_pt)
        elif hit[0] == "prediction":
            self.selected, self.selected_prediction = [], hit[1]
        else:
            _, box_id, handle = hit
            self.selected_prediction = None
            if toggle:
                self.selected = [i for i in self.selected if i != box_id] if box_id in self.selected \
                    else [*self.selected, box_id]
            else:
                if box_id not in self.selected:
                    self.selected = [box_id]
                box = next(b for b in self.boxes if b.id == box_id)
                self._drag = _Drag("resize" if handle else "move", view_pt, image_pt, box_id=box_id,
                                   handle=handle, original=box.xyxy)
        self.viewport().update()

    def contextMenuEvent(self, event) -> None:  # noqa: N802 (QContextMenuEvent)
        menu = box_menu(self, self.image_point(QPointF(event.pos())))  # right-click on a box
        if menu is not None:
            menu.exec(event.globalPos())
            menu.deleteLater()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.mousePressEvent(event)  # a quick second click is a click, not a scene double-click

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        drag, image_pt = self._drag, self.image_point(pos)
        if drag is None:
            self._update_cursor(image_pt)
            return
        if drag.kind == "pan" and drag.pan_start is not None:
            self.set_view(geo.panned(drag.pan_start, dx=pos.x() - drag.view_start[0], dy=pos.y() - drag.view_start[1]))
            return
        if self.image is None:
            return
        size = (self.image.width, self.image.height)
        if drag.kind == "draw":
            drag.preview = geo.normalize_drag(drag.image_start, image_pt, image_size=size, min_side=self._min_side())
        elif drag.kind == "move" and drag.original is not None:
            drag.preview = geo.moved(drag.original, dx=image_pt[0] - drag.image_start[0],
                                     dy=image_pt[1] - drag.image_start[1], image_size=size)
        elif drag.kind == "resize" and drag.original is not None and drag.handle is not None:
            drag.preview = geo.resized(drag.original, drag.handle, image_pt, image_size=size)
        self.viewport().update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        drag = self._drag
        if drag is None:
            return
        if drag.kind != "pan":
            self.mouseMoveEvent(event)  # the preview for the release position
        self._drag = None
        if drag.kind == "pan":
            self.viewport().setCursor(Qt.CursorShape.ArrowCursor)
            return
        if drag.kind == "draw":
            if drag.preview is not None and self.image is not None:
                if self.current_class_id is None:
                    self._report("Cannot draw a box", EditError("the project has no classes yet: add one first"))
                    return
                image_id, class_id, rect = self.image.id, self.current_class_id, drag.preview
                new = self._edit(lambda p: [p.add_box(image_id, class_id, rect)])
                self.selected = new or []
        elif drag.preview is not None and drag.box_id is not None and drag.preview != drag.original:
            box_id, rect = drag.box_id, drag.preview
            self._edit(lambda p: p.move_box(box_id, rect))
        self.viewport().update()

    def _min_side(self) -> float:
        return max(C.MIN_BOX_SIDE_PX, C.MIN_DRAG_PX / self._state.zoom)

    def _update_cursor(self, image_pt: geo.Point) -> None:
        hit = self.hit_at(image_pt) if self.image is not None else None
        if self._space:
            shape = Qt.CursorShape.OpenHandCursor
        elif hit is None:
            shape = Qt.CursorShape.CrossCursor
        elif hit[2] is not None:
            shape = _CURSORS[hit[2]]
        else:
            shape = Qt.CursorShape.SizeAllCursor if hit[0] == "box" else Qt.CursorShape.PointingHandCursor
        self.viewport().setCursor(shape)

    # -- keys and edits ----------------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        """Keys of ``shortcuts.BINDINGS`` whose action is a canvas action (the ``?`` sheet lists them)."""
        if event.matches(QKeySequence.StandardKey.Undo):
            self.undo()
            return
        if event.matches(QKeySequence.StandardKey.Redo):
            self.redo()
            return
        binding = binding_for(event)
        if binding is None or binding.action not in CANVAS_ACTIONS:
            super().keyPressEvent(event)
            return
        self.run_action(binding.action, binding.arg)

    def run_action(self, action: str, arg: int = 0) -> None:
        """Do canvas action ``action`` (a ``Binding.action``) with its argument."""
        if action == "undo":
            self.undo()
        elif action == "redo":
            self.redo()
        elif action == "delete":
            self.delete_selected()
        elif action == "class":
            self.set_class_by_number(arg)
        elif action == "fit":
            self.fit_view()
        elif action == "one_to_one":
            self.zoom_one()
        elif action == "accept":
            self.accept_selected()
        elif action == "accept_all":
            self.accept_all_visible()
        elif action in ("next", "previous"):
            self.step_image.emit(arg)
        elif action == "deselect":
            self._drag, self.selected, self.selected_prediction = None, [], None
            self.viewport().update()
        elif action == "pan_key":
            self._space = True
        elif action == "copy":
            self.copy_selected()
        elif action == "paste":
            self.paste()
        elif action in ("mark_labeled", "mark_unlabeled"):
            self.mark_labeled(action == "mark_labeled")

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
        super().keyReleaseEvent(event)

    def select_box(self, box_id: int | None) -> None:
        """Select one box of this image (or none)."""
        self.selected = [box_id] if box_id is not None and box_id in {b.id for b in self.boxes} else []
        self.selected_prediction = None
        self.viewport().update()
