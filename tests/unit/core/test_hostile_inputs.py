"""Hostile inputs, generated here (no binary fixtures): each is a skipped record or a clear error,
never a traceback, a hang or data written where it should not be."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from labeltool.core.errors import EditError, ImportFormatError, ProjectError
from labeltool.core.store import Project
from labeltool.jobs import drive
from labeltool.jobs.data import import_job


def png(path: Path, seed: int = 0, size: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    PILImage.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def yolo(root: Path, names: str, *, n: int = 2, extra: str = "") -> Path:
    for i in range(n):
        png(root / "images" / "train" / f"im{i}.png", seed=i)
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train" / f"im{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(f"{extra}train: images/train\nnames: {names}\n")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    Project.create(tmp_path / "proj").close()
    return tmp_path / "proj"


def do_import(project: Path, source: Path, **kw: object):
    return drive(import_job(project, source, **kw), lambda e: None)


def counts(project: Path) -> tuple[int, int, int]:
    with Project.open(project) as p:
        return len(p.images()), len(p.classes()), p.box_count()


# ------------------------------------------------------------------------------------------ YAML


def test_yaml_alias_bomb_is_refused_fast_and_writes_nothing(tmp_path: Path, project: Path) -> None:
    root = tmp_path / "bomb"
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):  # 9^9 strings once expanded; about 500 bytes on disk
        levels.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]")
    yolo(root, "[ok]")
    (root / "data.yaml").write_text("\n".join(levels) + "\ntrain: images/train\nnames: *i\n")
    assert (root / "data.yaml").stat().st_size < 1000
    t0 = time.monotonic()
    with pytest.raises(ImportFormatError, match="data.yaml uses more than 16 YAML aliases"):
        do_import(project, root)
    assert time.monotonic() - t0 < 2.0
    assert counts(project) == (0, 0, 0)
    assert (project / "project.db").stat().st_size < 1_000_000


@pytest.mark.parametrize("names, problem", [
    ("[null]", "empty (null)"),
    ('["a\\nb"]', "control character"),
    ('["tab\\there"]', "control character"),
    (f"[{'x' * 100_000}]", "100,000 characters"),
    ('["../../etc"]', "looks like a file path"),
    ("[[1, 2]]", "is a list, not text"),
])
def test_bad_class_names_are_refused_record_by_record(tmp_path: Path, project: Path, names: str, problem: str) -> None:
    summary = do_import(project, yolo(tmp_path / "ds", names))
    assert summary.images_added == 2 and summary.boxes_added == 0 and summary.classes_added == []
    messages = [e.message for e in summary.report.errors]
    assert any(problem in m for m in messages), messages
    assert counts(project) == (2, 0, 0)


def test_classes_command_renames_merges_and_deletes(tmp_path: Path, project: Path) -> None:
    from labeltool.cli import main

    do_import(project, yolo(tmp_path / "ds", "[dent, scratch]"))
    assert main(["classes", str(project), "rename", "dent", "dent-A"]) == 0
    assert main(["classes", str(project), "rename", "dent-A", "bad/name"]) == 2  # refused, nothing changed
    assert main(["classes", str(project), "delete", "dent-A"]) == 2  # it has boxes
    assert main(["classes", str(project), "merge", "dent-A", "scratch"]) == 0
    with Project.open(project) as p:
        assert [c.name for c in p.classes()] == ["scratch"]
        assert p.box_count() == 2
        with pytest.raises(EditError, match="control character"):
            p.add_class("two\nlines")
    assert main(["classes", str(project), "delete", "scratch", "--with-boxes"]) == 0
    assert counts(project) == (2, 0, 0)


# ------------------------------------------------------------------------------------ JSON / XML


def test_deeply_nested_json_is_a_clear_error(tmp_path: Path, project: Path) -> None:
    bad = tmp_path / "deep.json"
    bad.write_text('{"images": ' + "[" * 100_000 + "]" * 100_000 + ', "categories": []}')
    with pytest.raises(ImportFormatError, match="deep.json: lists or objects nested thousands deep"):
        do_import(project, bad, fmt="coco")
    assert counts(project) == (0, 0, 0)


def test_xml_with_an_unknown_encoding_skips_that_file_only(tmp_path: Path, project: Path) -> None:
    root = tmp_path / "voc"
    for i, enc in enumerate(("utf-8", "x-no-such-encoding", "utf-16")):
        png(root / "JPEGImages" / f"im{i}.png", seed=i)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        xml = (f'<?xml version="1.0" encoding="{enc}"?><annotation><filename>im{i}.png</filename>'
               "<size><width>32</width><height>32</height></size><object><name>dent</name><bndbox>"
               "<xmin>2</xmin><ymin>2</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>")
        (root / "Annotations" / f"im{i}.xml").write_bytes(xml.encode("utf-8"))
    summary = do_import(project, root, fmt="voc")
    assert summary.images_added >= 1 and summary.boxes_added >= 1
    bad = [e for e in summary.report.errors if e.file.endswith("im1.xml")]
    assert bad and "encoding" in bad[0].message


# ------------------------------------------------------------------------------------ file names


@pytest.mark.skipif(sys.platform != "linux", reason="byte file names are a POSIX file-system thing")
def test_a_non_utf8_file_name_and_an_overlong_one_are_skipped_records(tmp_path: Path, project: Path) -> None:
    root = tmp_path / "folder"
    png(root / "good.png", seed=1)
    raw = os.path.join(os.fsencode(root), b"caf\xe9.png")
    png(Path(os.fsdecode(raw)), seed=2)
    png(root / ("n" * 220 + ".png"), seed=3)
    summary = do_import(project, root, fmt="folder")
    assert summary.images_added == 1 and summary.images_skipped == 2
    text = " ".join(e.message for e in summary.report.errors)
    assert "not valid text" in text and "at most 200 can be stored" in text


# ------------------------------------------------------------------------------------ containment


def test_yolo_path_outside_the_dataset_and_links_out_are_skipped_unless_allowed(tmp_path: Path, project: Path) -> None:
    elsewhere = yolo(tmp_path / "elsewhere", "[dent]")
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "data.yaml").write_text(f"path: {elsewhere}\ntrain: images/train\nnames: [dent]\n")
    summary = do_import(project, ds)
    assert summary.images_added == 0 and "outside the dataset folder" in summary.report.errors[0].message
    assert "--allow-outside" in summary.report.errors[0].message
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(elsewhere / "images" / "train" / "im0.png", linked / "a.png")
    png(linked / "b.png", seed=9)
    summary = do_import(project, linked, fmt="folder")
    assert summary.images_added == 1 and "a link" in summary.report.errors[0].message
    summary = do_import(project, ds, allow_outside=True)
    assert summary.images_added == 2


# ------------------------------------------------------------------------------------ damaged store


@pytest.mark.parametrize("content", [b"", b"not a database at all, just text" * 10])
def test_a_zero_byte_or_foreign_project_db_is_a_damaged_project(tmp_path: Path, content: bytes) -> None:
    Project.create(tmp_path / "p").close()
    (tmp_path / "p" / "project.db.bak-v3").write_bytes(b"SQLite format 3\x00")
    for side in ("project.db-wal", "project.db-shm"):
        (tmp_path / "p" / side).unlink(missing_ok=True)
    (tmp_path / "p" / "project.db").write_bytes(content)
    with pytest.raises(ProjectError, match=r"damaged project: .*project.db\.bak-v3"):
        Project.open(tmp_path / "p")
    assert (tmp_path / "p" / "project.db").read_bytes() == content  # nothing changed


def test_the_database_refuses_a_second_row_of_the_same_content(project: Path) -> None:
    import sqlite3

    with Project.open(project) as p, pytest.raises(ProjectError, match="same content is already in the project"):
        with p.edit("twice") as e:
            for name in ("a.png", "b.png"):
                e.insert("images", {"path": f"images/{name}", "sha256": "ab" * 32, "width": 1, "height": 1,
                                    "split": None, "added_at": "now", "origin": "x", "labeled": 0})
    assert sqlite3.connect(project / "project.db").execute("SELECT count(*) FROM images").fetchone()[0] == 0


def test_a_json_report_of_an_import_names_each_skipped_record(tmp_path: Path, project: Path) -> None:
    do_import(project, yolo(tmp_path / "ds", "[null]"))
    log = next((project / "logs").glob("import-*.json"))
    errors = json.loads(log.read_text())["errors"]
    assert errors and all(e["file"] and e["message"] for e in errors)
