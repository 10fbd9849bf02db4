"""Label-quality scoring for object detection from out-of-sample predictions: cleanlab's ObjectLab
sub-scores (overlooked, swap, badloc) with calibrated thresholds, own checks cleanlab lacks (spurious
and duplicate boxes), and a concrete fix per issue. numpy + cleanlab (imported lazily); no torch.

Inputs per image ``i`` of ``N``: ``gt_boxes[i]`` float[L, 4] xyxy pixels, ``gt_labels[i]`` int[L]
class ``0..C-1``, ``pred_boxes[i]`` float[M, 4], ``pred_scores[i]`` float[M] (RetinaNet sigmoid
scores, kept down to ~0.05), ``pred_labels[i]`` int[M]. Predictions must be out-of-sample (K-fold).

Every sub-score is 0..1, lower = more likely a label error, 1.0 = fine (cleanlab gives nan for the
predictions its overlooked check skips, kept as nan, and 1.0 for boxes it cannot judge). Below
``Thresholds.flag`` a sub-score becomes an :class:`IssueCandidate`. cleanlab's similarity is
``0.9 * IoU + 0.1 * exp(-0.1 * centre distance)``, so flag 0.5 means "IoU about 0.5", the usual
match rule: badloc = the best confident same-class prediction would not match the box; swap = a
confident other-class prediction would. The own checks map their own threshold onto the flag
boundary, so all types rank on one scale. Changes to cleanlab's raw scores (see ``_own_checks``):
a prediction sitting better on another labeled box is not used for this box's badloc/swap; no swap
when the labeled class scores at least as high there; swap's stacked-box penalty is off (the
duplicate check handles it); overlooked candidates are thinned by class-agnostic NMS.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from labeltool.core.issue_types import issue_types, type_names
from labeltool.ml.cleanlab_inputs import BUILDERS

from .arrays import box_iou as _iou
from .arrays import check_boxes
from .quality_floors import lift, overlooked_floors, spurious_floors

# Tunable numbers (each with its reason) -------------------------------------------------------
ALPHA = 0.9  # cleanlab's IoU-vs-centre-distance weight (its internal ALPHA); not calibrated
MATCH_IOU = 0.5  # a prediction "finds" a labeled box at this IoU (COCO AP50 rule)
# Calibration: the scores real objects get = per labeled box, the best score of a same-class
# prediction at IoU >= MATCH_IOU. "high" = their 25th percentile: 3 of 4 real objects score above
# it, so a confident unlabeled prediction looks like a real object (cleanlab's 0.95 is for softmax
# detectors; a RetinaNet's focal-loss scores rarely reach it and its checks go silent).
HIGH_PERCENTILE = 25.0
HIGH_RANGE = (0.15, 0.95)  # below 0.15 background noise dominates; 0.95 is cleanlab's own default
# "low" (badloc only trusts predictions above it): 10th percentile of the same scores; below that a
# prediction is as likely background noise, and snapping a box to noise would be a bad suggestion.
LOW_PERCENTILE = 10.0
LOW_MIN = 0.10
# "spurious": a box is unsupported when no prediction (IoU >= SUPPORT_IOU) reaches 0.2 x the median
# real-object score. Background boxes get nothing at that overlap; hard real objects usually still get
# a weak detection (measured on the demo benchmark: false spurious flags at 0.4 x median were real
# objects with 0.06-0.16 detections at IoU 0.4-0.8, true ones had no prediction at IoU >= 0.3). Capped at "low" so a box that badloc can snap never counts as spurious.
SPURIOUS_FRACTION = 0.2
SPURIOUS_MIN = 0.08  # just above the 0.05 score floor predictions are kept down to
MIN_CALIBRATION_MATCHES = 20  # fewer matched boxes: percentiles are noise, use the fallbacks below
FALLBACK_HIGH, FALLBACK_LOW, FALLBACK_SPURIOUS = 0.5, 0.25, 0.12  # typical trained-RetinaNet levels
SUPPORT_IOU = 0.3  # a prediction this close (any class) supports a labeled box (spurious check)
DUPLICATE_IOU = 0.7  # same-class labeled boxes above this IoU mark one object twice
CONFLICT_IOU = 0.95  # any-class boxes above this IoU (cleanlab's LABEL_OVERLAP_THRESHOLD): stacked
SWAP_OWN_RATIO = 0.8  # swap: own-class / rival score at or above this is not a swap (see _own_checks)
FLAG = 0.5  # sub-scores below this become candidates (see the module docstring)
# One "add box" candidate per object (RetinaNet's NMS is per class): 0.3, not 0.5, because a weak model
# scatters boxes of several classes around one object a stride (8 px) apart, IoU ~0.48 with each other
# (the demo's queue had 12 "add" issues on one dropped chip). Same recall on the benchmark's 10- and
# 60-epoch fold predictions; box precision@k 0.277 -> 0.297 on the 10-epoch ones.
OVERLOOKED_NMS_IOU = 0.3
BUILT_IN_TYPES = ("overlooked", "swap", "badloc", "spurious", "duplicate")  # [1:] are per labeled box; more
# checks come from the registry (core/issue_types.py, their ``scorer``), run by :func:`_added_checks`


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Thresholds used for one analysis (stored with it, shown to the user)."""

    high: float  # score above which a prediction counts as confident (overlooked, swap)
    low: float  # cleanlab's low_probability_threshold: badloc considers predictions above it
    alpha: float  # cleanlab's IoU-vs-distance weight
    spurious: float  # a box whose best supporting prediction scores below this is flagged spurious
    duplicate_iou: float  # same-class labeled boxes above this IoU are duplicates
    flag: float  # sub-scores below this become issues
    source: str  # plain words: how they were obtained

    def __post_init__(self) -> None:
        for name in ("high", "low", "alpha", "spurious", "duplicate_iou", "flag"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"Thresholds.{name} must be a number in [0, 1], got {value!r}")
        if self.low > self.high:
            raise ValueError(f"Thresholds.low ({self.low}) must not exceed Thresholds.high ({self.high})")
        if self.spurious <= 0 or self.duplicate_iou >= 1 or self.flag <= 0:
            raise ValueError(f"Thresholds need spurious > 0, duplicate_iou < 1, flag > 0; got {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class IssueCandidate:
    """A suspected label error and its fix. ``score`` 0..1, lower = more likely (ranks all types).

    Fixes: overlooked -> add ``suggested_box`` with ``suggested_class``; swap -> change the class of
    ``box_index`` to ``suggested_class``; badloc -> move ``box_index`` to ``suggested_box``;
    spurious -> delete ``box_index``; duplicate -> delete ``box_index`` (it repeats ``other_box_index``).
    ``prediction_index``: the prediction behind the suggestion (overlooked, swap, badloc).
    """

    type: str
    image_index: int
    box_index: int | None
    score: float
    label: int | None
    suggested_class: int | None
    suggested_box: tuple[float, float, float, float] | None
    other_box_index: int | None = None
    prediction_index: int | None = None


@dataclass(slots=True)
class QualityResult:
    """Result of :func:`score_labels`.

    ``box_scores[i]``: "swap", "badloc", "spurious", "duplicate": float[L] (1.0 = fine);
    "overlooked": float[M] per prediction in input order (nan where not considered).
    ``label_quality[i]``: float[L], min of the box's sub-scores. ``image_scores``: float[N], min
    over the image's label qualities and overlooked scores (1.0 = no problem). ``candidates``: every
    sub-score < flag (overlooked: one per object, see OVERLOOKED_NMS_IOU), ascending by score, then
    image, box. ``timings``: seconds per step.
    """

    thresholds: Thresholds
    box_scores: list[dict[str, np.ndarray]]
    label_quality: list[np.ndarray]
    image_scores: np.ndarray
    candidates: list[IssueCandidate]
    timings: dict[str, float]


_Image = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # gb, gl, pb, ps, pl


def _as_labels(value: Any, n: int, what: str, i: int, num_classes: int | None) -> np.ndarray:
    a = np.asarray(value)
    if a.shape != (n,) and not (a.size == 0 and n == 0):
        raise ValueError(f"{what}[{i}] must have shape ({n},) to match its boxes, got {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{what}[{i}] must hold integer class indices, got dtype {a.dtype}")
    bad = a[(a < 0) | (a >= num_classes)] if num_classes is not None else a[a < 0]
    if bad.size:
        raise ValueError(f"{what}[{i}] has label {int(bad[0])}, outside 0..{(num_classes or 1) - 1}")
    return a.astype(np.int64).reshape(n)


def _validate(gt_boxes: Sequence[Any], gt_labels: Sequence[Any], pred_boxes: Sequence[Any],
              pred_scores: Sequence[Any], pred_labels: Sequence[Any], num_classes: int | None) -> list[_Image]:
    """Check shapes, ranges and lengths; return per-image float64 boxes / int64 labels."""
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer)
                                    or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    n = len(gt_boxes)
    for name, seq in (("gt_labels", gt_labels), ("pred_boxes", pred_boxes), ("pred_scores", pred_scores),
                      ("pred_labels", pred_labels)):
        if len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries but gt_boxes has {n} (one entry per image)")
    images: list[_Image] = []
    for i in range(n):
        gb, pb = check_boxes(gt_boxes[i], "gt_boxes", i), check_boxes(pred_boxes[i], "pred_boxes", i)
        gl = _as_labels(gt_labels[i], len(gb), "gt_labels", i, num_classes)
        pl = _as_labels(pred_labels[i], len(pb), "pred_labels", i, num_classes)
        ps = np.asarray(pred_scores[i], dtype=np.float64).reshape(-1)
        if ps.shape != (len(pb),) or not (np.isfinite(ps) & (ps >= 0) & (ps <= 1)).all():
            raise ValueError(f"pred_scores[{i}] must be {len(pb)} scores in [0, 1], got {ps.tolist()}")
        images.append((gb, gl, pb, ps, pl))
    return images


