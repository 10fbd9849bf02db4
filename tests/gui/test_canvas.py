"""The labeling canvas edits project.db with simulated mouse and key events (offscreen Qt)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image as PILImage
from PySide6.QtCore import QPoint, QPointF, Qt

from labeltool.core import runs
from labeltool.core.store import Project
from labeltool.gui import geometry as geo
from labeltool.gui.canvas import Canvas

pytestmark = pytest.mark.gui
W, H = 200, 160
VIEW = geo.ViewState(2.5, -40.0, -30.0)  # non-trivial zoom with a pan offset


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    with Project.create(tmp_path / "p") as p:
        p.add_class("scratch")
        p.add_class("dent")
        p.add_class("spot")
        with p.edit("add images") as e:
            for i in range(2):
                name = f"images/{i}.png"
                img = PILImage.new("RGB", (W, H), "white")
                img.paste((0, 0, 0), (0, 0, W // 2, H))  # binarized-looking: half black, half white
                img.save(p.root / name)
                e.insert("images", {"path": name, "sha256": f"sha{i}", "width": W, "height": H, "split": None,
                                    "added_at": "t", "origin": None, "labeled": 0})
        yield p


@pytest.fixture
def canvas(qtbot, project: Project) -> Canvas:
    view = Canvas()
    qtbot.addWidget(view)
    view.resize(640, 480)
    view.show()
    qtbot.waitExposed(view)
    view.set_project(project)
    view.show_image(project.images()[0].id)
    view.set_view(VIEW)
    errors: list[tuple[str, object]] = []
    view.error.connect(lambda title, exc: errors.append((title, exc)))
    view.errors = errors  # type: ignore[attr-defined]
    return view


def at(image_x: float, image_y: float) -> QPoint:
    """View pixel of an image point at VIEW (all test points map to whole pixels)."""
    x, y = geo.image_to_view(VIEW, (image_x, image_y))
    assert x == int(x) and y == int(y)
    return QPoint(int(x), int(y))


def drag(qtbot, canvas: Canvas, start: QPoint, end: QPoint, *, steps: int = 3) -> None:
    vp = canvas.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=start)
    for i in range(1, steps + 1):
        qtbot.mouseMove(vp, start + (end - start) * i / steps)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=end)


def boxes(project: Project) -> list[tuple[int, tuple[float, ...]]]:
    return [(b.class_id, b.xyxy) for b in project.boxes(project.images()[0].id)]


def close(rect: tuple[float, ...], expected: tuple[float, ...], tol: float = 1.0) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rect, expected, strict=True))


def test_view_state_matches_what_qt_draws(canvas: Canvas) -> None:
    assert canvas.view_state == VIEW
    p = canvas.mapFromScene(QPointF(56.0, 44.0))
    assert (p.x(), p.y()) == (100, 80)
    assert canvas.image_point(QPointF(100, 80)) == pytest.approx((56.0, 44.0))


def test_drawing_a_box_at_zoom_creates_one_box_with_image_pixel_coordinates(qtbot, canvas: Canvas,
                                                                            project: Project) -> None:
    drag(qtbot, canvas, QPoint(200, 180), QPoint(100, 80))  # drawn up-left: still a normal box
    [(class_id, rect)] = boxes(project)
    assert class_id == project.classes()[0].id
    assert close(rect, (56.0, 44.0, 96.0, 84.0))
    assert project.image(project.images()[0].id).labeled
    assert [b.id for b in canvas.boxes] == canvas.selected  # the new box is selected
    assert canvas.errors == []  # type: ignore[attr-defined]


def test_drawing_is_clamped_to_the_image_and_a_click_draws_nothing(qtbot, canvas: Canvas, project: Project) -> None:
    vp = canvas.viewport()
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=at(50, 50))
    assert boxes(project) == []
    drag(qtbot, canvas, at(180, 150), QPoint(630, 470))  # released beyond the image corner
    [(_, rect)] = boxes(project)
    assert close(rect, (180.0, 150.0, W, H), tol=1e-6)


@pytest.fixture
def one_box(canvas: Canvas, project: Project) -> int:
    box_id = project.add_box(project.images()[0].id, project.classes()[0].id, (40.0, 40.0, 80.0, 60.0))
    canvas.reload()
    return box_id


def test_click_selects_and_drag_moves_the_box(qtbot, canvas: Canvas, project: Project, one_box: int) -> None:
    n_edits = len(project.history())
    drag(qtbot, canvas, at(60, 50), at(70, 46))
    assert canvas.selected == [one_box]
    assert close(project.box(one_box).xyxy, (50.0, 36.0, 90.0, 56.0))
    assert len(project.history()) == n_edits + 1  # one gesture, one edit
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=at(150, 130))  # empty: deselect
    assert canvas.selected == [] and len(project.history()) == n_edits + 1


def test_move_is_clamped_to_the_image(qtbot, canvas: Canvas, project: Project, one_box: int) -> None:
    drag(qtbot, canvas, at(60, 50), at(10, 30))  # 50 px left, 20 px up: only 40 px left fit
    assert close(project.box(one_box).xyxy, (0.0, 20.0, 40.0, 40.0))


def test_resize_by_handle(qtbot, canvas: Canvas, project: Project, one_box: int) -> None:
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=at(60, 50))  # select: handles appear
    drag(qtbot, canvas, at(80, 60), at(100, 70))  # the se corner
    assert close(project.box(one_box).xyxy, (40.0, 40.0, 100.0, 70.0))
    drag(qtbot, canvas, at(70, 40) + QPoint(2, -2), at(70, 20))  # the n handle, grabbed 2 screen px off
    assert close(project.box(one_box).xyxy, (40.0, 20.0, 100.0, 70.0))


def test_number_key_relabels_delete_removes_and_undo_redo(qtbot, canvas: Canvas, project: Project,
                                                          one_box: int) -> None:
    dent = project.classes()[1].id
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=at(60, 50))
    qtbot.keyClick(canvas, Qt.Key.Key_2)
    assert project.box(one_box).class_id == dent and canvas.current_class_id == dent
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert boxes(project) == []
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the delete
    assert boxes(project) == [(dent, (40.0, 40.0, 80.0, 60.0))]
    assert [b.id for b in canvas.boxes] == [one_box]  # the canvas reloaded from the database
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the relabel
    assert boxes(project)[0][0] == project.classes()[0].id
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert boxes(project)[0][0] == dent
    qtbot.keyClick(canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)  # redo the delete
    assert boxes(project) == [] and canvas.boxes == []


def test_drawn_box_uses_the_class_chosen_by_number_key(qtbot, canvas: Canvas, project: Project) -> None:
    qtbot.keyClick(canvas, Qt.Key.Key_3)
    drag(qtbot, canvas, at(10, 10), at(30, 30))
    assert boxes(project) == [(project.classes()[2].id, (10.0, 10.0, 30.0, 30.0))]


def _predictions(project: Project) -> list[int]:
    snap = project.create_snapshot()
    run_id = runs.record_run(project, created_at="t", snapshot_id=snap, previous_id=None, preset="edge",
                             path="runs/a", metrics={}, config={})
    iid, cid = project.images()[0].id, project.classes()[1].id
    runs.store_predictions(project, run_id=run_id, rows=[(iid, cid, 10, 10, 30, 30, 0.9),
                                                         (iid, cid, 100, 100, 140, 120, 0.6),
                                                         (iid, cid, 150, 20, 190, 60, 0.1)])
    return [p.id for p in runs.predictions(project, iid)]


def test_accepting_a_model_box_makes_it_a_human_box(qtbot, canvas: Canvas, project: Project) -> None:
    _predictions(project)
    canvas.reload()
    assert len(canvas.visible_predictions()) == 2  # 0.1 is below the score threshold
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=at(20, 20))
    assert canvas.selected_prediction is not None and boxes(project) == []
    qtbot.keyClick(canvas, Qt.Key.Key_A)
    dent = project.classes()[1].id
    assert boxes(project) == [(dent, (10.0, 10.0, 30.0, 30.0))]
    assert len(canvas.visible_predictions()) == 1 and canvas.selected == [canvas.boxes[0].id]
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert boxes(project) == [] and len(canvas.visible_predictions()) == 2


def test_shift_a_accepts_all_visible_model_boxes_in_one_edit(qtbot, canvas: Canvas, project: Project) -> None:
    _predictions(project)
    canvas.reload()
    qtbot.keyClick(canvas, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    assert [r for _, r in boxes(project)] == [(10.0, 10.0, 30.0, 30.0), (100.0, 100.0, 140.0, 120.0)]
    canvas.set_score_threshold(0.05)
    assert len(canvas.visible_predictions()) == 1  # the low-score one is now shown
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert boxes(project) == []


def test_wheel_zooms_at_the_cursor_and_keys_fit_and_one_to_one(qtbot, canvas: Canvas) -> None:
    under = canvas.image_point(QPointF(300, 200))
    canvas.zoom_by(1.25, (300.0, 200.0))
    assert canvas.view_state.zoom == pytest.approx(3.125)
    assert canvas.image_point(QPointF(300, 200)) == pytest.approx(under, abs=0.5 / 3.125)
    qtbot.keyClick(canvas, Qt.Key.Key_0)
    assert canvas.view_state.zoom == 1.0
    qtbot.keyClick(canvas, Qt.Key.Key_F)
    fit = geo.fit(image_size=(W, H), view_size=(640, 480))
    assert canvas.view_state.zoom == pytest.approx(fit.zoom)


def test_middle_drag_pans(qtbot, canvas: Canvas, project: Project) -> None:
    vp = canvas.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.MiddleButton, pos=QPoint(100, 100))
    qtbot.mouseMove(vp, QPoint(130, 90))
    qtbot.mouseRelease(vp, Qt.MouseButton.MiddleButton, pos=QPoint(130, 90))
    assert (canvas.view_state.pan_x, canvas.view_state.pan_y) == (VIEW.pan_x + 30, VIEW.pan_y - 10)
    assert boxes(project) == []


def test_an_edit_the_store_refuses_is_reported_not_raised(qtbot, canvas: Canvas, project: Project,
                                                          one_box: int) -> None:
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=at(60, 50))
    project.delete_boxes([one_box])  # deleted behind the canvas's back (another window, a job)
    canvas.set_class_by_number(2)
    assert canvas.errors and "not saved" in canvas.errors[0][0]  # type: ignore[attr-defined]
    assert canvas.boxes == [] and canvas.selected == []


def test_space_drag_pans_and_draws_nothing(qtbot, canvas: Canvas, project: Project) -> None:
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    drag(qtbot, canvas, QPoint(300, 300), QPoint(280, 320))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert (canvas.view_state.pan_x, canvas.view_state.pan_y) == (VIEW.pan_x - 20, VIEW.pan_y + 20)
    assert boxes(project) == []
    drag(qtbot, canvas, QPoint(300, 300), QPoint(340, 340))  # space released: draws again
    assert len(boxes(project)) == 1


def test_hovering_and_clicking_write_nothing(qtbot, canvas: Canvas, project: Project, one_box: int) -> None:
    n_edits = len(project.history())
    for point in (at(60, 50), at(80, 60), at(150, 150)):
        qtbot.mouseMove(canvas.viewport(), point)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=at(60, 50))
    qtbot.mouseDClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=at(60, 50))
    assert len(project.history()) == n_edits and project.box(one_box).xyxy == (40.0, 40.0, 80.0, 60.0)


def test_shift_drag_draws_inside_an_existing_box(qtbot, canvas: Canvas, project: Project, one_box: int) -> None:
    vp = canvas.viewport()
    shift = Qt.KeyboardModifier.ShiftModifier
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, shift, at(50, 44))
    qtbot.mouseMove(vp, at(70, 56))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, shift, at(70, 56))
    assert sorted(r for _, r in boxes(project)) == [(40.0, 40.0, 80.0, 60.0), (50.0, 44.0, 70.0, 56.0)]


def test_right_click_menu_changes_the_class_copies_and_deletes(qtbot, canvas: Canvas, project: Project,
                                                               one_box: int) -> None:
    from PySide6.QtWidgets import QMenu

    from labeltool.gui.box_menu import box_menu

    assert box_menu(canvas, (5.0, 5.0)) is None  # no box there: no menu
    menu = box_menu(canvas, (50.0, 50.0))
    assert isinstance(menu, QMenu) and canvas.selected == [one_box]
    classes = menu.actions()[0].menu()
    assert [a.text() for a in classes.actions()] == ["scratch\t1", "dent\t2", "spot\t3"]
    assert [a.isChecked() for a in classes.actions()] == [True, False, False]
    drawing_class = canvas.current_class_id
    classes.actions()[2].trigger()
    assert project.box(one_box).class_id == project.class_by_name("spot").id
    assert canvas.current_class_id == drawing_class  # the class for new boxes is not changed by the menu
    canvas.undo()
    assert project.box(one_box).class_id == project.class_by_name("scratch").id
    menu = box_menu(canvas, (50.0, 50.0))
    next(a for a in menu.actions() if a.text().startswith("Delete the box")).trigger()
    assert boxes(project) == []
