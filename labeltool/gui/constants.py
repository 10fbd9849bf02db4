"""Tunable numbers of the GUI (no Qt here), each with what it controls."""

from __future__ import annotations

ZOOM_MIN = 0.02  # smallest zoom (view px per image px): a 4000 px image is 80 px wide
ZOOM_MAX = 64.0  # largest zoom: one image pixel is 64 screen pixels
ZOOM_STEP = 1.25  # zoom factor of one mouse-wheel notch (120 units of angleDelta)
FIT_MARGIN_PX = 8.0  # free screen pixels around the image after "fit"
HANDLE_PX = 7.0  # side of a drawn resize handle, in screen pixels
HIT_TOLERANCE_PX = 6.0  # how far from a handle / box edge a click still grabs it, in screen pixels
MIN_DRAG_PX = 4.0  # a drag shorter than this (screen px) on empty canvas is a click, not a new box
MIN_BOX_SIDE_PX = 1.0  # smallest box side in image pixels (a box needs x1 < x2, y1 < y2)
OUTLINE_PX = 2  # box outline width in screen pixels
HALO_PX = 1  # contrasting halo on each side of the outline, readable on black-and-white images
SCORE_THRESHOLD = 0.3  # default: model boxes below this score are hidden
SCENE_MARGIN = 100_000.0  # image px of empty scene around the image, so any pan/zoom is reachable
THUMB_SIDE = 96  # longest side of a decoded list thumbnail, in pixels
THUMB_ICON_PX = 48  # thumbnail size shown in the image list
THUMB_FRAME_PX = 3  # frame drawn round a thumbnail tile (at THUMB_SIDE; half that on screen)
THUMB_FRAME = "#5a5a5a"
THUMB_BACKGROUND = "#c8c8c8"  # tile behind thumbnails that are not square
THUMB_SPACING_PX = 2  # gap between image list rows
THUMB_CACHE_COUNT = 512  # decoded thumbnails kept in memory (LRU); a 96 px RGB thumbnail is ~27 KB
THUMB_QUEUE = 64  # waiting thumbnail requests kept; older ones (rows scrolled past) are dropped
THUMB_THREADS = 2  # worker threads decoding thumbnails
RECENT_PROJECTS = 8  # entries of File ▸ Recent projects
WINDOW_SIZE = (1280, 800)  # default main window size (px) on an ordinary screen
WINDOW_SIZE_LARGE = (1440, 900)  # ... on a screen of at least 1600x1000
LIST_PANEL_PX = 280  # initial width of the image list (the splitter keeps user changes)
CLASS_PANEL_PX = 290  # initial width of the class panel
