"""Tests for the COCO reader/writer (labeltool.core.formats.coco)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labeltool.core.errors import ExportError, ImportFormatError
from labeltool.core.formats import read_coco, write_coco
from labeltool.core.labels import BoxRecord, ImageRecord, LabelSet, Report


def _dataset(root: Path, make_image, *, images_dir: str = "") -> dict[str, Any]:
    """Three images (40x30, 50x40, sub/c 64x48) and a COCO dict with category ids 3 and 7."""
    base = root / images_dir if images_dir else root
    make_image(base / "a.png", size=(40, 30))
    make_image(base / "b.png", size=(50, 40))
    make_image(base / "sub" / "c.png", size=(64, 48))
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.png", "width": 50, "height": 40},
            {"id": 3, "file_name": "sub/c.png", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1.25, 2.5, 10.125, 8.0625]},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [20, 10, 15.5, 12.3333]},
            {"id": 3, "image_id": 3, "category_id": 3, "bbox": [0.0004, 0, 64, 48]},
        ],
        "categories": [{"id": 7, "name": "scratch"}, {"id": 3, "name": "dent"}],
    }


def _write(root: Path, doc: dict[str, Any], name: str = "annotations.json") -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _entries(report: Report) -> list[tuple[str, str, str]]:
    return [(e.severity, e.file, e.field) for e in report.entries]


def test_read_converts_xywh_to_xyxy_and_keeps_images_without_boxes(tmp_path: Path, make_image) -> None:
    labels, report = read_coco(_write(tmp_path, _dataset(tmp_path, make_image)))
    assert report.entries == []
    assert labels.classes == ["dent", "scratch"]  # category id order, not file order
    assert [i.file_name for i in labels.images] == ["a.png", "b.png", "sub/c.png"]
    a, b, c = labels.images
    assert a.source == tmp_path / "a.png" and (a.width, a.height) == (40, 30) and a.split is None
    assert a.boxes[0] == BoxRecord("scratch", 1.25, 2.5, 11.375, 10.5625)
    assert a.boxes[1].label == "dent"
    assert b.boxes == []
    assert c.boxes == [BoxRecord("dent", 0.0004, 0.0, 64.0, 48.0)]


def test_round_trip_is_lossless(tmp_path: Path, make_image, assert_same_labels) -> None:
    first, _ = read_coco(_write(tmp_path / "src", _dataset(tmp_path / "src", make_image)))
    assert write_coco(first, tmp_path / "out").entries == []
    second, report = read_coco(tmp_path / "out" / "annotations.json")
    assert report.entries == []
    assert all(i.source.is_relative_to(tmp_path / "out" / "images") for i in second.images)
    assert_same_labels(first, second, tol=1e-3)
    third_dir = tmp_path / "out2"
    write_coco(second, third_dir)
    assert_same_labels(first, read_coco(third_dir / "annotations.json")[0], tol=1e-3)


def test_write_layout_ids_and_rounding(tmp_path: Path, make_image) -> None:
    a = make_image(tmp_path / "src" / "a.png", size=(40, 30))
    labels = LabelSet(
        classes=["dent", "scratch", "unused"],
        images=[ImageRecord("sub/a.png", source=a, width=40, height=30,
                            boxes=[BoxRecord("scratch", 1.23456, 2, 11.00049, 10)])],
    )
    write_coco(labels, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert (tmp_path / "out" / "images" / "sub" / "a.png").read_bytes() == a.read_bytes()
    assert doc["categories"] == [{"id": 1, "name": "dent", "supercategory": ""},
                                 {"id": 2, "name": "scratch", "supercategory": ""},
                                 {"id": 3, "name": "unused", "supercategory": ""}]
    assert doc["images"] == [{"id": 1, "file_name": "sub/a.png", "width": 40, "height": 30}]
    [ann] = doc["annotations"]
    assert ann["category_id"] == 2 and ann["image_id"] == 1 and ann["iscrowd"] == 0
    assert ann["bbox"] == [1.235, 2.0, 9.765, 8.0]


def test_json_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "images": [],\n  "categories": [,]\n}\n')
    with pytest.raises(ImportFormatError, match=r"broken\.json.*line 3, column 18"):
        read_coco(path)


@pytest.mark.parametrize("doc", [[], {"annotations": []}, {"images": [], "annotations": []}])
def test_not_coco_raises(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ImportFormatError, match="x.json"):
        read_coco(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="does not exist"):
        read_coco(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"category_id": 99}, "annotations[1].category_id", "not in 'categories'"),
        ({"category_id": None}, "annotations[1].category_id", "not in 'categories'"),
        ({"image_id": 42}, "annotations[1].image_id", "not in 'images'"),
        ({"bbox": [1, 2, 3]}, "annotations[1].bbox", "list of 4 numbers"),
        ({"bbox": "1,2,3,4"}, "annotations[1].bbox", "list of 4 numbers"),
        ({"bbox": [1, "x", 3, 4]}, "annotations[1].bbox", "not a number"),
        ({"bbox": [1, None, 3, 4]}, "annotations[1].bbox", "not a number"),
        ({"bbox": [float("nan"), 2, 3, 4]}, "annotations[1].bbox", "NaN"),
        ({"bbox": [1, 2, float("inf"), 4]}, "annotations[1].bbox", "infinite"),
        ({"bbox": [1, 2, 0, 4]}, "annotations[1].bbox", "zero or negative"),
        ({"bbox": [1, 2, 5, -4]}, "annotations[1].bbox", "zero or negative"),
        ({"bbox": [45, 2, 5, 5]}, "annotations[1].bbox", "entirely outside"),
        ({"bbox": [39.5, 2, 5, 5]}, "annotations[1].bbox", "smaller than"),
    ],
)
def test_bad_annotation_is_reported_and_skipped(
    tmp_path: Path, make_image, change: dict[str, Any], field: str, words: str
) -> None:
    doc = _dataset(tmp_path, make_image)
    doc["annotations"][1].update(change)
    labels, report = read_coco(_write(tmp_path, doc))
    [entry] = report.entries
    assert (entry.severity, entry.file, entry.field) == ("error", "annotations.json", field)
    assert words in entry.message and "skipped" in entry.message
    assert [len(i.boxes) for i in labels.images] == [1, 0, 1]  # the good boxes are still there


def test_missing_category_id_is_reported(tmp_path: Path, make_image) -> None:
    doc = _dataset(tmp_path, make_image)
    del doc["annotations"][0]["category_id"]
    labels, report = read_coco(_write(tmp_path, doc))
    assert _entries(report) == [("error", "annotations.json", "annotations[0].category_id")]
    assert "missing" in report.entries[0].message
    assert [len(i.boxes) for i in labels.images] == [1, 0, 1]


def test_box_outside_image_is_clipped_with_warning(tmp_path: Path, make_image) -> None:
    doc = _dataset(tmp_path, make_image)
    doc["annotations"][0]["bbox"] = [-5, 2, 20, 40]  # x -5..15, y 2..42 on a 40x30 image
    doc["annotations"][2]["bbox"] = [-0.3, 0, 64.5, 48.2]  # within CLIP_TOLERANCE_PX: silent
    labels, report = read_coco(_write(tmp_path, doc))
    assert _entries(report) == [("warning", "annotations.json", "annotations[0].bbox")]
    assert "clipped" in report.entries[0].message
    assert labels.images[0].boxes[0] == BoxRecord("scratch", 0.0, 2.0, 15.0, 30.0)
    assert labels.images[2].boxes[0] == BoxRecord("dent", 0.0, 0.0, 64.0, 48.0)


def test_missing_image_file_skips_record_and_its_boxes(tmp_path: Path, make_image) -> None:
    doc = _dataset(tmp_path, make_image)
    (tmp_path / "a.png").unlink()
    labels, report = read_coco(_write(tmp_path, doc))
    assert _entries(report) == [("error", "annotations.json", "images[0].file_name")]
    assert "not found" in report.entries[0].message
    assert [i.file_name for i in labels.images] == ["b.png", "sub/c.png"]


def test_duplicate_image_entries_error_on_the_second(tmp_path: Path, make_image) -> None:
    doc = _dataset(tmp_path, make_image)
    doc["images"].append({"id": 9, "file_name": "a.png", "width": 40, "height": 30})
    doc["images"].append({"id": 2, "file_name": "other.png", "width": 40, "height": 30})
    doc["annotations"].append({"id": 4, "image_id": 9, "category_id": 3, "bbox": [1, 1, 5, 5]})
    labels, report = read_coco(_write(tmp_path, doc))
    assert _entries(report) == [("error", "annotations.json", "images[3].file_name"),
                                ("error", "annotations.json", "images[4].id")]
    assert [i.file_name for i in labels.images] == ["a.png", "b.png", "sub/c.png"]
    assert len(labels.images[0].boxes) == 2


@pytest.mark.parametrize("style", ["dotdot", "absolute", "backslash", "drive"])
def test_path_traversal_is_refused_and_nothing_outside_is_read(tmp_path: Path, make_image, style: str) -> None:
    root = tmp_path / "dataset"
    doc = _dataset(root, make_image)
    secret = make_image(tmp_path / "secret.png", size=(40, 30))
    name = {"dotdot": "../secret.png", "absolute": str(secret), "backslash": "..\\secret.png",
            "drive": "C:\\secret.png"}[style]
    doc["images"].append({"id": 4, "file_name": name, "width": 40, "height": 30})
    doc["annotations"].append({"id": 4, "image_id": 4, "category_id": 3, "bbox": [1, 1, 5, 5]})
    labels, report = read_coco(_write(root, doc))
    assert _entries(report) == [("error", "annotations.json", "images[3].file_name")]
    assert [i.file_name for i in labels.images] == ["a.png", "b.png", "sub/c.png"]
    assert all(i.source.is_relative_to(root) for i in labels.images)
    out = write_coco(labels, tmp_path / "out")
    assert out.entries == []
    assert not list((tmp_path / "out").rglob("secret*"))


def test_polygon_only_annotation_gets_derived_bbox(tmp_path: Path, make_image) -> None:
    doc = _dataset(tmp_path, make_image)
    del doc["annotations"][0]["bbox"]
    doc["annotations"][0]["segmentation"] = [[2, 3, 12, 3, 12, 9, 2, 9]]
    doc["annotations"][1]["bbox"] = []
    doc["annotations"][1]["segmentation"] = {"counts": "abc", "size": [30, 40]}  # RLE: no polygon
    labels, report = read_coco(_write(tmp_path, doc))
    assert _entries(report) == [("warning", "annotations.json", "annotations[0].bbox"),
                                ("error", "annotations.json", "annotations[1].bbox")]
    assert labels.images[0].boxes == [BoxRecord("scratch", 2.0, 3.0, 12.0, 9.0)]


def test_iscrowd_is_kept_with_warning(tmp_path: Path, make_image) -> None:
    doc = _dataset(tmp_path, make_image)
    doc["annotations"][0]["iscrowd"] = 1
    labels, report = read_coco(_write(tmp_path, doc))
    assert _entries(report) == [("warning", "annotations.json", "annotations[0].iscrowd")]
    assert len(labels.images[0].boxes) == 2


def test_bad_category_entries_are_reported(tmp_path: Path, make_image) -> None:
    doc = _dataset(tmp_path, make_image)
    doc["categories"] += [{"id": 8}, {"name": "x"}, {"id": 7, "name": "again"}, "junk"]
    labels, report = read_coco(_write(tmp_path, doc))
    assert _entries(report) == [("error", "annotations.json", "categories[2].name"),
                                ("error", "annotations.json", "categories[3].id"),
                                ("error", "annotations.json", "categories[4].id"),
                                ("error", "annotations.json", "categories[5]")]
    assert labels.classes == ["dent", "scratch"]


def test_missing_size_is_read_from_the_image(tmp_path: Path, make_image) -> None:
    doc = _dataset(tmp_path, make_image)
    del doc["images"][1]["width"]
    doc["images"][2]["height"] = 0
    labels, report = read_coco(_write(tmp_path, doc))
    assert _entries(report) == [("warning", "annotations.json", "images[1].width"),
                                ("warning", "annotations.json", "images[2].width")]
    assert [(i.width, i.height) for i in labels.images] == [(40, 30), (50, 40), (64, 48)]


def test_images_folder_fallback_and_explicit_root(tmp_path: Path, make_image) -> None:
    doc = _dataset(tmp_path, make_image, images_dir="images")
    labels, report = read_coco(_write(tmp_path, doc))
    assert report.entries == [] and labels.images[0].source == tmp_path / "images" / "a.png"
    cvat, _ = read_coco(_write(tmp_path, doc, "annotations/instances_default.json"))
    assert cvat.images[0].source == tmp_path / "images" / "a.png"
    wrong, report = read_coco(tmp_path / "annotations.json", image_root=tmp_path / "elsewhere")
    assert wrong.images == [] and len(report.errors) == 3


def test_missing_annotations_list_is_a_warning(tmp_path: Path, make_image) -> None:
    doc = _dataset(tmp_path, make_image)
    del doc["annotations"]
    labels, report = read_coco(_write(tmp_path, doc))
    assert _entries(report) == [("warning", "annotations.json", "annotations")]
    assert len(labels.images) == 3 and all(not i.boxes for i in labels.images)


def test_writer_refuses_non_empty_dest(tmp_path: Path, make_image) -> None:
    labels, _ = read_coco(_write(tmp_path / "src", _dataset(tmp_path / "src", make_image)))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="empty folder"):
        write_coco(labels, dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_writer_reports_missing_source(tmp_path: Path, make_image) -> None:
    a = make_image(tmp_path / "a.png")
    labels = LabelSet(classes=["x"], images=[ImageRecord("a.png", source=a, width=40, height=30),
                                             ImageRecord("b.png", source=tmp_path / "b.png", width=4, height=3)])
    report = write_coco(labels, tmp_path / "out")
    assert _entries(report) == [("error", "b.png", "source")]
    doc = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [i["file_name"] for i in doc["images"]] == ["a.png"]


def test_relative_json_path_gives_absolute_sources(tmp_path: Path, make_image, monkeypatch) -> None:
    _write(tmp_path / "ds", _dataset(tmp_path / "ds", make_image))
    monkeypatch.chdir(tmp_path)
    labels, _ = read_coco(Path("ds/annotations.json"))
    assert labels.images[0].source == tmp_path / "ds" / "a.png"
