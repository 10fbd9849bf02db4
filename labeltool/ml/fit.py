"""Fitting a detector on samples: model from pretrained weights, data pipeline, the epoch loop.

No project access here (``ml/train.py`` turns a project into samples and a finished fit into a run;
``ml/oof.py`` fits one model per cross-validation fold). A fit is a generator yielding Progress.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labeltool.core.errors import ModelError
from labeltool.core.progress import Progress
from labeltool.core.splits import DEFAULT_VAL_FRACTION

from .checkpoint import start_from_run, started_pretrained
from .data import DetectionDataset, Sample, collate, repeat_factors, train_transform
from .evaluate import EvalResult, evaluate_detections
from .predict import predict_dataset, resolve_device, use_all_cores
from .presets import DEFAULT_PRESET, Preset
from .weights import WeightsSource, build_pretrained_model

DEFAULT_MINUTES_CPU = 10.0  # with neither --epochs nor --minutes: a 10-minute budget on a CPU …
DEFAULT_EPOCHS_GPU = 40  # … and 40 epochs on a GPU
MAX_EPOCHS = 1000  # upper bound in time-budget mode
GRAD_CLIP_NORM = 10.0  # RetinaNet losses spike early when training from random init
RANDOM_INIT_LR_FACTOR = 3.0  # peak learning rate x3 when no pretrained backbone weights were found
MIN_LR_FACTOR = 0.01  # the cosine schedule ends at 1 % of the peak learning rate
# The warm-up stays the preset's number of steps even when a short budget ends inside it: ending it
# after 20 % of the budget made the pretrained backbone worse (demo: first model 0.51 vs 0.63, fold
# models 0.30 / 0.24 vs 0.43 / 0.27 held-out mAP@.5; CONTEXT.md "Fine-tuning defaults")


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
    derived: bool = True  # train on the derived (augmented / synthetic) images too (never validated on)
    patience: int = 8  # early stopping: epochs without a better val mAP@.5
    steps_per_epoch: int | None = None  # fixed steps per epoch, images drawn with replacement (equal-compute comparisons)
    batch_size: int | None = None
    lr: float | None = None
    image_size: int | None = None
    device: str = "auto"
    val_fraction: float = DEFAULT_VAL_FRACTION
    init_from: str | None = None  # "current" or a run id: fine-tune that run's model instead of starting afresh

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be at least 1, got {self.steps_per_epoch}")
        if self.init_from is not None and self.init_from != "current" and not str(self.init_from).isdigit():
            raise ValueError(f"init_from must be 'current' or a run id, got {self.init_from!r}")


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


def evaluate_on(model: torch.nn.Module, dataset: DetectionDataset, *, class_names: list[str],
                device: torch.device, batch_size: int) -> EvalResult:
    """Predict ``dataset`` and score it against its samples' boxes (COCO mAP via pycocotools)."""
    dets = predict_dataset(model, dataset, batch_size=batch_size, device=device)
    samples = dataset.samples
    return evaluate_detections(
        gt_boxes=[s.boxes for s in samples], gt_labels=[s.labels for s in samples],
        pred_boxes=[d[0] for d in dets], pred_scores=[d[1] for d in dets], pred_labels=[d[2] for d in dets],
        class_names=class_names, image_sizes=[(s.width, s.height) for s in samples],
    )


@dataclass(slots=True)
class FitResult:
    """A fitted model (best or last weights loaded) and how the fit went."""

    model: torch.nn.Module
    best: EvalResult  # validation result of the weights in ``model``
    history: list[dict[str, Any]]  # per epoch: loss, map50, map50_95, elapsed_s
    steps: int
    seen: int  # training images processed
    loop_s: float  # seconds in training steps (data loading included, validation excluded)
    weights: WeightsSource
    device: torch.device
    threads: int
    pretrained: bool  # the backbone began from pretrained weights (directly, or through the run continued)


