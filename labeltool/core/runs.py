"""Training runs and model predictions in the project database.

A run is recorded only when training finished (a cancelled or failed run leaves no row and no
folder). The newest recorded run becomes the project's *current model* (``meta.current_run``).
Predictions are model boxes tied to the run that made them, kept apart from human boxes; accepting
one adds a human box and marks the prediction 'accepted' in one undoable edit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from . import db
from .errors import EditError, ProjectError
from .model import Prediction, Run
from .store import Project, now_iso

_RUN_COLS = "id, created_at, finished_at, snapshot_id, previous_id, preset, path, metrics, config"
_PRED_COLS = "id, run_id, image_id, class_id, x1, y1, x2, y2, score, status"


def _run(row: Sequence[Any]) -> Run:
    return Run(*row[:7], metrics=json.loads(row[7]), config=json.loads(row[8]))


def record_run(
    project: Project,
    *,
    created_at: str,
    snapshot_id: int,
    previous_id: int | None,
    preset: str,
    path: str,
    metrics: dict[str, Any],
    config: dict[str, Any],
    make_current: bool = True,
) -> int:
    """Insert a finished run (one transaction); it becomes the current model unless told otherwise."""
    conn = project.connection
    with db.write_tx(conn, project.db_path):
        cur = conn.execute(
            "INSERT INTO runs (created_at, finished_at, snapshot_id, previous_id, preset, path, metrics, config) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (created_at, now_iso(), snapshot_id, previous_id, preset, path, json.dumps(metrics), json.dumps(config)),
        )
        run_id = int(cur.lastrowid or 0)
        if make_current:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('current_run', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(run_id),),
            )
    return run_id


def get_run(project: Project, run_id: int) -> Run:
    rows = project.connection.execute(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", (run_id,)).fetchall()
    if not rows:
        raise ProjectError(f"run {run_id} does not exist in {project.root}; `labeltool runs` lists the runs")
    return _run(rows[0])


def list_runs(project: Project) -> list[Run]:
    return [_run(r) for r in project.connection.execute(f"SELECT {_RUN_COLS} FROM runs ORDER BY id")]


def current_run(project: Project) -> Run | None:
    """The project's current model, or None before the first training."""
    row = project.connection.execute("SELECT value FROM meta WHERE key = 'current_run'").fetchone()
    return None if row is None else get_run(project, int(row[0]))


def store_predictions(
    project: Project, *, run_id: int, rows: Iterable[tuple[int, int, float, float, float, float, float]],
    image_ids: Sequence[int] | None = None,
) -> int:
    """Replace run ``run_id``'s open predictions on ``image_ids`` (default: the images in ``rows``)
    with ``rows``, in one transaction.

    ``rows``: ``(image_id, class_id, x1, y1, x2, y2, score)``. Accepted/rejected predictions stay (they
    are part of the review history). Returns the number stored.
    """
    rows = list(rows)
    ts = now_iso()
    conn = project.connection
    with db.write_tx(conn, project.db_path):
        images = sorted({r[0] for r in rows} | set(image_ids or ()))
        conn.executemany(
            "DELETE FROM predictions WHERE run_id = ? AND image_id = ? AND status = 'open'",
            [(run_id, i) for i in images],
        )
        conn.executemany(
            "INSERT INTO predictions (run_id, image_id, class_id, x1, y1, x2, y2, score, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, *r, ts) for r in rows],
        )
    return len(rows)


def predictions(
    project: Project, image_id: int, *, run_id: int | None = None, min_score: float = 0.0, status: str | None = "open"
) -> list[Prediction]:
    """Model boxes on one image, best first (of ``run_id``; default: the current model)."""
    if run_id is None:
        run = current_run(project)
        if run is None:
            return []
        run_id = run.id
    sql = f"SELECT {_PRED_COLS} FROM predictions WHERE image_id = ? AND run_id = ? AND score >= ?"
    params: list[Any] = [image_id, run_id, min_score]
    if status is not None:
        sql += " AND status = ?"
        params.append(status)
    return [Prediction(*r) for r in project.connection.execute(sql + " ORDER BY score DESC", params)]


def accept_predictions(project: Project, prediction_ids: Sequence[int]) -> list[int]:
    """Turn open predictions into human boxes: one undoable edit; returns the new box ids."""
    box_ids = []
    with project.edit("accept model box" if len(prediction_ids) == 1 else "accept model boxes") as e:
        for pid in prediction_ids:
            row = project.connection.execute(f"SELECT {_PRED_COLS} FROM predictions WHERE id = ?", (pid,)).fetchone()
            if row is None:
                raise EditError(f"model box {pid} does not exist")
            pred = Prediction(*row)
            if pred.status != "open":
                raise EditError(f"model box {pid} was already {pred.status}")
            box_ids.append(e.add_box(image_id=pred.image_id, class_id=pred.class_id, xyxy=pred.xyxy))
            e.update("predictions", pid, status="accepted")
    return box_ids


def reject_predictions(project: Project, prediction_ids: Sequence[int]) -> None:
    """Mark open predictions as rejected (undoable)."""
    with project.edit("reject model box") as e:
        for pid in prediction_ids:
            row = project.connection.execute("SELECT status FROM predictions WHERE id = ?", (pid,)).fetchone()
            if row is None:
                raise EditError(f"model box {pid} does not exist")
            if row[0] != "open":
                raise EditError(f"model box {pid} was already {row[0]}")
            e.update("predictions", pid, status="rejected")
