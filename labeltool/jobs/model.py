"""Model jobs: train, evaluate a run, predict into the project (pre-labels / model boxes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labeltool.core.errors import ModelError
from labeltool.core.model import Run
from labeltool.core.progress import Progress
from labeltool.core.runs import current_run, get_run, store_predictions
from labeltool.core.store import Project

from . import Job, writing


def _run_or_current(project: Project, run_id: int | None) -> Run:
    run = get_run(project, run_id) if run_id is not None else current_run(project)
    if run is None:
        raise ModelError(f"{project.root} has no trained model yet; run `labeltool train {project.root}` first")
    return run


def train_job(project_dir: Path, **options: Any) -> Job[dict[str, Any]]:
    """Fine-tune on the project's labels (options: see ``labeltool.ml.train.TrainOptions``)."""
    from labeltool.ml.train import TrainOptions, train

    return (yield from writing(project_dir, "a training", train(Path(project_dir), TrainOptions(**options))))


def evaluate_job(project_dir: Path, *, run_id: int | None = None, device: str = "auto") -> Job[dict[str, Any]]:
    """Score a run (default: the current model) on the project's current validation images.

    The model it replaced (if any) is scored on the same images, for the per-class delta.
    """
    from labeltool.ml.checkpoint import load_checkpoint
    from labeltool.ml.data import DetectionDataset, relabel_samples, snapshot_samples
    from labeltool.ml.evaluate import per_class_delta
    from labeltool.ml.predict import resolve_device, use_all_cores
    from labeltool.ml.train import evaluate_on

    with Project.open(project_dir) as project:
        run = _run_or_current(project, run_id)
        snapshot_id = project.create_snapshot(note="evaluation")
        class_names, samples = snapshot_samples(project, snapshot_id)
        previous = get_run(project, run.previous_id) if run.previous_id else None
        root = project.root
    val = [s for s in samples if s.split == "val"]
    if not val:
        raise ModelError("the project has no validation images; train once (it assigns a split) or set one")
    device = resolve_device(device)
    if device.type == "cpu":
        use_all_cores()
    results = {}
    for label, r in (("current", run), ("previous", previous)):
        if r is None:
            continue
        yield Progress("evaluate", 0, len(val), f"run {r.id} on {len(val)} validation images")
        try:
            model, cfg = load_checkpoint(root / r.path, device=str(device))
        except ModelError:
            if label == "current":
                raise
            continue
        names = list(cfg["class_names"])
        ds = DetectionDataset(relabel_samples(val, names=class_names, target=names), size=int(cfg["image_size"]))
        results[label] = evaluate_on(model, ds, class_names=names, device=device, batch_size=8)
        yield Progress("evaluate", len(val), len(val), f"run {r.id}: mAP@.5 {results[label].map50:.3f}")
    current = results["current"]
    prev = results.get("previous")
    return {
        "run_id": run.id, "snapshot_id": snapshot_id, "n_images": len(val),
        **current.to_dict(),
        "previous_run_id": previous.id if previous else None,
        "delta": per_class_delta(current, prev) if prev is not None else None,
        "previous": prev.to_dict() if prev is not None else None,
    }


def predict_job(
    project_dir: Path, *, run_id: int | None = None, unlabeled_only: bool = False, device: str = "auto",
    batch_size: int = 8,
) -> Job[dict[str, Any]]:
    """Store the model's boxes (down to the preset's low score threshold) for the project's images.

    Written every 64 images (one transaction each): a cancelled prediction keeps the model boxes of
    the images already done, which is what a user looking at them expects.
    """
    import numpy as np

    from labeltool.ml.checkpoint import load_checkpoint
    from labeltool.ml.data import DetectionDataset, Sample
    from labeltool.ml.predict import predict_dataset, resolve_device, use_all_cores

    with Project.open(project_dir) as project:
        run = _run_or_current(project, run_id)
        images = [im for im in project.images() if not (unlabeled_only and im.labeled)]
        class_ids = {c.name: c.id for c in project.classes()}
        root = project.root
    dev = resolve_device(device)
    if dev.type == "cpu":
        use_all_cores()
    model, cfg = load_checkpoint(root / run.path, device=str(dev))
    names = list(cfg["class_names"])
    missing = [n for n in names if n not in class_ids]
    empty = np.zeros((0, 4), np.float32)
    samples = [Sample(im.id, root / im.path, empty, np.zeros(0, np.int64), im.split, im.width, im.height)
               for im in images]
    ds = DetectionDataset(samples, size=int(cfg["image_size"]))
    stored = 0
    chunk = 64  # write to the database every 64 images, so a cancel keeps what is done
    for start in range(0, len(samples), chunk):
        part = DetectionDataset(samples[start:start + chunk], size=ds.size)
        dets = predict_dataset(model, part, batch_size=batch_size, device=dev)
        rows = []
        for sample, (boxes, scores, labels) in zip(part.samples, dets, strict=True):
            for box, score, label in zip(boxes, scores, labels, strict=True):
                name = names[int(label)]
                if name in class_ids and box[2] > box[0] and box[3] > box[1]:
                    rows.append((sample.image_id, class_ids[name], *map(float, box), float(score)))
        with Project.open(project_dir) as project:  # one transaction per chunk
            stored += store_predictions(project, run_id=run.id, rows=rows,
                                        image_ids=[s.image_id for s in part.samples])
        done = min(len(samples), start + chunk)
        yield Progress("predict", done, len(samples), f"{stored} model boxes so far")
    return {"run_id": run.id, "images": len(samples), "boxes": stored, "unlabeled_only": unlabeled_only,
            "classes_not_in_project": missing}
