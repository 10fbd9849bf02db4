"""Training benchmark; prints JSON.

  python bench/train.py throughput [--repeats 3]
      images/s of labeltool's training loop (augmentation, sampler, schedule, progress events; the
      per-epoch validation excluded) vs a plain torchvision loop over pre-made tensors, same model,
      trainable parameters, batch and size, alternated so both see the same machine load. Ratio = ours / plain.
  python bench/train.py map --preset edge --dataset demo|deeppcb [--minutes 10] [--set FIELD=VALUE ...]
      val mAP@.5 reached within a fixed wall-clock budget (pretrained when the preset's weights are
      found: the JSON says which); --set overrides preset fields (e.g. --set backbone_lr_scale=0.3
      --set frozen_bn=true) to measure training defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from labeltool.core.store import Project
from labeltool.jobs import drive
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job
from labeltool.ml.data import DetectionDataset, collate, snapshot_samples
from labeltool.ml.fit import freeze_stages
from labeltool.ml.model import build_model
from labeltool.ml.predict import use_all_cores
from labeltool.ml.presets import PRESETS, get_preset
from labeltool.ml.train import TrainOptions, train

DEEPPCB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "deeppcb"


def make_project(work: Path, dataset: str, *, n_images: int = 300, seed: int = 0) -> Path:
    """A project with the generated demo set (clean labels) or the DeepPCB sample."""
    if dataset == "demo":
        drive(demo_data_job(work / "data", n_images=n_images, noise=0.0, seed=seed), lambda p: None)
        source, fmt = work / "data" / "annotations.json", "coco"
    elif dataset == "deeppcb":
        if not DEEPPCB.is_dir():
            sys.exit(f"{DEEPPCB} not found")
        source, fmt = DEEPPCB, "yolo"
    else:
        sys.exit(f"unknown dataset {dataset!r}")
    Project.create(work / "project").close()
    drive(import_job(work / "project", source, fmt=fmt), lambda p: None)
    return work / "project"


def plain_loop_images_per_s(project: Path, *, preset_name: str, steps: int, seed: int) -> float:
    """The reference: torchvision RetinaNet, AdamW, pre-made letterboxed tensors, nothing else."""
    preset = get_preset(preset_name)
    with Project.open(project) as p:
        snap = p.create_snapshot()
        names, samples = snapshot_samples(p, snap)
    train_s = [s for s in samples if s.split == "train"] or samples
    ds = DetectionDataset(train_s, size=preset.image_size)
    data = [ds[i] for i in range(len(ds))]
    torch.manual_seed(seed)
    model = build_model(preset, num_classes=len(names)).to(memory_format=torch.channels_last)
    freeze_stages(model, preset.frozen_stages)  # the same trainable parameters as ours (pretrained start)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=preset.lr,
                            weight_decay=preset.weight_decay)
    bs = preset.batch_size
    batches = [collate(data[i:i + bs]) for i in range(0, len(data) - bs + 1, bs)]
    t = time.perf_counter()
    for k in range(steps):
        images, targets, _ = batches[k % len(batches)]
        loss = sum(model(images, targets).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * bs / (time.perf_counter() - t)


def our_loop_images_per_s(project: Path, *, preset_name: str, epochs: int, seed: int) -> dict[str, Any]:
    result = drive(train(project, TrainOptions(preset=preset_name, epochs=epochs, seed=seed, patience=100)),
                   lambda p: None)
    return {"images_per_s": result["images_per_s"], "steps_images": result["images_seen"]}


def cmd_throughput(args: argparse.Namespace) -> dict[str, Any]:
    threads = use_all_cores()
    with tempfile.TemporaryDirectory(prefix="lt-bench-") as tmp:
        project = make_project(Path(tmp), "demo", n_images=args.images)
        ours, plain = [], []
        for r in range(args.repeats):
            res = our_loop_images_per_s(project, preset_name=args.preset, epochs=args.epochs, seed=r)
            ours.append(res["images_per_s"])
            steps = res["steps_images"] // get_preset(args.preset).batch_size
            plain.append(plain_loop_images_per_s(project, preset_name=args.preset, steps=steps, seed=r))
    return {
        "benchmark": "train_throughput", "preset": args.preset, "threads": threads,
        "image_size": get_preset(args.preset).image_size, "batch_size": get_preset(args.preset).batch_size,
        "ours_images_per_s": [round(v, 2) for v in ours], "plain_images_per_s": [round(v, 2) for v in plain],
        "ours_median": round(statistics.median(ours), 2), "plain_median": round(statistics.median(plain), 2),
        "ratio_median": round(statistics.median(ours) / statistics.median(plain), 3),
    }


def override_preset(name: str, settings: list[str]) -> dict[str, Any]:
    """Replace fields of preset ``name`` in PRESETS for this process (``FIELD=VALUE``, JSON values)."""
    preset = get_preset(name)
    changes: dict[str, Any] = {}
    for item in settings:
        field, _, text = item.partition("=")
        current = getattr(preset, field)  # AttributeError: not a preset field
        value = json.loads(text.lower() if isinstance(current, bool) else text)
        changes[field] = tuple(value) if isinstance(current, tuple) else type(current)(value)
    PRESETS[name] = dataclasses.replace(preset, **changes)
    return changes


def cmd_map(args: argparse.Namespace) -> dict[str, Any]:
    threads = use_all_cores()
    overrides = override_preset(args.preset, args.set)
    with tempfile.TemporaryDirectory(prefix="lt-bench-") as tmp:
        project = make_project(Path(tmp), args.dataset, n_images=args.images)
        t = time.perf_counter()
        result = drive(train(project, TrainOptions(preset=args.preset, minutes=args.minutes, seed=args.seed,
                                                    patience=1000, lr=args.lr)), lambda p: None)
        wall = time.perf_counter() - t
    return {
        "benchmark": "train_map", "dataset": args.dataset, "preset": args.preset, "minutes": args.minutes,
        "lr": args.lr, "preset_overrides": overrides, "backbone": get_preset(args.preset).backbone,
        "threads": threads, "weights": result["weights"]["kind"], "n_train": result["n_train"],
        "n_val": result["n_val"], "epochs": result["epochs_done"], "val_map50": round(result["map50"], 4),
        "val_map50_95": round(result["map50_95"], 4), "images_per_s": result["images_per_s"],
        "wall_s": round(wall, 1), "per_class_ap50": {c["name"]: c["ap50"] for c in result["eval"]["per_class"]},
        "map50_by_epoch": [h["map50"] for h in result["history"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--preset", default="edge")
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("map")
    p.add_argument("--preset", default="edge")
    p.add_argument("--dataset", default="demo", choices=("demo", "deeppcb"))
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the preset's)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a preset field")
    args = parser.parse_args()
    out = cmd_throughput(args) if args.cmd == "throughput" else cmd_map(args)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
