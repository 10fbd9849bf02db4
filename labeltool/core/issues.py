"""The issue queue: label-quality analyses and the suspected label errors (issues) they found.

An analysis job calls :func:`record_analysis` once, at the end (one transaction): the analysis row,
its issues, and the retirement of the previous analysis's open issues ('superseded'). Reviewing is
editing: :func:`accept_issues` applies each issue's fix through the Edit API and marks the issue
'accepted' in the same undoable edit; :func:`reject_issues` marks issues 'rejected' (undoable too).

Rejected issues are remembered: a later analysis does not raise an issue again when the user
rejected the same issue on the same image and that image's labels did not change since (same
``labels_hash``). "The same issue" = same type and same box; for 'overlooked' (no box yet): same
class and suggested boxes overlapping with IoU >= :data:`REJECTED_MATCH_IOU`.

Fix JSON (``xyxy``: float pixels of the displayed image, clipped to the image when recorded)::

    overlooked            {"action": "add_box", "class_id": int, "xyxy": [x1, y1, x2, y2]}
    swap                  {"action": "set_class", "box_id": int, "class_id": int}
    badloc                {"action": "move_box", "box_id": int, "xyxy": [x1, y1, x2, y2]}
    spurious, duplicate   {"action": "delete_box", "box_id": int}
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import db
from .edits import Edit, read_row
from .errors import EditError, ProjectError
from .issue_types import issue_type, type_names
from .model import Analysis, Issue
from .store import Project, now_iso

STATUSES = ("open", "accepted", "rejected", "superseded")
MODES = ("kfold", "quick")
# A rejected 'overlooked' issue suppresses a new one of the same class whose suggested box overlaps
# it at least this much (IoU); the model's box for the same defect wobbles a little between runs.
REJECTED_MATCH_IOU = 0.5
# Accepting an 'overlooked' fix is refused when a box of that class already covers the suggestion
# this much (IoU): someone labeled it meanwhile, and accepting would create a duplicate.
ALREADY_LABELED_IOU = 0.5

_ISSUE_COLS = "id, analysis_id, type, image_id, box_id, class_id, score, fix, status, labels_hash, created_at"
_ANALYSIS_COLS = "id, created_at, snapshot_id, run_id, mode, folds, config, summary"


@dataclass(frozen=True, slots=True)
class NewIssue:
    """An issue found by an analysis, before it is recorded. ``fix``: see the module docstring."""

    type: str
    image_id: int
    box_id: int | None  # the labeled box concerned; None for 'overlooked'
    class_id: int | None  # class of the box ('overlooked': the class to add)
    score: float  # 0..1, lower = more likely a label error
    fix: dict[str, Any]


# -- hashing and small helpers ----------------------------------------------------------------------
def _labels_hash(rows: Iterable[Sequence[float]]) -> str:
    """sha256 of ``(class_id, x1, y1, x2, y2)`` rows, order-free, coordinates rounded to 1e-3 px."""
    items = sorted((int(c), *(round(float(v), 3) for v in xyxy)) for c, *xyxy in rows)
    return hashlib.sha256(repr(items).encode()).hexdigest()


def image_labels_hash(conn: sqlite3.Connection, image_id: int) -> str:
    """sha256 of the image's current boxes (class id + coordinates rounded to 1e-3 px, sorted)."""
    return _labels_hash(conn.execute("SELECT class_id, x1, y1, x2, y2 FROM boxes WHERE image_id = ?", (image_id,)))


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (0 when either is empty)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _plain(obj: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays to Python, NaN/inf to None (= "not measured")."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, str | bytes):
        return _plain(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _dumps(obj: Any, what: str) -> str:
    try:
        return json.dumps(_plain(obj), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable: {exc}") from exc


def _issue(row: Sequence[Any]) -> Issue:
    return Issue(*row[:7], fix=json.loads(row[7]), status=row[8], labels_hash=row[9], created_at=row[10])


def _analysis(row: Sequence[Any]) -> Analysis:
    return Analysis(*row[:6], config=json.loads(row[6]), summary=json.loads(row[7]))


# -- recording an analysis --------------------------------------------------------------------------
def _checked_xyxy(value: Any, size: tuple[int, int], where: str) -> list[float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: xyxy must be 4 numbers, got {value!r}") from exc
    w, h = size
    x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
    if not all(map(math.isfinite, (x1, y1, x2, y2))) or x1 >= x2 or y1 >= y2:
        raise ValueError(f"{where}: box {value!r} is empty or outside the {w}x{h} image")
    return [x1, y1, x2, y2]


def _int_or_none(value: Any, where: str, what: str) -> int | None:
    try:
        return None if value is None else operator.index(value)  # numpy integers too, not floats
    except TypeError as exc:
        raise TypeError(f"{where}: {what} must be an int or None, got {value!r}") from exc


def _checked_issue(issue: NewIssue, k: int, sizes: dict[int, tuple[int, int]], classes: set[int]) -> NewIssue:
    """Validate ``issues[k]``; returns it normalised (plain ints/floats, fix JSON-ready, xyxy clipped)."""
    if not isinstance(issue, NewIssue):
        raise TypeError(f"issues[{k}] must be a NewIssue, got {type(issue).__name__}")
    where = f"issues[{k}] ({issue.type} on image {issue.image_id})"
    if issue.type not in type_names():
        raise ValueError(f"issues[{k}]: type must be one of {type_names()}, got {issue.type!r}")
    kind = issue_type(issue.type)
    image_id = _int_or_none(issue.image_id, where, "image_id")
    if image_id not in sizes:
        raise ValueError(f"{where}: the project has no image {issue.image_id}")
    box_id = _int_or_none(issue.box_id, where, "box_id")
    class_id = _int_or_none(issue.class_id, where, "class_id")
    try:
        score = float(issue.score)
    except (TypeError, ValueError):
        score = math.nan
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"{where}: score must be a number in 0..1, got {issue.score!r}")
    fix = _plain(dict(issue.fix)) if isinstance(issue.fix, dict) else None
    if fix is None or fix.get("action") != kind.fix_action:
        raise ValueError(f"{where}: fix must be a dict with action {kind.fix_action!r}, got {issue.fix!r}")
    if not kind.on_box:
        if box_id is not None or class_id not in classes or fix.get("class_id") != class_id:
            raise ValueError(f"{where}: needs box_id None and an existing class_id equal to fix['class_id']")
    elif box_id is None or fix.get("box_id") != box_id:
        raise ValueError(f"{where}: box_id {issue.box_id!r} must be an int equal to fix['box_id']")
    if fix["action"] == "set_class" and fix.get("class_id") not in classes:
        raise ValueError(f"{where}: a set_class fix needs the class_id of a class of the project")
    if fix["action"] in ("add_box", "move_box"):
        fix["xyxy"] = _checked_xyxy(fix.get("xyxy"), sizes[image_id], where)
    return NewIssue(issue.type, image_id, box_id, class_id, score, fix)


def _same_issue(new: NewIssue, old: Issue) -> bool:
    if not issue_type(new.type).on_box:
        return old.class_id == new.class_id and iou(old.fix["xyxy"], new.fix["xyxy"]) >= REJECTED_MATCH_IOU
    return old.box_id == new.box_id


def _drop_redo_of(conn: sqlite3.Connection, issue_ids: set[int]) -> None:
    """Drop the redo branch from the first undone edit that changed one of ``issue_ids``.

    Superseding rewrites those issues outside the edit log, so redoing such an edit would fail.
    """
    rows = conn.execute(
        "SELECT c.edit_id, c.entity_id FROM edit_changes c JOIN edits e ON e.id = c.edit_id "
        "WHERE e.state = 'undone' AND c.entity = 'issues'"
    ).fetchall()
    hit = [edit_id for edit_id, issue_id in rows if issue_id in issue_ids]
    if hit:
        conn.execute("UPDATE edits SET state = 'dropped' WHERE state = 'undone' AND id >= ?", (min(hit),))


def record_analysis(
    project: Project,
    *,
    snapshot_id: int,
    run_id: int | None,
    mode: str,
    folds: int | None,
    config: dict[str, Any],
    summary: dict[str, Any],
    issues: Sequence[NewIssue],
) -> tuple[int, dict[str, int]]:
    """Record an analysis of snapshot ``snapshot_id`` and its issues in ONE write transaction.

    Earlier issues still 'open' become 'superseded'. A new issue matching an issue the user
    rejected earlier on the same image, whose labels are unchanged, is not recorded (see the
    module docstring). Each issue's ``labels_hash`` is the hash of its image's boxes in the
    snapshot. NaN/inf in ``config``/``summary`` are stored as null. Returns ``(analysis_id,
    {"recorded": n, "suppressed_rejected": n, "superseded": n})``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
        raise ValueError(f"folds must be an int >= 2 or None, got {folds!r}")
    if mode == "kfold" and folds is None:
        raise ValueError("a 'kfold' analysis needs the number of folds")
    config_json, summary_json = _dumps(config, "config"), _dumps(summary, "summary")
    project.snapshot(snapshot_id)  # ProjectError when missing
    conn = project.connection
    if run_id is not None and conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
        raise ProjectError(f"run {run_id} does not exist in {project.root}; `labeltool runs` lists the runs")
    sizes = {i: (w, h) for i, w, h in conn.execute("SELECT id, width, height FROM images")}
    classes = {r[0] for r in conn.execute("SELECT id FROM classes")}
    checked = [_checked_issue(issue, k, sizes, classes) for k, issue in enumerate(issues)]
    snap_boxes: dict[int, list[tuple[Any, ...]]] = {}
    for image_id, *row in conn.execute(
        "SELECT image_id, class_id, x1, y1, x2, y2 FROM snapshot_boxes WHERE snapshot_id = ?", (snapshot_id,)
    ):
        snap_boxes.setdefault(image_id, []).append(tuple(row))
    hashes = {i: _labels_hash(snap_boxes.get(i, ())) for i in {issue.image_id for issue in checked}}
    try:
        return _write_analysis(project, checked=checked, hashes=hashes,
                               row=(snapshot_id, run_id, mode, folds, config_json, summary_json))
    except sqlite3.Error as exc:  # e.g. an image deleted while the analysis ran
        raise db.translate(exc, project.db_path) from exc


def _write_analysis(project: Project, *, checked: list[NewIssue], hashes: dict[int, str],
                    row: tuple[Any, ...]) -> tuple[int, dict[str, int]]:
    """The write transaction of :func:`record_analysis` (``row``: the analyses columns after created_at)."""
    conn, ts = project.connection, now_iso()
    with db.write_tx(conn, project.db_path):
        cur = conn.execute(
            "INSERT INTO analyses (created_at, snapshot_id, run_id, mode, folds, config, summary) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ts, *row),
        )
        analysis_id = int(cur.lastrowid or 0)
        open_ids = {r[0] for r in conn.execute("SELECT id FROM issues WHERE status = 'open'")}
        conn.execute("UPDATE issues SET status = 'superseded' WHERE status = 'open'")
        _drop_redo_of(conn, open_ids)
        rejected: dict[tuple[int, str], list[Issue]] = {}
        for found in conn.execute(f"SELECT {_ISSUE_COLS} FROM issues WHERE status = 'rejected'"):
            old = _issue(found)
            rejected.setdefault((old.image_id, old.type), []).append(old)
        rows, suppressed = [], 0
        for issue in checked:
            labels_hash = hashes[issue.image_id]
            if any(
                old.labels_hash == labels_hash and _same_issue(issue, old)
                for old in rejected.get((issue.image_id, issue.type), ())
            ):
                suppressed += 1
                continue
            rows.append((analysis_id, issue.type, issue.image_id, issue.box_id, issue.class_id,
                         issue.score, json.dumps(issue.fix), labels_hash, ts))
        conn.executemany(
            "INSERT INTO issues (analysis_id, type, image_id, box_id, class_id, score, fix, labels_hash, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return analysis_id, {"recorded": len(rows), "suppressed_rejected": suppressed, "superseded": len(open_ids)}


# -- reading ----------------------------------------------------------------------------------------
def latest_analysis(project: Project) -> Analysis | None:
    row = project.connection.execute(f"SELECT {_ANALYSIS_COLS} FROM analyses ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else _analysis(row)


def get_analysis(project: Project, analysis_id: int) -> Analysis:
    row = project.connection.execute(f"SELECT {_ANALYSIS_COLS} FROM analyses WHERE id = ?", (analysis_id,)).fetchone()
    if row is None:
        raise ProjectError(f"analysis {analysis_id} does not exist in {project.root}; run `labeltool analyze` first")
    return _analysis(row)


def get_issue(project: Project, issue_id: int) -> Issue:
    row = project.connection.execute(f"SELECT {_ISSUE_COLS} FROM issues WHERE id = ?", (issue_id,)).fetchone()
    if row is None:
        raise EditError(f"issue {issue_id} does not exist")
    return _issue(row)


def _analysis_id(project: Project, analysis_id: int | None) -> int | None:
    if analysis_id is None:
        latest = latest_analysis(project)
        return None if latest is None else latest.id
    return get_analysis(project, analysis_id).id


def list_issues(
    project: Project,
    *,
    analysis_id: int | None = None,
    types: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    status: str | None = "open",
) -> list[Issue]:
    """Issues of an analysis (default: the latest), most likely errors first (score ascending); the
    impact order and its gains: ``core/issue_order.py``.

    ``types``/``class_names``/``status`` filter (None = any). A class matches the issue's class
    (the box's class, or the class to add) and, for 'swap', also the suggested class.
    """
    if types is not None and (bad := [t for t in types if t not in type_names()]):
        raise ValueError(f"unknown issue type(s) {bad}; known: {', '.join(type_names())}")
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES} or None, got {status!r}")
    class_ids: set[int] | None = None
    if class_names is not None:
        by_name = {c.name: c.id for c in project.classes()}
        if bad := [n for n in class_names if n not in by_name]:
            raise ValueError(f"unknown class(es) {bad}; the project's classes: {', '.join(by_name) or 'none'}")
        class_ids = {by_name[n] for n in class_names}
    aid = _analysis_id(project, analysis_id)
    if aid is None:
        return []
    sql, params = f"SELECT {_ISSUE_COLS} FROM issues WHERE analysis_id = ?", [aid]
    if types is not None:
        sql += f" AND type IN ({', '.join('?' * len(types))})"
        params += list(types)
    if status is not None:
        sql += " AND status = ?"
        params.append(status)
    found = [_issue(r) for r in project.connection.execute(sql + " ORDER BY score, id", params)]
    if class_ids is not None:
        found = [i for i in found
                 if i.class_id in class_ids or (i.fix.get("action") == "set_class" and i.fix.get("class_id") in class_ids)]
    return found


def issue_counts(project: Project, *, analysis_id: int | None = None) -> dict[str, dict[str, int]]:
    """``{type: {status: n}}`` for every type and status (zeros included) of an analysis (default: latest)."""
    counts = {t: dict.fromkeys(STATUSES, 0) for t in type_names()}
    aid = _analysis_id(project, analysis_id)
    if aid is not None:
        for kind, status, n in project.connection.execute(
            "SELECT type, status, count(*) FROM issues WHERE analysis_id = ? GROUP BY type, status", (aid,)
        ):
            counts.setdefault(kind, dict.fromkeys(STATUSES, 0))[status] = n  # a type no longer registered
    return counts


# -- reviewing ----------------------------------------------------------------------------------------
def _stale(issue: Issue, reason: str) -> EditError:
    return EditError(
        f"issue {issue.id} ({issue.type} on image {issue.image_id}) cannot be applied: {reason}; the labels "
        "changed since the analysis. Re-run `labeltool analyze` for up-to-date suggestions."
    )


def _open_issue(conn: sqlite3.Connection, issue_id: int) -> Issue:
    row = conn.execute(f"SELECT {_ISSUE_COLS} FROM issues WHERE id = ?", (issue_id,)).fetchone()
    if row is None:
        raise EditError(f"issue {issue_id} does not exist")
    issue = _issue(row)
    if issue.status != "open":
        raise _stale(issue, f"it is already {issue.status}")
    return issue


def _apply_fix(e: Edit, conn: sqlite3.Connection, issue: Issue) -> None:
    """Apply ``issue.fix`` through the Edit API, refusing when the labels it was made for changed."""
    fix = issue.fix
    if fix["action"] == "add_box":
        for _, class_id, *xyxy in conn.execute(
            "SELECT id, class_id, x1, y1, x2, y2 FROM boxes WHERE image_id = ?", (issue.image_id,)
        ):
            if class_id == fix["class_id"] and iou(xyxy, fix["xyxy"]) >= ALREADY_LABELED_IOU:
                raise _stale(issue, "a box of that class is already there")
        e.add_box(image_id=issue.image_id, class_id=fix["class_id"], xyxy=fix["xyxy"])
        return
    box_id = fix["box_id"]
    box = read_row(conn, "boxes", box_id)
    if box is None or box["image_id"] != issue.image_id:
        raise _stale(issue, f"box {box_id} no longer exists")
    # The box as analysed (snapshots taken before schema v3 have no box ids: then only the class is known).
    snap = conn.execute(
        "SELECT s.class_id, s.x1, s.y1, s.x2, s.y2 FROM snapshot_boxes s JOIN analyses a "
        "ON a.snapshot_id = s.snapshot_id WHERE a.id = ? AND s.box_id = ?",
        (issue.analysis_id, box_id),
    ).fetchone()
    class_changed = issue.class_id is not None and box["class_id"] != issue.class_id
    moved = snap is not None and any(
        round(box[k], 3) != round(v, 3) for k, v in zip(("x1", "y1", "x2", "y2"), snap[1:], strict=True)
    )
    if fix["action"] == "set_class":
        if class_changed:
            raise _stale(issue, f"box {box_id} has another class now")
        e.update_box(box_id, class_id=fix["class_id"])
    elif fix["action"] == "move_box":
        if moved:
            raise _stale(issue, f"box {box_id} was moved or resized")
        e.update_box(box_id, xyxy=fix["xyxy"])
    else:
        if class_changed or moved:
            raise _stale(issue, f"box {box_id} was changed")
        e.delete_box(box_id)


def accept_issues(project: Project, issue_ids: Sequence[int]) -> None:
    """Apply the fixes of open issues and mark them 'accepted': ONE undoable edit for the whole call.

    EditError (and nothing changes) when an issue is not open or the labels it was made for changed
    (its box was deleted, moved or relabeled; for 'overlooked', the box was added meanwhile).
    """
    ids = list(dict.fromkeys(issue_ids))
    conn = project.connection
    with project.edit("accept issue" if len(ids) == 1 else f"accept {len(ids)} issues") as e:
        for issue_id in ids:
            issue = _open_issue(conn, issue_id)
            _apply_fix(e, conn, issue)
            e.update("issues", issue_id, status="accepted")


def reject_issues(project: Project, issue_ids: Sequence[int]) -> None:
    """Mark open issues 'rejected' (one undoable edit); a later analysis will not raise them again
    while their image's labels stay the same."""
    ids = list(dict.fromkeys(issue_ids))
    conn = project.connection
    with project.edit("reject issue" if len(ids) == 1 else f"reject {len(ids)} issues") as e:
        for issue_id in ids:
            _open_issue(conn, issue_id)
            e.update("issues", issue_id, status="rejected")
