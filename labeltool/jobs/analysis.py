"""The label-quality analysis job: predictions → scores → issue queue + weak-class report.

Full check: K-fold out-of-sample predictions (``ml/oof.py``). Quick check: the current model on its
own training images — fewer errors found; every output says it is less reliable. The analysis is
recorded in one transaction at the end; a cancelled or failed analysis leaves the project as it was.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from labeltool.core.errors import ModelError
from labeltool.core.fix_priority import class_headroom
from labeltool.core.issue_order import WEAK_MODEL_MAP50
from labeltool.core.issue_types import issue_type
from labeltool.core.issues import NewIssue, issue_counts, list_issues, record_analysis
from labeltool.core.progress import Progress
from labeltool.core.runs import current_run
from labeltool.core.store import Project
from labeltool.ml.train_defaults import FEW_EPOCHS

from . import Job, writing

DEFAULT_FOLDS = 3  # 3 folds: each model sees two thirds of the images; more folds cost more training
QUICK_NOTE = ("quick check: the current model judged the images it was trained on, so it tends to agree with "
              "their labels and misses errors; run the full check (K-fold) for reliable results")


def analyze_job(project_dir: Path, **options: Any) -> Job[dict[str, Any]]:
    """Analyse the project's labels; returns the analysis id, counts, thresholds and weak-class table."""
    return (yield from writing(project_dir, "a label analysis", _analyze_job(project_dir, **options)))


def _analyze_job(
    project_dir: Path, *, folds: int = DEFAULT_FOLDS, quick: bool = False, preset: str | None = None,
    minutes_per_fold: float | None = None, epochs_per_fold: int | None = None, seed: int = 0,
    device: str = "auto", weights_file: Path | None = None, image_size: int | None = None,
) -> Job[dict[str, Any]]:
    from labeltool.ml.checkpoint import load_checkpoint
    from labeltool.ml.data import snapshot_samples
    from labeltool.ml.evaluate import evaluate_detections
    from labeltool.ml.fit import TrainOptions
    from labeltool.ml.oof import out_of_sample_predictions
    from labeltool.ml.predict import predict_samples, resolve_device
    from labeltool.ml.presets import DEFAULT_PRESET, get_preset
    from labeltool.ml.quality import score_labels
    from labeltool.ml.weak_classes import weak_class_table

    t0 = time.monotonic()
    dev = resolve_device(device)
    yield Progress("prepare", 0, 1, "freezing the labels into a snapshot")
    with Project.open(project_dir) as project:
        snapshot_id = project.create_snapshot(note="analysis")
        class_names, samples = snapshot_samples(project, snapshot_id)
        # derived (augmented) images are judged by nobody: their labels come from their sources, and
        # copies of held-out images in the training folds would leak them
        samples = [s for s in samples if not s.derived]
        class_ids = {c.name: c.id for c in project.classes()}
        run = current_run(project)
    if len(samples) < 2:
        raise ModelError("the analysis needs at least 2 labeled images; label or import more first")
    yield Progress("prepare", 1, 1, f"{len(samples)} labeled images, {len(class_names)} classes")

    notes: list[str] = []
    if quick:
        if run is None:
            raise ModelError("the quick check needs a trained model; train first or run the full check")
        model, cfg = load_checkpoint(Path(project_dir) / run.path, device=str(dev))
        if list(cfg["class_names"]) != class_names:
            raise ModelError("the classes changed since the current model was trained; train again or run the "
                             "full check")
        yield Progress("predict", 0, len(samples), "current model on all labeled images (in-sample)")
        detections = predict_samples(model, samples, size=int(cfg["image_size"]), device=dev)
        yield Progress("predict", len(samples), len(samples), "done")
        notes.append(QUICK_NOTE)
        fold_info: list[dict[str, Any]] = []
        weights = "current model"
        preset_name = run.preset
    else:
        preset_obj = get_preset(preset or DEFAULT_PRESET)
        if image_size:
            preset_obj = replace(preset_obj, image_size=image_size)
        options = TrainOptions(preset=preset_obj.name, epochs=epochs_per_fold, minutes=minutes_per_fold,
                               seed=seed, device=device, weights_file=weights_file, image_size=image_size)
        if epochs_per_fold is None and minutes_per_fold is None:
            options = replace(options, minutes=_default_fold_minutes(dev.type, folds))
        oof = yield from out_of_sample_predictions(samples, class_names, k=folds, preset=preset_obj,
                                                   options=options)
        detections, fold_info, weights, preset_name = oof.detections, oof.per_fold, oof.weights, preset_obj.name
        if weights == "random":
            notes.append("the fold models started from random weights (no pretrained backbone found): "
                         "predictions are weaker, so fewer errors are found")
        few = [f["epochs"] for f in fold_info if f["epochs"] < FEW_EPOCHS]
        if options.minutes is not None and few:
            notes.append(f"{len(few)} of the {folds} fold models fit only {min(few)}–{max(few)} epochs in their "
                         f"{options.minutes:g} minutes: they are undertrained and miss errors. Give the analysis more "
                         "minutes per fold, or check that no other training shares the CPU")

    yield Progress("score", 0, 1, "scoring every label with cleanlab and own checks")
    kwargs = {"gt_boxes": [s.boxes for s in samples], "gt_labels": [s.labels for s in samples],
              "pred_boxes": [d[0] for d in detections], "pred_scores": [d[1] for d in detections],
              "pred_labels": [d[2] for d in detections]}
    quality = score_labels(**kwargs, num_classes=len(class_names))
    evaluation = evaluate_detections(**kwargs, class_names=class_names,
                                     image_sizes=[(s.width, s.height) for s in samples])
    if evaluation.map50 < WEAK_MODEL_MAP50:
        notes.append(
            f"the {'current' if quick else 'fold'} model{'s' if not quick else ''} found few defects "
            f"(mAP@.5 {evaluation.map50:.2f} on images {'it trained on' if quick else 'they did not see'}): many "
            "issues below reflect the model, not your labels — give the analysis more training time "
            "(minutes per fold)" + (" or pretrained weights" if weights == "random" else ""))
    weak = weak_class_table(class_names=class_names, gt_labels=kwargs["gt_labels"], evaluation=evaluation,
                            quality=quality, model_reliable=evaluation.map50 >= WEAK_MODEL_MAP50)
    issues = [_new_issue(c, samples, class_names, class_ids) for c in quality.candidates]
    yield Progress("score", 1, 1, f"{len(issues)} suspected label errors")

    config = {"thresholds": quality.thresholds.to_dict(), "preset": preset_name, "weights": weights,
              "folds": None if quick else folds, "fold_budget": {"minutes": minutes_per_fold, "epochs": epochs_per_fold},
              "seed": seed}
    # per class id: 1 - out-of-sample AP (floored), what the "biggest gain first" order weighs issues by;
    # none where the APs cannot say which class is weak (in-sample, or models too weak to judge)
    headroom = None
    if not quick and evaluation.map50 >= WEAK_MODEL_MAP50:
        rooms = class_headroom([c.ap50 for c in evaluation.per_class])
        headroom = {str(class_ids[n]): round(float(h), 4) for n, h in zip(class_names, rooms, strict=True)}
    summary = {"class_headroom": headroom,
               "weak_classes": weak, "notes": notes, "folds": fold_info, "n_images": len(samples),
               "oof_map50": evaluation.map50, "oof_map50_95": evaluation.map50_95,
               "evaluation": evaluation.to_dict(), "timings": quality.timings,
               "wall_s": round(time.monotonic() - t0, 1)}
    with Project.open(project_dir) as project:
        analysis_id, counts = record_analysis(
            project, snapshot_id=snapshot_id, run_id=run.id if quick and run else None,
            mode="quick" if quick else "kfold", folds=None if quick else folds, config=config, summary=summary,
            issues=issues)
        by_type = issue_counts(project, analysis_id=analysis_id)
        top = list_issues(project, analysis_id=analysis_id)[:10]
    return {"analysis_id": analysis_id, "mode": "quick" if quick else "kfold", "folds": None if quick else folds,
            "per_fold": fold_info, "counts": counts,
            "issues_by_type": by_type, "thresholds": quality.thresholds.to_dict(), "weak_classes": weak,
            "notes": notes, "oof_map50": evaluation.map50, "top_issue_ids": [i.id for i in top],
            "wall_s": summary["wall_s"], "scoring_s": quality.timings.get("total")}


