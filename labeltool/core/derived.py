"""Derived images: augment sets, their provenance, and the per-class flip setting.

A derived image (augmented copy or copy-paste composite) is an ordinary image of the project whose
file lives under ``derived/<set id>/`` and whose origin is a row of ``derived_images``: the set, the
image it was made from, and a JSON record of what was done (seed, preset, applied transforms with
their parameters, pasted crops, and ``sources``: every image it took pixels from).

Rules (enforced by triggers in schema v4, see core/schema.py):

- derived images are always in the training split, never validation/test;
- an image that derived images were made from stays in the training split while they exist
  (otherwise a copy of a validation image would train the model that is validated on it).

Creating a set and deleting a set are each one undoable edit. Deleting keeps the files in
``derived/<id>/``, so an undo restores the set completely (the edit log has no "undo barrier" that
would make removing them safe).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import db
from .errors import EditError, ProjectError
from .store import Project, now_iso

DERIVED_DIRNAME = "derived"
DERIVED_PREFIX = DERIVED_DIRNAME + "/"
SET_KINDS = ("targeted", "uniform")
ITEM_KINDS = ("augment", "copy_paste")


def is_derived_path(path: str) -> bool:
    """True for a project-relative image path of a derived image (``derived/...``)."""
    return path.startswith(DERIVED_PREFIX)


@dataclass(frozen=True, slots=True)
class AugmentSet:
    """A set of derived images made by one augmentation job."""

    id: int
    created_at: str
    kind: str  # 'targeted' (weak classes) / 'uniform' (any training image; for comparisons)
    classes: list[str]  # targeted class names
    params: dict[str, Any]  # presets, per-class targets and counts, copy-paste settings
    seed: int
    status: str  # 'active' / 'deleted' (files kept, so undo restores it)
    n_images: int  # derived images in the set now (0 once deleted)

    @property
    def path(self) -> str:
        """Folder of its files, relative to the project."""
        return f"{DERIVED_PREFIX}{self.id}"


@dataclass(slots=True)
class NewDerived:
    """A derived image written to a temporary folder, to be recorded by :func:`record_set`.

    ``file_name``: name inside the set folder. ``boxes``: ``(class_id, (x1, y1, x2, y2))`` float
    pixels of the derived image. ``transform`` must hold ``"sources"``: the image ids it took pixels from.
    """

    file_name: str
    sha256: str
    width: int
    height: int
    source_image_id: int
    kind: str
    transform: dict[str, Any]
    boxes: list[tuple[int, tuple[float, float, float, float]]] = field(default_factory=list)
    origin: str | None = None


def set_dir(project: Project, set_id: int) -> Path:
    return project.root / DERIVED_DIRNAME / str(set_id)


def record_set(
    project: Project, *, kind: str, classes: Sequence[str], params: dict[str, Any], seed: int, tmp_dir: Path,
    items: Sequence[NewDerived],
) -> int:
    """Record a generated set in one edit and move ``tmp_dir`` to ``derived/<set id>``; returns the id.

    The folder is moved inside the transaction; if recording fails it is moved back (the caller
    removes ``tmp_dir``), so either both the rows and the files exist or neither.
    """
    if kind not in SET_KINDS:
        raise ValueError(f"kind must be one of {SET_KINDS}, got {kind!r}")
    if not items:
        raise ValueError("an augment set needs at least one image")
    for item in items:
        if item.kind not in ITEM_KINDS:
            raise ValueError(f"derived image kind must be one of {ITEM_KINDS}, got {item.kind!r}")
        if not isinstance(item.transform.get("sources"), list):
            raise ValueError(f"{item.file_name}: transform['sources'] must list the source image ids")
    moved: Path | None = None
    names = ", ".join(classes) if classes else "all classes"
    try:
        with project.edit(f"augment {names}: {len(items)} images") as e:
            set_id = e.insert("augment_sets", {
                "created_at": now_iso(), "kind": kind, "classes": json.dumps(list(classes)),
                "params": json.dumps(params), "seed": int(seed), "status": "active"})
            final = set_dir(project, set_id)
            if final.exists():  # left by a crash between moving and committing: not in the database
                final.rename(final.with_name(f".orphan-{set_id}-{uuid.uuid4().hex[:6]}"))
            os.replace(tmp_dir, final)
            moved = final
            ts = now_iso()
            for item in items:
                image_id = e.insert("images", {
                    "path": f"{DERIVED_PREFIX}{set_id}/{item.file_name}", "sha256": item.sha256,
                    "width": item.width, "height": item.height, "split": "train", "added_at": ts,
                    "origin": item.origin, "labeled": 1})
                for class_id, xyxy in item.boxes:
                    e.add_box(image_id=image_id, class_id=class_id, xyxy=xyxy)
                e.insert("derived_images", {
                    "image_id": image_id, "set_id": set_id, "source_image_id": item.source_image_id,
                    "kind": item.kind, "transform": json.dumps(item.transform)})
    except BaseException:
        if moved is not None and moved.exists():
            os.replace(moved, tmp_dir)
        raise
    return set_id


def _set(row: Sequence[Any]) -> AugmentSet:
    return AugmentSet(row[0], row[1], row[2], json.loads(row[3]), json.loads(row[4]), row[5], row[6], row[7])


_SET_SQL = ("SELECT s.id, s.created_at, s.kind, s.classes, s.params, s.seed, s.status, "
            "(SELECT count(*) FROM derived_images d WHERE d.set_id = s.id) FROM augment_sets s")


def list_sets(project: Project, *, include_deleted: bool = True) -> list[AugmentSet]:
    """Augment sets, oldest first."""
    where = "" if include_deleted else " WHERE s.status = 'active'"
    return [_set(r) for r in project.connection.execute(f"{_SET_SQL}{where} ORDER BY s.id").fetchall()]


def get_set(project: Project, set_id: int) -> AugmentSet:
    row = project.connection.execute(f"{_SET_SQL} WHERE s.id = ?", (set_id,)).fetchone()
    if row is None:
        known = [s.id for s in list_sets(project)]
        raise ProjectError(f"augment set {set_id} does not exist in {project.root} "
                           f"(sets: {', '.join(map(str, known)) or 'none'}); list them with --list")
    return _set(row)


def set_members(project: Project, set_id: int) -> list[dict[str, Any]]:
    """The derived images of a set: image id, path, size, source image id, kind, transform, boxes
    (``[(class_id, x1, y1, x2, y2)]``), in creation order."""
    rows = project.connection.execute(
        "SELECT i.id, i.path, i.width, i.height, d.source_image_id, d.kind, d.transform "
        "FROM derived_images d JOIN images i ON i.id = d.image_id WHERE d.set_id = ? ORDER BY d.id", (set_id,))
    out = []
    for image_id, path, w, h, source, kind, transform in rows.fetchall():
        boxes = [(b.class_id, *b.xyxy) for b in project.boxes(image_id)]
        out.append({"image_id": image_id, "path": path, "width": w, "height": h, "source_image_id": source,
                    "kind": kind, "transform": json.loads(transform), "boxes": boxes})
    return out


def delete_set(project: Project, set_id: int) -> int:
    """Remove a set's images, boxes and provenance rows in one undoable edit; returns how many images.

    The files stay in ``derived/<id>/`` so that undo restores the set.
    """
    aset = get_set(project, set_id)
    if aset.status != "active":
        raise EditError(f"augment set {set_id} is already deleted (undo the deletion to bring it back)")
    conn = project.connection
    with project.edit(f"delete augment set {set_id}") as e:
        rows = conn.execute("SELECT id, image_id FROM derived_images WHERE set_id = ? ORDER BY id",
                            (set_id,)).fetchall()
        for row_id, image_id in rows:
            for (box_id,) in conn.execute("SELECT id FROM boxes WHERE image_id = ?", (image_id,)).fetchall():
                e.delete_box(box_id)
            e.delete("derived_images", row_id)
            e.delete("images", image_id)
        e.update("augment_sets", set_id, status="deleted")
    return len(rows)


# -- per-class orientation setting ----------------------------------------------------------------
def flip_ok_by_class(project: Project) -> dict[int, bool]:
    """``{class_id: flips allowed}`` (False for orientation-sensitive classes)."""
    return {cid: bool(ok) for cid, ok in project.connection.execute("SELECT id, flip_ok FROM classes")}


def set_flip_ok(project: Project, class_ids: Sequence[int], ok: bool) -> None:
    """Allow (``ok``) or forbid mirrored copies of images with these classes.

    A project setting rather than a label, so it is not in the edit log.
    """
    known = set(flip_ok_by_class(project))
    unknown = [c for c in class_ids if c not in known]
    if unknown:
        raise EditError(f"class ids {unknown} do not exist")
    with db.write_tx(project.connection, project.db_path) as conn:
        conn.executemany("UPDATE classes SET flip_ok = ? WHERE id = ?", [(int(bool(ok)), c) for c in class_ids])


# -- preview ------------------------------------------------------------------------------------------
def preview_set(project: Project, set_id: int, out_dir: Path) -> list[Path]:
    """Write contact sheets of a set's images with their boxes to ``out_dir``; returns the PNG paths."""
    from .contact_sheet import Tile, write_contact_sheets

    aset = get_set(project, set_id)
    if aset.status != "active":
        raise ProjectError(f"augment set {set_id} was deleted; undo the deletion to preview it again")
    classes = {c.id: c for c in project.classes()}
    tiles = []
    for i, m in enumerate(set_members(project, set_id)):
        boxes = [(classes[c].name, classes[c].color, (x1, y1, x2, y2)) for c, x1, y1, x2, y2 in m["boxes"]]
        kind = "paste" if m["kind"] == "copy_paste" else m["transform"].get("preset", "aug")
        tiles.append(Tile(project.root / m["path"], f"{i}: {kind} of #{m['source_image_id']}", boxes))
    if not tiles:
        raise ProjectError(f"augment set {set_id} has no images")
    return write_contact_sheets(tiles, Path(out_dir), stem=f"augment-set-{set_id}")
