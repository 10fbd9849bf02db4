"""Read-only queries the window, the jobs and ml need, beyond :class:`~labeltool.core.store.Project`'s
basics: the SQL lives in the store package (here), callers get rows as plain values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .issues import latest_analysis
from .store import Project


@dataclass(frozen=True, slots=True)
class Filter:
    """Which images the list shows: kind 'all', 'unlabeled', 'issues', 'class' (value = class id),
    'split' (value = 'train' / 'val' / 'test' / None for no split)."""

    kind: str = "all"
    value: object = None


@dataclass(frozen=True, slots=True)
class ImageRow:
    """One row of the list (no pixels): enough to draw the row text and to open the image."""

    id: int
    path: str
    width: int
    height: int
    split: str | None
    labeled: bool
    boxes: int
    open_issues: int

    @property
    def text(self) -> str:
        """Row text: file name, then markers: ✓ labeled / ○ unlabeled, box count, ⚠ open issues, split."""
        marks = [("✓ labeled" if self.labeled else "○ unlabeled"), f"{self.boxes} box{'es' if self.boxes != 1 else ''}"]
        if self.open_issues:
            marks.append(f"⚠ {self.open_issues} issue{'s' if self.open_issues != 1 else ''}")
        if self.split:
            marks.append(self.split)
        return f"{self.path}\n{'  ·  '.join(marks)}"


def query_rows(project: Project, flt: Filter = Filter(), *, image_id: int | None = None) -> list[ImageRow]:
    """The list's rows under ``flt`` (or the one row of ``image_id``), ordered by id, in one query."""
    latest = latest_analysis(project)
    analysis_id = -1 if latest is None else latest.id
    where, params = [], [analysis_id]
    if image_id is not None:
        where.append("i.id = ?")
        params.append(image_id)
    if flt.kind == "unlabeled":
        where.append("i.labeled = 0")
    elif flt.kind == "issues":
        where.append("coalesce(q.n, 0) > 0")
    elif flt.kind == "class":
        where.append("EXISTS (SELECT 1 FROM boxes c WHERE c.image_id = i.id AND c.class_id = ?)")
        params.append(flt.value)
    elif flt.kind == "split":
        if flt.value is None:
            where.append("i.split IS NULL")
        else:
            where.append("i.split = ?")
            params.append(flt.value)
    elif flt.kind != "all":
        raise ValueError(f"unknown image filter {flt.kind!r}")
    sql = (
        "SELECT i.id, i.path, i.width, i.height, i.split, i.labeled, coalesce(b.n, 0), coalesce(q.n, 0) "
        "FROM images i "
        "LEFT JOIN (SELECT image_id, count(*) AS n FROM boxes GROUP BY image_id) b ON b.image_id = i.id "
        "LEFT JOIN (SELECT image_id, count(*) AS n FROM issues WHERE analysis_id = ? AND status = 'open' "
        "GROUP BY image_id) q ON q.image_id = i.id"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY i.id"
    rows = project._query(sql, params)
    return [ImageRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7]) for r in rows]


@dataclass(frozen=True, slots=True)
class ClassCount:
    id: int
    name: str
    color: str
    boxes: int
    images: int


def class_counts(project: Project) -> list[ClassCount]:
    """Every class in display order with its number of boxes and of images having one (one query)."""
    rows = project._query(
        "SELECT c.id, c.name, c.color, count(b.id), count(DISTINCT b.image_id) FROM classes c "
        "LEFT JOIN boxes b ON b.class_id = c.id GROUP BY c.id ORDER BY c.position, c.id")
    return [ClassCount(int(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows]


def image_counts(project: Project) -> tuple[int, int, int]:
    """(images, labeled images, boxes) with two COUNT queries."""
    n, labeled = project._query("SELECT count(*), coalesce(sum(labeled), 0) FROM images")[0]
    boxes = project._query("SELECT count(*) FROM boxes")[0][0]
    return int(n), int(labeled), int(boxes)


def labeled_totals(project: Project) -> tuple[int, int]:
    """(labeled images, boxes on them): what training would use."""
    n_images = project._query("SELECT count(*) FROM images WHERE labeled = 1")[0][0]
    n_boxes = project._query("SELECT count(*) FROM boxes b JOIN images i ON i.id = b.image_id WHERE i.labeled = 1")[0][0]
    return int(n_images), int(n_boxes)


def image_paths(project: Project) -> dict[int, str]:
    """Project-relative path of every image, by id."""
    return {int(i): str(p) for i, p in project._query("SELECT id, path FROM images")}


def class_images_outside_training(project: Project, class_id: int) -> tuple[int, int]:
    """(labeled images showing ``class_id``, of them in validation), derived images left out."""
    total, val = project._query(
        "SELECT count(DISTINCT b.image_id), count(DISTINCT CASE WHEN i.split = 'val' THEN i.id END) "
        "FROM boxes b JOIN images i ON i.id = b.image_id WHERE b.class_id = ? AND i.path NOT LIKE 'derived/%'",
        (class_id,))[0]
    return int(total), int(val)


def box_xyxy(project: Project, box_id: int) -> list[float] | None:
    """A box's corners, or None when it was deleted."""
    rows = project._query("SELECT x1, y1, x2, y2 FROM boxes WHERE id = ?", (box_id,))
    return [float(v) for v in rows[0]] if rows else None


def images_changed_by_edit(project: Project, edit_id: int) -> set[int]:
    """Ids of the images whose boxes edit ``edit_id`` changed (read from the edit log)."""
    rows = project._query("SELECT before, after FROM edit_changes WHERE edit_id = ? AND entity = 'boxes'", (edit_id,))
    return {int(json.loads(v)["image_id"]) for row in rows for v in row if v}


@dataclass(frozen=True, slots=True)
class SnapshotImage:
    image_id: int
    rel: str  # project-relative path as snapshotted
    path: Path  # absolute
    split: str | None
    width: int
    height: int


def snapshot_classes(project: Project, snapshot_id: int) -> list[tuple[int, str]]:
    """(class id, name) of a label snapshot in its class order."""
    return [(int(c), str(n)) for c, n in project._query(
        "SELECT class_id, name FROM snapshot_classes WHERE snapshot_id = ? ORDER BY position, class_id",
        (snapshot_id,))]


def snapshot_labeled_images(project: Project, snapshot_id: int) -> list[SnapshotImage]:
    """The labeled images of a snapshot, by id, with today's sizes (0 x 0 for an image deleted since)."""
    sizes = {int(i): (int(w), int(h)) for i, w, h in project._query("SELECT id, width, height FROM images")}
    return [SnapshotImage(int(i), str(p), project.root / p, s, *sizes.get(int(i), (0, 0))) for i, p, s in project._query(
        "SELECT image_id, path, split FROM snapshot_images WHERE snapshot_id = ? AND labeled = 1 ORDER BY image_id",
        (snapshot_id,))]
