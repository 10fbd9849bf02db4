"""Fixtures for the annotation-format tests: tiny generated images and the shared DeepPCB sample."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from labeltool.core.labels import LabelSet

# tests/unit/core/formats/conftest.py -> parents[4] is the repository root; shared/ is its sibling.
DEEPPCB_DIR = Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "deeppcb"

MakeImage = Callable[..., Path]


@pytest.fixture
def make_image() -> MakeImage:
    """``make_image(path, size=(40, 30), mode="RGB", exif_orientation=None) -> path``: write a tiny image."""

    def _make(path: Path, size: tuple[int, int] = (40, 30), mode: str = "RGB",
              exif_orientation: int | None = None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        im = Image.new(mode, size, color=(90, 120, 150) if mode == "RGB" else 100)
        if exif_orientation is not None:
            exif = Image.Exif()
            exif[0x0112] = exif_orientation
            im.save(path, exif=exif)
        else:
            im.save(path)
        return path

    return _make


@pytest.fixture
def deeppcb_dir() -> Path:
    """The DeepPCB sample in ``<repo>/../shared/data/deeppcb``; skipped when absent (failed when
    LABELTOOL_REQUIRE_SHARED=1)."""
    path = DEEPPCB_DIR.resolve()
    if not (path / "data.yaml").is_file():
        message = f"shared DeepPCB sample not found at {path} (expected <repo>/../shared/data/deeppcb)"
        if os.environ.get("LABELTOOL_REQUIRE_SHARED") == "1":
            pytest.fail(message + " and LABELTOOL_REQUIRE_SHARED=1")
        pytest.skip(message)
    return path


def _same_labels(a: LabelSet, b: LabelSet, *, tol: float, splits: bool = True) -> None:
    """Assert ``b`` has the classes (in order), images, splits and boxes of ``a`` within ``tol`` px."""
    assert b.classes == a.classes
    assert [i.file_name for i in b.images] == [i.file_name for i in a.images]
    for x, y in zip(a.images, b.images, strict=True):
        assert (y.width, y.height) == (x.width, x.height), x.file_name
        if splits:
            assert y.split == x.split, x.file_name
        assert [bx.label for bx in y.boxes] == [bx.label for bx in x.boxes], x.file_name
        for p, q in zip(x.boxes, y.boxes, strict=True):
            err = max(abs(p.x1 - q.x1), abs(p.y1 - q.y1), abs(p.x2 - q.x2), abs(p.y2 - q.y2))
            assert err <= tol, (x.file_name, p, q)


@pytest.fixture
def assert_same_labels() -> Callable[..., None]:
    """``assert_same_labels(a, b, tol=..., splits=True)``: compare two label sets record by record."""
    return _same_labels
