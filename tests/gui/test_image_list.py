"""The image list: one query for all rows, filters, and thumbnails only for the rows in sight."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image as PILImage
from PySide6.QtWidgets import QApplication

from labeltool.core.store import Project
from labeltool.gui import main as gui_main
from labeltool.gui.image_list import Filter, ImageListModel, ThumbnailCache, query_rows, visible_rows

pytestmark = pytest.mark.gui
N = 5000


def _png() -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (32, 24), (200, 60, 60)).save(buf, format="PNG")
    return buf.getvalue()


def make_big_project(root: Path, n: int = N) -> Project:
    """``n`` real 32x24 PNG files; every 10th image labeled with a 'dent' box, every 7th in 'val'."""
    p = Project.create(root)
    scratch, dent = p.add_class("scratch"), p.add_class("dent")
    data = _png()
    with p.edit("add images") as e:
        for i in range(n):
            name = f"images/{i:05d}.png"
            (p.root / name).write_bytes(data)
            e.insert("images", {"path": name, "sha256": f"sha{i}", "width": 32, "height": 24,
                                "split": "val" if i % 7 == 0 else None, "added_at": "t", "origin": None,
                                "labeled": int(i % 10 == 0)})
    ids = [img.id for img in p.images()]
    with p.edit("add boxes") as e:
        for image_id in ids[::10]:
            e.insert("boxes", {"image_id": image_id, "class_id": dent, "x1": 1.0, "y1": 1.0, "x2": 9.0, "y2": 9.0})
        e.insert("boxes", {"image_id": ids[1], "class_id": scratch, "x1": 1.0, "y1": 1.0, "x2": 5.0, "y2": 5.0})
    return p


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("big") / "p"
    make_big_project(root).close()
    yield root


def _settle(qtbot, model: ImageListModel) -> None:
    for _ in range(20):
        QApplication.processEvents()
        model.loader.wait(2000)
        QApplication.processEvents()
        qtbot.wait(5)


def test_filters_give_the_right_counts(big: Path) -> None:
    with Project.open(big) as p:
        dent = p.class_by_name("dent")
        scratch = p.class_by_name("scratch")
        assert dent is not None and scratch is not None
        assert len(query_rows(p)) == N
        assert len(query_rows(p, Filter("unlabeled"))) == N - N // 10
        assert len(query_rows(p, Filter("class", dent.id))) == N // 10
        assert len(query_rows(p, Filter("class", scratch.id))) == 1
        assert len(query_rows(p, Filter("split", "val"))) == len(range(0, N, 7))
        assert len(query_rows(p, Filter("split", None))) == N - len(range(0, N, 7))
        assert len(query_rows(p, Filter("split", "train"))) == 0
        assert query_rows(p, Filter("issues")) == []
        first = query_rows(p)[0]
        assert first.labeled and first.boxes == 1 and first.split == "val"
        assert first.text == "images/00000.png\n✓ labeled  ·  1 box  ·  val"


def test_list_of_5000_images_scrolls_without_decoding_all_thumbnails(qtbot, big: Path) -> None:
    window = gui_main.MainWindow()
    qtbot.addWidget(window)
    window.resize(1000, 600)
    window.show()
    qtbot.waitExposed(window)
    started = time.perf_counter()
    window.open_project(big)
    assert time.perf_counter() - started < 2.0
    view, model = window.image_list, window.image_model
    assert view.count() == N and window.list_count.text() == f"{N} of {N} images"
    _settle(qtbot, model)
    assert model.loader.decoded > 0  # the rows in sight got thumbnails ...
    for row in visible_rows(view):
        assert model.index(row).row() == row and model.loader.cache.get(model.rows[row].id) is not None
    view.scrollToBottom()
    _settle(qtbot, model)
    for step in (N // 5, 2 * N // 5, 3 * N // 5, 4 * N // 5):  # stops on the way back to the top
        view.scrollTo(model.index(step))
        QApplication.processEvents()
    view.scrollToTop()
    QApplication.processEvents()
    view.scrollToBottom()
    _settle(qtbot, model)
    last = model.rows[N - 1].id
    assert model.loader.cache.get(last) is not None  # ... and the bottom rows after scrolling there
    assert model.loader.requested < 200 and model.loader.decoded < 200
    window.set_filter_index([window.filter_combo.itemText(i) for i in range(window.filter_combo.count())]
                            .index("Contains class: scratch"))
    assert view.count() == 1 and window.list_count.text() == f"1 of {N} images"
    assert window.canvas.image is not None and window.canvas.image.path == "images/00001.png"
    window.set_filter_index(1)  # unlabeled: the current image (unlabeled) stays shown
    assert view.count() == N - N // 10 and window.canvas.image.path == "images/00001.png"
    window.close()


def test_thumbnail_cache_is_count_bounded() -> None:
    from PySide6.QtGui import QImage

    cache = ThumbnailCache(capacity=3)
    for key in range(5):
        cache.put(key, QImage(1, 1, QImage.Format.Format_RGB888))
    assert len(cache) == 3 and 0 not in cache and 4 in cache
    cache.get(2)
    cache.put(5, QImage(1, 1, QImage.Format.Format_RGB888))
    assert 2 in cache and 3 not in cache


def test_loader_decodes_newest_requests_first_and_drops_old_ones(qtbot, tmp_path: Path) -> None:
    from labeltool.gui import constants as C
    from labeltool.gui.image_list import ThumbnailLoader, _Worker

    (tmp_path / "a.png").write_bytes(_png())
    loader = ThumbnailLoader(threads=1)
    loader._running = 1  # hold the worker back: requests only queue up (as during a fast scroll)
    for key in range(100):
        assert loader.get(key, tmp_path / "a.png") is None
    assert loader.requested == 100 and len(loader._queue) == C.THUMB_QUEUE
    order: list[object] = []
    loader.ready.connect(order.append)
    _Worker(loader).run()
    QApplication.processEvents()
    assert loader.decoded == C.THUMB_QUEUE and order[0] == 99 and 0 not in loader.cache
    assert loader.get(99, tmp_path / "a.png") is not None and loader.requested == 100
    loader.get(1000, tmp_path / "missing.png")
    loader.wait()
    qtbot.waitUntil(lambda: 1000 in loader.failed)


def test_a_box_drawn_updates_the_row_marker(qtbot, tmp_path: Path) -> None:
    p = make_big_project(tmp_path / "p", n=3)
    p.close()
    window = gui_main.MainWindow()
    qtbot.addWidget(window)
    window.open_project(tmp_path / "p")
    window.image_list.setCurrentRow(1)
    assert "1 box" in window.image_list.row_text(1)
    assert window.project is not None
    window.canvas._edit(lambda proj: proj.add_box(window.images[1].id, proj.classes()[0].id, (1, 1, 4, 4)))
    assert "2 boxes" in window.image_list.row_text(1)
    window.close()
