"""Fine-tuning the detector on a project's label snapshot: a generator job yielding Progress.

The run folder is written under ``runs/.tmp-*`` and renamed to ``runs/<time>-<preset>`` only when
training finished; the database row comes last. Cancel (closing the generator) or an error removes
the temporary folder, so a cancelled run leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
import uuid
from collections.abc import Generator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labeltool.core.errors import ModelError
from labeltool.core.progress import Progress
from labeltool.core.runs import current_run, record_run
from labeltool.core.splits import DEFAULT_VAL_FRACTION, assign_splits
from labeltool.core.store import Project, now_iso

from .checkpoint import load_checkpoint, save_checkpoint
from .data import (
    DetectionDataset,
    collate,
    relabel_samples,
    repeat_factors,
    snapshot_samples,
    train_transform,
)
from .evaluate import EvalResult, evaluate_detections, per_class_delta
from .model import forward_flops
from .predict import predict_dataset, resolve_device, use_all_cores
from .presets import DEFAULT_PRESET, Preset, get_preset
from .weights import build_pretrained_model

DEFAULT_MINUTES_CPU = 10.0  # with neither --epochs nor --minutes: a 10-minute budget on a CPU …
DEFAULT_EPOCHS_GPU = 40  # … and 40 epochs on a GPU
MAX_EPOCHS = 1000  # upper bound in time-budget mode
GRAD_CLIP_NORM = 10.0  # RetinaNet losses spike early when training from random init
MIN_LR_FACTOR = 0.01  # the cosine schedule ends at 1 % of the peak learning rate


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """What ``labeltool train`` accepts. ``None`` means: the preset's default."""

    preset: str = DEFAULT_PRESET
    epochs: int | None = None
    minutes: float | None = None
    weights_file: Path | None = None
    allow_network: bool = False
    seed: int = 0
    balanced: bool = False  # class-balanced (repeat-factor) sampling
    augment: bool = True  # bbox-safe augmentation of training images (data.train_transform)
    patience: int = 8  # early stopping: epochs without a better val mAP@.5
    batch_size: int | None = None
    lr: float | None = None
    image_size: int | None = None
    device: str = "auto"
    val_fraction: float = DEFAULT_VAL_FRACTION

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience}")


def lr_at(*, step: int, frac: float, peak: float, warmup_steps: int) -> float:
    """Linear warmup over ``warmup_steps``, then cosine from ``peak`` to ``MIN_LR_FACTOR * peak``
    as ``frac`` (share of the training budget used, steps or time) goes from 0 to 1."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    cos = 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, frac))))
    return peak * (MIN_LR_FACTOR + (1.0 - MIN_LR_FACTOR) * cos)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def evaluate_on(model: torch.nn.Module, dataset: DetectionDataset, class_names: list[str], *,
                device: torch.device, batch_size: int) -> EvalResult:
    """Predict ``dataset`` and score it against its samples' boxes (COCO mAP via pycocotools)."""
    dets = predict_dataset(model, dataset, batch_size=batch_size, device=device)
    samples = dataset.samples
    return evaluate_detections(
        gt_boxes=[s.boxes for s in samples], gt_labels=[s.labels for s in samples],
        pred_boxes=[d[0] for d in dets], pred_scores=[d[1] for d in dets], pred_labels=[d[2] for d in dets],
        class_names=class_names, image_sizes=[(s.width, s.height) for s in samples],
    )


