"""Tests for the plain image folder reader (labeltool.core.formats.folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeltool.core.errors import ImportFormatError
from labeltool.core.formats import read_folder


def test_reads_images_recursively_without_boxes(tmp_path: Path, make_image) -> None:
    for name in ("b.png", "A.JPG", "line1/c.bmp", "line1/deep/d.tif", ".cache/x.png", "._b.png"):
        make_image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    labels, report = read_folder(tmp_path)
    assert report.entries == [] and labels.classes == []
    assert [i.file_name for i in labels.images] == ["A.JPG", "b.png", "line1/c.bmp", "line1/deep/d.tif"]
    for rec in labels.images:
        assert rec.source == tmp_path / rec.file_name and rec.source.is_absolute()
        assert (rec.boxes, rec.split, rec.width, rec.height) == ([], None, None, None)


def test_no_images_raises(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ImportFormatError, match="no images found"):
        read_folder(tmp_path)


def test_not_a_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="not a folder"):
        read_folder(tmp_path / "missing")


def test_relative_root_gives_absolute_sources(tmp_path: Path, make_image, monkeypatch) -> None:
    make_image(tmp_path / "ds" / "a.png")
    monkeypatch.chdir(tmp_path)
    labels, _ = read_folder(Path("ds"))
    assert labels.images[0].source == tmp_path / "ds" / "a.png"
