"""Tests for the YOLO reader/writer (labeltool.core.formats.yolo)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from labeltool.core.errors import ExportError, ImportFormatError
from labeltool.core.formats import read_yolo, write_yolo
from labeltool.core.formats.yolo import label_path_for
from labeltool.core.labels import BoxRecord, ImageRecord, LabelSet, Report

DATA_YAML = "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: scratch\n  1: dent\n"


def _ultralytics(root: Path, make_image, labels: dict[str, str] | None = None) -> Path:
    """images/{train,val} with a.png (100x50), b.png (80x40, no label file), val/c.png (64x64)."""
    make_image(root / "images" / "train" / "a.png", size=(100, 50))
    make_image(root / "images" / "train" / "b.png", size=(80, 40))
    make_image(root / "images" / "val" / "c.png", size=(64, 64))
    files = {"train/a": "0 0.5 0.5 0.2 0.4\n1 0.25 0.25 0.1 0.1\n", "val/c": "1 0.5 0.5 0.5 0.5\n"}
    files.update(labels or {})
    for stem, text in files.items():
        path = root / "labels" / f"{stem}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "data.yaml").write_text(DATA_YAML)
    return root


def _entries(report: Report) -> list[tuple[str, str, str]]:
    return [(e.severity, e.file, e.field) for e in report.entries]


def test_read_ultralytics_layout(tmp_path: Path, make_image) -> None:
    labels, report = read_yolo(_ultralytics(tmp_path, make_image) / "data.yaml")
    assert report.entries == []
    assert labels.classes == ["scratch", "dent"]
    assert [(i.file_name, i.split, i.width, i.height) for i in labels.images] == [
        ("train/a.png", "train", 100, 50), ("train/b.png", "train", 80, 40), ("val/c.png", "val", 64, 64)]
    a, b, c = labels.images
    assert a.source == tmp_path / "images" / "train" / "a.png"
    assert a.boxes == [BoxRecord("scratch", 40.0, 15.0, 60.0, 35.0), BoxRecord("dent", 20.0, 10.0, 30.0, 15.0)]
    assert b.boxes == []  # no label file: no boxes, not an error
    assert c.boxes == [BoxRecord("dent", 16.0, 16.0, 48.0, 48.0)]


def test_directory_argument_and_list_names(tmp_path: Path, make_image) -> None:
    root = _ultralytics(tmp_path, make_image)
    (root / "data.yaml").write_text("train: images/train\nval: [images/val]\nnames: [scratch, dent]\n")
    labels, report = read_yolo(root)
    assert report.entries == [] and labels.classes == ["scratch", "dent"] and len(labels.images) == 3


def test_round_trip_is_lossless(tmp_path: Path, make_image, assert_same_labels) -> None:
    first, _ = read_yolo(_ultralytics(tmp_path / "src", make_image,
                                      {"train/b": "1 0.123457 0.654321 0.111111 0.222222\n"}))
    assert write_yolo(first, tmp_path / "out").entries == []
    second, report = read_yolo(tmp_path / "out")
    assert report.entries == []
    assert_same_labels(first, second, tol=1e-3)
    assert all(i.source.is_relative_to(tmp_path / "out") for i in second.images)


def test_write_layout(tmp_path: Path, make_image) -> None:
    a = make_image(tmp_path / "a.png", size=(100, 50))
    labels = LabelSet(classes=["scratch", "dent", "unused"], images=[
        ImageRecord("a.png", source=a, width=100, height=50, boxes=[BoxRecord("dent", 10, 5, 30.5, 25)]),
        ImageRecord("sub/b.png", source=a, width=100, height=50, split="train"),
    ])
    write_yolo(labels, tmp_path / "out")
    out = tmp_path / "out"
    doc = yaml.safe_load((out / "data.yaml").read_text())
    assert doc["path"] == "." and doc["train"] == "images/train"
    assert doc["val"] == "images/train"  # no val images
    assert "test" not in doc
    assert doc["names"] == {0: "scratch", 1: "dent", 2: "unused"}
    assert (out / "labels" / "train" / "a.txt").read_text() == "1 0.202500 0.300000 0.205000 0.400000\n"
    assert (out / "labels" / "train" / "sub" / "b.txt").read_text() == ""
    assert (out / "images" / "train" / "sub" / "b.png").read_bytes() == a.read_bytes()


def test_write_keeps_splits_and_test(tmp_path: Path, make_image) -> None:
    a = make_image(tmp_path / "a.png")
    labels = LabelSet(classes=["x"], images=[ImageRecord(f"{s}/{s}.png", source=a, width=40, height=30, split=s)
                                             for s in ("train", "val", "test")])
    write_yolo(labels, tmp_path / "out")
    doc = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert (doc["val"], doc["test"]) == ("images/val", "images/test")
    back, _ = read_yolo(tmp_path / "out")
    assert [(i.file_name, i.split) for i in back.images] == [
        ("train/train.png", "train"), ("val/val.png", "val"), ("test/test.png", "test")]


def test_roboflow_layout(tmp_path: Path, make_image) -> None:
    for split in ("train", "valid"):
        make_image(tmp_path / split / "images" / "x.png", size=(40, 40))
        (tmp_path / split / "labels").mkdir(parents=True)
        (tmp_path / split / "labels" / "x.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 1\nnames: ['d']\n")
    labels, report = read_yolo(tmp_path / "data.yaml")
    assert report.entries == []
    assert [(i.file_name, i.split) for i in labels.images] == [
        ("train/images/x.png", "train"), ("valid/images/x.png", "val")]
    assert labels.images[1].boxes == [BoxRecord("d", 10.0, 10.0, 30.0, 30.0)]
    write_yolo(labels, tmp_path / "out")
    assert (tmp_path / "out" / "images" / "val" / "x.png").is_file()
    assert (tmp_path / "out" / "labels" / "val" / "x.txt").is_file()


def test_path_key_and_txt_image_list(tmp_path: Path, make_image) -> None:
    root = tmp_path / "ds"
    _ultralytics(root / "data", make_image)
    secret = make_image(tmp_path / "secret.png")
    (root / "data" / "train.txt").write_text(
        f"./images/train/a.png\nimages/train/b.png\nimages/train/gone.png\n../../secret.png\n{secret}\n"
        "labels/train/a.txt\n")
    (root / "cfg").mkdir()
    (root / "cfg" / "data.yaml").write_text("path: ../data\ntrain: train.txt\nnames: [scratch, dent]\n")
    labels, report = read_yolo(root / "cfg" / "data.yaml")
    assert [i.file_name for i in labels.images] == ["train/a.png", "train/b.png"]
    assert len(labels.images[0].boxes) == 2
    assert _entries(report) == [("error", "train.txt", f"line {n}") for n in (3, 4, 5, 6)]
    assert "outside the dataset" in report.entries[1].message
    assert all("secret" not in str(i.source) for i in labels.images)


def test_val_pointing_at_train_gives_no_duplicates(tmp_path: Path, make_image) -> None:
    root = _ultralytics(tmp_path, make_image)
    (root / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [scratch, dent]\n")
    labels, report = read_yolo(root)
    assert report.entries == []
    assert [(i.file_name, i.split) for i in labels.images] == [("train/a.png", "train"), ("train/b.png", "train")]


def test_missing_data_yaml(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "images" / "a.png")
    with pytest.raises(ImportFormatError, match="no data.yaml"):
        read_yolo(tmp_path)
    with pytest.raises(ImportFormatError, match="does not exist"):
        read_yolo(tmp_path / "data.yaml")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("train: images\nnames: [a, b\nval: x\n")
    with pytest.raises(ImportFormatError, match=r"data.yaml: YAML syntax error at line 3"):
        read_yolo(tmp_path)


@pytest.mark.parametrize(
    ("text", "words"),
    [("train: images/train\nval: images/val\n", "'names'"), ("names: [a]\n", "no 'train'"),
     ("- just a list\n", "expected keys"), ("train: nowhere\nnames: [a]\n", "no images found")],
)
def test_unusable_yaml_raises(tmp_path: Path, make_image, text: str, words: str) -> None:
    make_image(tmp_path / "images" / "train" / "a.png")
    (tmp_path / "data.yaml").write_text(text)
    with pytest.raises(ImportFormatError, match=words):
        read_yolo(tmp_path)


@pytest.mark.parametrize(
    ("line", "words"),
    [("2 0.5 0.5 0.1 0.1", "class id 2 is not in"), ("-1 0.5 0.5 0.1 0.1", "class id -1 is not in"),
     ("x 0.5 0.5 0.1 0.1", "not a whole number"), ("1.5 0.5 0.5 0.1 0.1", "not a whole number"),
     ("0 nan 0.5 0.1 0.1", "NaN"), ("0 0.5 inf 0.1 0.1", "infinite"), ("0 0.5 0.5 abc 0.1", "not a number"),
     ("0 0.5 0.5 0 0.1", "zero or negative"), ("0 0.5 0.5 0.1 -0.1", "zero or negative"),
     ("0 1.5 0.5 0.2 0.2", "entirely outside"), ("0 0.5 0.5 0.1", "expected 5 values"),
     ("0 0.5 0.5 0.1 0.1 0.9", "expected 5 values")],
)
def test_bad_label_line_is_reported_and_skipped(tmp_path: Path, make_image, line: str, words: str) -> None:
    root = _ultralytics(tmp_path, make_image, {"train/a": f"0 0.5 0.5 0.2 0.4\n\n{line}\n"})
    labels, report = read_yolo(root)
    [entry] = report.entries
    assert (entry.severity, entry.file, entry.field) == ("error", "labels/train/a.txt", "line 3")
    assert words in entry.message and "skipped" in entry.message
    assert [len(i.boxes) for i in labels.images] == [1, 0, 1]


def test_partly_outside_box_is_clipped_with_warning(tmp_path: Path, make_image) -> None:
    root = _ultralytics(tmp_path, make_image, {"train/a": "0 0.95 0.5 0.2 0.4\n0 0.1 0.5 0.2 1.01\n"})
    labels, report = read_yolo(root)  # second box: 0.25 px over on a 50 px side -> silent clip
    assert _entries(report) == [("warning", "labels/train/a.txt", "line 1")]
    assert "clipped" in report.entries[0].message
    assert labels.images[0].boxes == [BoxRecord("scratch", 85.0, 15.0, 100.0, 35.0),
                                      BoxRecord("scratch", 0.0, 0.0, 20.0, 50.0)]


def test_polygon_line_becomes_its_bounding_box(tmp_path: Path, make_image) -> None:
    root = _ultralytics(tmp_path, make_image, {"train/a": "1 0.1 0.2 0.3 0.2 0.3 0.6\n"})
    labels, report = read_yolo(root)
    assert _entries(report) == [("warning", "labels/train/a.txt", "line 1")]
    [box] = labels.images[0].boxes
    assert box.label == "dent"
    assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx((10, 10, 30, 30))


def test_missing_image_and_unreadable_image(tmp_path: Path, make_image) -> None:
    root = _ultralytics(tmp_path, make_image, {"train/gone": "0 0.5 0.5 0.1 0.1\n"})
    (root / "images" / "train" / "broken.png").write_bytes(b"not a png")
    labels, report = read_yolo(root)
    assert _entries(report) == [("error", "images/train/broken.png", ""),
                                ("error", "labels/train/gone.txt", "")]
    assert "image missing" in report.entries[1].message
    assert [i.file_name for i in labels.images] == ["train/a.png", "train/b.png", "val/c.png"]


def test_exif_rotated_image_uses_displayed_size(tmp_path: Path, make_image) -> None:
    root = _ultralytics(tmp_path, make_image, {"val/c": "0 0.5 0.5 1 1\n"})
    make_image(root / "images" / "val" / "c.png", size=(40, 30), exif_orientation=6)
    labels, _ = read_yolo(root)
    c = labels.images[2]
    assert (c.width, c.height) == (30, 40)
    assert c.boxes == [BoxRecord("scratch", 0.0, 0.0, 30.0, 40.0)]


def test_names_dict_with_gap_and_duplicate(tmp_path: Path, make_image) -> None:
    root = _ultralytics(tmp_path, make_image, {"train/a": "0 0.5 0.5 0.2 0.4\n2 0.5 0.5 0.2 0.4\n"})
    (root / "data.yaml").write_text("train: images/train\nnames: {0: a, 2: b, 3: a}\n")
    labels, report = read_yolo(root)
    assert labels.classes == ["a", "b"]
    assert [b.label for b in labels.images[0].boxes] == ["a", "b"]
    assert _entries(report) == [("warning", "data.yaml", "names"), ("warning", "data.yaml", "names[3]")]


def test_label_path_for() -> None:
    assert label_path_for(Path("/d/images/train/x.jpg")) == Path("/d/labels/train/x.txt")
    assert label_path_for(Path("/images/d/images/x.y.jpg")) == Path("/images/d/labels/x.y.txt")
    assert label_path_for(Path("/d/pics/x.jpg")) == Path("/d/pics/x.txt")


def test_writer_refuses_non_empty_dest(tmp_path: Path, make_image) -> None:
    labels, _ = read_yolo(_ultralytics(tmp_path / "src", make_image))
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "data.yaml").write_text("mine")
    with pytest.raises(ExportError, match="empty folder"):
        write_yolo(labels, tmp_path / "dest")
    assert (tmp_path / "dest" / "data.yaml").read_text() == "mine"


def test_writer_reports_name_collisions(tmp_path: Path, make_image) -> None:
    a = make_image(tmp_path / "a.png")
    labels = LabelSet(classes=["x"], images=[ImageRecord("x.png", source=a, width=40, height=30),
                                             ImageRecord("x.jpg", source=a, width=40, height=30)])
    report = write_yolo(labels, tmp_path / "out")
    assert _entries(report) == [("error", "x.jpg", "file_name")]


def test_relative_yaml_path_gives_absolute_sources(tmp_path: Path, make_image, monkeypatch) -> None:
    _ultralytics(tmp_path / "ds", make_image)
    monkeypatch.chdir(tmp_path)
    labels, _ = read_yolo(Path("ds/data.yaml"))
    assert labels.images[0].source == tmp_path / "ds" / "images" / "train" / "a.png"
