"""The image list: a virtualized model over one SQL query, thumbnails decoded off the GUI thread.

``query_rows`` reads every row the list shows (path, labeled flag, split, box and open-issue counts)
in one query; painting never touches the database. The view asks for a thumbnail only for the rows
it paints (``DecorationRole``); the ``ThumbnailLoader`` decodes them on worker threads, newest
request first, dropping requests for rows scrolled past, and keeps a count-bounded LRU cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QListView, QWidget

from labeltool.core.errors import LabeltoolError
from labeltool.core.images import thumbnail
from labeltool.core.queries import Filter, ImageRow, query_rows
from labeltool.core.store import Project

from . import constants as C

SPLITS = ("train", "val", "test")
_Index = QModelIndex | QPersistentModelIndex


def filter_choices(project: Project | None) -> list[tuple[str, Filter]]:
    """(label, filter) entries of the filter combo box."""
    choices = [("All images", Filter()), ("Unlabeled", Filter("unlabeled")), ("Has open issues", Filter("issues"))]
    choices += [(f"Split: {s}", Filter("split", s)) for s in SPLITS] + [("Split: none", Filter("split", None))]
    if project is not None:
        choices += [(f"Contains class: {c.name}", Filter("class", c.id)) for c in project.classes()]
    return choices


class ThumbnailCache:
    """Least-recently-used map key -> QImage holding at most ``capacity`` entries."""

    def __init__(self, capacity: int = C.THUMB_CACHE_COUNT) -> None:
        self.capacity = capacity
        self._items: OrderedDict[object, QImage] = OrderedDict()

    def get(self, key: object) -> QImage | None:
        image = self._items.get(key)
        if image is not None:
            self._items.move_to_end(key)
        return image

    def put(self, key: object, image: QImage) -> None:
        self._items[key] = image
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items


class _Signals(QObject):
    done = Signal(object, object, object)  # (key, path, QImage or None when the file cannot be read)


class _Worker(QRunnable):
    """Decodes queued thumbnails, newest request first, until the queue is empty."""

    def __init__(self, loader: ThumbnailLoader) -> None:
        super().__init__()
        self.loader = loader

    def run(self) -> None:
        while (job := self.loader._take()) is not None:
            key, path = job
            try:
                rgb = thumbnail(path, max_side=C.THUMB_SIDE)
                data = rgb.tobytes()
                image: QImage | None = QImage(data, rgb.width, rgb.height, 3 * rgb.width,
                                              QImage.Format.Format_RGB888).copy()
            except (LabeltoolError, OSError, ValueError):
                image = None
            self.loader._signals.done.emit(key, path, image)


class ThumbnailLoader(QObject):
    """Decodes thumbnails on a thread pool; ``ready(key)`` is emitted on the GUI thread when cached.

    Requests form a LIFO queue of at most ``THUMB_QUEUE`` entries: the rows painted last are decoded
    first, and requests for rows scrolled out of sight long ago are dropped. ``decoded`` counts the
    files actually decoded (for tests and the benchmark).
    """

    ready = Signal(object)

    def __init__(self, parent: QObject | None = None, *, threads: int = C.THUMB_THREADS) -> None:
        super().__init__(parent)
        self.cache = ThumbnailCache()
        self.failed: set[object] = set()
        self.requested = 0
        self.decoded = 0
        self._lock = threading.Lock()
        self._queue: OrderedDict[object, Path] = OrderedDict()
        self._pending: dict[object, Path] = {}  # queued or being decoded: key -> its file
        self._running = 0
        self._threads = threads
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._signals = _Signals()
        self._signals.done.connect(self._done)

    def get(self, key: object, path: Path) -> QImage | None:
        """The cached thumbnail of ``key``, or None after queueing its decoding (once)."""
        image = self.cache.get(key)
        if image is not None or key in self.failed:
            return image
        with self._lock:
            if key in self._queue:
                self._queue.move_to_end(key)
                return None
            if key in self._pending:
                return None
            self.requested += 1
            self._queue[key] = path
            self._pending[key] = path
            while len(self._queue) > C.THUMB_QUEUE:
                dropped, _ = self._queue.popitem(last=False)
                self._pending.pop(dropped, None)
            start = self._running < self._threads
            if start:
                self._running += 1
        if start:
            self._pool.start(_Worker(self))
        return None

    def _take(self) -> tuple[object, Path] | None:
        with self._lock:
            if not self._queue:
                self._running -= 1
                return None
            key, path = self._queue.popitem(last=True)
            self.decoded += 1
            return key, path

    def _done(self, key: object, path: Path, image: QImage | None) -> None:
        with self._lock:
            if self._pending.get(key) != path:
                return  # decoded for a project closed meanwhile (``clear``): the same key means another file
            del self._pending[key]
        if image is None:
            self.failed.add(key)
        else:
            self.cache.put(key, image)
        self.ready.emit(key)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._pending.clear()
        self.cache.clear()
        self.failed.clear()

    def wait(self, msecs: int = 5000) -> bool:
        """Block until the workers are idle (tests, shutdown)."""
        return self._pool.waitForDone(msecs)


class ImageListModel(QAbstractListModel):
    """Rows of ``query_rows``; DisplayRole = row text, DecorationRole = thumbnail or a placeholder."""

    IdRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.filter = Filter()
        self.rows: list[ImageRow] = []
        self._row_of: dict[int, int] = {}
        self.loader = ThumbnailLoader(self)
        self.loader.ready.connect(self._thumbnail_ready)
        placeholder = QPixmap(C.THUMB_SIDE, C.THUMB_SIDE)
        placeholder.fill(QColor("#555555"))
        self._placeholder = QIcon(placeholder)
        self._broken = QPixmap(C.THUMB_SIDE, C.THUMB_SIDE)
        self._broken.fill(QColor("#a03030"))
        self._icons: OrderedDict[int, QIcon] = OrderedDict()

    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.filter = Filter()
        self.loader.clear()
        self._icons.clear()
        self.reload()

    def set_filter(self, flt: Filter) -> None:
        self.filter = flt
        self.reload()

    def reload(self) -> None:
        """Re-read all rows (one query)."""
        self.beginResetModel()
        self.rows = query_rows(self.project, self.filter) if self.project is not None else []
        self._row_of = {r.id: i for i, r in enumerate(self.rows)}
        self.endResetModel()

    def refresh_image(self, image_id: int) -> None:
        """Re-read one row's text after an edit (the row stays even if it no longer matches the filter)."""
        row = self._row_of.get(image_id)
        if self.project is None or row is None:
            return
        fresh = query_rows(self.project, image_id=image_id)
        if fresh:
            self.rows[row] = fresh[0]
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole])

    def row_of(self, image_id: int) -> int | None:
        return self._row_of.get(image_id)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 (Qt signature)
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row.text
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{row.path}\n{row.width}×{row.height} px"
        if role == self.IdRole:
            return row.id
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(row)
        return None

    def _icon(self, row: ImageRow) -> QIcon:
        icon = self._icons.get(row.id)
        if icon is not None:
            self._icons.move_to_end(row.id)
            return icon
        assert self.project is not None
        image = self.loader.get(row.id, self.project.root / row.path)
        if image is None:
            if row.id not in self.loader.failed:
                return self._placeholder
            icon = QIcon(self._broken)
        else:
            icon = QIcon(framed(image))
        self._icons[row.id] = icon
        while len(self._icons) > C.THUMB_CACHE_COUNT:
            self._icons.popitem(last=False)
        return icon

    def _thumbnail_ready(self, key: object) -> None:
        row = self._row_of.get(key) if isinstance(key, int) else None
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


