"""The review queue and the weak-class dashboard without Qt: filtering, counting, and the words shown.

The GUI panels (``gui/review_panel.py``, ``gui/dashboard.py``) and the canvas ghost only lay out what
these functions return, so the rules live here and are tested without widgets. Fix wording comes
from :func:`labeltool.core.report.fix_text` (the same words as the HTML report and the CLI).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from .derived import AugmentSet
from .issue_types import issue_type, type_names
from .issue_types import title as type_title  # 'swap' -> 'Wrong class'
from .model import Analysis, Box, Class, Issue
from .report import WEAK_CLASS_KEYS, fix_text
from .store import Project

# (status value for list filters, words in the status filter); None = any status
STATUS_CHOICES: tuple[tuple[str | None, str], ...] = (
    ("open", "To review"), ("accepted", "Accepted"), ("rejected", "Rejected"), (None, "Any status"))
NO_ANALYSIS = ("No label analysis yet. Run Analyze (Loop menu) to look for label errors: it lists the boxes "
               "most likely to be wrong, with a suggested fix for each.")
QUICK_WARNING = ("Quick analysis — less reliable (in-sample): the model judged images it was trained on, so it "
                 "tends to agree with the current labels. Run a full (K-fold) analysis before relying on it.")
RECOMMENDATION_TEXT = {  # weak-class recommendation -> (words, colour of its chip)
    "relabel": ("Relabel", "#c0392b"),
    "collect more images": ("Collect more images", "#1f5fa8"),
    "augment": ("Augment", "#7b3fa0"),
    "ok": ("OK", "#2e7d32"),
    "not judged": ("Not judged", "#666666"),
}
AP_HELP = "AP@0.5: how reliably the model finds the class (0 = never, 1 = always)"
QUALITY_HELP = "label quality: how consistent the class's boxes are (1 = no doubts)"


# -- the queue --------------------------------------------------------------------------------------
def concerns_class(issue: Issue, class_id: int) -> bool:
    """True when the issue is about ``class_id``: its box's class (or the class to add) or, for a
    'swap', the suggested class — the same rule as ``issues.list_issues``."""
    return issue.class_id == class_id or (issue.fix.get("action") == "set_class" and issue.fix.get("class_id") == class_id)


def filter_issues(issues: Iterable[Issue], *, type: str | None = None, class_id: int | None = None,
                  status: str | None = "open") -> list[Issue]:
    """The issues matching every given filter (None = any), in their order (most likely errors first)."""
    if type is not None:
        issue_type(type)  # ValueError naming the known types
    return [i for i in issues
            if (type is None or i.type == type) and (status is None or i.status == status)
            and (class_id is None or concerns_class(i, class_id))]


def counts_text(issues: Sequence[Issue]) -> str:
    """One line about the whole analysis: what is left to review, by type, and what was decided.

    "12 to review of 40 — 5 wrong class, 3 box on nothing · 20 accepted, 8 rejected"
    """
    if not issues:
        return "This analysis found no suspected label errors."
    status = Counter(i.status for i in issues)
    left = Counter(i.type for i in issues if i.status == "open")
    decided = ", ".join(f"{status[s]} {s}" for s in ("accepted", "rejected", "superseded") if status[s])
    if not left:
        return f"All {len(issues)} reviewed" + (f" — {decided}" if decided else "")
    by_type = ", ".join(f"{left[t]} {type_title(t).lower()}" for t in type_names() if left.get(t))
    text = f"{status['open']} to review of {len(issues)} — {by_type}"
    return text + (f" · {decided}" if decided else "")


def shown_text(shown: int, total: int, *, filtered: bool) -> str:
    """The line under the filters: how many rows the list shows."""
    if not filtered:
        return f"{shown} shown"
    return f"{shown} of {total} match the filters" if shown else "No issue matches these filters"


def step_index(count: int, current: int, step: int) -> int:
    """The row ``step`` away from ``current`` in a list of ``count`` rows, wrapping around (-1 when empty).
    From no row (``current`` -1), +1 goes to the first row and -1 to the last."""
    if count <= 0:
        return -1
    if not 0 <= current < count:
        return 0 if step >= 0 else count - 1
    return (current + step) % count


def after_decision(ids: Sequence[int], decided: int) -> int | None:
    """The issue to show after deciding ``decided``: the next one in the list, else the previous, else None."""
    if decided not in ids:
        return None
    k = list(ids).index(decided)
    if k + 1 < len(ids):
        return ids[k + 1]
    return ids[k - 1] if k > 0 else None


@dataclass(frozen=True, slots=True)
class IssueRow:
    """What the queue shows for one issue (all strings but the id)."""

    id: int
    problem: str  # 'Wrong class'
    class_name: str
    score: str  # '0.12'
    image: str  # file name, without the folders
    fix: str  # "Change 'dent' to 'scratch'"
    status: str
    tooltip: str
    gain: str = ""  # '0.31': the expected model gain of the fix ('' when the queue is not in impact order)


def issue_rows(issues: Iterable[Issue], *, names: dict[int, str], paths: dict[int, str],
               gains: dict[int, float] | None = None) -> list[IssueRow]:
    """Rows of the queue; ``names``: class id -> name, ``paths``: image id -> project-relative path,
    ``gains``: issue id -> expected gain (``issue_order.issue_impacts``; shown in the impact order only)."""
    rows = []
    for i in issues:
        gain = f"{gains[i.id]:.2f}" if gains is not None and i.id in gains else ""
        path = paths.get(i.image_id, f"image {i.image_id} (deleted)")
        fix = fix_text(i, names)
        title, meaning = _wording(i.type)
        rows.append(IssueRow(
            id=i.id, problem=title, class_name="–" if i.class_id is None else names.get(i.class_id, f"class {i.class_id}"),
            score=f"{i.score:.2f}", image=PurePosixPath(path).name, fix=fix[:1].upper() + fix[1:], status=i.status,
            gain=gain,
            tooltip=f"{title}: {meaning}.\nSuggested: {fix}.\nImage: {path}\nScore {i.score:.3f} (lower = more "
                    f"likely a label error)" + (f" · expected gain {gain}" if gain else "") + f" · issue #{i.id} · {i.status}"))
    return rows


def _date(ts: str) -> str:
    try:
        return datetime.fromisoformat(ts).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ts


def analysis_text(analysis: Analysis) -> str:
    """'Analysis #3 · 5-fold (out-of-sample) · 2024-05-01 12:00'."""
    how = f"{analysis.folds}-fold (out-of-sample)" if analysis.mode == "kfold" else "quick (in-sample)"
    return f"Analysis #{analysis.id} · {how} · {_date(analysis.created_at)}"


def analysis_warning(analysis: Analysis | None, project: Project | None = None) -> str | None:
    """The quick-mode warning and the analysis job's notes (fold models too weak to judge, random
    weights …) and, with ``project``, whether the labels changed since (:func:`labels_changed_text`),
    one per line; None when there is nothing to warn about."""
    if analysis is None:
        return None
    lines = [QUICK_WARNING] if analysis.mode == "quick" else []
    notes = analysis.summary.get("notes") if isinstance(analysis.summary, dict) else None
    for note in notes if isinstance(notes, list) else []:
        text = str(note).strip()
        if not text or (analysis.mode == "quick" and text.startswith("quick check")):
            continue  # the quick-mode note says what QUICK_WARNING says
        lines.append(text[:1].upper() + text[1:] + ("" if text.endswith(".") else "."))
    changed = labels_changed_text(project, analysis) if project is not None else None
    if changed:
        lines.append(changed)
    return "\n".join(lines) or None


_LABEL_COUNTS = {  # labeled images and their boxes, derived (augmented) images left out as the analysis does
    "now": ("SELECT count(*), (SELECT count(*) FROM boxes b JOIN images i2 ON i2.id = b.image_id "
            "WHERE i2.labeled AND substr(i2.path, 1, 8) != 'derived/') "
            "FROM images WHERE labeled AND substr(path, 1, 8) != 'derived/'"),
    "then": ("SELECT count(*), (SELECT count(*) FROM snapshot_boxes b JOIN snapshot_images i2 "
             "ON i2.snapshot_id = b.snapshot_id AND i2.image_id = b.image_id WHERE b.snapshot_id = ?1 "
             "AND i2.labeled AND substr(i2.path, 1, 8) != 'derived/') "
             "FROM snapshot_images WHERE snapshot_id = ?1 AND labeled AND substr(path, 1, 8) != 'derived/'"),
}
# the labels themselves (which images are labeled, every box's class and corners), now and in the snapshot;
# with equal counts, any row in one and not the other means a change (a relabel, a moved box)
_LABEL_ROWS_DIFFER = """
WITH now_img AS (SELECT id FROM images WHERE labeled AND substr(path, 1, 8) != 'derived/'),
then_img AS (SELECT image_id AS id FROM snapshot_images
             WHERE snapshot_id = ?1 AND labeled AND substr(path, 1, 8) != 'derived/'),
