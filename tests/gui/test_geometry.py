"""Canvas maths without Qt: transforms, zoom at cursor, drag-to-box, hit testing, move and resize."""

from __future__ import annotations

import math

import pytest

from labeltool.gui import constants as C
from labeltool.gui import geometry as g


def approx(values, expected, tol=1e-9) -> bool:
    return all(math.isclose(a, b, abs_tol=tol) for a, b in zip(values, expected, strict=True))


# -- transforms ------------------------------------------------------------------------------------
def test_view_and_image_points_round_trip() -> None:
    s = g.ViewState(2.5, -40.0, 13.0)
    assert g.image_to_view(s, (10.0, 20.0)) == (-15.0, 63.0)
    assert approx(g.view_to_image(s, g.image_to_view(s, (123.4, 56.7))), (123.4, 56.7))


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_view_state_rejects_bad_zoom(bad: float) -> None:
    with pytest.raises(ValueError, match="zoom"):
        g.ViewState(bad)


@pytest.mark.parametrize("factor", [1.25, 0.8, 3.0, 0.1])
def test_zoom_at_cursor_keeps_the_point_under_the_cursor(factor: float) -> None:
    s = g.ViewState(1.7, 33.0, -12.0)
    anchor = (250.0, 140.0)
    under = g.view_to_image(s, anchor)
    z = g.zoom_at(s, factor=factor, anchor=anchor)
    assert math.isclose(z.zoom, 1.7 * factor)
    assert approx(g.view_to_image(z, anchor), under)


def test_zoom_is_clamped_and_still_keeps_the_anchor() -> None:
    s = g.ViewState(C.ZOOM_MAX, 0.0, 0.0)
    z = g.zoom_at(s, factor=10.0, anchor=(50.0, 60.0))
    assert z.zoom == C.ZOOM_MAX and approx((z.pan_x, z.pan_y), (0.0, 0.0))
    assert g.zoom_at(g.ViewState(C.ZOOM_MIN), factor=0.01, anchor=(0, 0)).zoom == C.ZOOM_MIN
    with pytest.raises(ValueError, match="factor"):
        g.zoom_at(s, factor=0.0, anchor=(0, 0))


def test_fit_centres_the_whole_image() -> None:
    s = g.fit(image_size=(400, 100), view_size=(816, 616), margin=8)
    assert math.isclose(s.zoom, 2.0)  # width limits: 800 / 400
    assert approx(g.image_to_view(s, (0, 0)), (8.0, 208.0))
    assert approx(g.image_to_view(s, (400, 100)), (808.0, 408.0))
    with pytest.raises(ValueError, match="image_size"):
        g.fit(image_size=(0, 10), view_size=(10, 10))


def test_one_to_one_keeps_the_view_centre() -> None:
    s = g.ViewState(3.0, -100.0, -50.0)
    centre = g.view_to_image(s, (200.0, 150.0))
    o = g.one_to_one(s, view_size=(400, 300))
    assert o.zoom == 1.0 and approx(g.view_to_image(o, (200.0, 150.0)), centre)


def test_pan_moves_the_image_with_the_mouse() -> None:
    s = g.panned(g.ViewState(2.0, 10.0, 20.0), dx=5.0, dy=-7.0)
    assert (s.zoom, s.pan_x, s.pan_y) == (2.0, 15.0, 13.0)


# -- drawing -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("start,end", [((10, 20), (50, 60)), ((50, 60), (10, 20)), ((50, 20), (10, 60)), ((10, 60), (50, 20))])
def test_drag_in_any_direction_gives_the_same_box(start, end) -> None:
    assert g.normalize_drag(start, end, image_size=(100, 100)) == (10, 20, 50, 60)


def test_drag_is_clamped_to_the_image() -> None:
    assert g.normalize_drag((-30, 50), (130, 250), image_size=(100, 200)) == (0, 50, 100, 200)


def test_tiny_drag_is_no_box() -> None:
    assert g.normalize_drag((10, 10), (10.5, 40), image_size=(100, 100)) is None
    assert g.normalize_drag((10, 10), (30, 12), image_size=(100, 100), min_side=5) is None
    assert g.normalize_drag((-20, -20), (-5, -5), image_size=(100, 100)) is None  # entirely outside