def fit(
    train_s: Sequence[Sample], val_s: Sequence[Sample], class_names: list[str], *, preset: Preset,
    options: TrainOptions, t0: float | None = None, keep_best: bool = True, init_dir: Path | None = None,
) -> Generator[Progress, None, FitResult]:
    """Build the detector from the preset's pretrained weights and train it on ``train_s``.

    With ``keep_best`` it validates on ``val_s`` after every epoch and keeps the weights of the best
    epoch (val mAP@.5); else it validates once, after the last epoch, and keeps the last weights
    (cross-validation folds: no selection on held-out data, and the time a validation per epoch would
    take trains instead).
    ``t0`` is when the time budget (``options.minutes``) started. With ``init_dir`` (a run folder) the
    model starts from that run's weights instead (fine-tuning; classes matched by name).
    """
    t0 = time.monotonic() if t0 is None else t0
    generator = seed_everything(options.seed)
    device = resolve_device(options.device)
    threads = use_all_cores() if device.type == "cpu" else 0
    if init_dir is not None:
        model, note = start_from_run(init_dir, preset, class_names)
        weights = WeightsSource("run", Path(init_dir), preset.backbone, note)
    else:
        model, weights = build_pretrained_model(
            preset, num_classes=len(class_names), weights_file=options.weights_file, allow_network=options.allow_network
        )
    yield Progress("model", 0, 0, weights.message, metrics={"weights": weights.kind, "warning": weights.warning})
    model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    size, batch_size = preset.image_size, options.batch_size or preset.batch_size
    # From random weights a higher peak learning rate learns much faster: on the demo set, 5 minutes
    # gave val mAP@.5 0.28 at 1e-3, 0.41 at 3e-3 and 0.40 at 6e-3 (bench/train.py, the earlier MobileNetV3 edge preset).
    peak_lr = options.lr or preset.lr * (RANDOM_INIT_LR_FACTOR if weights.kind == "random" else 1.0)
    transform = train_transform(seed=options.seed) if options.augment else None
    no_flip = train_transform(seed=options.seed, flips=False) if options.augment else None
    train_ds = DetectionDataset(train_s, size=size, transform=transform, no_flip_transform=no_flip)
    val_ds = DetectionDataset(val_s, size=size)
    yield from _preload(train_ds, val_ds)
    t0 = max(t0, time.monotonic())  # the --minutes budget is for training, not for decoding images
    sampler: torch.utils.data.Sampler[int]
    n_draw = len(train_s) if options.steps_per_epoch is None else options.steps_per_epoch * batch_size
    if options.balanced:
        sampler = torch.utils.data.WeightedRandomSampler(
            repeat_factors(train_s), num_samples=n_draw, replacement=True, generator=generator)
    elif options.steps_per_epoch is not None:
        sampler = torch.utils.data.RandomSampler(train_ds, replacement=True, num_samples=n_draw, generator=generator)
    else:
        sampler = torch.utils.data.RandomSampler(train_ds, generator=generator)
    loader = torch.utils.data.DataLoader(
        train_ds, batch_size=batch_size, sampler=sampler, collate_fn=collate,
        drop_last=n_draw > batch_size, num_workers=0 if device.type == "cpu" else min(4, os.cpu_count() or 1),
    )
    epochs, minutes = options.epochs, options.minutes
    if epochs is None and minutes is None:
        epochs, minutes = (DEFAULT_EPOCHS_GPU, None) if device.type == "cuda" else (None, DEFAULT_MINUTES_CPU)
    deadline = None if minutes is None else t0 + minutes * 60.0
    n_epochs = epochs if epochs is not None else MAX_EPOCHS
    warmup = min(preset.warmup_steps, max(1, n_epochs * len(loader) // 4))
    # a random backbone needs the full rate and its own statistics, also when continuing a run that began random
    pretrained = weights.kind != "random" and (init_dir is None or started_pretrained(Path(init_dir)))
    if pretrained:
        freeze_stages(model, preset.frozen_stages)
    groups = param_groups(model, backbone_lr_scale=preset.backbone_lr_scale if pretrained else 1.0)
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=peak_lr, weight_decay=preset.weight_decay)
    loop = yield from _epochs(
        model, optimizer, loader, val_ds, class_names, device=device, t0=t0, deadline=deadline,
        n_epochs=n_epochs, epochs_known=epochs is not None, peak_lr=peak_lr, warmup=warmup,
        patience=options.patience if keep_best else 10**9, params=params, batch_size=batch_size,
        frozen_bn=preset.frozen_bn and pretrained, validate_each_epoch=keep_best,
    )
    best = loop.best
    if keep_best:
        model.load_state_dict(loop.best_state)
    else:
        best = loop.last
    return FitResult(model, best, loop.history, loop.step, loop.seen, loop.loop_s, weights, device, threads, pretrained)


def param_groups(model: torch.nn.Module, *, backbone_lr_scale: float) -> list[dict[str, Any]]:
    """AdamW groups: the backbone body at ``backbone_lr_scale`` x the peak rate, FPN and head at 1x."""
    body = [p for p in model.backbone.body.parameters() if p.requires_grad]
    in_body = {id(p) for p in body}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in in_body]
    return [{"params": rest, "lr_scale": 1.0}, {"params": body, "lr_scale": backbone_lr_scale}]