def _cleanlab_format(images: list[_Image], num_classes: int) -> tuple[list[dict], list[list[np.ndarray]]]:
    labels = [{"bboxes": gb.copy(), "labels": gl.copy()} for gb, gl, _, _, _ in images]
    predictions = []
    for _, _, pb, ps, pl in images:
        rows = np.concatenate([pb, ps[:, None]], axis=1)  # [M, 5]
        predictions.append([rows[pl == k] if (pl == k).any() else np.zeros((0, 5)) for k in range(num_classes)])
    return labels, predictions


def to_cleanlab_inputs(*, gt_boxes: Sequence[Any], gt_labels: Sequence[Any], pred_boxes: Sequence[Any],
                       pred_scores: Sequence[Any], pred_labels: Sequence[Any],
                       num_classes: int) -> tuple[list[dict], list[list[np.ndarray]]]:
    """Convert to cleanlab's format: ``labels[i] = {"bboxes": float[L, 4], "labels": int[L]}``,
    ``predictions[i]`` = C arrays float[M_k, 5] ``[x1, y1, x2, y2, score]`` (empty: zeros((0, 5))).
    cleanlab numbers predictions class by class; within a class the input order is kept."""
    images = _validate(gt_boxes, gt_labels, pred_boxes, pred_scores, pred_labels, num_classes)
    return _cleanlab_format(images, num_classes)