def framed(image: QImage, side: int = C.THUMB_SIDE) -> QPixmap:
    """``image`` centred on a square grey tile with a dark frame, so neighbouring thumbnails stay apart
    (binarized or white parts would otherwise run together into one strip)."""
    tile = QPixmap(side, side)
    tile.fill(QColor(C.THUMB_BACKGROUND))
    inner = side - 2 * C.THUMB_FRAME_PX
    scaled = image.scaled(inner, inner, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    painter = QPainter(tile)
    painter.drawImage((side - scaled.width()) // 2, (side - scaled.height()) // 2, scaled)
    pen = QPen(QColor(C.THUMB_FRAME))
    pen.setWidth(C.THUMB_FRAME_PX)
    painter.setPen(pen)
    half = C.THUMB_FRAME_PX // 2
    painter.drawRect(half, half, side - C.THUMB_FRAME_PX, side - C.THUMB_FRAME_PX)
    painter.end()
    return tile


class ImageListView(QListView):
    """A list view that never measures all rows (uniform item sizes) and speaks in rows."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setUniformItemSizes(True)  # without it Qt asks every row for its size (and thumbnail)
        self.setIconSize(QSize(C.THUMB_ICON_PX, C.THUMB_ICON_PX))
        self.setSpacing(C.THUMB_SPACING_PX)
        self.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)

    def list_model(self) -> ImageListModel:
        model = self.model()
        assert isinstance(model, ImageListModel)
        return model

    def count(self) -> int:
        return self.list_model().rowCount()

    def currentRow(self) -> int:  # noqa: N802 (QListWidget name)
        index = self.currentIndex()
        return index.row() if index.isValid() else -1

    def setCurrentRow(self, row: int) -> None:  # noqa: N802
        self.setCurrentIndex(self.list_model().index(row))

    def row_text(self, row: int) -> str:
        return str(self.list_model().data(self.list_model().index(row)))


def visible_rows(view: QListView) -> Sequence[int]:
    """Rows whose rectangles intersect the viewport (for tests). The probes step inwards past the
    spacing between rows, where ``indexAt`` finds no row."""
    model = view.model()
    rect = view.viewport().rect()
    first = last = None
    for dy in range(0, rect.height()):
        if first is None and (index := view.indexAt(rect.topLeft() + QPoint(2, dy))).isValid():
            first = index.row()
        if last is None and (index := view.indexAt(rect.bottomLeft() + QPoint(2, -dy))).isValid():
            last = index.row()
        if first is not None and last is not None:
            return range(first, last + 1)
    return range(0, model.rowCount()) if first is None else range(first, model.rowCount())