now_box AS (SELECT image_id, class_id, x1, y1, x2, y2 FROM boxes WHERE image_id IN (SELECT id FROM now_img)),
then_box AS (SELECT image_id, class_id, x1, y1, x2, y2 FROM snapshot_boxes
             WHERE snapshot_id = ?1 AND image_id IN (SELECT id FROM then_img))
SELECT EXISTS (SELECT * FROM now_img EXCEPT SELECT * FROM then_img)
    OR EXISTS (SELECT * FROM now_box EXCEPT SELECT * FROM then_box)
    OR EXISTS (SELECT * FROM then_box EXCEPT SELECT * FROM now_box)
"""


def labels_changed_text(project: Project, analysis: Analysis) -> str | None:
    """A line saying the labels changed since ``analysis`` (its labeled images / boxes then and now,
    derived images not counted), or None when they are the same (same images labeled, same boxes)."""
    conn = project.connection
    last_edit = conn.execute("SELECT max(id) FROM edits").fetchone()[0]
    key = (str(project.root), analysis.snapshot_id, last_edit)  # the answer only changes with an edit
    if key not in _changed_cache:
        if len(_changed_cache) >= 8:
            _changed_cache.clear()
        _changed_cache[key] = _labels_changed(conn, analysis.snapshot_id)
    return _changed_cache[key]


_changed_cache: dict[tuple[str, int, int | None], str | None] = {}  # the review panel and dashboard ask in turn


def _labels_changed(conn: Any, snapshot_id: int) -> str | None:
    then = tuple(conn.execute(_LABEL_COUNTS["then"], (snapshot_id,)).fetchone())
    now = tuple(conn.execute(_LABEL_COUNTS["now"]).fetchone())
    if then == now and not conn.execute(_LABEL_ROWS_DIFFER, (snapshot_id,)).fetchone()[0]:
        return None
    return (f"The labels changed since this analysis (it saw {then[0]} labeled images with {then[1]} boxes; "
            f"now {now[0]} with {now[1]}): its counts and scores are from then. Analyze labels again to update.")


# -- weak classes -----------------------------------------------------------------------------------
def weak_class_rows(analysis: Analysis | None) -> list[dict[str, Any]]:
    """Rows of ``summary['weak_classes']`` with every key of ``report.WEAK_CLASS_KEYS`` present."""
    if analysis is None:
        return []
    rows = analysis.summary.get("weak_classes", [])
    return [{**WEAK_CLASS_KEYS, **row} for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def recommendation(row: dict[str, Any]) -> tuple[str, str]:
    """(words, chip colour) of a row's recommendation; unknown ones are shown as they are, in grey."""
    rec = str(row.get("recommendation") or "")
    return RECOMMENDATION_TEXT.get(rec, (rec.capitalize() or "–", "#666666"))


