"""Tests for the Pascal VOC reader/writer (labeltool.core.formats.voc)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labeltool.core.errors import ExportError, ImportFormatError
from labeltool.core.formats import read_voc, write_voc
from labeltool.core.labels import BoxRecord, ImageRecord, LabelSet, Report


def _xml(filename: str | None, objects: list[tuple[str, ...]], size: tuple[int, int] | None = (40, 30)) -> str:
    parts = ["<annotation><folder>JPEGImages</folder>"]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, *coords in objects:
        box = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), coords, strict=False))
        parts.append(f"<object><name>{name}</name><difficult>0</difficult><bndbox>{box}</bndbox></object>")
    return "".join(parts) + "</annotation>\n"


def _classic(root: Path, make_image) -> Path:
    """VOC layout: 000001 (2 boxes, train), 000002 (no boxes, val), 000003 (1 box, no split)."""
    for stem in ("000001", "000002", "000003"):
        make_image(root / "JPEGImages" / f"{stem}.jpg", size=(40, 30))
    ann = root / "Annotations"
    ann.mkdir(parents=True)
    (ann / "000001.xml").write_text(_xml("000001.jpg", [("dent", "1.5", "2", "20", "12.25"),
                                                         ("scratch", "0", "0", "40", "30")]))
    (ann / "000002.xml").write_text(_xml("000002.jpg", []))
    (ann / "000003.xml").write_text(_xml("000003.jpg", [("scratch", "5", "6", "7", "9")]))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("000001\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("000002\n")
    return root


def _entries(report: Report) -> list[tuple[str, str, str]]:
    return [(e.severity, e.file, e.field) for e in report.entries]


def test_read_classic_layout(tmp_path: Path, make_image) -> None:
    labels, report = read_voc(_classic(tmp_path, make_image))
    assert report.entries == []
    assert labels.classes == ["dent", "scratch"]  # first appearance
    assert [(i.file_name, i.split, i.width, i.height) for i in labels.images] == [
        ("000001.jpg", "train", 40, 30), ("000002.jpg", "val", 40, 30), ("000003.jpg", None, 40, 30)]
    assert labels.images[0].source == tmp_path / "JPEGImages" / "000001.jpg"
    assert labels.images[0].boxes == [BoxRecord("dent", 1.5, 2.0, 20.0, 12.25),
                                      BoxRecord("scratch", 0.0, 0.0, 40.0, 30.0)]


def test_round_trip_is_lossless(tmp_path: Path, make_image, assert_same_labels) -> None:
    src = _classic(tmp_path / "src", make_image)
    (src / "labels.txt").write_text("scratch\nunused\ndent\n")
    first, report = read_voc(src)
    assert report.entries == [] and first.classes == ["scratch", "unused", "dent"]
    assert write_voc(first, tmp_path / "out").entries == []
    second, report = read_voc(tmp_path / "out")
    assert report.entries == []
    assert_same_labels(first, second, tol=0.5)
    third_dir = tmp_path / "out2"
    write_voc(second, third_dir)
    assert_same_labels(second, read_voc(third_dir)[0], tol=0.0)  # integer corners are stable


def test_write_layout_and_rounding(tmp_path: Path, make_image) -> None:
    a = make_image(tmp_path / "a.png", size=(40, 30))
    labels = LabelSet(classes=["dent", "unused"], images=[
        ImageRecord("sub/a.png", source=a, width=40, height=30, split="val",
                    boxes=[BoxRecord("dent", 1.5, 2.49, 2.5, 3.5), BoxRecord("dent", 10.4, 0.0, 39.6, 29.5)]),
        ImageRecord("b.png", source=a, width=40, height=30),
    ])
    write_voc(labels, tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "labels.txt").read_text() == "dent\nunused\n"
    assert (out / "ImageSets" / "Main" / "val.txt").read_text() == "sub/a\n"
    assert not (out / "ImageSets" / "Main" / "train.txt").exists()
    assert (out / "JPEGImages" / "sub" / "a.png").read_bytes() == a.read_bytes()
    root = ET.parse(out / "Annotations" / "sub" / "a.xml").getroot()
    assert root.findtext("filename") == "a.png"
    assert (root.findtext("size/width"), root.findtext("size/height")) == ("40", "30")
    corners = [[int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
               for o in root.iter("object")]
    assert corners == [[2, 2, 3, 4], [10, 0, 40, 30]]  # half up: a >= 1 px box never collapses
    assert (out / "Annotations" / "b.xml").is_file()


def test_labelimg_layout_recursive(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "a.png", size=(40, 30))
    make_image(tmp_path / "line2" / "b.png", size=(40, 30))
    (tmp_path / "a.xml").write_text(_xml("a.png", [("spot", 1, 1, 5, 5)]))
    (tmp_path / "line2" / "b.xml").write_text(_xml("b.png", [("crack", 1, 1, 5, 5), ("spot", 2, 2, 6, 6)]))
    labels, report = read_voc(tmp_path)
    assert report.entries == []
    assert labels.classes == ["spot", "crack"]
    assert [(i.file_name, i.split) for i in labels.images] == [("a.png", None), ("line2/b.png", None)]


def test_labels_txt_order_and_unknown_class(tmp_path: Path, make_image) -> None:
    root = _classic(tmp_path, make_image)
    (root / "labels.txt").write_text("scratch\n\nextra\n")
    labels, report = read_voc(root)
    assert labels.classes == ["scratch", "extra", "dent"]
    assert _entries(report) == [("warning", "Annotations/000001.xml", "object[1].name")]


def test_filename_fallbacks(tmp_path: Path, make_image) -> None:
    root = _classic(tmp_path, make_image)
    (root / "Annotations" / "000002.xml").write_text(_xml(None, []))
    (root / "Annotations" / "000003.xml").write_text(_xml("renamed.jpg", [("scratch", 5, 6, 7, 9)]))
    labels, report = read_voc(root)
    assert _entries(report) == [("warning", "Annotations/000003.xml", "filename")]
    assert [i.file_name for i in labels.images] == ["000001.jpg", "000002.jpg", "000003.jpg"]


@pytest.mark.parametrize("style", ["dotdot", "absolute", "backslash"])
def test_path_traversal_is_refused(tmp_path: Path, make_image, style: str) -> None:
    root = _classic(tmp_path / "ds", make_image)
    secret = make_image(tmp_path / "secret.jpg", size=(40, 30))
    name = {"dotdot": "../../secret.jpg", "absolute": str(secret), "backslash": "..\\..\\secret.jpg"}[style]
    (root / "Annotations" / "000003.xml").write_text(_xml(name, [("scratch", 5, 6, 7, 9)]))
    labels, report = read_voc(root)
    assert _entries(report) == [("error", "Annotations/000003.xml", "filename")]
    assert [i.file_name for i in labels.images] == ["000001.jpg", "000002.jpg"]
    assert all(i.source.is_relative_to(root) for i in labels.images)


def test_missing_image_and_malformed_xml(tmp_path: Path, make_image) -> None:
    root = _classic(tmp_path, make_image)
    (root / "JPEGImages" / "000002.jpg").unlink()
    (root / "Annotations" / "000003.xml").write_text("<annotation><filename>000003.jpg</filename>\n<size>")
    (root / "Annotations" / "000004.xml").write_text("<other/>")
    labels, report = read_voc(root)
    assert _entries(report) == [("error", "Annotations/000002.xml", "filename"),
                                ("error", "Annotations/000003.xml", ""),
                                ("error", "Annotations/000004.xml", "")]
    assert "not found" in report.entries[0].message
    assert "line 2" in report.entries[1].message
    assert [i.file_name for i in labels.images] == ["000001.jpg"]


@pytest.mark.parametrize(
    ("obj", "field", "words"),
    [(("dent", "abc", 2, 9, 9), "object[1].bndbox.xmin", "not a number"),
     (("dent", 1, "nan", 9, 9), "object[1].bndbox.ymin", "NaN"),
     (("dent", 1, 2, "inf", 9), "object[1].bndbox.xmax", "infinite"),
     (("dent", 1, 2, 9), "object[1].bndbox.ymax", "<ymax> is missing"),
     (("dent", 5, 2, 5, 9), "object[1].bndbox", "zero or negative"),
     (("dent", 50, 2, 60, 9), "object[1].bndbox", "entirely outside"),
     (("", 1, 2, 9, 9), "object[1].name", "missing")],
)
def test_bad_object_is_reported_and_skipped(
    tmp_path: Path, make_image, obj: tuple[str, ...], field: str, words: str
) -> None:
    root = _classic(tmp_path, make_image)
    (root / "Annotations" / "000003.xml").write_text(_xml("000003.jpg", [obj, ("scratch", 5, 6, 7, 9)]))
    labels, report = read_voc(root)
    [entry] = report.entries
    assert (entry.severity, entry.file, entry.field) == ("error", "Annotations/000003.xml", field)
    assert words in entry.message
    assert labels.images[2].boxes == [BoxRecord("scratch", 5.0, 6.0, 7.0, 9.0)]


def test_box_outside_is_clipped_and_missing_size_is_read(tmp_path: Path, make_image) -> None:
    root = _classic(tmp_path, make_image)
    (root / "Annotations" / "000003.xml").write_text(_xml("000003.jpg", [("scratch", -4, 6, 45, 9)], size=None))
    labels, report = read_voc(root)
    assert _entries(report) == [("warning", "Annotations/000003.xml", "size"),
                                ("warning", "Annotations/000003.xml", "object[1].bndbox")]
    assert labels.images[2].boxes == [BoxRecord("scratch", 0.0, 6.0, 40.0, 9.0)]


def test_duplicate_image_is_reported_on_the_second_file(tmp_path: Path, make_image) -> None:
    root = _classic(tmp_path, make_image)
    (root / "Annotations" / "000004.xml").write_text(_xml("000001.jpg", [("dent", 1, 1, 5, 5)]))
    labels, report = read_voc(root)
    assert _entries(report) == [("error", "Annotations/000004.xml", "filename")]
    assert [len(i.boxes) for i in labels.images] == [2, 0, 1]


def test_no_xml_raises(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "a.png")
    with pytest.raises(ImportFormatError, match="no .xml"):
        read_voc(tmp_path)
    with pytest.raises(ImportFormatError, match="not a folder"):
        read_voc(tmp_path / "a.png")


def test_writer_refuses_non_empty_dest(tmp_path: Path, make_image) -> None:
    labels, _ = read_voc(_classic(tmp_path / "src", make_image))
    (tmp_path / "dest" / "sub").mkdir(parents=True)
    with pytest.raises(ExportError, match="empty folder"):
        write_voc(labels, tmp_path / "dest")
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["sub"]


def test_relative_root_gives_absolute_sources(tmp_path: Path, make_image, monkeypatch) -> None:
    _classic(tmp_path / "ds", make_image)
    monkeypatch.chdir(tmp_path)
    labels, _ = read_voc(Path("ds"))
    assert labels.images[0].source == tmp_path / "ds" / "JPEGImages" / "000001.jpg"