def train(project_dir: Path, options: TrainOptions = TrainOptions()) -> Generator[Progress, None, dict[str, Any]]:
    """Train on the project's labeled images; the finished run becomes the current model.

    Yields Progress (stages: prepare, model, train, eval, compare, save); returns a JSON-able
    summary with the run id/folder, final validation metrics and the delta to the previous model.
    """
    started, t0 = now_iso(), time.monotonic()
    preset = get_preset(options.preset)
    if options.weights_file is not None and not Path(options.weights_file).is_file():
        raise ModelError(f"weights file {options.weights_file} not found; check the path given with --weights")
    if options.image_size:
        preset = replace(preset, image_size=options.image_size)
    yield Progress("prepare", 0, 1, "freezing the labels into a snapshot")
    with Project.open(project_dir) as project:
        assigned = assign_splits(project, val_fraction=options.val_fraction, seed=options.seed)
        snapshot_id = project.create_snapshot(note=f"training ({preset.name})")
        class_names, samples = snapshot_samples(project, snapshot_id)
        previous = current_run(project)
        runs_dir = project.root / "runs"
    train_s = [s for s in samples if s.split == "train"]
    val_s = [s for s in samples if s.split == "val"]
    if not train_s:
        raise ModelError(
            f"no labeled training images in {project_dir} ({len(samples)} labeled in all); "
            "import labels or label some images first"
        )
    notes = []
    if not val_s:
        notes.append("no validation images (too few labeled images): validating on the training images")
        val_s = train_s
    yield Progress("prepare", 1, 1, f"{len(train_s)} train / {len(val_s)} val images, {len(class_names)} classes",
                   metrics={"snapshot_id": snapshot_id, "assigned": assigned, "notes": notes})

    generator = seed_everything(options.seed)
    device = resolve_device(options.device)
    threads = use_all_cores() if device.type == "cpu" else 0
    model, weights = build_pretrained_model(
        preset, num_classes=len(class_names), weights_file=options.weights_file, allow_network=options.allow_network
    )
    yield Progress("model", 0, 0, weights.message, metrics={"weights": weights.kind, "warning": weights.warning})
    model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    size, batch_size = preset.image_size, options.batch_size or preset.batch_size
    peak_lr = options.lr or preset.lr
    transform = train_transform(seed=options.seed) if options.augment else None
    train_ds = DetectionDataset(train_s, size=size, transform=transform)
    val_ds = DetectionDataset(val_s, size=size)
    yield from _preload(train_ds, val_ds)
    sampler: torch.utils.data.Sampler[int]
    if options.balanced:
        sampler = torch.utils.data.WeightedRandomSampler(
            repeat_factors(train_s), num_samples=len(train_s), replacement=True, generator=generator)
    else:
        sampler = torch.utils.data.RandomSampler(train_ds, generator=generator)
    loader = torch.utils.data.DataLoader(
        train_ds, batch_size=batch_size, sampler=sampler, collate_fn=collate,
        drop_last=len(train_s) > batch_size, num_workers=0 if device.type == "cpu" else min(4, os.cpu_count() or 1),
    )
    epochs, minutes = options.epochs, options.minutes
    if epochs is None and minutes is None:
        epochs, minutes = (DEFAULT_EPOCHS_GPU, None) if device.type == "cuda" else (None, DEFAULT_MINUTES_CPU)
    deadline = None if minutes is None else t0 + minutes * 60.0
    n_epochs = epochs if epochs is not None else MAX_EPOCHS
    total_steps = n_epochs * len(loader)
    warmup = min(preset.warmup_steps, max(1, total_steps // 4))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=peak_lr, weight_decay=preset.weight_decay)

    tmp_dir = runs_dir / f".tmp-{uuid.uuid4().hex[:8]}"
    finished = False
    try:
        fit = yield from _fit(
            model, optimizer, loader, val_ds, class_names, device=device, t0=t0, deadline=deadline,
            n_epochs=n_epochs, epochs_known=epochs is not None, peak_lr=peak_lr, warmup=warmup,
            patience=options.patience, params=params, batch_size=batch_size,
        )
        best, history, step, seen = fit.best, fit.history, fit.step, fit.seen
        model.load_state_dict(fit.best_state)
        train_s_wall = fit.loop_s

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
                        "message": weights.message},
            "device": str(device), "threads": threads, "epochs_done": len(history), "steps": step,
            "images_seen": seen, "train_loop_s": round(train_s_wall, 1),
            "images_per_s": round(seen / max(1e-9, train_s_wall), 2),
            "train_flops_estimate": int(3 * flops * seen), "forward_flops": int(flops),
            "n_train": len(train_s), "n_val": len(val_s), "notes": notes,
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
        finished = True
        yield Progress("save", 1, 1, f"run {run_id} saved in {final_dir}")
        return {"run_id": run_id, "run_dir": str(final_dir), "map50": best.map50, "map50_95": best.map50_95,
                "eval": best.to_dict(), "delta": delta, "previous_run_id": previous.id if previous else None,
                "previous": prev_eval.to_dict() if prev_eval else None,
                "history": history, **{k: summary[k] for k in (
                    "weights", "epochs_done", "images_seen", "images_per_s", "train_flops_estimate",
                    "train_loop_s", "n_train", "n_val", "notes")}, "wall_s": metrics["wall_s"]}
    finally:
        if not finished:
            shutil.rmtree(tmp_dir, ignore_errors=True)


@dataclass(slots=True)
class _Fit:
    """What the epoch loop leaves: the best validation result and weights, and the counts."""

    best: EvalResult
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, Any]]
    step: int
    seen: int
    loop_s: float  # seconds spent in training steps (data loading included, evaluation excluded)