def number_text(value: float | None) -> str:
    return "not measured" if value is None else f"{float(value):.2f}"


def counts_line(row: dict[str, Any]) -> str:
    """'24 boxes on 18 images · often confused with 'dent' (20 %)'."""
    boxes, images = int(row.get("boxes") or 0), int(row.get("images") or 0)
    text = f"{boxes} box{'es' if boxes != 1 else ''} on {images} image{'s' if images != 1 else ''}"
    if row.get("confused_with"):
        text += f" · often confused with '{row['confused_with']}' ({float(row.get('confusion_share') or 0):.0%})"
    return text


def open_issues_by_class(issues: Iterable[Issue]) -> Counter[int]:
    """Open issues per class id (an issue counts for every class it concerns, see :func:`concerns_class`)."""
    counts: Counter[int] = Counter()
    for i in issues:
        if i.status != "open":
            continue
        ids = {i.class_id} | ({i.fix.get("class_id")} if i.fix.get("action") == "set_class" else set())
        counts.update(c for c in ids if isinstance(c, int))
    return counts


# -- the ghost of a suggested fix ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GhostMark:
    """One mark of the ghost, in image pixels.

    ``kind``: 'highlight' (the box the issue is about), 'target' (dashed box: the box to add or the
    place to snap to), 'outline' (drawn around the box in the suggested class's colour), 'cross'
    (the box to delete).
    """

    kind: str
    rect: tuple[float, float, float, float]
    color: str
    text: str = ""


