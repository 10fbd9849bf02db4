"""Immutable label snapshots: a frozen copy of classes, images (with split) and boxes.

A training run records the id of the snapshot it trained on, so every model can be reproduced.
The snapshot tables are guarded by triggers that refuse UPDATE and DELETE.
"""

from __future__ import annotations

import hashlib
import sqlite3


def content_hash(conn: sqlite3.Connection) -> tuple[str, int, int]:
    """sha256 over the current label state; returns ``(hex, n_images, n_boxes)``.

    Coordinates are rounded to 1e-3 px so float noise does not create new snapshots.
    """
    h = hashlib.sha256()
    for row in conn.execute("SELECT id, name, position FROM classes ORDER BY id"):
        h.update(repr(("c", *row)).encode())
    n_images = 0
    for row in conn.execute("SELECT id, sha256, split, labeled FROM images ORDER BY id"):
        h.update(repr(("i", *row)).encode())
        n_images += 1
    n_boxes = 0
    for image_id, class_id, *xyxy in conn.execute(
        "SELECT image_id, class_id, x1, y1, x2, y2 FROM boxes ORDER BY image_id, id"
    ):
        h.update(repr(("b", image_id, class_id, *(round(v, 3) for v in xyxy))).encode())
        n_boxes += 1
    return h.hexdigest(), n_images, n_boxes


def create_snapshot(conn: sqlite3.Connection, *, ts: str, note: str) -> int:
    """Inside an open write transaction: reuse the newest snapshot if labels are unchanged, else copy."""
    digest, n_images, n_boxes = content_hash(conn)
    last = conn.execute("SELECT id, content_hash FROM snapshots ORDER BY id DESC LIMIT 1").fetchone()
    if last is not None and last[1] == digest and conn.execute(
        "SELECT 1 FROM snapshot_boxes WHERE snapshot_id = ? AND box_id IS NULL LIMIT 1", (last[0],)
    ).fetchone() is None:  # snapshots taken before schema v3 lack box ids: take a new one
        return int(last[0])
    last_edit = conn.execute("SELECT max(id) FROM edits").fetchone()[0]
    cur = conn.execute(
        "INSERT INTO snapshots (created_at, note, content_hash, last_edit_id, n_images, n_boxes) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (ts, note, digest, last_edit, n_images, n_boxes),
    )
    sid = int(cur.lastrowid or 0)
    conn.execute(
        "INSERT INTO snapshot_classes (snapshot_id, class_id, name, position) "
        "SELECT ?, id, name, position FROM classes",
        (sid,),
    )
    conn.execute(
        "INSERT INTO snapshot_images (snapshot_id, image_id, path, sha256, split, labeled) "
        "SELECT ?, id, path, sha256, split, labeled FROM images",
        (sid,),
    )
    conn.execute(
        "INSERT INTO snapshot_boxes (snapshot_id, box_id, image_id, class_id, x1, y1, x2, y2) "
        "SELECT ?, id, image_id, class_id, x1, y1, x2, y2 FROM boxes ORDER BY image_id, id",
        (sid,),
    )
    return sid
