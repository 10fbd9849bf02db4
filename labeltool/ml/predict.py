"""Running a detector over samples: device choice, batched inference, mapping back to image pixels."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .data import DetectionDataset, Sample, collate, unletterbox_boxes

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes float32[N,4] xyxy px, scores float32[N], labels int64[N]


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cpu' / 'cuda' / 'cuda:N' as given (checked)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for but no CUDA GPU is available; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    return dev


def use_all_cores() -> int:
    """Let torch use every core of this machine (CPU training/inference); returns the thread count.

    An explicit ``OMP_NUM_THREADS`` (a positive whole number) caps it: on a shared PC, or with two jobs at once,
    threads beyond the cores make torch wait on itself (two 2-thread trainings on 2 cores ran 8x slower).
    """
    n = os.cpu_count() or 1
    cap = os.environ.get("OMP_NUM_THREADS", "").strip()
    if cap.isascii() and cap.isdecimal() and int(cap) > 0:
        n = min(n, int(cap))
    torch.set_num_threads(n)
    return n


@torch.inference_mode()
def predict_dataset(
    model: torch.nn.Module,
    dataset: DetectionDataset,
    *,
    batch_size: int = 8,
    device: torch.device | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> list[Detections]:
    """Detections for every sample of ``dataset`` (no augmentation), in original image pixels.

    ``model`` is put in eval mode. ``on_batch(done, total)`` is called after each batch.
    """
    device = device or next(model.parameters()).device
    model.eval()
    out: list[Detections] = []
    n = len(dataset)
    for start in range(0, n, batch_size):
        images, _, metas = collate([dataset[i] for i in range(start, min(n, start + batch_size))])
        batch = [img.to(device) for img in images]
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            results = model(batch)
        for res, meta in zip(results, metas, strict=True):
            boxes = res["boxes"].float().cpu().numpy()
            out.append(
                (
                    unletterbox_boxes(boxes, sx=meta["sx"], sy=meta["sy"], width=meta["width"], height=meta["height"]),
                    res["scores"].float().cpu().numpy().astype(np.float32),
                    res["labels"].cpu().numpy().astype(np.int64),
                )
            )
        if on_batch is not None:
            on_batch(min(n, start + batch_size), n)
    return out


def predict_samples(
    model: torch.nn.Module, samples: Sequence[Sample], *, size: int, batch_size: int = 8,
    device: torch.device | None = None,
) -> list[Detections]:
    """Convenience: :func:`predict_dataset` over a fresh, un-augmented dataset of ``samples``."""
    return predict_dataset(model, DetectionDataset(samples, size=size), batch_size=batch_size, device=device)
