"""Augment sets in the store: schema v4 migration, provenance, train-only rules, delete + undo."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from labeltool.core import config
from labeltool.core.contact_sheet import Tile, write_contact_sheets
from labeltool.core.derived import (
    NewDerived,
    delete_set,
    flip_ok_by_class,
    get_set,
    list_sets,
    preview_set,
    record_set,
    set_flip_ok,
    set_members,
)
from labeltool.core.errors import EditError, ProjectError
from labeltool.core.splits import assign_splits
from labeltool.core.store import Project


def add_images(p: Project, n: int, *, split: str | None = "train", start: int = 0) -> list[int]:
    with p.edit("add images") as e:
        return [e.insert("images", {"path": f"images/{i}.png", "sha256": f"sha{i}", "width": 40, "height": 30,
                                    "split": split, "added_at": "t", "origin": None, "labeled": 1})
                for i in range(start, start + n)]


def make_set(p: Project, sources: list[int], class_id: int, *, n: int = 2, seed: int = 0) -> int:
    """A recorded set of ``n`` derived images (real PNG files) made from ``sources``."""
    tmp = p.root / "derived" / ".tmp-test"
    tmp.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        name = f"{i:05d}.png"
        PILImage.fromarray(np.full((30, 40, 3), 10 * i, np.uint8)).save(tmp / name)
        items.append(NewDerived(file_name=name, sha256=f"d{seed}-{i}", width=40, height=30,
                                source_image_id=sources[0], kind="augment",
                                transform={"sources": sources, "seed": i}, boxes=[(class_id, (1.0, 2.0, 11.0, 12.0))]))
    return record_set(p, kind="targeted", classes=["scratch"], params={"preset": "strong"}, seed=seed, tmp_dir=tmp,
                      items=items)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    with Project.create(tmp_path / "p") as p:
        yield p


def test_v3_project_is_upgraded_keeping_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(config, "SCHEMA_VERSION", 3)
        with Project.create(tmp_path / "p") as p:
            cid = p.add_class("scratch")
            (iid,) = add_images(p, 1, split=None)
            p.add_box(iid, cid, (1, 1, 5, 5))
            p.create_snapshot()
            assert p.schema_version == 3
    with Project.open(tmp_path / "p") as p:
        assert p.schema_version == config.SCHEMA_VERSION >= 4
        tables = {r[0] for r in p.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"augment_sets", "derived_images", "derived_sources"} <= tables
        assert p.box_count() == 1 and p.image(iid).labeled and p.classes()[0].name == "scratch"  # data kept
        assert flip_ok_by_class(p) == {cid: True}  # default: flips allowed
        assert p.snapshot_boxes(1) == {iid: [(cid, 1.0, 1.0, 5.0, 5.0)]}
        assert list_sets(p) == []
        p.undo()  # the edit log written under v3 still works
        assert p.box_count() == 0
    backup = sqlite3.connect(tmp_path / "p" / "project.db.bak-v3")
    assert backup.execute("PRAGMA user_version").fetchone()[0] == 3
    backup.close()


def test_a_set_is_recorded_with_provenance_in_one_edit(project: Project) -> None:
    cid = project.add_class("scratch")
    src = add_images(project, 2)
    set_id = make_set(project, src, cid, n=3)
    assert (project.root / "derived" / str(set_id) / "00002.png").is_file()
    assert not (project.root / "derived" / ".tmp-test").exists()
    aset = get_set(project, set_id)
    assert (aset.kind, aset.classes, aset.status, aset.n_images, aset.path) == (
        "targeted", ["scratch"], "active", 3, f"derived/{set_id}")
    members = set_members(project, set_id)
    assert [m["path"] for m in members] == [f"derived/{set_id}/0000{i}.png" for i in range(3)]
    assert all(m["source_image_id"] == src[0] and m["boxes"] == [(cid, 1.0, 2.0, 11.0, 12.0)] for m in members)
    assert all(project.image(m["image_id"]).split == "train" for m in members)
    sources = project.connection.execute("SELECT DISTINCT image_id FROM derived_sources ORDER BY 1").fetchall()
    assert [s for (s,) in sources] == src  # every source is indexed by the trigger
    assert project.history(limit=1)[0].action == "augment scratch: 3 images"
    project.undo()  # one edit: undo removes the whole set (files stay for redo)
    assert project.image_count() == 2 and list_sets(project) == [] and project.box_count() == 0
    project.redo()
    assert get_set(project, set_id).n_images == 3 and project.box_count() == 3


def test_derived_images_never_reach_validation(project: Project) -> None:
    cid = project.add_class("scratch")
    src = add_images(project, 1)
    others = add_images(project, 9, split=None, start=10)
    set_id = make_set(project, src, cid, n=4)
    derived = [m["image_id"] for m in set_members(project, set_id)]
    with pytest.raises(ProjectError, match="training-only"):
        project.set_split([derived[0]], "val")
    with pytest.raises(ProjectError, match="training-only"):
        project.set_split([derived[0]], None)
    with pytest.raises(ProjectError, match="augmented copies"):  # its copies would leak validation into training
        project.set_split([src[0]], "val")
    assert project.image(src[0]).split == "train" and project.image(derived[0]).split == "train"
    counts = assign_splits(project, val_fraction=0.5)
    # 10 real images: val target 5 of them; the 4 derived images neither count nor get assigned
    assert counts == {"train": 4, "val": 5}
    assert all(project.image(i).split == "train" for i in derived)
    # a set cannot be made from a validation image
    val_image = next(i for i in others if project.image(i).split == "val")
    with pytest.raises(ProjectError, match="augmented copies"):
        make_set(project, [val_image], cid, n=1, seed=1)
    assert len(list_sets(project)) == 1


def test_delete_set_is_one_undoable_edit_and_keeps_the_files(project: Project) -> None:
    cid = project.add_class("scratch")
    src = add_images(project, 1)
    set_id = make_set(project, src, cid, n=3)
    before = {m["image_id"]: m for m in set_members(project, set_id)}
    assert delete_set(project, set_id) == 3
    assert project.image_count() == 1 and project.box_count() == 0
    assert get_set(project, set_id).status == "deleted" and set_members(project, set_id) == []
    assert (project.root / "derived" / str(set_id) / "00000.png").is_file()  # restorable
    project.set_split(src, "val")  # no copies now: the source may move to validation
    with pytest.raises(EditError, match="already deleted"):
        delete_set(project, set_id)
    project.undo()  # the split change
    project.undo()  # the deletion
    aset = get_set(project, set_id)
    assert aset.status == "active" and aset.n_images == 3
    assert {m["image_id"]: m for m in set_members(project, set_id)} == before
    with pytest.raises(ProjectError, match="augmented copies"):  # the rule is back with the copies
        project.set_split(src, "val")


def test_deleting_one_derived_image_is_undone_with_its_provenance(project: Project) -> None:
    cid = project.add_class("scratch")
    src = add_images(project, 1)
    set_id = make_set(project, src, cid, n=2)
    first = set_members(project, set_id)[0]["image_id"]
    project.delete_image(first)
    assert get_set(project, set_id).n_images == 1
    project.undo()
    assert get_set(project, set_id).n_images == 2
    with pytest.raises(ProjectError, match="training-only"):  # still known to be derived
        project.set_split([first], "val")


def test_failed_recording_leaves_no_rows_and_gives_the_files_back(project: Project) -> None:
    cid = project.add_class("scratch")
    (src,) = add_images(project, 1, split="val")
    tmp = project.root / "derived" / ".tmp-x"
    tmp.mkdir(parents=True)
    (tmp / "a.png").write_bytes(b"x")
    item = NewDerived(file_name="a.png", sha256="s", width=40, height=30, source_image_id=src, kind="augment",
                      transform={"sources": [src]}, boxes=[(cid, (1.0, 1.0, 5.0, 5.0))])
    with pytest.raises(ProjectError, match="augmented copies"):  # the source is a validation image
        record_set(project, kind="targeted", classes=["scratch"], params={}, seed=0, tmp_dir=tmp, items=[item])
    assert (tmp / "a.png").is_file() and not (project.root / "derived" / "1").exists()
    assert list_sets(project) == [] and project.image_count() == 1
    with pytest.raises(ValueError, match="sources"):
        record_set(project, kind="targeted", classes=[], params={}, seed=0, tmp_dir=tmp,
                   items=[NewDerived("a.png", "s", 4, 3, src, "augment", {})])


def test_flip_setting_is_stored_per_class(project: Project) -> None:
    a, b = project.add_class("tab_left"), project.add_class("scratch")
    set_flip_ok(project, [a], False)
    assert flip_ok_by_class(project) == {a: False, b: True}
    set_flip_ok(project, [a], True)
    assert flip_ok_by_class(project)[a] is True
    with pytest.raises(EditError, match="do not exist"):
        set_flip_ok(project, [99], False)


def test_preview_writes_a_contact_sheet_with_boxes(project: Project, tmp_path: Path) -> None:
    cid = project.add_class("scratch")
    set_id = make_set(project, add_images(project, 1), cid, n=3)
    (sheet,) = preview_set(project, set_id, tmp_path / "out")
    img = np.asarray(PILImage.open(sheet).convert("RGB"))
    assert sheet.name == f"augment-set-{set_id}.png" and img.shape[1] > 3 * 200
    red = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 100)  # the class colour #e6194b
    assert red.sum() > 50  # boxes are drawn
    pages = write_contact_sheets([Tile(project.root / get_set(project, set_id).path / "00000.png")] * 5,
                                 tmp_path / "pages", stem="s", page_tiles=2)
    assert [p.name for p in pages] == ["s-01.png", "s-02.png", "s-03.png"]
    delete_set(project, set_id)
    with pytest.raises(ProjectError, match="was deleted"):
        preview_set(project, set_id, tmp_path / "out")
    with pytest.raises(ProjectError, match="does not exist"):
        get_set(project, 42)