def _matched_scores(images: list[_Image]) -> np.ndarray:
    """Per labeled box, the best score of a same-class prediction at IoU >= MATCH_IOU: float[n]."""
    out: list[np.ndarray] = []
    for gb, gl, pb, ps, pl in images:
        if len(gb) and len(pb):
            ok = (_iou(gb, pb) >= MATCH_IOU) & (gl[:, None] == pl[None, :])  # [L, M]
            best = np.where(ok, ps[None, :], -1.0).max(axis=1)
            out.append(best[best >= 0])
    return np.concatenate(out) if out else np.zeros(0)


def _calibrate(images: list[_Image]) -> Thresholds:
    s = _matched_scores(images)
    if len(s) < MIN_CALIBRATION_MATCHES:
        return Thresholds(high=FALLBACK_HIGH, low=FALLBACK_LOW, alpha=ALPHA, spurious=FALLBACK_SPURIOUS,
                          duplicate_iou=DUPLICATE_IOU, flag=FLAG,
                          source=f"fallback constants: only {len(s)} labeled boxes are matched by a same-class "
                                 f"prediction at IoU >= {MATCH_IOU} (calibration needs {MIN_CALIBRATION_MATCHES})")
    p_high, p_low, med = np.percentile(s, [HIGH_PERCENTILE, LOW_PERCENTILE, 50.0])
    high = float(np.clip(p_high, *HIGH_RANGE))
    low = float(np.clip(p_low, LOW_MIN, high))
    spurious = float(np.clip(SPURIOUS_FRACTION * med, SPURIOUS_MIN, low))
    source = (f"calibrated on n={len(s)} labeled boxes matched by a same-class prediction at IoU >= {MATCH_IOU} "
              f"(their scores: p{LOW_PERCENTILE:g} {p_low:.3f}, p{HIGH_PERCENTILE:g} {p_high:.3f}, median {med:.3f}): "
              f"high = p{HIGH_PERCENTILE:g} clipped to {HIGH_RANGE} -> {high:.3f}; low = p{LOW_PERCENTILE:g} "
              f"clipped to [{LOW_MIN}, high] -> {low:.3f}; spurious = {SPURIOUS_FRACTION} x median clipped to "
              f"[{SPURIOUS_MIN}, low] -> {spurious:.3f}")
    return Thresholds(high=high, low=low, alpha=ALPHA, spurious=spurious, duplicate_iou=DUPLICATE_IOU,
                      flag=FLAG, source=source)


