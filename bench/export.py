"""Edge export benchmark; prints JSON.

  python bench/export.py [--presets edge,balanced] [--epochs 40] [--images 200] [--threads 2]
      per preset: a demo project (clean labels) trained for --epochs, exported as a bundle (ONNX FP32
      + INT8 calibrated on 32 project images) and verified on the validation split: median latency
      at batch 1 (--threads threads) of PyTorch eager FP32, ORT FP32 and ORT INT8, file sizes and
      mAP@.5 of each (the same numbers `labeltool verify` prints).
  python bench/export.py --project DIR [--presets edge]
      reuse DIR's current model instead of training (no training time).

Latency = model forward + box decoding/NMS at batch 1, image decoding excluded, on both sides.
Run it on a quiet machine: other load distorts latency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from labeltool.core.store import Project
from labeltool.jobs import drive
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job
from labeltool.jobs.export import export_model_job, verify_job
from labeltool.jobs.model import train_job


def cpu_flags() -> dict[str, bool]:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return {}
    return {f: f in flags for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")}


def one_preset(preset: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    project = Path(args.project) if args.project else work / f"{preset}-project"
    train: dict[str, Any] | None = None
    if not args.project:
        drive(demo_data_job(work / f"{preset}-data", n_images=args.images, noise=0.0, seed=args.seed), lambda p: None)
        Project.create(project).close()
        drive(import_job(project, work / f"{preset}-data" / "annotations.json", fmt="coco"), lambda p: None)
        t = time.perf_counter()
        res = drive(train_job(project, preset=preset, epochs=args.epochs, seed=args.seed), lambda p: None)
        train = {"epochs": res["epochs_done"], "wall_s": round(time.perf_counter() - t, 1), "map50": res["map50"]}
    t = time.perf_counter()
    exp = drive(export_model_job(project, work / f"{preset}-bundle", make_zip=False), lambda p: None)
    export_s = time.perf_counter() - t
    ver = drive(verify_job(work / f"{preset}-bundle", project, threads=args.threads), lambda p: None)
    return {
        "preset": preset, "train": train, "export_s": round(export_s, 1),
        "latency_median_ms": ver["latency_median_ms"], "size_bytes": ver["size_bytes"], "map50": ver["map50"],
        "fp32_map50_drop": ver.get("fp32_map50_drop"), "int8_map50_drop": ver.get("int8_map50_drop"),
        "int8_latency_ratio": ver.get("int8_latency_ratio"), "fp32_latency_ratio": ver.get("fp32_latency_ratio"),
        "int8_size_ratio": ver.get("int8_size_ratio"), "int8_most_hurt_classes": ver.get("int8_most_hurt_classes"),
        "verified": ver["verified"], "val_images": ver["n_images"], "calibration_images": exp["calibration_images"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="edge,balanced")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--project", help="reuse this project's current model (one preset)")
    parser.add_argument("--keep", help="keep projects and bundles in this folder")
    args = parser.parse_args()
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    with tempfile.TemporaryDirectory(prefix="lt-bench-export-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = [one_preset(p, work, args) for p in presets]
    print(json.dumps({"benchmark": "export", "threads": args.threads, "cpu": platform.processor() or platform.machine(),
                      "cores": os.cpu_count(), "cpu_flags": cpu_flags(), "presets": rows}, indent=2))


if __name__ == "__main__":
    main()