def _fit(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: torch.utils.data.DataLoader,
    val_ds: DetectionDataset, class_names: list[str], *, device: torch.device, t0: float, deadline: float | None,
    n_epochs: int, epochs_known: bool, peak_lr: float, warmup: int, patience: int,
    params: list[torch.nn.Parameter], batch_size: int,
) -> Generator[Progress, None, _Fit]:
    """The epoch loop: train steps, a validation after each epoch, early stopping, time budget."""
    history: list[dict[str, Any]] = []
    best: EvalResult | None = None
    best_state: dict[str, torch.Tensor] = {}
    bad_epochs = step = seen = 0
    loop_s = 0.0
    total_steps = n_epochs * len(loader)
    for epoch in range(n_epochs):
        model.train()
        losses: list[float] = []
        t_epoch = time.monotonic()
        for images, targets, _ in loader:
            if deadline is not None and time.monotonic() >= deadline:
                break
            frac = (time.monotonic() - t0) / (deadline - t0) if deadline else step / total_steps
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step=step, frac=frac, peak=peak_lr, warmup_steps=warmup)
            batch = [img.to(device, non_blocking=True) for img in images]
            tgts = [{k: v.to(device) for k, v in t.items()} for t in targets]
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss_dict = model(batch, tgts)
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                raise ModelError("training diverged (the loss became NaN/inf); lower the learning rate with --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP_NORM)
            optimizer.step()
            step, seen = step + 1, seen + len(batch)
            losses.append(float(loss.detach()))
            now = time.monotonic()
            done, total = (int(now - t0), int(deadline - t0)) if deadline else (step, total_steps)
            yield Progress("train", done, total, f"epoch {epoch + 1}", metrics={
                "loss": round(losses[-1], 4), "epoch": epoch + 1, "step": step, "lr": optimizer.param_groups[0]["lr"],
                "images_per_s": round(seen / max(1e-9, loop_s + now - t_epoch), 2)})
        loop_s += time.monotonic() - t_epoch
        if not losses:
            break
        result = evaluate_on(model, val_ds, class_names, device=device, batch_size=batch_size)
        history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4), "map50": result.map50,
                        "map50_95": result.map50_95, "elapsed_s": round(time.monotonic() - t0, 1)})
        yield Progress("eval", epoch + 1, n_epochs if epochs_known else 0, f"val mAP@.5 {result.map50:.3f}",
                       metrics=history[-1])
        if best is None or result.map50 > best.map50:
            best, bad_epochs = result, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        if bad_epochs >= patience or (deadline is not None and time.monotonic() >= deadline):
            break
    if best is None:
        raise ModelError("the time budget ended before one training step; give more --minutes")
    return _Fit(best, best_state, history, step, seen, loop_s)


def _preload(*datasets: DetectionDataset) -> Generator[Progress, None, None]:
    """Decode and resize every image once, before the clock of the first epoch starts."""
    total = sum(len(d) for d in datasets)
    done = 0
    for ds in datasets:
        for i in range(len(ds)):
            ds.resized(i)
            done += 1
            if done % 25 == 0 or done == total:
                yield Progress("load", done, total, "decoding images")


def _evaluate_previous(project_dir: Path, rel_path: str, val_ds: DetectionDataset, class_names: list[str],
                       device: torch.device, batch_size: int) -> EvalResult | None:
    """The previous model scored on the same validation images (None if its files are gone)."""
    run_dir = Path(project_dir) / rel_path
    try:
        prev_model, cfg = load_checkpoint(run_dir, device=str(device))
    except ModelError:
        return None
    prev_classes = list(cfg["class_names"])
    prev_ds = DetectionDataset(relabel_samples(val_ds.samples, class_names, prev_classes), size=int(cfg["image_size"]))
    return evaluate_on(prev_model, prev_ds, prev_classes, device=device, batch_size=batch_size)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


__all__ = ["TrainOptions", "Preset", "lr_at", "train"]
