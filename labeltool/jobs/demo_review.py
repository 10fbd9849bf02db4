"""The demo's reviewer: decides the top suspected label errors the way an engineer looking at each image would.

The demo generated its images, so it knows what is really on them (``annotations_clean.json``). For
each issue, best first, it judges the suggested fix against that truth:

- add a box / move a box: right when the suggested box lands on a real defect of that class that no
  other box covers yet (IoU >= ``SEES_IOU``; a person accepts it and drags the edges onto the defect,
  so the demo then snaps the box to the true edges, a second undoable edit);
- change the class: right when the defect under the box (IoU >= ``SEES_IOU``) is of that class;
- delete a box: right when every real defect under it is already covered by another box of its class
  (a duplicate) or there is none (a box on nothing). A box on a real but wrongly drawn or labelled defect
  is not deleted: it should be fixed, and deleting it would lose the defect.

Right fixes are accepted, wrong ones rejected (a later analysis will not raise them again while the
image's labels stay the same). An issue that no longer applies (its box is gone, or the box to add is
already there) is skipped, as is one on an image the truth does not list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labeltool.core.errors import EditError
from labeltool.core.issues import ALREADY_LABELED_IOU, Issue, accept_issues, iou, list_issues, reject_issues
from labeltool.core.labels import BoxRecord
from labeltool.core.store import Project

SEES_IOU = 0.3  # a suggested box this close to a real defect is "right, needs a nudge" to a reviewer
MATCH_IOU = 0.5  # a labelled box of the defect's class this close covers the defect
SNAP_BELOW_IOU = 0.95  # an accepted box further than this from the defect's edges is snapped onto them

_Box = tuple[int, BoxRecord]  # (box id, box)


def _xyxy(b: BoxRecord) -> tuple[float, float, float, float]:
    return (b.x1, b.y1, b.x2, b.y2)


def _covered(t: BoxRecord, boxes: list[_Box], *, besides: int | None = None) -> bool:
    """Whether a box of ``t``'s class other than ``besides`` covers the true defect ``t``."""
    return any(i != besides and b.label == t.label and iou(_xyxy(b), _xyxy(t)) >= MATCH_IOU for i, b in boxes)


def judge(fix: dict[str, Any], boxes: list[_Box], truth: list[BoxRecord],
          names: dict[int, str]) -> tuple[str, BoxRecord | None]:
    """``("accept", defect to snap to or None)``, ``("reject", None)`` or ``("stale", None)`` for one fix
    on an image with labelled ``boxes`` and true defects ``truth``."""
    action = fix["action"]
    if action == "add_box":
        label, new = names[fix["class_id"]], tuple(fix["xyxy"])
        if any(b.label == label and iou(_xyxy(b), new) >= ALREADY_LABELED_IOU for _, b in boxes):
            return "stale", None
        spots = [t for t in truth if t.label == label and not _covered(t, boxes) and iou(new, _xyxy(t)) >= SEES_IOU]
        return ("accept", max(spots, key=lambda t: iou(new, _xyxy(t)))) if spots else ("reject", None)
    box = dict(boxes).get(fix["box_id"])
    if box is None:
        return "stale", None
    old = _xyxy(box)
    if action == "set_class":  # the defect most under the box is of the suggested class
        under = max(truth, key=lambda t: iou(old, _xyxy(t)), default=None)
        right = under is not None and iou(old, _xyxy(under)) >= SEES_IOU and under.label == names[fix["class_id"]]
        return ("accept", None) if right and box.label != under.label else ("reject", None)
    if action == "move_box":
        new = tuple(fix["xyxy"])
        spots = [t for t in truth if t.label == box.label and not _covered(t, boxes, besides=fix["box_id"])
                 and iou(new, _xyxy(t)) >= SEES_IOU and iou(new, _xyxy(t)) > iou(old, _xyxy(t))]
        return ("accept", max(spots, key=lambda t: iou(new, _xyxy(t)))) if spots else ("reject", None)
    # delete_box: only a duplicate or a box on nothing
    lost = [t for t in truth if iou(old, _xyxy(t)) > 0 and not _covered(t, boxes, besides=fix["box_id"])]
    keeps_a_defect = any(iou(old, _xyxy(t)) >= SEES_IOU or t.label == box.label for t in lost)
    return ("reject", None) if keeps_a_defect else ("accept", None)