# -- hit testing -------------------------------------------------------------------------------------
def test_handles_are_corners_and_edge_midpoints() -> None:
    pts = g.handle_points((10, 20, 30, 60))
    assert list(pts) == list(g.HANDLES)
    assert pts["nw"] == (10, 20) and pts["se"] == (30, 60) and pts["n"] == (20, 20) and pts["w"] == (10, 40)


def test_handle_tolerance_is_in_screen_pixels() -> None:
    rect = (100, 100, 200, 200)
    point = (203.0, 203.0)  # 3 image px from the se corner
    assert g.hit_test([rect], point, zoom=1.0, selected=[0]) == g.Hit(0, "se")  # 3 screen px: grabbed
    assert g.hit_test([rect], point, zoom=4.0, selected=[0]) is None  # 12 screen px: missed
    assert g.hit_test([rect], (200.5, 150.0), zoom=10.0, selected=[0]) == g.Hit(0, "e")


def test_handles_only_for_selected_boxes() -> None:
    rect = (100, 100, 200, 200)
    assert g.hit_test([rect], (100.0, 100.0), zoom=1.0) == g.Hit(0, None)


def test_nearest_handle_wins_on_a_tiny_box() -> None:
    rect = (10, 10, 12, 12)  # all handles within tolerance at zoom 1
    assert g.hit_test([rect], (12.2, 12.1), zoom=1.0, selected=[0]) == g.Hit(0, "se")


def test_smallest_box_wins_then_topmost() -> None:
    big, small, same = (0, 0, 100, 100), (40, 40, 60, 60), (40, 40, 60, 60)
    assert g.hit_test([big, small], (50, 50), zoom=1.0) == g.Hit(1)
    assert g.hit_test([small, big], (50, 50), zoom=1.0) == g.Hit(0)
    assert g.hit_test([small, same], (50, 50), zoom=1.0) == g.Hit(1)  # equal: drawn last = on top
    assert g.hit_test([big, small], (10, 10), zoom=1.0) == g.Hit(0)
    assert g.hit_test([big, small], (150, 150), zoom=1.0) is None
    assert g.hit_test([], (1, 1), zoom=1.0) is None


def test_hit_test_rejects_bad_zoom() -> None:
    with pytest.raises(ValueError, match="zoom"):
        g.hit_test([(0, 0, 1, 1)], (0, 0), zoom=0.0)


# -- move and resize ---------------------------------------------------------------------------------
def test_move_is_clamped_to_the_image_keeping_the_size() -> None:
    assert g.moved((10, 10, 30, 40), dx=5, dy=-3, image_size=(100, 100)) == (15, 7, 35, 37)
    assert g.moved((10, 10, 30, 40), dx=-50, dy=500, image_size=(100, 100)) == (0, 70, 20, 100)


@pytest.mark.parametrize("handle,point,expected", [
    ("se", (50, 70), (10, 20, 50, 70)),
    ("nw", (5, 8), (5, 8, 30, 40)),
    ("n", (99, 0), (10, 0, 30, 40)),
    ("e", (60, 99), (10, 20, 60, 40)),
    ("s", (0, 45), (10, 20, 30, 45)),
    ("w", (12, 0), (12, 20, 30, 40)),
    ("ne", (40, 10), (10, 10, 40, 40)),
    ("sw", (0, 90), (0, 20, 30, 90)),
])
def test_resize_by_each_handle(handle, point, expected) -> None:
    assert g.resized((10, 20, 30, 40), handle, point, image_size=(100, 100)) == expected


def test_resize_past_the_opposite_edge_flips_and_clamps() -> None:
    assert g.resized((10, 20, 30, 40), "e", (2, 30), image_size=(100, 100)) == (2, 20, 10, 40)
    assert g.resized((10, 20, 30, 40), "se", (500, -50), image_size=(100, 100)) == (10, 0, 100, 20)


def test_resize_keeps_a_minimum_size_inside_the_image() -> None:
    assert g.resized((10, 20, 30, 40), "e", (10.2, 30), image_size=(100, 100), min_side=2) == (10, 20, 12, 40)
    assert g.resized((98, 20, 100, 40), "w", (100, 30), image_size=(100, 100), min_side=2) == (98, 20, 100, 40)
    assert g.resized((0, 20, 5, 40), "e", (0, 30), image_size=(100, 100), min_side=2) == (0, 20, 2, 40)
    with pytest.raises(ValueError, match="handle"):
        g.resized((0, 0, 1, 1), "middle", (0, 0), image_size=(10, 10))
