"""Detection evaluation: COCO mAP via pycocotools, per-class AP and PR curves, a confusion matrix
with background, and the per-class change against the previous run.

AP is never computed by hand here: ground truth and predictions are turned into in-memory COCO
dicts and scored by ``pycocotools.cocoeval.COCOeval`` (iouType ``'bbox'``, default parameters:
IoU thresholds .50:.05:.95, 101 recall thresholds, maxDets [1, 10, 100]). Only the confusion matrix
is own code (COCO has none). Needs numpy + pycocotools only (no torch, no Qt), so it runs in light
processes; pycocotools is imported lazily.

Formats: boxes ``float32[N, 4]`` xyxy absolute pixels, scores ``float32[N]``, labels ``int64[N]``
class index ``0..C-1`` (position in ``class_names``), image sizes ``(width, height)``.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import box_iou as _iou
from .arrays import check_boxes

# Tunable numbers (each with its reason) -------------------------------------------------------
EVAL_SCHEMA_VERSION = 1  # bump when the to_dict() layout changes
# At most this many predictions per image are scored, the highest-scoring ones: the COCO detection
# rule (maxDets 100). COCOeval itself only truncates per image *and class*, so it is done here.
MAX_DETS_PER_IMAGE = 100
# Confusion-matrix defaults. RetinaNet's focal-loss scores stay low (a good detection often scores
# 0.3-0.6), so 0.5 would hide real detections; 0.3 keeps them and drops the low-score tail.
DEFAULT_CONFUSION_SCORE = 0.3
DEFAULT_CONFUSION_IOU = 0.5  # the usual "this box found that object" overlap


@dataclass(frozen=True, slots=True)
class ClassMetrics:
    """Metrics of one class. ``ap50``/``ap50_95`` are None when the class has no ground truth.

    ``pr_recall``/``pr_precision``: PR curve at IoU 0.5 on COCO's 101 recall thresholds, cut after
    the highest recall reached (beyond it COCO's precision is a filler 0); empty without ground truth
    or without any prediction of the class. ``n_images``: images holding at least one box of the class.
    """

    name: str
    n_gt: int
    n_images: int
    ap50: float | None
    ap50_95: float | None
    pr_recall: list[float]
    pr_precision: list[float]


@dataclass(frozen=True, slots=True)
class EvalResult:
    """Result of :func:`evaluate_detections`.

    ``confusion``: int[(C+1), (C+1)]; rows = ground-truth class, last row = background (false
    positives); columns = predicted class, last column = background (missed ground truth).
    """

    map50: float
    map50_95: float
    per_class: list[ClassMetrics]
    class_names: list[str]
    confusion: list[list[int]]
    confusion_iou: float
    confusion_score: float
    n_images: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (plain floats/ints/None); :meth:`from_dict` reads it back."""
        return {
            "schema_version": EVAL_SCHEMA_VERSION,
            "map50": self.map50,
            "map50_95": self.map50_95,
            "n_images": self.n_images,
            "class_names": list(self.class_names),
            "per_class": [
                {"name": c.name, "n_gt": c.n_gt, "n_images": c.n_images, "ap50": c.ap50, "ap50_95": c.ap50_95,
                 "pr_curve": {"recall": list(c.pr_recall), "precision": list(c.pr_precision)}}
                for c in self.per_class
            ],
            "confusion": {"labels": [*self.class_names, "background"],
                          "matrix": [list(row) for row in self.confusion],
                          "iou": self.confusion_iou, "score": self.confusion_score},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_dict`. Raises ValueError on a newer schema or a missing key."""
        version = d.get("schema_version", EVAL_SCHEMA_VERSION)
        if not isinstance(version, int) or version > EVAL_SCHEMA_VERSION:
            raise ValueError(f"evaluation schema_version {version!r} is newer than this labeltool reads "
                             f"({EVAL_SCHEMA_VERSION}); update labeltool")
        try:
            per_class = [ClassMetrics(name=str(c["name"]), n_gt=int(c["n_gt"]), n_images=int(c.get("n_images", 0)),
                                      ap50=_opt_float(c["ap50"]), ap50_95=_opt_float(c["ap50_95"]),
                                      pr_recall=[float(v) for v in c["pr_curve"]["recall"]],
                                      pr_precision=[float(v) for v in c["pr_curve"]["precision"]])
                         for c in d["per_class"]]
            conf = d["confusion"]
            return cls(map50=float(d["map50"]), map50_95=float(d["map50_95"]), per_class=per_class,
                       class_names=[str(n) for n in d["class_names"]],
                       confusion=[[int(v) for v in row] for row in conf["matrix"]],
                       confusion_iou=float(conf["iou"]), confusion_score=float(conf["score"]),
                       n_images=int(d["n_images"]))
        except KeyError as exc:
            raise ValueError(f"evaluation dict lacks key {exc.args[0]!r}") from exc


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _check_labels(arr: Any, what: str, i: int, n: int, n_classes: int) -> np.ndarray:
    a = np.asarray(arr)
    if a.size == 0:
        a = a.reshape(0)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{what}[{i}] must have shape ({n},) to match its boxes, got {a.shape}")
    if n and (not np.isfinite(a.astype(np.float64)).all() or (a != np.round(a)).any()):
        raise ValueError(f"{what}[{i}] must hold integer class indices, got {a.tolist()}")
    a = a.astype(np.int64)
    bad = a[(a < 0) | (a >= n_classes)]
    if bad.size:
        raise ValueError(f"{what}[{i}] has label {int(bad[0])}, outside 0..{n_classes - 1}")
    return a


def _confusion(gts: list[tuple[np.ndarray, np.ndarray]], preds: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
               n_classes: int, iou_thr: float, score_thr: float) -> list[list[int]]:
    """Greedy matcher: per image, predictions with score >= score_thr, highest first, each take the
    unmatched ground-truth box with the highest IoU >= iou_thr whatever its class."""
    bg = n_classes
    m = np.zeros((n_classes + 1, n_classes + 1), dtype=np.int64)
    for (gb, gl), (pb, ps, pl) in zip(gts, preds, strict=True):
        keep = np.flatnonzero(ps >= score_thr)
        order = keep[np.argsort(-ps[keep], kind="mergesort")]
        ious = _iou(pb[order], gb)  # [P, G]
        matched = np.zeros(len(gb), dtype=bool)
        for row, p in enumerate(order):
            cand = np.where(matched, -1.0, ious[row]) if len(gb) else np.zeros(0)
            j = int(np.argmax(cand)) if cand.size else -1
            if j >= 0 and cand[j] >= iou_thr:
                matched[j] = True
                m[gl[j], pl[p]] += 1
            else:
                m[bg, pl[p]] += 1
        for j in np.flatnonzero(~matched):
            m[gl[j], bg] += 1
    return m.tolist()


def evaluate_detections(
    *,
    gt_boxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    pred_boxes: Sequence[np.ndarray],
    pred_scores: Sequence[np.ndarray],
    pred_labels: Sequence[np.ndarray],
    class_names: Sequence[str],
    image_sizes: Sequence[tuple[int, int]] | None = None,
    confusion_iou: float = DEFAULT_CONFUSION_IOU,
    confusion_score: float = DEFAULT_CONFUSION_SCORE,
) -> EvalResult:
    """Score predictions against ground truth, one list entry per image.

    Args:
        gt_boxes / pred_boxes: per image float32[N, 4] xyxy absolute pixels.
        gt_labels / pred_labels: per image int64[N] class index 0..C-1.
        pred_scores: per image float32[N] confidences.
        class_names: the C class names (unique); index = label.
        image_sizes: per image ``(width, height)``; default: the extent of the image's boxes
            (pycocotools needs a size but bbox AP does not depend on it).
        confusion_iou / confusion_score: IoU and minimum score of the confusion-matrix matcher.

    Only the MAX_DETS_PER_IMAGE (100) highest-scoring predictions of an image are evaluated, for
    mAP and for the confusion matrix alike. mAP@[.5:.95] / mAP@.5 are COCOeval's stats[0] / stats[1]
    (area 'all', maxDets 100): the mean over classes that have ground truth (0.0 when none has).

    Raises:
        ValueError: mismatched list lengths, bad shapes, non-finite or non-xyxy boxes, labels
            outside 0..C-1, empty or duplicate class names.
    """
    names = [str(n) for n in class_names]
    if not names:
        raise ValueError("class_names is empty: evaluation needs at least one class")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names}")
    n_img = len(gt_boxes)
    lists = {"gt_labels": gt_labels, "pred_boxes": pred_boxes, "pred_scores": pred_scores, "pred_labels": pred_labels}
    if image_sizes is not None:
        lists["image_sizes"] = image_sizes
    for key, seq in lists.items():
        if len(seq) != n_img:
            raise ValueError(f"{key} has {len(seq)} entries but gt_boxes has {n_img} (one entry per image)")
    C = len(names)
    gts: list[tuple[np.ndarray, np.ndarray]] = []
    preds: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for i in range(n_img):
        gb = check_boxes(gt_boxes[i], "gt_boxes", i)
        gts.append((gb, _check_labels(gt_labels[i], "gt_labels", i, len(gb), C)))
        pb = check_boxes(pred_boxes[i], "pred_boxes", i)
        ps = np.asarray(pred_scores[i], dtype=np.float64).reshape(-1)
        if ps.shape[0] != len(pb) or not np.isfinite(ps).all():
            raise ValueError(f"pred_scores[{i}] must be {len(pb)} finite scores, got {ps.shape[0]}")
        pl = _check_labels(pred_labels[i], "pred_labels", i, len(pb), C)
        top = np.argsort(-ps, kind="mergesort")[:MAX_DETS_PER_IMAGE]  # COCO's 100 detections per image
        preds.append((pb[top], ps[top], pl[top]))

    images, gt_anns, dt_anns = [], [], []
    for i, ((gb, gl), (pb, ps, pl)) in enumerate(zip(gts, preds, strict=True)):
        if image_sizes is not None:
            w, h = image_sizes[i]
        else:
            ext = np.concatenate([gb[:, 2:], pb[:, 2:]]).max(axis=0) if len(gb) + len(pb) else (1, 1)
            w, h = max(1, math.ceil(ext[0])), max(1, math.ceil(ext[1]))
        images.append({"id": i + 1, "width": int(w), "height": int(h)})
        for b, lab in zip(gb, gl, strict=True):  # ids start at 1: COCOeval treats gt id 0 as "unmatched"
            bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
            gt_anns.append({"id": len(gt_anns) + 1, "image_id": i + 1, "category_id": int(lab) + 1,
                            "bbox": [float(b[0]), float(b[1]), bw, bh], "area": bw * bh, "iscrowd": 0})
        for b, s, lab in zip(pb, ps, pl, strict=True):
            dt_anns.append({"image_id": i + 1, "category_id": int(lab) + 1, "score": float(s),
                            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(names)]

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and the summary
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": gt_anns, "categories": categories}
        coco_gt.createIndex()
        if dt_anns:
            coco_dt = coco_gt.loadRes(dt_anns)
        else:  # loadRes([]) fails; an empty result set scores 0 for every class with ground truth
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(images), "annotations": [], "categories": categories}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # [T=10 IoU, R=101 recall, K=C, A=4 areas, M=3 maxDets]
    recall = ev.eval["recall"]  # [T, K, A, M]
    rec_thrs = ev.params.recThrs  # float[101]

    per_class = []
    for k, name in enumerate(names):
        n_gt = sum(int((gl == k).sum()) for _, gl in gts)
        n_with = sum(int((gl == k).any()) for _, gl in gts)
        p_all = precision[:, :, k, 0, -1]  # [T, R], area 'all', maxDets 100
        p50 = p_all[0]
        ap50_95 = float(p_all[p_all > -1].mean()) if (p_all > -1).any() else None
        ap50 = float(p50[p50 > -1].mean()) if (p50 > -1).any() else None
        # COCO fills precision 0 at recall thresholds beyond the recall reached (and everywhere when
        # the class has no prediction): the curve is cut there
        has_pred = any(bool((pl == k).any()) for _, _, pl in preds)
        defined = (p50 > -1) & (rec_thrs <= recall[0, k, 0, -1]) & has_pred
        per_class.append(ClassMetrics(name=name, n_gt=n_gt, n_images=n_with, ap50=ap50, ap50_95=ap50_95,
                                      pr_recall=[round(float(r), 6) for r in rec_thrs[defined]],
                                      pr_precision=[float(p) for p in p50[defined]]))
    return EvalResult(map50=max(0.0, float(ev.stats[1])), map50_95=max(0.0, float(ev.stats[0])),
                      per_class=per_class, class_names=names,
                      confusion=_confusion(gts, preds, C, float(confusion_iou), float(confusion_score)),
                      confusion_iou=float(confusion_iou), confusion_score=float(confusion_score), n_images=n_img)


def _delta(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else now - before


def per_class_delta(current: EvalResult, previous: EvalResult | None) -> list[dict[str, Any]]:
    """Per-class change against the previous run; classes are matched by name.

    Returns one dict per class (current classes in order, then classes only in ``previous``) with
    keys name, status ("kept" | "new" | "removed"; "new" for all when ``previous`` is None), n_gt,
    ap50_now, ap50_before, ap50_delta, ap50_95_now, ap50_95_before, ap50_95_delta. A value is None
    where unknown (class absent from a run, or without ground truth there).
    """
    now = {c.name: c for c in current.per_class}
    before = {c.name: c for c in previous.per_class} if previous is not None else {}
    rows = []
    for name in [*now, *(n for n in before if n not in now)]:
        c, p = now.get(name), before.get(name)
        status = "kept" if c and p else ("new" if c else "removed")
        row: dict[str, Any] = {"name": name, "status": status, "n_gt": c.n_gt if c else None}
        for key in ("ap50", "ap50_95"):
            a = getattr(c, key) if c else None
            b = getattr(p, key) if p else None
            row.update({f"{key}_now": a, f"{key}_before": b, f"{key}_delta": _delta(a, b)})
        rows.append(row)
    return rows


def format_eval_table(result: EvalResult, *, previous: EvalResult | None = None) -> str:
    """Per-class table for the CLI: class, GT boxes, AP50, AP50:95 (+ Δ vs ``previous`` if given).
    "-" marks an unknown value; the last row is the mAP over classes with ground truth."""
    def num(v: float | None, signed: bool = False) -> str:
        return "-" if v is None else (f"{v:+.3f}" if signed else f"{v:.3f}")

    head = ["class", "GT boxes", "AP50", "AP50:95"] + (["ΔAP50", "ΔAP50:95"] if previous is not None else [])
    rows = []
    for d in per_class_delta(result, previous):
        name = d["name"] + (" (removed)" if d["status"] == "removed" else "")
        cells = [name, "-" if d["n_gt"] is None else str(d["n_gt"]), num(d["ap50_now"]), num(d["ap50_95_now"])]
        if previous is not None:
            cells += [num(d["ap50_delta"], True), num(d["ap50_95_delta"], True)]
        rows.append(cells)
    total = ["mAP (all)", str(sum(c.n_gt for c in result.per_class)), num(result.map50), num(result.map50_95)]
    if previous is not None:
        total += [num(result.map50 - previous.map50, True), num(result.map50_95 - previous.map50_95, True)]
    rows.append(total)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in [head, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)
