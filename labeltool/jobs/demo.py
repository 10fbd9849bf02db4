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


# Budgets chosen so the whole loop finishes within 15 minutes on a 2-core CPU (README: measured).
DEMO_TRAIN_MINUTES = 3.0  # the first model: "trained briefly" on the noisy labels
DEMO_ANALYZE_MINUTES = 4.5  # shared by the 3 fold models of the label-quality analysis
DEMO_FINETUNE_EPOCHS = 10  # continuing the first model on the fixed labels + augmented images (~2.5 min);
# epochs, not minutes, so a busy machine takes longer instead of training less than the first model
DEMO_REVIEW = 40  # suspected label errors reviewed, best first (what a user does with the top of the queue)
DEMO_STEPS = ("generate + import", "train", "analyze labels", "review top issues", "augment weak classes",
              "fine-tune", "export edge bundle", "verify bundle")


def demo_job(
    root: Path, *, n_images: int = 200, noise: float = 0.1, seed: int = 0, train_minutes: float = DEMO_TRAIN_MINUTES,
    analyze_minutes: float = DEMO_ANALYZE_MINUTES, finetune_epochs: int = DEMO_FINETUNE_EPOCHS,
    review: int = DEMO_REVIEW, export: bool = True,
) -> Job[dict[str, Any]]:
    """The README's main job, the whole data-centric loop headless: demo data with injected label
    noise → new project → import → train → analyze (3-fold) → review the top ``review`` suspected
    errors as a user would (accept the real ones, reject the rest: the demo knows the true labels of
    the images it generated, see ``review_top_issues``) → targeted augmentation of the weak classes →
    fine-tune the first model on the fixed labels → per-class before/after → edge bundle (ONNX FP32 +
    INT8) → verification against PyTorch.

    ``train_minutes=0`` stops after the import; ``analyze_minutes=0`` skips the analysis and the
    review, ``review=0`` only the review; ``finetune_epochs=0`` skips augmentation and fine-tuning;
    ``export=False`` skips the bundle. Yields a ``demo`` Progress event at the start of each step. ``root`` gets ``dataset/``,
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
    out["train"] = yield from train_job(project, minutes=train_minutes, seed=seed)
    if analyze_minutes > 0:
        from .analysis import analyze_job

        yield step(DEMO_STEPS[2])
        out["analysis"] = yield from analyze_job(project, folds=3, minutes_per_fold=analyze_minutes / 3, seed=seed)
        if review > 0:
            yield step(DEMO_STEPS[3])
            out["review"] = review_top_issues(project, review, truth=root / "dataset" / "annotations_clean.json")
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


def review_top_issues(project_dir: Path, n: int, *, truth: Path) -> dict[str, Any]:
    """Review the ``n`` most likely label errors of the latest analysis as an engineer looking at each
    image would: accept a suggested fix when it brings the image's labels closer to what is really
    there, reject it otherwise. The demo can do this because it generated the images: ``truth`` is its
    clean COCO file (``annotations_clean.json``); see ``core.noise.agreement``. Each decision is a
    normal undoable edit; an issue whose image an earlier fix changed so that the fix no longer
    applies is skipped."""
    from labeltool.core.errors import EditError
    from labeltool.core.formats.coco import read_coco
    from labeltool.core.issues import accept_issues, list_issues, reject_issues
    from labeltool.core.labels import BoxRecord
    from labeltool.core.noise import agreement
    from labeltool.core.report import fix_text

    truth_set, _ = read_coco(Path(truth))
    truths = {Path(r.file_name).name: r.boxes for r in truth_set.images}
    accepted: list[dict[str, Any]] = []
    by_type: dict[str, dict[str, int]] = {}
    rejected = skipped = 0
    with Project.open(project_dir) as project:
        paths = {im.id: im.path for im in project.images()}
        names = {c.id: c.name for c in project.classes()}
        for issue in list_issues(project)[:n]:
            truth_boxes = truths.get(Path(paths.get(issue.image_id, "")).name)
            boxes = {b.id: BoxRecord(names[b.class_id], b.x1, b.y1, b.x2, b.y2) for b in project.boxes(issue.image_id)}
            after = _with_fix(boxes, issue.fix, names)
            if truth_boxes is None or after is None:
                skipped += 1
                continue
            better = agreement(after, truth_boxes) > agreement(list(boxes.values()), truth_boxes) + 1e-9
            try:
                (accept_issues if better else reject_issues)(project, [issue.id])
            except EditError:
                skipped += 1
                continue
            counts = by_type.setdefault(issue.type, {"accepted": 0, "rejected": 0})
            counts["accepted" if better else "rejected"] += 1
            if better:
                accepted.append({"id": issue.id, "type": issue.type, "image": paths.get(issue.image_id, "?"),
                                 "score": round(issue.score, 4), "fix": fix_text(issue, names)})
            else:
                rejected += 1
    return {"reviewed": len(accepted) + rejected, "accepted": len(accepted), "rejected": rejected,
            "skipped_stale": skipped, "by_type": by_type, "issues": accepted, "truth": str(truth)}


def _with_fix(boxes: dict[int, Any], fix: dict[str, Any], names: dict[int, str]) -> list[Any] | None:
    """The image's boxes (``{box id: BoxRecord}``) with ``fix`` applied; None when its box is gone."""
    from labeltool.core.labels import BoxRecord

    if fix["action"] == "add_box":
        return [*boxes.values(), BoxRecord(names[fix["class_id"]], *fix["xyxy"])]
    old = boxes.get(fix["box_id"])
    if old is None:
        return None
    rest = [b for i, b in boxes.items() if i != fix["box_id"]]
    if fix["action"] == "set_class":
        return [*rest, BoxRecord(names[fix["class_id"]], old.x1, old.y1, old.x2, old.y2)]
    if fix["action"] == "move_box":
        return [*rest, BoxRecord(old.label, *fix["xyxy"])]
    return rest  # delete_box