def _default_fold_minutes(device_type: str, folds: int) -> float:
    """A total of about 12 minutes on a CPU, 6 on a GPU, shared by the folds."""
    return (12.0 if device_type == "cpu" else 6.0) / folds


def _new_issue(cand: Any, samples: list[Any], class_names: list[str], class_ids: dict[str, int]) -> NewIssue:
    """An IssueCandidate (indices into samples/classes) as a NewIssue (project ids) with its fix."""
    sample = samples[cand.image_index]
    box_id = None
    if cand.box_index is not None:
        if sample.box_ids is None:
            raise ModelError("internal: samples without box ids cannot produce issues")
        box_id = int(sample.box_ids[cand.box_index])
    class_id = class_ids[class_names[cand.label]] if cand.label is not None else None
    suggested = class_ids[class_names[cand.suggested_class]] if cand.suggested_class is not None else None
    action = issue_type(cand.type).fix_action
    if action == "add_box":
        fix = {"action": action, "class_id": suggested, "xyxy": [float(v) for v in cand.suggested_box]}
        class_id = suggested
    elif action == "set_class":
        fix = {"action": action, "box_id": box_id, "class_id": suggested}
    elif action == "move_box":
        fix = {"action": action, "box_id": box_id, "xyxy": [float(v) for v in cand.suggested_box]}
    else:  # delete_box: spurious, duplicate, added checks
        fix = {"action": action, "box_id": box_id}
    return NewIssue(type=cand.type, image_id=sample.image_id, box_id=box_id, class_id=class_id,
                    score=float(cand.score), fix=fix)