def calibrate_thresholds(*, gt_boxes: Sequence[Any], gt_labels: Sequence[Any], pred_boxes: Sequence[Any],
                         pred_scores: Sequence[Any], pred_labels: Sequence[Any]) -> Thresholds:
    """Thresholds from the score distribution of real objects (see the constants at the top).

    Shapes as in the module docstring. Falls back to constants (``source`` says so) when fewer than
    MIN_CALIBRATION_MATCHES labeled boxes are matched by a same-class prediction at IoU >= 0.5.
    """
    return _calibrate(_validate(gt_boxes, gt_labels, pred_boxes, pred_scores, pred_labels, None))


def _cleanlab_calls(th: Thresholds) -> dict[str, tuple[Any, dict[str, Any]]]:
    """cleanlab's three public box-score functions with our thresholds. Swap runs with
    overlapping_label_check=False: stacked boxes of different classes are the duplicate check's job,
    which also says which box to delete."""
    from cleanlab.object_detection import rank

    return {"overlooked": (rank.compute_overlooked_box_scores, {"high_probability_threshold": th.high}),
            "badloc": (rank.compute_badloc_box_scores, {"low_probability_threshold": th.low}),
            "swap": (rank.compute_swap_box_scores, {"high_probability_threshold": th.high,
                                                    "overlapping_label_check": False})}


def _cleanlab_subscores(aux: list[dict], th: Thresholds,
                        timings: dict[str, float] | None = None) -> dict[str, list[np.ndarray]]:
    """Raw cleanlab sub-scores (cleanlab's prediction order) on shared auxiliary inputs, each timed."""
    out: dict[str, list[np.ndarray]] = {}
    for name, (fn, kwargs) in _cleanlab_calls(th).items():
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            out[name] = fn(alpha=th.alpha, auxiliary_inputs=aux, **kwargs)
        if timings is not None:
            timings[name] = time.perf_counter() - t
    return out


def _masked_max(mask: np.ndarray, values: np.ndarray, empty: float = -np.inf) -> np.ndarray:
    """Row-wise max of ``values`` [L, M] (or [1, M]) where ``mask`` [L, M]; ``empty`` for rows with none."""
    return np.maximum(np.where(mask, values, -np.inf).max(axis=1, initial=-np.inf), empty)


