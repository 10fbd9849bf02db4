"""Importing a LabelSet into a project: checks, copies, one edit, nothing half-done."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from labeltool.core.errors import ImportFormatError
from labeltool.core.ingest import import_labelset
from labeltool.core.labels import BoxRecord, ImageRecord, LabelSet
from labeltool.core.store import Project
from labeltool.jobs import drive


def make_png(path: Path, *, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    PILImage.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def run(project: Project, labels: LabelSet, **kw: object):
    return drive(import_labelset(project, labels, **kw), lambda p: None)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    with Project.create(tmp_path / "proj") as p:
        yield p


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for i in range(3):
        make_png(root / f"sub/img{i}.png", seed=i)
    return root


def rec(src: Path, name: str, boxes: list[BoxRecord] | None = None, **kw: object) -> ImageRecord:
    return ImageRecord(file_name=name, source=src / name, boxes=boxes or [], **kw)


def test_import_copies_files_and_writes_rows(project: Project, src: Path) -> None:
    labels = LabelSet(
        classes=["scratch", "dent"],
        images=[
            rec(src, "sub/img0.png", [BoxRecord("dent", 1, 2, 30, 40)], split="train"),
            rec(src, "sub/img1.png", [BoxRecord("scratch", 0, 0, 64, 48)], split="valid"),
            rec(src, "sub/img2.png"),
        ],
    )
    summary = run(project, labels)
    assert (summary.images_added, summary.boxes_added, summary.images_skipped) == (3, 2, 0)
    assert summary.report.entries == []
    assert [c.name for c in project.classes()] == ["scratch", "dent"]
    images = project.images()
    assert [i.path for i in images] == ["images/sub/img0.png", "images/sub/img1.png", "images/sub/img2.png"]
    assert [i.split for i in images] == ["train", "val", None]
    assert (images[0].width, images[0].height) == (64, 48)
    assert all((project.root / i.path).read_bytes() == (src / i.path[7:]).read_bytes() for i in images)
    box = project.boxes(images[0].id)[0]
    assert (project.classes()[box.class_id - 1].name, box.xyxy) == ("dent", (1.0, 2.0, 30.0, 40.0))
    # the whole import is one undoable edit
    assert project.history()[0].action == "import 3 images"
    project.undo()
    assert project.images() == [] and project.classes() == []


def test_bad_records_are_reported_and_skipped(project: Project, src: Path, tmp_path: Path) -> None:
    (src / "broken.png").write_bytes((src / "sub/img0.png").read_bytes()[:100])
    (src / "empty.jpg").write_bytes(b"")
    secret = tmp_path / "secret.png"
    make_png(secret)
    labels = LabelSet(
        classes=["scratch"],
        images=[
            rec(src, "sub/img0.png", [
                BoxRecord("scratch", -5, 10, 20, 30),        # clipped with a warning
                BoxRecord("scratch", 70, 10, 90, 30),        # entirely outside: skipped
                BoxRecord("scratch", 10, 10, 10, 30),        # zero width: skipped
                BoxRecord("scratch", float("nan"), 1, 5, 5),  # NaN: skipped
            ]),
            rec(src, "broken.png"),
            rec(src, "empty.jpg"),
            rec(src, "missing.png"),
            ImageRecord(file_name="../secret.png", source=secret),
            rec(src, "sub/img1.png"),
            ImageRecord(file_name="copy/img1.png", source=src / "sub/img1.png"),  # same content again
        ],
    )
    summary = run(project, labels)
    assert summary.images_added == 2 and summary.images_skipped == 5
    assert summary.boxes_added == 1 and summary.boxes_skipped == 3
    by_file = {(e.file, e.severity) for e in summary.report.entries}
    for file in ("broken.png", "empty.jpg", "missing.png", "../secret.png", "copy/img1.png"):
        assert (file, "error") in by_file, file
    msgs = " | ".join(str(e) for e in summary.report.entries)
    assert "truncated" in msgs and "empty" in msgs and "outside the dataset" in msgs and "same content" in msgs
    assert "clipped" in msgs and "NaN" in msgs
    assert [e.field for e in summary.report.entries if e.file == "sub/img0.png"] == [
        "boxes[0]", "boxes[1]", "boxes[2]", "boxes[3]"]
    box = project.boxes(project.images()[0].id)[0]
    assert box.xyxy == (0.0, 10.0, 20.0, 30.0)
    assert not any("secret" in i.path for i in project.images())


def test_strict_import_writes_nothing(project: Project, src: Path) -> None:
    labels = LabelSet(classes=["scratch"], images=[rec(src, "sub/img0.png"), rec(src, "missing.png")])
    with pytest.raises(ImportFormatError, match="missing.png"):
        run(project, labels, strict=True)
    assert project.images() == [] and list(project.images_dir.iterdir()) == []


def test_cancelled_import_leaves_project_unchanged(project: Project, src: Path) -> None:
    labels = LabelSet(classes=["scratch"], images=[rec(src, f"sub/img{i}.png") for i in range(3)])
    job = import_labelset(project, labels)
    for event in job:
        if event.stage == "copy" and event.done == 0:
            next(job)  # let the first file be copied
            break
    job.close()  # what Cancel does
    assert project.images() == []
    assert [p for p in project.images_dir.rglob("*") if p.is_file()] == []


def test_reimport_attaches_labels_to_existing_images(project: Project, src: Path, tmp_path: Path) -> None:
    run(project, LabelSet(images=[rec(src, "sub/img0.png"), rec(src, "sub/img1.png")]))
    labels = LabelSet(classes=["scratch"], images=[rec(src, "sub/img0.png", [BoxRecord("scratch", 1, 1, 9, 9)])])
    s2 = run(project, labels)
    assert (s2.images_added, s2.images_labeled_existing, s2.boxes_added) == (0, 1, 1)
    s3 = run(project, labels)  # the same labels again are not duplicated
    assert s3.boxes_added == 0 and project.box_count() == 1
    assert any("not added again" in e.message for e in s3.report.warnings)


def test_name_collision_gets_a_suffix(project: Project, tmp_path: Path) -> None:
    a = make_png(tmp_path / "a/x.png", seed=1)
    b = make_png(tmp_path / "b/x.png", seed=2)
    run(project, LabelSet(images=[ImageRecord(file_name="x.png", source=a)]))
    run(project, LabelSet(images=[ImageRecord(file_name="x.png", source=b)]))
    assert [i.path for i in project.images()] == ["images/x.png", "images/x_2.png"]
    assert (project.root / "images/x_2.png").read_bytes() == b.read_bytes()


def test_labeled_flag_distinguishes_defect_free_from_unlabeled(project: Project, src: Path, tmp_path: Path) -> None:
    from labeltool.core.exporting import export_project
    from labeltool.core.formats import read_coco
    from labeltool.core.stats import project_stats

    labels = LabelSet(classes=["scratch"], images=[
        rec(src, "sub/img0.png", [BoxRecord("scratch", 1, 1, 9, 9)]),
        rec(src, "sub/img1.png"),                      # annotated, no defects
        rec(src, "sub/img2.png", labeled=False),       # nobody looked at it yet
    ])
    run(project, labels)
    assert [i.labeled for i in project.images()] == [True, True, False]
    stats = project_stats(project)
    assert (stats["labeled_images"], stats["labeled_without_boxes"], stats["unlabeled_images"]) == (2, 1, 1)
    report = export_project(project, tmp_path / "out", fmt="coco")
    assert any("1 unlabeled image" in e.message for e in report.warnings)
    back, _ = read_coco(tmp_path / "out" / "annotations.json")
    assert [r.file_name for r in back.images] == ["sub/img0.png", "sub/img1.png"]
    export_project(project, tmp_path / "all", fmt="coco", include_unlabeled=True)
    back, _ = read_coco(tmp_path / "all" / "annotations.json")
    assert [r.labeled for r in back.images] == [True, True, False]
