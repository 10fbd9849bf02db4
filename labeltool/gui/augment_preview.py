"""Preview of a new augment set: its derived images as thumbnails with their boxes; keep or delete it.

At most ``PREVIEW_MAX`` images are shown ("… and N more"); they are decoded small on a worker
thread (boxes drawn there too), so the dialog opens at once and stays responsive. "Delete set"
removes the set as one undoable edit (``derived.delete_set``; the files stay, so Ctrl+Z restores it).
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, QRectF, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from labeltool.core import review
from labeltool.core.derived import delete_set, get_set, set_members
from labeltool.core.errors import LabeltoolError
from labeltool.core.images import thumbnail
from labeltool.core.queries import image_paths
from labeltool.core.store import Project

from .dialogs import error_text
from .overlay import contrast

PREVIEW_MAX = 60  # thumbnails shown at most; a set has tens to a few hundred images
TILE_PX = 160  # longest side of a thumbnail
COLUMNS = 5
DIALOG_SIZE = (5 * (TILE_PX + 24) + 60, 760)  # wide enough for COLUMNS tiles without a horizontal scroll bar

Box = tuple[str, float, float, float, float]  # (colour, x1, y1, x2, y2) in pixels of the full image


def render_tile(path: Path, boxes: list[Box], *, width: int, height: int, side: int = TILE_PX) -> QImage:
    """The image scaled to fit ``side`` px (decoded small; small images enlarged) with its boxes drawn in
    their colour on a contrasting halo."""
    rgb = thumbnail(path, max_side=side)
    image = QImage(rgb.tobytes(), rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888).copy()
    if max(rgb.width, rgb.height) < side:
        image = image.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    sx, sy = image.width() / max(1, width), image.height() / max(1, height)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    for color, x1, y1, x2, y2 in boxes:
        rect = QRectF(x1 * sx, y1 * sy, max(3.0, (x2 - x1) * sx), max(3.0, (y2 - y1) * sy))
        painter.setPen(QPen(contrast(QColor(color)), 4))
        painter.drawRect(rect)
        painter.setPen(QPen(QColor(color), 2))
        painter.drawRect(rect)
    painter.end()
    return image


class _Signals(QObject):
    done = Signal(int, object)  # (tile index, QImage or an error message)


class _Decoder(QRunnable):
    """Renders the tiles one after the other until done or cancelled."""

    def __init__(self, jobs: list[tuple[int, Path, list[Box], int, int]], signals: _Signals,
                 cancel: threading.Event) -> None:
        super().__init__()
        self.jobs, self.signals, self.cancel = jobs, signals, cancel

    def run(self) -> None:
        for index, path, boxes, width, height in self.jobs:
            if self.cancel.is_set():
                return
            try:
                result: object = render_tile(path, boxes, width=width, height=height)
            except (LabeltoolError, OSError, ValueError) as exc:
                result = f"cannot read: {exc}"
            self.signals.done.emit(index, result)


class AugmentPreview(QDialog):
    """Thumbnails of augment set ``set_id`` with "Keep set" / "Delete set".

    ``exec()`` returns ``KEEP`` (Accepted; closing the dialog keeps the set too: Rejected) or
    ``DELETE`` (the set was deleted, one undoable edit); ``choice`` is 'keep' or 'delete'. Raises
    ProjectError when the set does not exist.
    """

    KEEP = int(QDialog.DialogCode.Accepted)
    DELETE = 2

    def __init__(self, project: Project, set_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project, self.set_id = project, set_id
        self.choice = "keep"
        aset = get_set(project, set_id)
        members = set_members(project, set_id)
        shown = members[:PREVIEW_MAX]
        colors = {c.id: c.color for c in project.classes()}
        paths = image_paths(project)
        self.setWindowTitle(f"Augment set #{set_id} — preview")
        self.resize(*DIALOG_SIZE)
        summary = QLabel(review.set_summary(aset))
        font = summary.font()
        font.setBold(True)
        summary.setFont(font)
        summary.setWordWrap(True)
        targets = QLabel(review.set_targets(aset))
        targets.setWordWrap(True)
        targets.setVisible(bool(targets.text()))
        hint = QLabel("The images are used for training only (never for validation). Boxes are drawn in their "
                      "class colour: check that every defect still has its box.")
        hint.setWordWrap(True)
        self.tiles: list[QLabel] = []
        grid_host = QWidget()
        grid = QGridLayout(grid_host)
        grid.setSpacing(8)
        placeholder = QPixmap(TILE_PX, TILE_PX)
        placeholder.fill(QColor("#555555"))
        jobs = []
        for k, member in enumerate(shown):
            tile = QLabel()
            tile.setFixedSize(TILE_PX + 4, TILE_PX + 4)
            tile.setAlignment(Qt.AlignmentFlag.AlignCenter)
            tile.setPixmap(placeholder)
            tile.setToolTip(f"{member['path']}\n{member['width']}×{member['height']} px · {len(member['boxes'])} boxes")
            caption = QLabel(review.tile_caption(member, paths))
            caption.setFixedWidth(TILE_PX + 4)
            caption.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            caption.setToolTip(tile.toolTip())
            caption.setWordWrap(True)
            cell = QVBoxLayout()
            cell.setSpacing(2)
            cell.addWidget(tile)
            cell.addWidget(caption)
            cell.addStretch(1)
            grid.addLayout(cell, k // COLUMNS, k % COLUMNS)
            self.tiles.append(tile)
            boxes = [(colors.get(c, "#ffffff"), x1, y1, x2, y2) for c, x1, y1, x2, y2 in member["boxes"]]
            jobs.append((k, project.root / member["path"], boxes, member["width"], member["height"]))
        grid.setRowStretch(grid.rowCount(), 1)
        self.more = QLabel(review.more_text(len(members), len(shown)))
        self.more.setVisible(bool(self.more.text()))
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.StyledPanel)
        scroll.setWidget(grid_host)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color:#b00020;")
        self.error_label.hide()
        buttons = QDialogButtonBox()
        self.keep_button = buttons.addButton("Keep set", QDialogButtonBox.ButtonRole.AcceptRole)
        self.delete_button: QPushButton = buttons.addButton("Delete set", QDialogButtonBox.ButtonRole.DestructiveRole)
        self.keep_button.setToolTip("Keep the images: the next training uses them")
        self.delete_button.setToolTip("Remove the set's images from the project (one edit: Ctrl+Z restores it)")
        self.keep_button.setDefault(True)
        self.keep_button.clicked.connect(self.keep)
        self.delete_button.clicked.connect(self.delete)
        layout = QVBoxLayout(self)
        for widget in (summary, targets, hint):
            layout.addWidget(widget)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.more)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self.decoded = 0
        self._cancel = threading.Event()
        self._signals = _Signals()
        self._signals.done.connect(self._tile_done)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        if jobs:
            self._pool.start(_Decoder(jobs, self._signals, self._cancel))

    def _tile_done(self, index: int, result: object) -> None:
        if not 0 <= index < len(self.tiles):
            return
        tile = self.tiles[index]
        if isinstance(result, QImage):
            tile.setPixmap(QPixmap.fromImage(result))
        else:
            tile.setPixmap(QPixmap())
            tile.setText(str(result))
            tile.setWordWrap(True)
        self.decoded += 1

    def wait_thumbnails(self, msecs: int = 10_000) -> bool:
        """Block until every thumbnail is decoded (tests, screenshots); their pixmaps are set on the next
        event-loop turn."""
        return self._pool.waitForDone(msecs)

    def keep(self) -> None:
        self.choice = "keep"
        self.done(self.KEEP)

    def delete(self) -> None:
        """Delete the set (one undoable edit) and close; on failure say why and stay open."""
        try:
            delete_set(self.project, self.set_id)
        except LabeltoolError as exc:
            self.error_label.setText(f"The set was not deleted: {error_text(exc)}")
            self.error_label.show()
            return
        self.choice = "delete"
        self.done(self.DELETE)

    def done(self, result: int) -> None:
        self._cancel.set()  # stop decoding: nobody will look at the thumbnails any more
        if result == int(QDialog.DialogCode.Rejected):
            self.choice = "keep"  # closed with Esc / the window button: nothing was deleted
        super().done(result)

    @classmethod
    def ask(cls, project: Project, set_id: int, parent: QWidget | None = None) -> str:
        """Show the preview modally; returns 'keep' or 'delete' (the set was then deleted)."""
        dialog = cls(project, set_id, parent)
        dialog.exec()
        return dialog.choice
