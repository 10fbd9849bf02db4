"""Demo jobs: a synthetic dataset with injected label noise, and the demo project built from it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from labeltool.core.errors import LabeltoolError
from labeltool.core.formats.coco import write_coco_json
from labeltool.core.noise import inject_noise, write_noise_record
from labeltool.core.progress import Progress
from labeltool.core.store import Project
from labeltool.core.synth import generate_dataset

from . import Job
from .data import import_job

DEMO_MARKER = ".labeltool-demo"  # a folder with this file was made by `labeltool demo` and may be replaced


def demo_data_job(dest: Path, *, n_images: int = 200, noise: float = 0.1, seed: int = 0, size: int = 256) -> Job[dict[str, Any]]:
    """Write ``dest/images/*.png``, ``annotations.json`` (noisy labels, what a user would have),
    ``annotations_clean.json`` (ground truth) and ``noise.json`` (every injected error)."""
    dest = Path(dest).expanduser().resolve()
    if dest.exists() and any(dest.iterdir()):
        raise LabeltoolError(f"{dest} is not empty; pick a new folder for the demo data")
    yield Progress("generate", 0, n_images, "rendering parts with defects")
    clean = generate_dataset(dest, n_images=n_images, seed=seed, size=size)
    noisy, records = inject_noise(clean, fraction=noise, seed=seed)
    # file names in the JSON are relative to dest/images; give the COCO writer that layout
    write_coco_json(noisy, dest / "annotations.json")
    write_coco_json(clean, dest / "annotations_clean.json")
    write_noise_record(records, dest / "noise.json", meta={"seed": seed, "fraction": noise, "images": n_images})
    yield Progress("generate", n_images, n_images, "written")
    return {
        "dest": str(dest),
        "images": len(clean.images),
        "boxes": sum(len(r.boxes) for r in clean.images),
        "noise_records": len(records),
        "annotations": str(dest / "annotations.json"),
        "clean_annotations": str(dest / "annotations_clean.json"),
        "noise_record": str(dest / "noise.json"),
        "classes": list(clean.classes),
    }


DEMO_TRAIN_MINUTES = 4.0  # "trained briefly": long enough to learn something on 2 CPU cores
DEMO_ANALYZE_MINUTES = 6.0  # shared by the 3 fold models of the label-quality analysis


def demo_job(
    root: Path, *, n_images: int = 200, noise: float = 0.1, seed: int = 0, train_minutes: float = DEMO_TRAIN_MINUTES,
    analyze_minutes: float = DEMO_ANALYZE_MINUTES, export: bool = True,
) -> Job[dict[str, Any]]:
    """The README's main job (for now): demo data with injected label noise → new project → import →
    train → evaluate → analyze (3-fold) → top issues and weak-class table → edge bundle (ONNX FP32 +
    INT8) → verification against PyTorch.

    ``train_minutes=0`` / ``analyze_minutes=0`` / ``export=False`` skip those steps (no export without
    training). Returns paths and results.

    ``root`` gets ``dataset/`` and ``project/``. A folder made by an earlier demo run is replaced;
    any other non-empty folder is refused.
    """
    root = Path(root).expanduser().resolve()
    if root.exists() and any(root.iterdir()):
        if not (root / DEMO_MARKER).is_file():
            raise LabeltoolError(f"{root} is not empty and was not made by `labeltool demo`; pick another folder")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / DEMO_MARKER).write_text("made by `labeltool demo`; safe to delete\n")
    data = yield from demo_data_job(root / "dataset", n_images=n_images, noise=noise, seed=seed)
    Project.create(root / "project").close()
    summary = yield from import_job(root / "project", root / "dataset" / "annotations.json", fmt="coco")
    out = {**data, "dataset": data["dest"], "project": str(root / "project"), "imported": summary.images_added}
    if train_minutes > 0:
        from .model import train_job

        out["train"] = yield from train_job(root / "project", minutes=train_minutes, seed=seed)
    if analyze_minutes > 0:
        from .analysis import analyze_job

        out["analysis"] = yield from analyze_job(root / "project", folds=3, minutes_per_fold=analyze_minutes / 3,
                                                 seed=seed)
    if export and train_minutes > 0:
        from .export import export_model_job, verify_job

        out["export"] = yield from export_model_job(root / "project", root / "bundle")
        out["verify"] = yield from verify_job(root / "bundle", root / "project")
    return out
