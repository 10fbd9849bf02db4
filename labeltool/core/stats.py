"""Dataset statistics of a project: images, labeled/unlabeled, boxes per class, box sizes."""

from __future__ import annotations

from typing import Any

import numpy as np

from .store import Project

# COCO's area buckets (in px², on the image as stored): small < 32², medium < 96², large above.
SMALL_AREA = 32 * 32
MEDIUM_AREA = 96 * 96


def project_stats(project: Project) -> dict[str, Any]:
    """Counts and box-size distribution, JSON-able.

    Box size is reported as ``sqrt(w*h)`` in pixels and relative to ``sqrt(W*H)`` of its image
    (percentiles 5/25/50/75/95), plus COCO small/medium/large counts.
    """
    conn = project.connection
    n_images = conn.execute("SELECT count(*) FROM images").fetchone()[0]
    n_labeled = conn.execute("SELECT count(*) FROM images WHERE labeled = 1").fetchone()[0]
    n_defect_free = conn.execute(
        "SELECT count(*) FROM images i WHERE labeled = 1 AND NOT EXISTS (SELECT 1 FROM boxes b WHERE b.image_id = i.id)"
    ).fetchone()[0]
    splits = dict(conn.execute("SELECT coalesce(split, 'unassigned'), count(*) FROM images GROUP BY 1").fetchall())
    per_class = []
    for cid, name, n_boxes, n_imgs in conn.execute(
        "SELECT c.id, c.name, count(b.id), count(DISTINCT b.image_id) FROM classes c "
        "LEFT JOIN boxes b ON b.class_id = c.id GROUP BY c.id ORDER BY c.position, c.id"
    ):
        per_class.append({"id": cid, "name": name, "boxes": n_boxes, "images": n_imgs})
    rows = np.array(
        conn.execute(
            "SELECT b.x2 - b.x1, b.y2 - b.y1, i.width, i.height FROM boxes b JOIN images i ON i.id = b.image_id"
        ).fetchall(),
        dtype=np.float64,
    ).reshape(-1, 4)
    sizes: dict[str, Any] = {"count": int(len(rows))}
    if len(rows):
        area = rows[:, 0] * rows[:, 1]
        side = np.sqrt(area)
        rel = side / np.sqrt(rows[:, 2] * rows[:, 3])
        q = [5, 25, 50, 75, 95]
        sizes.update(
            {
                "side_px_percentiles": dict(zip(map(str, q), np.round(np.percentile(side, q), 1).tolist(), strict=True)),
                "side_rel_percentiles": dict(zip(map(str, q), np.round(np.percentile(rel, q), 4).tolist(), strict=True)),
                "small": int((area < SMALL_AREA).sum()),
                "medium": int(((area >= SMALL_AREA) & (area < MEDIUM_AREA)).sum()),
                "large": int((area >= MEDIUM_AREA).sum()),
            }
        )
    return {
        "project": str(project.root),
        "images": int(n_images),
        "labeled_images": int(n_labeled),
        "unlabeled_images": int(n_images - n_labeled),
        "labeled_without_boxes": int(n_defect_free),
        "boxes": int(sizes["count"]),
        "splits": splits,
        "classes": per_class,
        "box_size": sizes,
        "schema_version": project.schema_version,
    }