def ghost_marks(issue: Issue | None, *, image_id: int | None, boxes: Sequence[Box],
                classes: Sequence[Class]) -> list[GhostMark]:
    """The marks that show ``issue``'s suggestion on image ``image_id`` (none when the issue is on another
    image); ``boxes``: that image's boxes now (the issue's box may be gone), ``classes``: names and colours."""
    if issue is None or issue.image_id != image_id:
        return []
    names, colors = {c.id: c.name for c in classes}, {c.id: c.color for c in classes}
    fix, white = issue.fix, "#ffffff"
    color = colors.get(issue.class_id, white) if issue.class_id is not None else white
    box = next((b.xyxy for b in boxes if b.id == issue.box_id), None) if issue.box_id is not None else None
    marks: list[GhostMark] = [] if box is None else [GhostMark("highlight", box, color)]
    action = fix.get("action")
    if action == "add_box":
        cid = fix["class_id"]
        marks.append(GhostMark("target", _xyxy(fix["xyxy"]), colors.get(cid, white),
                               f"add {names.get(cid, f'class {cid}')}"))
    elif action == "move_box":
        marks.append(GhostMark("target", _xyxy(fix["xyxy"]), color, "snap here"))
    elif action == "set_class" and box is not None:
        cid = fix["class_id"]
        marks.append(GhostMark("outline", box, colors.get(cid, white), f"→ {names.get(cid, f'class {cid}')}"))
    elif action == "delete_box" and box is not None:
        marks.append(GhostMark("cross", box, color, "delete (duplicate)" if issue.type == "duplicate" else "delete"))
    return marks


def _xyxy(values: Sequence[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in values)
    return x1, y1, x2, y2


def issue_status(project: Project, issue_id: int) -> str | None:
    """The issue's status now; None when it no longer exists (its image or class was deleted)."""
    row = project.connection.execute("SELECT status FROM issues WHERE id = ?", (issue_id,)).fetchone()
    return None if row is None else str(row[0])


# -- augment set preview ----------------------------------------------------------------------------
def set_summary(aset: AugmentSet) -> str:
    """"Augment set #4: 24 new training images for 'dent' — 16 augmented copies, 8 copy-paste composites"."""
    made = aset.params.get("made") if isinstance(aset.params.get("made"), dict) else {}
    kinds = [f"{made[k]} {words}" for k, words in (("augment", "augmented copies"),
                                                    ("copy_paste", "copy-paste composites")) if made.get(k)]
    whom = ", ".join(f"'{c}'" for c in aset.classes) if aset.classes else "any class"
    text = f"Augment set #{aset.id}: {aset.n_images} new training image{'s' if aset.n_images != 1 else ''} for {whom}"
    return text + (f" — {', '.join(kinds)}" if kinds else "")


def set_targets(aset: AugmentSet) -> str:
    """"'dent': 5 training images before, target 12" per targeted class ('' when the set has no plan)."""
    planned = aset.params.get("planned")
    if not isinstance(planned, dict):
        return ""
    return "; ".join(f"'{name}': {row.get('before', '?')} training images before, target {row.get('target', '?')}"
                     for name, row in planned.items() if isinstance(row, dict))


def tile_caption(member: dict[str, Any], source_paths: dict[int, str]) -> str:
    """A thumbnail's caption: 'copy of part_003.png' / 'paste on part_003.png' (member: ``derived.set_members`` row)."""
    source = PurePosixPath(source_paths.get(member["source_image_id"], f"image {member['source_image_id']}")).name
    return f"{'paste on' if member['kind'] == 'copy_paste' else 'copy of'} {source}"


def more_text(total: int, shown: int) -> str:
    """'… and 140 more images (not shown)' or ''."""
    return f"… and {total - shown} more image{'s' if total - shown != 1 else ''} (not shown)" if total > shown else ""


def _wording(name: str) -> tuple[str, str]:
    """(title, meaning) of an issue type; the bare name for a type no longer registered."""
    try:
        kind = issue_type(name)
    except ValueError:
        return name, ""
    return kind.title, kind.meaning
