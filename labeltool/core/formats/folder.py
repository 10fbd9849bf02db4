"""A plain folder of images (no labels): reader only.

Every image file (``config.IMAGE_EXTENSIONS``, any case) under the folder, recursively, becomes an
``ImageRecord`` without boxes. Hidden files and folders (name starting with '.', e.g. macOS ``._x.jpg``)
are skipped.
"""

from __future__ import annotations

from pathlib import Path

from labeltool.core import config
from labeltool.core.errors import ImportFormatError
from labeltool.core.formats.common import list_images
from labeltool.core.labels import ImageRecord, LabelSet, Report


def read_folder(root: Path) -> tuple[LabelSet, Report]:
    """Read a folder of images, recursively, into a ``LabelSet`` without classes or boxes.

    ``file_name`` is the '/'-separated path relative to ``root``; ``source`` the absolute path;
    ``width``/``height`` stay ``None`` (the project store reads them from the images) and ``split`` is
    ``None``. Raises ``ImportFormatError`` when ``root`` is not a folder or holds no images.
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise ImportFormatError(f"{root} is not a folder. Pick the folder that holds your images.")
    images = list_images(root)
    if not images:
        raise ImportFormatError(
            f"no images found in {root} or its subfolders (looked for {', '.join(config.IMAGE_EXTENSIONS)}). "
            "Pick the folder that holds your images."
        )
    records = [
        ImageRecord(file_name=p.relative_to(root).as_posix(), source=p, labeled=False) for p in images
    ]
    return LabelSet(classes=[], images=records), Report()