def _input_order(pl: np.ndarray, cleanlab_scores: np.ndarray) -> np.ndarray:
    """Per-prediction scores in input order from cleanlab's class-by-class order: float[M]."""
    out = np.full(len(pl), np.nan)
    out[np.argsort(pl, kind="stable")] = cleanlab_scores  # cleanlab's prediction c is input prediction order[c]
    return out


def _own_checks(img: _Image, aux: dict, raw: dict[str, np.ndarray], th: Thresholds, i: int,
                overlooked_floor: dict[int, float]) -> tuple[dict[str, np.ndarray], list[IssueCandidate]]:
    """Normalise cleanlab's scores of one image, add spurious/duplicate, build its candidates;
    ``overlooked_floor``: per predicted class (:func:`overlooked_floors`), applied before the NMS."""
    gb, gl, pb, ps, pl = img
    n_lab, n_pred = len(gb), len(pb)
    order = np.argsort(pl, kind="stable")  # cleanlab's prediction c is input prediction order[c]
    over = _input_order(pl, raw["overlooked"])
    if overlooked_floor and n_pred:  # nan (not judged by cleanlab) stays nan
        over = lift(over, np.array([overlooked_floor.get(int(c), 0.0) for c in pl]), th.flag)
    sim = np.zeros((n_lab, n_pred))
    if n_lab and n_pred:
        sim[:, order] = aux["similarity_matrix"]
    iou = _iou(gb, pb)  # [L, M]
    same = gl[:, None] == pl[None, :]  # [L, M]
    swap = np.nan_to_num(np.asarray(raw["swap"], dtype=np.float64), nan=1.0)
    badloc = np.nan_to_num(np.asarray(raw["badloc"], dtype=np.float64), nan=1.0)
    # A prediction that sits better on another labeled box is that box's. cleanlab lets it drive this
    # box's badloc (any overlap counts) and swap, suggesting a snap onto the neighbour or its class;
    # where one is in cleanlab's set, the score is redone by cleanlab's formula without it.
    free = iou >= iou.max(axis=0, initial=0.0)[None, :]  # [L, M]
    rival_all = ~same & (ps > th.high)[None, :]  # cleanlab's swap set: confident other-class predictions
    snap_all = same & (ps > th.low)[None, :] & (iou > 0)  # cleanlab's badloc set
    rival, snap_ok = rival_all & free, snap_all & free
    best_rival, best_snap = _masked_max(rival, sim), _masked_max(snap_ok, sim)
    min_sim = float(aux.get("min_possible_similarity", 1.0))
    swap = np.where((rival_all & ~free).any(axis=1),
                    np.where(rival.any(axis=1), np.maximum(min_sim, 1.0 - best_rival), 1.0), swap)
    badloc = np.where((snap_all & ~free).any(axis=1), np.where(snap_ok.any(axis=1), best_snap, 1.0), badloc)
    own = _masked_max(same & (iou >= MATCH_IOU), ps[None, :], empty=0.0)  # [L] own-class score there
    swap_pred = np.where(rival, sim, -np.inf).argmax(axis=1) if n_pred else np.zeros(n_lab, int)
    snap_pred = np.where(snap_ok, iou, -1.0).argmax(axis=1) if n_pred else np.zeros(n_lab, int)
    # Swap guard: RetinaNet scores classes independently, so a correct box often also gets a weaker
    # confident-enough rival class; no swap when the label's own class scores at least as high there.
    if n_pred:
        swap[rival.any(axis=1) & (own >= ps[swap_pred])] = 1.0
        # ... and the closer the label's own class comes to the rival, the less likely a swap: the
        # model is torn between two classes rather than sure of another (score >= flag from
        # own/rival >= SWAP_OWN_RATIO on). Measured: true swaps own/rival 0-0.45 mostly, false 0.6-0.95.
        ratio = own / np.maximum(ps[swap_pred], 1e-9)
        swap = np.where(rival.any(axis=1), np.minimum(1.0, np.maximum(swap, th.flag * ratio / SWAP_OWN_RATIO)), swap)
    # spurious: support = best prediction score at IoU >= SUPPORT_IOU (any class) or among badloc's
    # snap targets; score = flag * support / spurious, capped at 1 (flagged iff support < spurious)
    support = _masked_max((iou >= SUPPORT_IOU) | snap_ok, ps[None, :], empty=0.0)
    spurious = np.minimum(1.0, th.flag * support / th.spurious)
    # duplicate: the later of two boxes with same-class IoU >= duplicate_iou (or any-class IoU >=
    # CONFLICT_IOU) is the copy; score = flag * (1 - IoU) / (1 - threshold), so identical boxes -> 0
    duplicate, dup_of = np.ones(n_lab), np.full(n_lab, -1)
    lab_iou = _iou(gb, gb)
    for j in range(n_lab):
        for k in range(j):
            thr = th.duplicate_iou if gl[j] == gl[k] else max(CONFLICT_IOU, th.duplicate_iou)
            if dup_of[k] < 0 and lab_iou[j, k] >= thr:
                s = th.flag * (1.0 - lab_iou[j, k]) / (1.0 - thr)
                if s < duplicate[j]:
                    duplicate[j], dup_of[j] = s, k
    scores = {"swap": swap, "badloc": badloc, "spurious": spurious, "duplicate": duplicate, "overlooked": over}
    cands: list[IssueCandidate] = []
    for b in range(n_lab):
        lab = int(gl[b])
        if swap[b] < th.flag:
            p = int(swap_pred[b])
            cands.append(IssueCandidate("swap", i, b, float(swap[b]), lab, int(pl[p]), None, prediction_index=p))
        if badloc[b] < th.flag:
            p = int(snap_pred[b])
            cands.append(IssueCandidate("badloc", i, b, float(badloc[b]), lab, None,
                                        tuple(float(v) for v in pb[p]), prediction_index=p))
        if spurious[b] < th.flag:
            cands.append(IssueCandidate("spurious", i, b, float(spurious[b]), lab, None, None))
        if duplicate[b] < th.flag:
            cands.append(IssueCandidate("duplicate", i, b, float(duplicate[b]), lab, None, None,
                                        other_box_index=int(dup_of[b])))
    kept: list[int] = []  # class-agnostic NMS by prediction score: one "add" per object
    for p in sorted(np.flatnonzero(over < th.flag), key=lambda p: -ps[p]):
        if all(_iou(pb[p:p + 1], pb[q:q + 1])[0, 0] < OVERLOOKED_NMS_IOU for q in kept):
            kept.append(int(p))
            cands.append(IssueCandidate("overlooked", i, None, float(over[p]), None, int(pl[p]),
                                        tuple(float(v) for v in pb[p]), prediction_index=int(p)))
    return scores, cands


