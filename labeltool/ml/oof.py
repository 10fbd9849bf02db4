"""Out-of-sample predictions for the label-quality analysis.

K-fold cross-validation: the labeled images are split into K folds, stratified by class; for each
fold a detector is fine-tuned from the same starting weights (and seed) on the other K-1 folds and
predicts the held-out fold, keeping boxes down to the preset's low score threshold (0.05). No fold's
model ever saw the images it predicts. The last epoch's weights are used (choosing the best epoch
would select on the held-out images).

The quick check instead reuses the project's current model on all images — in-sample for the images
it trained on, so it finds fewer errors; every output labels it as less reliable.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from labeltool.core.progress import Progress

from .data import Sample
from .fit import TrainOptions, fit
from .predict import Detections, predict_samples
from .presets import Preset

MIN_FOLDS = 2
MAX_FOLDS = 10


@dataclass(slots=True)
class OutOfSample:
    """Detections aligned with the input samples (original image pixels) and how they were made."""

    detections: list[Detections]
    folds: list[int]  # fold of each sample
    per_fold: list[dict[str, Any]]  # n_train, n_held_out, epochs, held-out mAP@.5
    weights: str  # kind of starting weights: file / cache / download / random


def assign_folds(samples: Sequence[Sample], *, k: int, seed: int = 0) -> list[int]:
    """Stratified fold of each sample (0..k-1), deterministic for a seed.

    Images are placed rarest-class first, each into the fold that holds the fewest of that class so
    far (ties: the smallest fold), so every class with at least ``k`` images appears in every fold.
    """
    if not MIN_FOLDS <= k <= MAX_FOLDS:
        raise ValueError(f"folds must be between {MIN_FOLDS} and {MAX_FOLDS}, got {k}")
    if len(samples) < k:
        raise ValueError(f"{len(samples)} labeled images cannot be split into {k} folds; use fewer folds")
    freq = Counter(c for s in samples for c in set(s.labels.tolist()))

    def rarest(s: Sample) -> int:
        return min(set(s.labels.tolist()), key=lambda c: (freq[c], c)) if len(s.labels) else -1

    def order(i: int) -> tuple[int, str]:
        s = samples[i]
        key = freq[rarest(s)] if len(s.labels) else 10**9  # defect-free images last
        return key, hashlib.sha256(f"{seed}:{s.image_id}".encode()).hexdigest()

    per_class = np.zeros((k, max(freq, default=0) + 2), dtype=np.int64)
    sizes = np.zeros(k, dtype=np.int64)
    folds = [0] * len(samples)
    for i in sorted(range(len(samples)), key=order):
        c = rarest(samples[i])
        f = int(np.lexsort((sizes, per_class[:, c]))[0]) if c >= 0 else int(np.argmin(sizes))
        folds[i] = f
        sizes[f] += 1
        for cls in set(samples[i].labels.tolist()):
            per_class[f, cls] += 1
    return folds


def _prefixed(gen: Generator[Progress, None, Any], prefix: str, *, keep_model: bool) -> Generator[Progress, None, Any]:
    """Re-yield ``gen``'s events with ``prefix`` on the stage; drops repeated 'model' events."""
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            if event.stage == "model":
                if keep_model:
                    yield event
                continue
            yield replace(event, stage=f"{prefix}{event.stage}")
    finally:
        gen.close()


def out_of_sample_predictions(
    samples: Sequence[Sample], class_names: list[str], *, k: int, preset: Preset, options: TrainOptions,
) -> Generator[Progress, None, OutOfSample]:
    """K-fold predictions for every sample; yields Progress (stages 'fold i/k train' / '… eval').

    Derived (augmented) samples are refused: a copy of a held-out image in the training folds would
    leak it into the model that judges it. Leave them out first (the analysis job does).
    """
    if any(s.derived for s in samples):
        raise ValueError("out-of-sample predictions must not include derived (augmented) images; "
                         "filter them out (Sample.derived) before the K-fold analysis")
    folds = assign_folds(samples, k=k, seed=options.seed)
    detections: list[Detections | None] = [None] * len(samples)
    per_fold: list[dict[str, Any]] = []
    weights = "random"
    for f in range(k):
        held = [i for i, fi in enumerate(folds) if fi == f]
        train_s = [s for s, fi in zip(samples, folds, strict=True) if fi != f]
        held_s = [samples[i] for i in held]
        yield Progress("folds", f, k, f"fold {f + 1}/{k}: training on {len(train_s)} images, "
                                      f"predicting {len(held_s)}")
        result = yield from _prefixed(
            fit(train_s, held_s, class_names, preset=preset, options=options, keep_best=False),
            f"fold {f + 1}/{k} ", keep_model=f == 0,
        )
        weights = result.weights.kind
        dets = predict_samples(result.model, held_s, size=preset.image_size, device=result.device)
        for i, det in zip(held, dets, strict=True):
            detections[i] = det
        per_fold.append({"fold": f + 1, "n_train": len(train_s), "n_held_out": len(held_s),
                         "epochs": len(result.history), "held_out_map50": round(result.best.map50, 4)})
    yield Progress("folds", k, k, "all folds predicted")
    return OutOfSample([d for d in detections if d is not None], folds, per_fold, weights)
