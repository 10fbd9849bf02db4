"""Tests for labeltool.core.formats.detect_format on each dataset layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeltool.core.errors import ImportFormatError
from labeltool.core.formats import READERS, detect_format


def test_coco_file_and_folders(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "images" / "a.png")
    (tmp_path / "result.json").write_text("{}")
    assert detect_format(tmp_path / "result.json") == "coco"
    assert detect_format(tmp_path) == "coco"
    cvat = tmp_path / "cvat"
    (cvat / "annotations").mkdir(parents=True)
    (cvat / "annotations" / "instances_default.json").write_text("{}")
    make_image(cvat / "images" / "a.png")
    assert detect_format(cvat) == "coco"


def test_yolo_yaml_and_folder(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "images" / "train" / "a.png")
    (tmp_path / "data.yaml").write_text("train: images/train\nnames: [a]\n")
    (tmp_path / "stray.json").write_text("{}")  # data.yaml is the stronger sign
    assert detect_format(tmp_path) == "yolo"
    assert detect_format(tmp_path / "data.yaml") == "yolo"


def test_voc_classic_and_labelimg(tmp_path: Path, make_image) -> None:
    (tmp_path / "voc" / "Annotations").mkdir(parents=True)
    assert detect_format(tmp_path / "voc") == "voc"
    make_image(tmp_path / "li" / "sub" / "a.png")
    (tmp_path / "li" / "sub" / "a.xml").write_text("<annotation/>")
    assert detect_format(tmp_path / "li") == "voc"


def test_plain_folder(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "sub" / "a.png")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.xml").write_text("<annotation/>")
    assert detect_format(tmp_path) == "folder"


@pytest.mark.parametrize(
    ("layout", "words"),
    [({"a.json": "{}", "b.json": "{}"}, "several .json"), ({"a.xml": "<a/>", "b.json": "{}"}, "both"),
     ({"notes.txt": "x"}, "no images"), ({}, "no images")],
)
def test_unclear_folders_raise(tmp_path: Path, layout: dict[str, str], words: str) -> None:
    for name, text in layout.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ImportFormatError, match=words):
        detect_format(tmp_path)


def test_missing_or_unknown_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="does not exist"):
        detect_format(tmp_path / "nope")
    (tmp_path / "labels.csv").write_text("x")
    with pytest.raises(ImportFormatError, match="not a COCO"):
        detect_format(tmp_path / "labels.csv")


def test_every_detected_name_has_a_reader() -> None:
    assert set(READERS) == {"coco", "yolo", "voc", "folder"}
