"""Tests for labeltool.core.formats.common: safe paths, numbers, box checks, export helpers."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import pytest

from labeltool.core import config
from labeltool.core.errors import ExportError
from labeltool.core.formats.common import (
    check_box,
    copy_image,
    export_images,
    list_images,
    parse_number,
    parse_size,
    prepare_dest,
    read_image_info,
    safe_relpath,
    write_text_atomic,
)
from labeltool.core.labels import BoxRecord, ImageRecord, LabelSet, Report


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jpg", "a.jpg"),
        ("sub/a.jpg", "sub/a.jpg"),
        ("./sub//a.jpg", "sub/a.jpg"),
        ("sub\\a.jpg", "sub/a.jpg"),
        ("12:30:00.jpg", "12:30:00.jpg"),
        ("a..b.jpg", "a..b.jpg"),
    ],
)
def test_safe_relpath_accepts_relative_names(name: str, expected: str) -> None:
    assert safe_relpath(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "..\\..\\x.jpg",
        "C:\\x.jpg",
        "c:x.jpg",
        "\\\\server\\share\\x.jpg",
        "sub/../../x.jpg",
        "sub/..",
        "",
        "   ",
        ".",
        "a\x00.jpg",
        None,
        17,
    ],
)
def test_safe_relpath_refuses_unsafe_names(name: object) -> None:
    with pytest.raises(ValueError):
        safe_relpath(name)


@pytest.mark.parametrize(("value", "expected"), [(2, 2.0), (1.5, 1.5), (" 3.25 ", 3.25), ("-1e2", -100.0)])
def test_parse_number_accepts_numbers(value: object, expected: float) -> None:
    assert parse_number(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [("abc", "not a number"), (None, "not a number"), (True, "not a number"), ([1], "not a number"),
     (math.nan, "NaN"), ("nan", "NaN"), (math.inf, "infinite"), ("-inf", "infinite")],
)
def test_parse_number_refuses_bad_values(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_number(value)


@pytest.mark.parametrize(("value", "expected"), [(640, 640), ("480", 480), (32.0, 32), (0, None), (-5, None),
                                                 (12.5, None), ("x", None), (None, None)])
def test_parse_size(value: object, expected: int | None) -> None:
    assert parse_size(value) == expected


def _check(x1: float, y1: float, x2: float, y2: float, width: int | None = 100,
           height: int | None = 50) -> tuple[BoxRecord | None, Report]:
    report = Report()
    box = check_box("c", x1, y1, x2, y2, width=width, height=height, report=report, file="f.json", field="b")
    return box, report


def test_check_box_keeps_valid_box_unchanged() -> None:
    box, report = _check(10.5, 5, 20, 40)
    assert box == BoxRecord("c", 10.5, 5.0, 20.0, 40.0)
    assert report.entries == []


def test_check_box_clips_tiny_overshoot_silently() -> None:
    box, report = _check(-0.3, 0, 100.4, 50)
    assert box == BoxRecord("c", 0.0, 0.0, 100.0, 50.0)
    assert report.entries == []


def test_check_box_clips_large_overshoot_with_warning() -> None:
    box, report = _check(-10, 5, 120, 60)
    assert box == BoxRecord("c", 0.0, 5.0, 100.0, 50.0)
    [entry] = report.entries
    assert (entry.severity, entry.file, entry.field) == ("warning", "f.json", "b")
    assert "clipped" in entry.message and "20.0 px" in entry.message


@pytest.mark.parametrize(
    ("coords", "words"),
    [((10, 5, 10, 20), "zero or negative"), ((10, 20, 30, 5), "zero or negative"),
     ((150, 5, 160, 20), "entirely outside"), ((-30, 5, -1, 20), "entirely outside"),
     ((99.5, 5, 130, 20), "smaller than"), ((10, 5, 10.5, 20), "smaller than")],
)
def test_check_box_errors(coords: tuple[float, float, float, float], words: str) -> None:
    box, report = _check(*coords)
    assert box is None
    [entry] = report.entries
    assert entry.severity == "error" and words in entry.message and "skipped" in entry.message


def test_check_box_without_image_size_does_not_clip() -> None:
    box, report = _check(-10, -10, 500, 500, width=None, height=None)
    assert box == BoxRecord("c", -10.0, -10.0, 500.0, 500.0)
    assert report.entries == []


def test_min_box_side_is_config_value() -> None:
    side = config.MIN_BOX_SIDE_PX
    assert _check(10, 10, 10 + side, 10 + side)[0] is not None
    assert _check(10, 10, 10 + side * 0.99, 10 + side)[0] is None


def test_read_image_info_applies_exif_rotation(tmp_path: Path, make_image) -> None:
    plain = make_image(tmp_path / "a.jpg", size=(40, 30))
    rotated = make_image(tmp_path / "b.jpg", size=(40, 30), exif_orientation=6)
    gray = make_image(tmp_path / "c.png", size=(8, 4), mode="L")
    assert read_image_info(plain) == (40, 30, 3)
    assert read_image_info(rotated) == (30, 40, 3)
    assert read_image_info(gray) == (8, 4, 1)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not an image"):
        read_image_info(tmp_path / "bad.png")


def test_list_images_recursive_sorted_skips_hidden(tmp_path: Path, make_image) -> None:
    for name in ("b.png", "a.JPG", "sub/c.png", ".hidden/d.png", "._e.png", "notes.txt"):
        if name.endswith("txt"):
            (tmp_path / name).write_text("x")
        else:
            make_image(tmp_path / name)
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a.JPG", "b.png", "sub/c.png"]


def test_prepare_dest(tmp_path: Path) -> None:
    assert prepare_dest(tmp_path / "new" / "deeper").is_dir()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_dest(empty) == empty
    (empty / "x.txt").write_text("x")
    with pytest.raises(ExportError, match="empty folder"):
        prepare_dest(empty)
    with pytest.raises(ExportError, match="is a file"):
        prepare_dest(empty / "x.txt")


def test_write_text_atomic_leaves_no_temp_and_honours_umask(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    write_text_atomic(target, "one\n")
    write_text_atomic(target, "two\n")
    assert target.read_text() == "two\n"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_copy_image_makes_copy_writable(tmp_path: Path, make_image) -> None:
    src = make_image(tmp_path / "src.png")
    src.chmod(0o444)
    copy_image(src, tmp_path / "out" / "x" / "dst.png")
    dst = tmp_path / "out" / "x" / "dst.png"
    assert dst.read_bytes() == src.read_bytes()
    assert dst.stat().st_mode & stat.S_IWUSR


def test_export_images_reports_and_skips_bad_records(tmp_path: Path, make_image) -> None:
    a = make_image(tmp_path / "a.png", size=(40, 30))
    labels = LabelSet(
        classes=["ok"],
        images=[
            ImageRecord("a.png", source=a, width=None, height=None,
                        boxes=[BoxRecord("ok", 1, 1, 10, 10), BoxRecord("nope", 1, 1, 10, 10),
                               BoxRecord("ok", 5, 5, 5, 9), BoxRecord("ok", 30, 20, 45, 35)]),
            ImageRecord("a.png", source=a, width=40, height=30),
            ImageRecord("../evil.png", source=a, width=40, height=30),
            ImageRecord("gone.png", source=tmp_path / "gone.png", width=40, height=30),
        ],
    )
    report = Report()
    out = export_images(labels, report)
    assert [i.file_name for i in out] == ["a.png"]
    assert (out[0].width, out[0].height) == (40, 30)
    assert out[0].boxes == [BoxRecord("ok", 1, 1, 10, 10), BoxRecord("ok", 30, 20, 40, 30)]
    got = [(e.severity, e.file, e.field) for e in report.entries]
    assert got == [
        ("error", "a.png", "boxes[1]"), ("error", "a.png", "boxes[2]"), ("warning", "a.png", "boxes[3]"),
        ("error", "a.png", "file_name"), ("error", "../evil.png", "file_name"), ("error", "gone.png", "source"),
    ]


@pytest.mark.parametrize("classes", [["a", "a"], ["a", ""], ["a\nb"]])
def test_export_images_refuses_bad_class_lists(classes: list[str]) -> None:
    with pytest.raises(ValueError, match="class name"):
        export_images(LabelSet(classes=classes), Report())