def review_top_issues(project_dir: Path, n: int, *, truth: Path, noise_record: Path | None = None) -> dict[str, Any]:
    """Decide the ``n`` most likely label errors of the latest analysis as described above (each
    decision a normal undoable edit). ``truth``: the demo's clean COCO file; ``noise_record``: its
    ``noise.json``, to count how many of the issues were on an image with an injected error."""
    from labeltool.core.formats.coco import read_coco
    from labeltool.core.report import fix_text

    truth_set, _ = read_coco(Path(truth))
    truths = {Path(r.file_name).name: r.boxes for r in truth_set.images}
    corrupted: set[str] | None = None
    if noise_record is not None and Path(noise_record).is_file():
        from labeltool.core.noise import read_noise_record

        corrupted = {Path(r.file_name).name for r in read_noise_record(Path(noise_record))[0]}
    accepted: list[dict[str, Any]] = []
    by_type: dict[str, dict[str, int]] = {}
    counts = {"rejected": 0, "stale": 0, "no_truth": 0, "snapped": 0, "on_corrupted_images": 0}
    with Project.open(project_dir) as project:
        paths = {im.id: im.path for im in project.images()}
        names = {c.id: c.name for c in project.classes()}
        queue = list_issues(project)[:n]
        for issue in queue:
            name = Path(paths.get(issue.image_id, "")).name
            counts["on_corrupted_images"] += corrupted is not None and name in corrupted
            if name not in truths:
                counts["no_truth"] += 1
                continue
            boxes = [(b.id, BoxRecord(names[b.class_id], b.x1, b.y1, b.x2, b.y2)) for b in project.boxes(issue.image_id)]
            verdict, snap_to = judge(issue.fix, boxes, truths[name], names)
            try:
                if verdict == "accept":
                    accept_issues(project, [issue.id])
                    counts["snapped"] += _snap(project, issue, snap_to)
                elif verdict == "reject":
                    reject_issues(project, [issue.id])
            except EditError:
                verdict = "stale"
            if verdict == "stale":
                counts["stale"] += 1
                continue
            row = by_type.setdefault(issue.type, {"accepted": 0, "rejected": 0})
            row["accepted" if verdict == "accept" else "rejected"] += 1
            if verdict == "accept":
                accepted.append({"id": issue.id, "type": issue.type, "image": paths.get(issue.image_id, "?"),
                                 "score": round(issue.score, 4), "fix": fix_text(issue, names)})
            else:
                counts["rejected"] += 1
    if corrupted is None:
        del counts["on_corrupted_images"]
    return {"taken": len(queue), "reviewed": len(accepted) + counts["rejected"], "accepted": len(accepted),
            **counts, "by_type": by_type, "issues": accepted, "truth": str(truth)}


def _snap(project: Project, issue: Issue, defect: BoxRecord | None) -> bool:
    """After accepting an add/move fix, drag the box's edges onto the defect (one more undoable edit)."""
    if defect is None:
        return False
    target, fix = _xyxy(defect), issue.fix
    if iou(tuple(fix["xyxy"]), target) >= SNAP_BELOW_IOU:
        return False
    box_id = fix.get("box_id")
    if box_id is None:  # the box the fix added: the newest of its class at the suggested place
        placed = [b for b in project.boxes(issue.image_id)
                  if b.class_id == fix["class_id"] and iou(b.xyxy, tuple(fix["xyxy"])) >= 0.99]
        if not placed:
            return False
        box_id = placed[-1].id
    with project.edit("adjust box") as e:
        e.update_box(box_id, xyxy=target)
    return True
