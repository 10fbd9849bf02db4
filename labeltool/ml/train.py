"""Training on a project: snapshot → fit (``ml/fit.py``) → compare with the previous model → run.

The run folder is written under ``runs/.tmp-*`` and renamed to ``runs/<time>-<preset>`` only when
training finished; the database row comes last. Cancel (closing the generator) or an error removes
the temporary folder, so a cancelled run leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Generator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from labeltool.core.errors import ModelError
from labeltool.core.leftovers import pending
from labeltool.core.model import Run
from labeltool.core.progress import Progress
from labeltool.core.runs import current_run, get_run, record_run
from labeltool.core.splits import assign_splits
from labeltool.core.store import Project, now_iso

from .checkpoint import load_checkpoint, run_preset, save_checkpoint
from .data import DetectionDataset, Sample, relabel_samples, snapshot_samples
from .evaluate import EvalResult, per_class_delta
from .fit import TrainOptions, evaluate_on, fit, lr_at
from .model import forward_flops
from .predict import resolve_device
from .presets import Preset, current_preset_for, get_preset, same_network
from .train_defaults import FEW_EPOCHS


def train(project_dir: Path, options: TrainOptions | None = None) -> Generator[Progress, None, dict[str, Any]]:
    """Train on the project's labeled images; the finished run becomes the current model.

    Yields Progress (stages: prepare, model, train, eval, compare, save); returns a JSON-able
    summary with the run id/folder, final validation metrics and the delta to the previous model.
    """
    options = options or TrainOptions()
    started, t0 = now_iso(), time.monotonic()
    preset = get_preset(options.preset)
    if options.weights_file is not None and not Path(options.weights_file).is_file():
        raise ModelError(f"weights file {options.weights_file} not found; check the path given with --weights")
    if options.image_size:
        preset = replace(preset, image_size=options.image_size)
    resolve_device(options.device)  # a wrong --device fails before anything is written
    yield Progress("prepare", 0, 1, "freezing the labels into a snapshot")
    with Project.open(project_dir) as project:
        init_dir = _init_dir(project, options.init_from, current_run(project))  # before anything is written
        continue_note = None
        if init_dir is not None:  # continuing keeps the run's network (a preset renamed since included)
            preset, continue_note = _continued_preset(init_dir, preset)
        assigned = assign_splits(project, val_fraction=options.val_fraction, seed=options.seed)
        split_edit = project.history(limit=1)[0].id if sum(assigned.values()) else None
        snapshot_id = project.create_snapshot(note=f"training ({preset.name})")
        class_names, samples = snapshot_samples(project, snapshot_id)
        previous = current_run(project)
        runs_dir = project.root / "runs"
    tmp_dir = runs_dir / f".tmp-{uuid.uuid4().hex[:8]}"
    # killed (no except/finally runs): the note lets the next writer take the split back (core/leftovers.py)
    with pending(runs_dir.parent, job="training", split_edit=split_edit):
        try:
            return (yield from _train(project_dir, options, preset, started=started, t0=t0, snapshot_id=snapshot_id,
                                      class_names=class_names, samples=samples, previous=previous, assigned=assigned,
                                      tmp_dir=tmp_dir, runs_dir=runs_dir, init_dir=init_dir,
                                      continue_note=continue_note))
        except BaseException:
            if split_edit is not None:  # take back the split it assigned, unless the user edited since
                with Project.open(project_dir) as project:
                    project.undo(only=split_edit)
            raise
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _train(project_dir: Path, options: TrainOptions, preset: Preset, *, started: str, t0: float,
           snapshot_id: int, class_names: list[str], samples: list[Sample], previous: Run | None,
           assigned: dict[str, int], tmp_dir: Path, runs_dir: Path,
           init_dir: Path | None = None, continue_note: str | None = None) -> Generator[Progress, None, dict[str, Any]]:
    train_s, val_s, notes = select_samples(samples, derived=options.derived)
    if continue_note:
        notes.append(continue_note)
    if not train_s:
        raise ModelError(
            f"no labeled training images in {project_dir} ({len(samples)} labeled in all); "
            "import labels or label some images first"
        )
    n_derived = sum(s.derived for s in train_s)
    yield Progress("prepare", 1, 1, f"{len(train_s)} train ({n_derived} derived) / {len(val_s)} val images, "
                   f"{len(class_names)} classes",
                   metrics={"snapshot_id": snapshot_id, "assigned": assigned, "notes": notes, "n_derived": n_derived})

    result = yield from fit(train_s, val_s, class_names, preset=preset, options=options, t0=t0, init_dir=init_dir)
    model, best, history, step, seen = result.model, result.best, result.history, result.steps, result.seen
    device, threads, weights, train_s_wall = result.device, result.threads, result.weights, result.loop_s
    size, batch_size = preset.image_size, options.batch_size or preset.batch_size
    val_ds = DetectionDataset(val_s, size=size)
    if options.minutes is not None and len(history) < FEW_EPOCHS:
        notes.append(f"only {len(history)} epoch{'s' if len(history) != 1 else ''} fit in the {options.minutes:g}-minute "
                     f"budget ({seen / max(1e-9, train_s_wall):.1f} images/s): the model is undertrained. Give it more "
                     "minutes, or check that no other training or analysis shares the CPU")

    prev_eval, delta = None, None
    if previous is not None:
        yield Progress("compare", 0, 1, f"evaluating the previous model (run {previous.id}) on the same images")
        prev_eval = _evaluate_previous(project_dir, previous.path, val_ds, class_names, device, batch_size)
        delta = per_class_delta(best, prev_eval)
        yield Progress("compare", 1, 1, "done")

    yield Progress("save", 0, 1, "writing the run")
    flops = forward_flops(model, image_size=size)
    summary = {
        "started_at": started, "snapshot_id": snapshot_id, "preset": preset.to_dict(),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "weights": {"kind": weights.kind, "path": str(weights.path) if weights.path else None,
                    "message": weights.message}, "pretrained_start": result.pretrained,
        "device": str(device), "threads": threads, "epochs_done": len(history), "steps": step,
        "images_seen": seen, "train_loop_s": round(train_s_wall, 1),
        "images_per_s": round(seen / max(1e-9, train_s_wall), 2),
        "train_flops_estimate": int(3 * flops * seen), "forward_flops": int(flops),
        "n_train": len(train_s), "n_val": len(val_s), "n_derived": n_derived, "notes": notes,
    }
    metrics = {"schema_version": 1, "final": best.to_dict(), "history": history, "previous_run_id": previous.id if previous else None,
               "previous": prev_eval.to_dict() if prev_eval else None, "delta": delta,
               "wall_s": round(time.monotonic() - t0, 1)}
    save_checkpoint(model, tmp_dir, preset=preset, class_names=class_names,
                    extra={"snapshot_id": snapshot_id, "train": summary})
    _write_json(tmp_dir / "metrics.json", metrics)
    name = f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{preset.name}"
    final_dir = runs_dir / name
    if final_dir.exists():
        final_dir = runs_dir / f"{name}-{uuid.uuid4().hex[:4]}"
    os.replace(tmp_dir, final_dir)
    try:
        with Project.open(project_dir) as project:
            run_id = record_run(
                project, created_at=started, snapshot_id=snapshot_id,
                previous_id=previous.id if previous else None, preset=preset.name,
                path=final_dir.relative_to(project.root).as_posix(),
                metrics={"map50": best.map50, "map50_95": best.map50_95, **metrics}, config=summary)
    except BaseException:
        shutil.rmtree(final_dir, ignore_errors=True)
        raise
    # no yield after the run is recorded: closing the job there must not look like a cancel
    return {"run_id": run_id, "run_dir": str(final_dir), "map50": best.map50, "map50_95": best.map50_95,
            "eval": best.to_dict(), "delta": delta, "previous_run_id": previous.id if previous else None,
            "previous": prev_eval.to_dict() if prev_eval else None,
            "history": history, **{k: summary[k] for k in (
                "weights", "epochs_done", "images_seen", "images_per_s", "train_flops_estimate",
                "train_loop_s", "n_train", "n_val", "n_derived", "notes")}, "wall_s": metrics["wall_s"]}


def _init_dir(project: Project, init_from: str | None, current: Run | None) -> Path | None:
    """The run folder ``init_from`` names ("current" or a run id), or None to start afresh."""
    if init_from is None:
        return None
    if init_from == "current":
        if current is None:
            raise ModelError(f"{project.root} has no current model to continue from; train once without continuing")
        run = current
    else:
        run = get_run(project, int(init_from))
    return project.root / run.path


def _continued_preset(run_dir: Path, chosen: Preset) -> tuple[Preset, str | None]:
    """The preset to continue a run with, and a note when it is not ``chosen``: a run keeps its own
    network (backbone, input size, anchors, FPN width); a run of an earlier preset continues under
    today's name for that network (the earlier MobileNetV3 'edge' continues as 'mobilenetv3')."""
    trained = run_preset(run_dir)
    if same_network(trained, chosen):
        return chosen, None
    current = current_preset_for(trained)
    preset = replace(current, image_size=trained.image_size) if current else trained
    return preset, (f"continuing keeps the model's own network: the {preset.name} preset ({preset.backbone}, "
                    f"{preset.image_size} px), not {chosen.name} ({chosen.backbone}, {chosen.image_size} px)")