def score_labels(*, gt_boxes: Sequence[Any], gt_labels: Sequence[Any], pred_boxes: Sequence[Any],
                 pred_scores: Sequence[Any], pred_labels: Sequence[Any], num_classes: int,
                 thresholds: Thresholds | None = None, shared_inputs: str = "numpy") -> QualityResult:
    """Score every labeled box and prediction, rank likely label errors with a fix for each.

    Shapes as in the module docstring; ``thresholds`` None = :func:`calibrate_thresholds`. cleanlab's
    shared per-image inputs (IoU / similarity matrices) are built once for all three of its checks,
    by ``shared_inputs``: "numpy" (:func:`~labeltool.ml.cleanlab_inputs.build_auxiliary_inputs`) or
    "cleanlab" (cleanlab's own pure-Python builder, ~100x slower, same values; for comparison).
    """
    if shared_inputs not in BUILDERS:
        raise ValueError(f"shared_inputs must be one of {sorted(BUILDERS)}, got {shared_inputs!r}")
    timings: dict[str, float] = {}
    t0 = t = time.perf_counter()

    def lap(name: str) -> None:  # seconds since the previous lap
        nonlocal t
        timings[name], t = time.perf_counter() - t, time.perf_counter()

    images = _validate(gt_boxes, gt_labels, pred_boxes, pred_scores, pred_labels, num_classes)
    lap("validate")
    th = thresholds if thresholds is not None else _calibrate(images)
    if not isinstance(th, Thresholds):
        raise TypeError(f"thresholds must be a Thresholds or None, got {type(th).__name__}")
    lap("calibrate")
    labels, predictions = _cleanlab_format(images, num_classes)
    aux = BUILDERS[shared_inputs](th.alpha, labels, predictions) if images else []
    lap("shared_inputs")
    raw = _cleanlab_subscores(aux, th, timings)
    t = time.perf_counter()
    floors = overlooked_floors(images, high=th.high, flag=th.flag)
    checked = [_own_checks(img, aux[i], {k: v[i] for k, v in raw.items()}, th, i, floors)
               for i, img in enumerate(images)]
    box_scores, cands = [s for s, _ in checked], [c for _, cs in checked for c in cs]
    cands = _spurious_floor(images, box_scores, cands, th)
    lap("own_checks")
    added = _added_checks(images, box_scores, th)
    cands += added
    lap("added_checks")
    box_types = [k for k in box_scores[0] if k != "overlooked"] if box_scores else []
    label_quality = [np.min(np.stack([s[k] for k in box_types]), axis=0) for s in box_scores]
    image_scores = np.ones(len(images))
    for i, s in enumerate(box_scores):
        vals = np.concatenate([label_quality[i], s["overlooked"][~np.isnan(s["overlooked"])]])
        image_scores[i] = min(1.0, float(vals.min())) if vals.size else 1.0
    order = {name: n for n, name in enumerate(type_names())}
    cands.sort(key=lambda c: (c.score, c.image_index, -1 if c.box_index is None else c.box_index,
                              order.get(c.type, len(order)), c.prediction_index or 0))
    lap("rank")
    timings["total"] = time.perf_counter() - t0
    return QualityResult(th, box_scores, label_quality, image_scores, cands, timings)


