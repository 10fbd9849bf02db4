"""The review order: which suspected label errors to look at first.

'likely' (the default): most likely errors first — :func:`issues.list_issues` order (score ascending).
'impact': biggest expected model gain first — (1 - score) x the headroom of the weakest class the issue
touches (``core/fix_priority.py``), with the headroom per class taken from the analysis that found the
issues. An analysis that cannot tell which classes are weak (a quick check's in-sample APs, fold models
too weak to judge) has no headroom: the impact order then stays most likely first, and
:attr:`IssueQueue.note` says why. The CLI and the review panel order through :func:`issue_queue`; the
report (most likely first) takes its gains from :func:`issue_impacts`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .fix_priority import class_headroom, impact
from .issues import latest_analysis, list_issues
from .model import Analysis, Issue
from .store import Project

ORDERS = ("likely", "impact")  # most likely errors first / biggest expected model gain first
# Below this out-of-sample mAP@.5 the fold models miss too much for their disagreement with the labels (or
# their per-class AP) to mean much: the analysis says so and the weak-class table judges no class.
WEAK_MODEL_MAP50 = 0.3


def analysis_headroom(project: Project, analysis: Analysis) -> dict[int, float] | None:
    """Class id -> headroom (1 - out-of-sample AP50, floored: ``core/fix_priority.py``), what the impact
    order weighs issues by. None when the analysis cannot tell which classes are weak: a quick check
    (its APs are in-sample) or fold models too weak to judge (mAP@.5 below :data:`WEAK_MODEL_MAP50`).
    Analyses recorded before the headroom was kept get it from their stored per-class AP."""
    if analysis.mode == "quick":
        return None
    summary = analysis.summary
    if "class_headroom" not in summary:  # recorded before the headroom was kept
        evaluation = summary.get("evaluation")
        rows = evaluation.get("per_class") if isinstance(evaluation, dict) else None
        m = summary.get("oof_map50")
        if not isinstance(rows, list) or not rows or not isinstance(m, int | float) or not m >= WEAK_MODEL_MAP50:
            return None
        ids = {c.name: c.id for c in project.classes()}
        ap = [r.get("ap50") if isinstance(r, dict) and isinstance(r.get("ap50"), int | float) else None for r in rows]
        rooms = class_headroom(ap)
        return {ids[r["name"]]: float(h) for r, h in zip(rows, rooms, strict=True)
                if isinstance(r, dict) and r.get("name") in ids}
    raw = summary["class_headroom"]
    if not isinstance(raw, dict):
        return None
    return {int(k): float(v) for k, v in raw.items()
            if str(k).isdigit() and isinstance(v, int | float) and math.isfinite(v)}


def issue_impacts(headroom: dict[int, float] | None, issues: Iterable[Issue]) -> dict[int, float]:
    """Issue id -> the expected gain of its fix: (1 - score) x the largest headroom of the classes it
    touches (:func:`analysis_headroom`; a class without one — added since — counts with the mean).
    Without headroom (None) every class counts alike: 1 - score, i.e. the most likely order."""
    known = headroom or {}
    fill = sum(known.values()) / len(known) if known else 1.0
    out = {}
    for issue in issues:
        touched = [c for c in (issue.class_id, issue.fix.get("class_id")) if c is not None]
        out[issue.id] = impact(issue.score, [known.get(int(c), fill) for c in touched] or [fill])
    return out


def no_headroom_reason(analysis: Analysis) -> str:
    """Why :func:`analysis_headroom` is None for ``analysis`` (the impact order then stays most likely
    first), and what to do about it."""
    if analysis.mode == "quick":
        return "a quick check's per-class APs are in-sample; run a full analysis"
    m = analysis.summary.get("oof_map50")
    if isinstance(m, int | float) and m < WEAK_MODEL_MAP50:
        return (f"its fold models were too weak to judge classes, mAP@.5 {m:.2f} (below {WEAK_MODEL_MAP50}); "
                "give the analysis more minutes, or pretrained weights")
    return "it kept no per-class out-of-sample AP; analyze again"


@dataclass(frozen=True, slots=True)
class IssueQueue:
    """Issues in review order, their expected gains, and why the impact order could not be used."""

    issues: list[Issue]
    gains: dict[int, float] | None  # issue id -> expected gain (:func:`issue_impacts`); None: no class headroom
    note: str | None  # impact order asked for but unusable: "most likely first — ...: why; what to do"; else None


def issue_queue(project: Project, *, order: str = "likely", types: Sequence[str] | None = None,
                class_names: Sequence[str] | None = None, status: str | None = "open") -> IssueQueue:
    """The latest analysis's issues (filtered as :func:`issues.list_issues` does) in ``order``, reading
    the analysis's headroom once. The gains are there whenever the analysis has headroom, in either order."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    analysis = latest_analysis(project)
    if analysis is None:
        return IssueQueue([], None, None)
    found = list_issues(project, analysis_id=analysis.id, types=types, class_names=class_names, status=status)
    headroom = analysis_headroom(project, analysis)
    gains = issue_impacts(headroom, found) if headroom is not None else None
    note = None
    if order == "impact":
        if gains is not None:
            found = sorted(found, key=lambda i: -gains[i.id])  # stable: equal gains stay most likely first
        else:
            note = f"most likely first — this analysis cannot tell which classes are weak: {no_headroom_reason(analysis)}"
    return IssueQueue(found, gains, note)