def select_samples(samples: list[Sample], *, derived: bool = True) -> tuple[list[Sample], list[Sample], list[str]]:
    """Training and validation samples of a snapshot, and notes for the user.

    Validation never includes derived (augmented) images; training includes them unless
    ``derived=False``. Without validation images the real training images stand in (with a note).
    """
    train_s = [s for s in samples if s.split == "train" and (derived or not s.derived)]
    val_s = [s for s in samples if s.split == "val" and not s.derived]
    notes = []
    if not val_s:
        notes.append("no validation images (too few labeled images): validating on the training images")
        val_s = [s for s in train_s if not s.derived] or train_s
    if not derived and any(s.derived for s in samples):
        notes.append("derived (augmented) images left out of training (--no-derived)")
    return train_s, val_s, notes


def _evaluate_previous(project_dir: Path, rel_path: str, val_ds: DetectionDataset, class_names: list[str],
                       device: torch.device, batch_size: int) -> EvalResult | None:
    """The previous model scored on the same validation images (None if its files are gone)."""
    run_dir = Path(project_dir) / rel_path
    try:
        prev_model, cfg = load_checkpoint(run_dir, device=str(device))
    except ModelError:
        return None
    prev_classes = list(cfg["class_names"])
    prev_ds = DetectionDataset(relabel_samples(val_ds.samples, names=class_names, target=prev_classes), size=int(cfg["image_size"]))
    return evaluate_on(prev_model, prev_ds, class_names=prev_classes, device=device, batch_size=batch_size)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


__all__ = ["TrainOptions", "lr_at", "select_samples", "train"]