def _added_checks(images: list[_Image], box_scores: list[dict[str, np.ndarray]],
                  th: Thresholds) -> list[IssueCandidate]:
    """Run every registered check with a scorer (core/issue_types.py) on each image's labeled boxes:
    its scores go into ``box_scores`` (and so into label quality), those below the flag become
    delete-box candidates."""
    cands: list[IssueCandidate] = []
    for kind in issue_types():
        if kind.scorer is None:
            continue
        module, _, name = kind.scorer.partition(":")
        scorer = getattr(importlib.import_module(module), name)
        for i, (img, s) in enumerate(zip(images, box_scores, strict=True)):
            gb, gl = img[0], img[1]
            scores = np.ones(len(gb)) if not len(gb) else np.clip(np.asarray(scorer(*img, th), dtype=np.float64), 0, 1)
            if scores.shape != (len(gb),):
                raise ValueError(f"check {kind.name!r} ({kind.scorer}) returned {scores.shape} scores for "
                                 f"{len(gb)} labeled boxes")
            s[kind.name] = scores
            cands += [IssueCandidate(kind.name, i, b, float(scores[b]), int(gl[b]), None, None)
                      for b in np.flatnonzero(scores < th.flag)]
    return cands


def _spurious_floor(images: list[_Image], box_scores: list[dict[str, np.ndarray]],
                    cands: list[IssueCandidate], th: Thresholds) -> list[IssueCandidate]:
    """Raise spurious scores to their class's floor (in ``box_scores`` and the candidates); drop the
    candidates that are no longer below the flag."""
    floors = spurious_floors([img[1] for img in images], [s["spurious"] for s in box_scores], th.flag)
    for (_gb, gl, *_), s in zip(images, box_scores, strict=True):
        if len(gl):
            s["spurious"] = lift(s["spurious"], np.array([floors[int(c)] for c in gl]), th.flag)
    out = []
    for c in cands:
        if c.type == "spurious":
            score = float(box_scores[c.image_index]["spurious"][c.box_index])  # lifted above
            if score >= th.flag:
                continue
            c = replace(c, score=score)
        out.append(c)
    return out