def freeze_stages(model: torch.nn.Module, stages: int) -> None:
    """Stop training the backbone's stem and its first ``stages`` block stages (timm EfficientNet /
    MobileNet layout: ``conv_stem``, ``bn1``, ``blocks``): their early, generic ImageNet filters are kept
    (their BatchNorm statistics still adapt unless the preset freezes them) and the backward pass skips
    the highest-resolution layers. Other layouts are left as they are."""
    body = model.backbone.body
    if stages <= 0 or not hasattr(body, "conv_stem") or not hasattr(body, "blocks"):
        return
    for module in (body.conv_stem, body.bn1, *list(body.blocks)[:stages]):
        for param in module.parameters():
            param.requires_grad_(False)


def train_mode(model: torch.nn.Module, *, frozen_bn: bool) -> None:
    """``model.train()``; with ``frozen_bn`` the backbone's BatchNorm layers stay in eval mode, so their
    pretrained statistics are used and kept (small CPU batches estimate them badly)."""
    model.train()
    if frozen_bn:
        for module in model.backbone.body.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


@dataclass(slots=True)
class _Loop:
    """What the epoch loop leaves: the best validation result and weights, and the counts."""

    best: EvalResult
    best_state: dict[str, torch.Tensor]
    last: EvalResult
    history: list[dict[str, Any]]
    step: int
    seen: int
    loop_s: float  # seconds spent in training steps (data loading included, evaluation excluded)


def _epochs(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: torch.utils.data.DataLoader,
    val_ds: DetectionDataset, class_names: list[str], *, device: torch.device, t0: float, deadline: float | None,
    n_epochs: int, epochs_known: bool, peak_lr: float, warmup: int, patience: int,
    params: list[torch.nn.Parameter], batch_size: int, frozen_bn: bool = False, validate_each_epoch: bool = True,
) -> Generator[Progress, None, _Loop]:
    """The epoch loop: train steps, a validation after each epoch (or only after the last one),
    early stopping, time budget."""
    history: list[dict[str, Any]] = []
    best: EvalResult | None = None
    best_state: dict[str, torch.Tensor] = {}
    bad_epochs = step = seen = 0
    loop_s = 0.0
    total_steps = n_epochs * len(loader)
    for epoch in range(n_epochs):
        train_mode(model, frozen_bn=frozen_bn)
        losses: list[float] = []
        t_epoch = time.monotonic()
        for images, targets, _ in loader:
            if deadline is not None and time.monotonic() >= deadline:
                break
            frac = (time.monotonic() - t0) / (deadline - t0) if deadline else step / total_steps
            lr = lr_at(step=step, frac=frac, peak=peak_lr, warmup_steps=warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
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
        out_of_time = deadline is not None and time.monotonic() >= deadline
        if not validate_each_epoch and not (out_of_time or epoch == n_epochs - 1):
            history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4),
                            "elapsed_s": round(time.monotonic() - t0, 1)})
            continue
        result = evaluate_on(model, val_ds, class_names=class_names, device=device, batch_size=batch_size)
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
    if step == 0:
        raise ModelError("the time budget ended before one training step; give more --minutes")
    if best is None:  # validating only after the last epoch, and the budget ended exactly between epochs
        result = evaluate_on(model, val_ds, class_names=class_names, device=device, batch_size=batch_size)
        history[-1].update(map50=result.map50, map50_95=result.map50_95)
        best, best_state = result, {}
    return _Loop(best, best_state, result, history, step, seen, loop_s)


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


