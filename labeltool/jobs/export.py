"""Edge jobs: export a run as a bundle, verify a bundle against PyTorch, deploy it.

``export_model_job`` writes the bundle folder (ONNX FP32 + INT8, anchors, labels, preprocessing,
``infer.py``, README, manifest) atomically and zips it. ``verify_job`` runs the bundle's own
``infer.py`` in a child process that never imports torch (``ml/bundle_check.py``) on the validation
images of the run's snapshot and compares with PyTorch on the same images: mAP and per-class AP,
median latency at batch 1, file sizes. Verified = FP32 and INT8 within their allowed mAP@.5 drops.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labeltool.core.bundle import (
    bundle_manifest,
    extract_bundle,
    read_manifest,
    verify_manifest,
    write_manifest,
    zip_bundle,
)
from labeltool.core.errors import BundleError, ExportError, ModelError, ProjectError
from labeltool.core.progress import Progress
from labeltool.core.runs import get_run
from labeltool.core.signing import require_trusted
from labeltool.core.store import Project

from . import Job
from .analysis import WEAK_MODEL_MAP50
from .model import _run_or_current

CALIBRATION_IMAGES = 32  # enough for MinMax ranges (measured: 32 as good as more on the demo set)
MAX_FP32_DROP = 0.005  # mAP@.5 points as a fraction: 0.5 points
MAX_INT8_DROP = 0.02  # 2 points
VERIFY_THREADS = 2  # a small edge box; the figure the latency targets are quoted for
VERIFICATION_SUFFIX = ".verification.json"


def choose_calibration(samples: Sequence[Any], n: int) -> list[Any]:
    """Up to ``n`` training images covering every class: round-robin over classes (rarest first),
    each time the next image containing that class, then defect-free images; deterministic."""
    real = [s for s in samples if not getattr(s, "derived", False)] or list(samples)  # the line sees real parts
    pool = [s for s in real if s.split != "val"] or real
    by_class: dict[int, list[Any]] = {}
    for s in pool:
        for c in sorted(set(s.labels.tolist())):
            by_class.setdefault(c, []).append(s)
    chosen: list[Any] = []
    seen: set[int] = set()
    queues = sorted(by_class.values(), key=len)
    while len(chosen) < n and any(queues):
        for q in queues:
            while q and q[0].image_id in seen:
                q.pop(0)
            if q and len(chosen) < n:
                s = q.pop(0)
                chosen.append(s)
                seen.add(s.image_id)
    for s in pool:  # negatives (no boxes) show the background the line sees most
        if len(chosen) >= n:
            break
        if s.image_id not in seen:
            chosen.append(s)
            seen.add(s.image_id)
    return chosen


def export_model_job(project_dir: Path, out: Path, *, run_id: int | None = None, int8: bool = True,
                     fp16: bool = False, calibration_images: int = CALIBRATION_IMAGES,
                     make_zip: bool = True) -> Job[dict[str, Any]]:
    """Write the bundle of a run (default: the current model) to the folder ``out`` (+ ``out.zip``)."""
    from labeltool.ml.checkpoint import load_checkpoint
    from labeltool.ml.data import snapshot_samples
    from labeltool.ml.onnx_export import write_bundle

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} already exists and is not an empty folder; choose a new bundle folder name")
    with Project.open(project_dir) as project:
        run = _run_or_current(project, run_id)
        _, samples = snapshot_samples(project, run.snapshot_id)
        root = project.root
    yield Progress("export", 0, 3, f"loading run {run.id}")
    model, config = load_checkpoint(root / run.path)
    calib = choose_calibration([s for s in samples if s.path.is_file()], calibration_images)
    if int8 and not calib:
        raise ExportError("INT8 calibration needs project images, but none of the run's images are on disk; "
                          "export with --no-int8 or restore the images folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):  # an export of this name that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield Progress("export", 1, 3, "ONNX export" + (f" + INT8 calibration on {len(calib)} images" if int8 else ""))
        info = write_bundle(tmp, model=model, config=config, int8=int8, fp16=fp16,
                            calibration_paths=[(s.path, s.width, s.height) for s in calib])
        manifest = write_manifest(tmp, meta={
            "run_id": run.id, "snapshot_id": run.snapshot_id, "preset": run.preset,
            "class_names": list(config["class_names"]), "image_size": int(config["image_size"]),
            "project": root.name, "calibration_images": info.get("calibration_images"),
        }, sign=True)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    zip_path = None
    if make_zip:
        yield Progress("export", 2, 3, "zipping")
        zip_path = zip_bundle(out, out.with_name(out.name + ".zip"))
    yield Progress("export", 3, 3, f"bundle written to {out}")
    sizes = {name: (out / name).stat().st_size for name in sorted(manifest["files"])}
    return {"bundle": str(out), "zip": str(zip_path) if zip_path else None, "run_id": run.id,
            "snapshot_id": run.snapshot_id, "preset": run.preset, "files": sizes,
            "calibration_images": info.get("calibration_images"),
            "calibration_skipped": info.get("calibration_skipped", [])}


def _open_bundle(bundle: Path, stack: tempfile.TemporaryDirectory | None) -> Path:
    """A verified bundle folder: ``bundle`` itself, or the zip extracted into ``stack``."""
    bundle = Path(bundle)
    if bundle.is_file() and bundle.suffix.lower() == ".zip":
        assert stack is not None
        return extract_bundle(bundle, Path(stack.name) / "bundle")
    if not bundle.is_dir():
        raise BundleError(f"{bundle} is neither a bundle folder nor a bundle .zip; give the path "
                          "`labeltool export-model` wrote")
    verify_manifest(bundle)
    return bundle


def _torch_reference(run_dir: Path, samples: Sequence[Any], threads: int) -> tuple[list[Any], list[float]]:
    """PyTorch eager FP32 detections (original pixels) and per-image latency (ms, batch 1)."""
    import torch

    from labeltool.ml.checkpoint import load_checkpoint
    from labeltool.ml.data import DetectionDataset, unletterbox_boxes

    torch.set_num_threads(threads)
    model, config = load_checkpoint(run_dir)
    ds = DetectionDataset(list(samples), size=int(config["image_size"]))
    items = [ds[i] for i in range(len(ds))]
    dets, ms = [], []
    with torch.inference_mode():
        for img, _, _ in items[:3]:
            model([img])  # warm-up, not timed (as on the ORT side)
        for img, _, meta in items:
            t0 = time.perf_counter()
            res = model([img])[0]
            ms.append((time.perf_counter() - t0) * 1000.0)
            boxes = unletterbox_boxes(res["boxes"].numpy(), sx=meta["sx"], sy=meta["sy"],
                                      width=meta["width"], height=meta["height"])
            dets.append((boxes, res["scores"].numpy(), res["labels"].numpy()))
    return dets, ms


def _bundle_run(bundle_dir: Path, samples: Sequence[Any], *, model: str, threads: int) -> tuple[list[Any], list[float]]:
    """The bundle's infer.py in a child process (must not import torch): detections and latency."""
    import numpy as np

    from labeltool.ml import bundle_check

    with tempfile.TemporaryDirectory(prefix="lt-verify-") as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"model": model, "threads": threads, "warmup": 3,
                                       "images": [[str(s.path), s.width, s.height] for s in samples]}))
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run([sys.executable, bundle_check.__file__, str(bundle_dir), str(request)],
                              capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise BundleError(f"the bundle's infer.py failed on the validation images ({model}): "
                          f"{proc.stderr.strip()[-800:]}")
    result = json.loads(proc.stdout)
    if result["torch_imported"]:
        raise BundleError("the bundle's infer.py imported torch; it would not run on a line PC without it")
    dets = [(np.asarray(r["boxes"], np.float32).reshape(-1, 4), np.asarray(r["scores"], np.float32),
             np.asarray(r["labels"], np.int64)) for r in result["images"]]
    return dets, [float(r["ms"]) for r in result["images"]]


def _evaluate(samples: Sequence[Any], dets: list[Any], class_names: list[str]) -> Any:
    from labeltool.ml.evaluate import evaluate_detections

    return evaluate_detections(gt_boxes=[s.boxes for s in samples], gt_labels=[s.labels for s in samples],
                               pred_boxes=[d[0] for d in dets], pred_scores=[d[1] for d in dets],
                               pred_labels=[d[2] for d in dets], class_names=class_names,
                               image_sizes=[(s.width, s.height) for s in samples])


def verify_job(bundle: Path, project_dir: Path, *, threads: int = VERIFY_THREADS,
               max_fp32_drop: float = MAX_FP32_DROP, max_int8_drop: float = MAX_INT8_DROP,
               trust_bundle: bool = False) -> Job[dict[str, Any]]:
    """Compare the bundle with PyTorch on the validation images of the run it came from.

    The bundle's infer.py runs only when its manifest is signed by a key this installation trusts,
    or with ``trust_bundle`` (``core/signing.py``).

    Writes ``<bundle>.verification.json`` next to the bundle and returns the same dict; ``verified``
    is true only when FP32 and (if present) INT8 lose at most the allowed mAP@.5 (fractions).
    """
    from labeltool.ml.data import snapshot_samples

    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    with tempfile.TemporaryDirectory(prefix="lt-bundle-") as stack_dir:
        stack = tempfile.TemporaryDirectory(dir=stack_dir)
        yield Progress("verify", 0, 4, "checking the bundle's manifest")
        bdir = _open_bundle(Path(bundle), stack)
        manifest = read_manifest(bdir)
        signature = require_trusted(manifest, where=str(bundle), action="run its infer.py", trust=trust_bundle)
        run_id = manifest.get("run_id")
        with Project.open(project_dir) as project:
            try:
                run = get_run(project, int(run_id))
            except (ProjectError, TypeError, ValueError) as exc:
                raise BundleError(f"the bundle was made from run {run_id!r}, which this project ({project.root}) "
                                  "does not have; verify it with the project it was exported from") from exc
            class_names, samples = snapshot_samples(project, run.snapshot_id)
            root = project.root
        val = [s for s in samples if s.split == "val" and s.path.is_file()]
        if not val:
            raise ModelError(f"run {run.id}'s snapshot has no validation images on disk; nothing to verify on")
        yield Progress("verify", 1, 4, f"PyTorch FP32 on {len(val)} validation images ({threads} threads)")
        torch_dets, torch_ms = _torch_reference(root / run.path, val, threads)
        results: dict[str, Any] = {"torch_fp32": _evaluate(val, torch_dets, class_names)}
        latency = {"torch_fp32": torch_ms}
        variants = [m for m, f in (("fp32", "model_fp32.onnx"), ("int8", "model_int8.onnx")) if (bdir / f).is_file()]
        for k, model in enumerate(variants):
            yield Progress("verify", 2 + k, 4, f"bundle {model.upper()} in a child process without torch")
            dets, ms = _bundle_run(bdir, val, model=model, threads=threads)
            results[f"ort_{model}"], latency[f"ort_{model}"] = _evaluate(val, dets, class_names), ms
        sizes = {"torch_fp32": (root / run.path / "model.safetensors").stat().st_size,
                 **{f"ort_{m}": (bdir / f"model_{m}.onnx").stat().st_size for m in variants}}
    report = verification_report(results, latency, sizes, class_names, max_fp32_drop=max_fp32_drop,
                                 max_int8_drop=max_int8_drop)
    report.update({"bundle": str(bundle), "run_id": run.id, "snapshot_id": run.snapshot_id, "threads": threads,
                   "n_images": len(val), "signature": signature})
    target = Path(str(Path(bundle)).removesuffix(".zip") + VERIFICATION_SUFFIX)
    target.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    report["report_file"] = str(target)
    yield Progress("verify", 4, 4, "verified" if report["verified"] else "NOT verified")
    return report


def verification_report(results: dict[str, Any], latency: dict[str, list[float]], sizes: dict[str, int],
                        class_names: list[str], *, max_fp32_drop: float, max_int8_drop: float) -> dict[str, Any]:
    """mAPs, drops (fractions: 0.01 = 1 point), per-class AP differences, latency and size ratios."""
    ref = results["torch_fp32"]
    ref_ap = {c.name: c.ap50 for c in ref.per_class}
    out: dict[str, Any] = {"map50": {k: round(v.map50, 4) for k, v in results.items()},
                           "latency_median_ms": {k: round(statistics.median(v), 2) for k, v in latency.items()},
                           "size_bytes": sizes, "max_fp32_drop": max_fp32_drop, "max_int8_drop": max_int8_drop}
    per_class = []
    for name in class_names:
        row: dict[str, Any] = {"class": name, "torch_fp32": ref_ap.get(name)}
        for key in ("ort_fp32", "ort_int8"):
            if key in results:
                ap = {c.name: c.ap50 for c in results[key].per_class}.get(name)
                row[key] = ap
                row[f"{key}_diff"] = None if ap is None or ref_ap.get(name) is None else round(ap - ref_ap[name], 4)
        per_class.append(row)
    out["per_class_ap50"] = per_class
    checks = []
    for key, limit in (("fp32", max_fp32_drop), ("int8", max_int8_drop)):
        if f"ort_{key}" in results:
            drop = round(ref.map50 - results[f"ort_{key}"].map50, 4)
            out[f"{key}_map50_drop"] = drop
            checks.append(drop <= limit + 1e-9)
            out[f"{key}_latency_ratio"] = round(statistics.median(latency[f"ort_{key}"])
                                                / statistics.median(latency["torch_fp32"]), 3)
            out[f"{key}_size_ratio"] = round(sizes[f"ort_{key}"] / sizes["torch_fp32"], 3)
    if "ort_int8" in results:
        hurt = [r for r in per_class if r.get("ort_int8_diff") is not None]
        out["int8_most_hurt_classes"] = [r["class"] for r in sorted(hurt, key=lambda r: r["ort_int8_diff"])[:3]
                                         if r["ort_int8_diff"] < 0]
    out["verified"] = bool(checks) and all(checks)
    return out


def deploy_job(bundle: Path | None, target: str, *, rollback: bool = False, trust_bundle: bool = False,
               **ssh_options: Any) -> Job[dict[str, Any]]:
    """Deploy a bundle folder/zip to a folder or ssh:// target (or roll the target back). A bundle is
    installed only when signed by a key this installation trusts, or with ``trust_bundle``."""
    from dataclasses import asdict

    from labeltool.core import deploy as dep

    if rollback:
        yield Progress("deploy", 0, 1, f"rolling back {target}")
        result = dep.rollback(target, **ssh_options)
    else:
        if bundle is None:
            raise ValueError("deploy needs a bundle (folder or .zip) unless --rollback is given")
        verification = Path(str(bundle).removesuffix(".zip") + VERIFICATION_SUFFIX)
        verified = None
        if verification.is_file():
            verified = bool(json.loads(verification.read_text(encoding="utf-8")).get("verified"))
        # the signature is over the manifest; deploy checks every file against it while it copies
        require_trusted(bundle_manifest(Path(bundle)), where=str(bundle), action="install it", trust=trust_bundle)
        yield Progress("deploy", 0, 1, f"deploying {bundle} to {target}")
        result = dep.deploy(Path(bundle), target, **ssh_options)
        yield Progress("deploy", 1, 1, "done")
        return {**asdict(result), "verified": verified}
    yield Progress("deploy", 1, 1, "done")
    return {**asdict(result), "verified": None}


def weak_model_note(report: dict[str, Any]) -> str | None:
    """A warning when the model the bundle reproduces finds few defects itself (PyTorch mAP@.5 below
    WEAK_MODEL_MAP50 on the validation images, the analysis' bar for "too weak to judge labels"), else
    None: verification compares the bundle with PyTorch, so "verified" alone does not mean "ready"."""
    m = report.get("map50", {}).get("torch_fp32")
    if m is None or not m == m or m >= WEAK_MODEL_MAP50:  # nan: no validation boxes to judge by
        return None
    return (f"But the model itself finds few defects (PyTorch mAP@.5 {m:.2f} on these images): the bundle "
            "reproduces it faithfully, yet it is not ready for the line — train longer, label more images or "
            "use pretrained weights first.")
