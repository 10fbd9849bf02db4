"""The augmentation job on a small generated project: targeted sets, copy-paste, seeds, cancel, errors."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from labeltool.core.derived import delete_set, get_set, list_sets, set_flip_ok, set_members
from labeltool.core.store import Project
from labeltool.jobs import drive
from labeltool.jobs.augment import augment_job
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job
from labeltool.ml.data import snapshot_samples
from labeltool.ml.train import select_samples


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("aug")
    drive(demo_data_job(root / "data", n_images=30, noise=0.0, seed=2, size=64), lambda p: None)
    Project.create(root / "p").close()
    drive(import_job(root / "p", root / "data" / "annotations.json"), lambda p: None)
    return root / "p"


@pytest.fixture
def project(base: Path, tmp_path: Path) -> Path:
    shutil.copytree(base, tmp_path / "p")
    return tmp_path / "p"


def run(project: Path, **kw: object) -> dict:
    return drive(augment_job(project, **kw), lambda p: None)


def files(project: Path, set_id: int) -> dict[str, str]:
    folder = project / "derived" / str(set_id)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_targeted_set_with_copy_paste(project: Path, tmp_path: Path) -> None:
    result = run(project, classes=["dent"], copy_paste=True, seed=1, preview_dir=tmp_path / "preview")
    set_id = result["set_id"]
    assert result["images"] > 0 and result["by_kind"].get("copy_paste", 0) > 0 and result["by_kind"]["augment"] > 0
    (row,) = result["per_class"]
    assert row["class"] == "dent" and row["after"] >= row["target"] > row["before"] > 0
    assert [Path(p).name for p in result["preview"]] == [f"augment-set-{set_id}.png"]
    assert sorted(p.name for p in (project / "derived").iterdir()) == [str(set_id)]  # no temporary folder left
    with Project.open(project) as p:
        assert len(files(project, set_id)) == result["images"] == get_set(p, set_id).n_images
        dent = p.class_by_name("dent").id
        split = {im.id: im.split for im in p.images()}
        for m in set_members(p, set_id):
            assert split[m["image_id"]] == "train" and all(split[s] == "train" for s in m["transform"]["sources"])
            assert all(0 <= x1 < x2 <= m["width"] and 0 <= y1 < y2 <= m["height"] for _, x1, y1, x2, y2 in m["boxes"])
            assert any(c == dent for c, *_ in m["boxes"])  # every new image shows the weak class
            if m["kind"] == "copy_paste":
                originals = [b.xyxy for b in p.boxes(m["source_image_id"])]
                pasted = m["transform"]["copy_paste"]
                assert len(m["boxes"]) == len(originals) + len(pasted)
                for crop in pasted:
                    assert not any(overlaps(crop["rect"], b) for b in originals)  # never over another box
                    assert crop["class_id"] == dent
        _, samples = snapshot_samples(p, p.create_snapshot())
    train_s, val_s, _ = select_samples(samples)
    assert not any(s.derived for s in val_s) and sum(s.derived for s in train_s) == result["images"]
    assert not any(s.derived for s in select_samples(samples, derived=False)[0])


def test_same_seed_gives_byte_identical_images(project: Path, tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    shutil.copytree(project, twin)
    a = run(project, classes=["dent", "chip"], copy_paste=True, seed=7)
    b = run(twin, classes=["dent", "chip"], copy_paste=True, seed=7)
    assert files(project, a["set_id"]) == files(twin, b["set_id"])
    with Project.open(project) as p, Project.open(twin) as q:
        assert [m["transform"] for m in set_members(p, a["set_id"])] == [m["transform"] for m in set_members(q, b["set_id"])]
    c = run(twin, classes=["dent", "chip"], copy_paste=True, seed=8)
    assert set(files(twin, c["set_id"]).values()).isdisjoint(files(twin, b["set_id"]).values())


def test_cancel_leaves_nothing_behind(project: Path) -> None:
    with Project.open(project) as p:
        splits_before = {im.id: im.split for im in p.images()}
        edits_before = p.history(limit=1)[0].id
    assert set(splits_before.values()) == {None}
    job = augment_job(project, classes=["dent"], copy_paste=True)
    for event in job:
        if event.stage == "generate" and event.done >= 2:
            break
    job.close()  # what Cancel does
    assert list((project / "derived").iterdir()) == []
    with Project.open(project) as p:
        assert list_sets(p) == [] and {im.id: im.split for im in p.images()} == splits_before
        assert p.connection.execute("SELECT count(*) FROM derived_images").fetchone()[0] == 0
        assert p.history(limit=2)[0].action == "undo" and p.history(limit=2)[1].id == edits_before + 1


def test_orientation_sensitive_classes_are_never_mirrored(project: Path) -> None:
    with Project.open(project) as p:
        set_flip_ok(p, [p.class_by_name("dent").id], False)
    result = run(project, classes=["dent"], per_class=20)
    with Project.open(project) as p:
        for m in set_members(p, result["set_id"]):
            names = {step["name"] for step in m["transform"]["applied"]}
            assert m["transform"]["flips"] is False and not names & {"HorizontalFlip", "VerticalFlip"}


def test_delete_set_and_undo_restore_it(project: Path) -> None:
    result = run(project, classes=["stain"], seed=3)
    set_id = result["set_id"]
    before = files(project, set_id)
    with Project.open(project) as p:
        n_images, members = p.image_count(), set_members(p, set_id)
        assert delete_set(p, set_id) == result["images"]
        assert p.image_count() == n_images - result["images"]
        p.undo()
        assert p.image_count() == n_images and set_members(p, set_id) == members
    assert files(project, set_id) == before


def test_clear_errors(project: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown class 'dnet'; the project's classes are: scratch, dent, crack"):
        run(project, classes=["dnet"])
    with pytest.raises(ValueError, match="no analysis to take the weak classes from"):
        run(project)
    with Project.open(project) as p:
        p.add_class("burr")
    with pytest.raises(ValueError, match="class 'burr' has no labeled training images to augment"):
        run(project, classes=["burr"])
    with Project.open(project) as p:  # failures took back the split they assigned
        assert {im.split for im in p.images()} == {None}
    result = run(project, classes=["dent"], per_class=1)
    assert result["set_id"] is None and "nothing to do" in result["message"]
    with pytest.raises(ValueError, match="per_class"):
        run(project, classes=["dent"], per_class=0)


def test_without_classes_the_weak_class_report_decides(project: Path) -> None:
    from labeltool.core.issues import record_analysis

    rows = [{"class": "dent", "recommendation": "augment"}, {"class": "chip", "recommendation": "relabel"},
            {"class": "crack", "recommendation": "collect more images"}, {"class": "gone", "recommendation": "augment"},
            {"class": "stain", "recommendation": "ok"}]
    with Project.open(project) as p:
        record_analysis(p, snapshot_id=p.create_snapshot(), run_id=None, mode="kfold", folds=3, config={},
                        summary={"weak_classes": rows}, issues=[])
    result = run(project, per_class=12)
    # relabel first, not augment: copies would multiply label errors; classes no longer there are skipped
    assert result["classes"] == ["dent", "crack"] and result["chosen_by"] == "flagged by analysis 1"
    assert {r["class"]: r["after"] >= 12 for r in result["per_class"]} == {"dent": True, "crack": True}
