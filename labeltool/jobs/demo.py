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


# Budgets chosen so the whole loop finishes within 10 minutes on a 2-core CPU with the pretrained edge
# backbone (README: measured); the fold models are what the review depends on, so they get the most.
DEMO_TRAIN_MINUTES = 2.0  # the first model: "trained briefly" on the noisy labels
DEMO_ANALYZE_MINUTES = 5.0  # shared by the fold models of the label-quality analysis
# 2 fold models of 2 minutes find more label errors than 3 of 80 s (bench/label_errors.py detect --images 200:
# held-out mAP@.5 0.46 / 0.52 vs 0.32 / 0.38 / 0.38, image precision@k 0.80 vs 0.71): within minutes, a
# model's training time counts for more than the third of the images it does not see. 2.5 minutes each
# (0.51 / 0.55, precision@k 0.83, recall@2k >= 0.74 per noise type) still keeps the demo within 10 minutes.
DEMO_FOLDS = 2
DEMO_FINETUNE_EPOCHS = 6  # continuing the first model on the fixed labels + augmented images (~1.5 min);
# epochs, not minutes, so a busy machine takes longer instead of training less than the first model
DEMO_REVIEW = 40  # suspected label errors reviewed, best first (what a user does with the top of the queue)
DEMO_STEPS = ("generate + import", "train", "analyze labels", "review top issues", "augment weak classes",
              "fine-tune", "export edge bundle", "verify bundle")


def demo_job(
    root: Path, *, n_images: int = 200, noise: float = 0.1, seed: int = 0, train_minutes: float = DEMO_TRAIN_MINUTES,
    analyze_minutes: float = DEMO_ANALYZE_MINUTES, finetune_epochs: int = DEMO_FINETUNE_EPOCHS,
    review: int = DEMO_REVIEW, export: bool = True, allow_download: bool = False,
) -> Job[dict[str, Any]]:
    """The README's main job, the whole data-centric loop headless: demo data with injected label
    noise → new project → import → train → analyze (2-fold) → review the top ``review`` suspected
    errors as a user would (accept the real ones, reject the rest: the demo knows the true labels of
    the images it generated, see ``jobs.demo_review``) → targeted augmentation of the weak classes →
    fine-tune the first model on the fixed labels → per-class before/after → edge bundle (ONNX FP32 +
    INT8) → verification against PyTorch.

    ``train_minutes=0`` stops after the import; ``analyze_minutes=0`` skips the analysis and the
    review, ``review=0`` only the review; ``finetune_epochs=0`` skips augmentation and fine-tuning;
    ``export=False`` skips the bundle. ``allow_download``: the first training may download the
    pretrained backbone when none is on this machine (the fold models then find it in the cache).
    Yields a ``demo`` Progress event at the start of each step. ``root`` gets ``dataset/``,
    ``project/`` and ``bundle/``; a folder made by an earlier demo run is replaced, any other
    non-empty folder is refused.
    """
    root = Path(root).expanduser().resolve()
    if root.exists() and any(root.iterdir()):
        if not (root / DEMO_MARKER).is_file():
            raise LabeltoolError(f"{root} is not empty and was not made by `labeltool demo`; pick another folder")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / DEMO_MARKER).write_text("made by `labeltool demo`; safe to delete\n")
    project = root / "project"
    steps = [DEMO_STEPS[0]]
    if train_minutes > 0:
        steps.append(DEMO_STEPS[1])
        if analyze_minutes > 0:
            steps += DEMO_STEPS[2:4] if review > 0 else DEMO_STEPS[2:3]
        if finetune_epochs > 0:
            steps += DEMO_STEPS[4:6]
        if export:
            steps += DEMO_STEPS[6:8]

    def step(name: str) -> Progress:
        i = steps.index(name)
        return Progress("demo", i, len(steps), f"step {i + 1}/{len(steps)}: {name}")

    yield step(DEMO_STEPS[0])
    data = yield from demo_data_job(root / "dataset", n_images=n_images, noise=noise, seed=seed)
    Project.create(project).close()
    summary = yield from import_job(project, root / "dataset" / "annotations.json", fmt="coco")
    out: dict[str, Any] = {**data, "dataset": data["dest"], "project": str(project), "imported": summary.images_added,
                           "steps": steps}
    if train_minutes <= 0:
        return out
    from .model import train_job

    yield step(DEMO_STEPS[1])
    out["train"] = yield from train_job(project, minutes=train_minutes, seed=seed, allow_network=allow_download)
    if analyze_minutes > 0:
        from .analysis import analyze_job

        yield step(DEMO_STEPS[2])
        out["analysis"] = yield from analyze_job(project, folds=DEMO_FOLDS, minutes_per_fold=analyze_minutes / DEMO_FOLDS,
                                                   seed=seed)
        if review > 0:
            yield step(DEMO_STEPS[3])
            from .demo_review import review_top_issues

            out["review"] = review_top_issues(project, review, truth=root / "dataset" / "annotations_clean.json",
                                              noise_record=root / "dataset" / "noise.json")
    if finetune_epochs > 0:
        from .augment import augment_job

        yield step(DEMO_STEPS[4])
        classes = None if out.get("analysis") and _flagged(out["analysis"]) else _weakest(out)
        out["augment"] = yield from augment_job(project, classes=classes, copy_paste=True, seed=seed)
        if classes is not None:  # picked here, not by a user: say why
            out["augment"]["chosen_by"] = "the first model's weakest class; the analysis flagged none"
        yield step(DEMO_STEPS[5])
        out["finetune"] = yield from train_job(project, epochs=finetune_epochs, patience=finetune_epochs, seed=seed,
                                               init_from="current")
    if export:
        from .export import export_model_job, verify_job

        yield step(DEMO_STEPS[6])
        out["export"] = yield from export_model_job(project, root / "bundle")
        yield step(DEMO_STEPS[7])
        out["verify"] = yield from verify_job(root / "bundle", project)
    return out


def _flagged(analysis: dict[str, Any]) -> bool:
    """Whether the analysis recommends augmenting some class (augment_job then picks them itself)."""
    from .augment import WEAK_RECOMMENDATIONS

    return any(r.get("recommendation") in WEAK_RECOMMENDATIONS for r in analysis.get("weak_classes", []))


def _weakest(out: dict[str, Any]) -> list[str]:
    """The class with the lowest validation AP of the first model (when the analysis flags none)."""
    rows = [c for c in out["train"]["eval"]["per_class"] if c.get("ap50") is not None]
    return [min(rows, key=lambda c: c["ap50"])["name"]] if rows else []
