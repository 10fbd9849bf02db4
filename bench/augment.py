"""Targeted augmentation benchmark; prints JSON.

  python bench/augment.py [--images 300] [--weak dent] [--keep 8] [--epochs 20] [--steps 25] [--seeds 3]

On a generated "parts with defects" set, one class is made weak: of the training images showing it,
only ``--keep`` remain (the others are removed from the project; validation keeps all of its images,
so its AP is measured on many examples). Then, per seed, three variants are fine-tuned from the same
starting weights at **equal training steps** (``--epochs`` x ``--steps`` batches of ``--batch``
images, drawn with replacement; not equal wall time):

  none       the project as it is (online training augmentation only, as in every variant);
  uniform    plus an augment set of N augmented copies of randomly chosen training images;
  targeted   plus a targeted set for the weak class with copy-paste (``labeltool augment --classes
             W --copy-paste``), which decides N for this seed.

Reported per variant: the weak class's validation AP@.5 and the overall mAP@.5 for each seed, with
mean and standard deviation, and per pair of variants the per-seed (paired) differences with their
mean and standard error. The best epoch on validation is kept in every variant (as ``labeltool
train`` does). Every model starts from the preset's pretrained backbone (the edge preset's comes with
the install; the JSON says which weights were used).
Full size takes long on a CPU (~3 x 3 trainings); smoke-run it with e.g.
``--images 40 --size 64 --image-size 64 --epochs 1 --steps 2 --seeds 1 --keep 4``.

With ``--work DIR`` the projects are kept and a later call with the same arguments resumes: a
variant whose project already holds a finished run is read back instead of trained again (the
runs are fixed-step, so a result does not depend on when or how fast it was computed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from labeltool.core.runs import current_run
from labeltool.core.splits import assign_splits
from labeltool.core.store import Project
from labeltool.jobs import drive
from labeltool.jobs.augment import augment_job
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job
from labeltool.ml.train import TrainOptions, train

VARIANTS = ("none", "uniform", "targeted")


def make_base(work: Path, *, n_images: int, size: int, weak: str, keep: int, data_seed: int) -> dict[str, Any]:
    """Generated project with a fixed train/val split and the weak class cut down to ``keep`` training images."""
    drive(demo_data_job(work / "data", n_images=n_images, noise=0.0, seed=data_seed, size=size), lambda p: None)
    Project.create(work / "base").close()
    drive(import_job(work / "base", work / "data" / "annotations.json"), lambda p: None)
    with Project.open(work / "base") as p:
        assign_splits(p, seed=data_seed)
        cls = p.class_by_name(weak)
        if cls is None:
            raise SystemExit(f"unknown class {weak!r}; choose one of {[c.name for c in p.classes()]}")
        boxes = p.all_boxes()
        showing = [im.id for im in p.images(split="train") if any(b.class_id == cls.id for b in boxes.get(im.id, []))]
        for image_id in showing[keep:]:
            p.delete_image(image_id)
        n_val = sum(1 for im in p.images(split="val") if any(b.class_id == cls.id for b in boxes.get(im.id, [])))
        return {"train_images_with_weak_class": min(keep, len(showing)), "removed_train_images": max(0, len(showing) - keep),
                "val_images_with_weak_class": n_val, "train_images": len(p.images(split="train")),
                "val_images": len(p.images(split="val"))}


def fine_tune(project: Path, *, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    options = TrainOptions(epochs=args.epochs, steps_per_epoch=args.steps, batch_size=args.batch, seed=seed,
                           image_size=args.image_size, patience=args.epochs + 1, preset=args.preset)
    result = drive(train(project, options), lambda p: None)
    weak = next(c for c in result["eval"]["per_class"] if c["name"] == args.weak)
    return {"weak_ap50": weak["ap50"], "map50": result["map50"], "n_train": result["n_train"],
            "n_derived": result["n_derived"], "epochs_done": result["epochs_done"], "train_loop_s": result["train_loop_s"],
            "weights": result["weights"]["kind"]}


def finished(project: Path, *, args: argparse.Namespace, seed: int) -> dict[str, Any] | None:
    """The result of a run an earlier call of this benchmark finished in ``project`` (same options), or None."""
    if not (project / "project.db").is_file():
        return None
    with Project.open(project) as p:
        run = current_run(p)
    if run is None:
        return None
    opts = run.config.get("options", {})
    wanted = {"epochs": args.epochs, "steps_per_epoch": args.steps, "batch_size": args.batch, "seed": seed}
    if any(opts.get(k) != v for k, v in wanted.items()):
        return None
    weak = next(c for c in run.metrics["final"]["per_class"] if c["name"] == args.weak)
    return {"weak_ap50": weak["ap50"], "map50": run.metrics["map50"], "n_train": run.config["n_train"],
            "n_derived": run.config["n_derived"], "epochs_done": run.config["epochs_done"],
            "train_loop_s": run.config["train_loop_s"], "resumed": True}


def summary(values: list[float | None]) -> dict[str, Any]:
    vals = [0.0 if v is None else float(v) for v in values]
    return {"values": [round(v, 4) for v in vals], "mean": round(statistics.fmean(vals), 4),
            "std": round(statistics.stdev(vals), 4) if len(vals) > 1 else 0.0}


def paired(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Per-seed differences a - b of ``key`` (same seed: same split, start weights and batch order),
    their mean, standard error and how many seeds are above 0."""
    diffs = [float(x[key] or 0.0) - float(y[key] or 0.0) for x, y in zip(a, b, strict=True)]
    se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0
    return {"values": [round(d, 4) for d in diffs], "mean": round(statistics.fmean(diffs), 4), "se": round(se, 4),
            "above_zero": sum(d > 0 for d in diffs), "seeds": len(diffs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="generated images (before the weak class is cut)")
    parser.add_argument("--size", type=int, default=256, help="generated image side (px)")
    parser.add_argument("--image-size", type=int, default=None, help="detector input size (default: the preset's)")
    parser.add_argument("--preset", default="edge")
    parser.add_argument("--weak", default="dent", help="the class made weak")
    parser.add_argument("--keep", type=int, default=8, help="training images of the weak class that remain")
    parser.add_argument("--per-class", type=int, default=None, help="target for the targeted set (default: the tool's)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=25, help="training steps per epoch (equal in every variant)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="keep the projects here (default: a temporary folder)")
    args = parser.parse_args()
    t0 = time.monotonic()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-augment-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        base_info = work / "base.json"
        if (work / "base" / "project.db").is_file() and base_info.is_file():
            data = json.loads(base_info.read_text())
        else:
            for stale in (work / "data", work / "base"):
                shutil.rmtree(stale, ignore_errors=True)
            data = make_base(work, n_images=args.images, size=args.size, weak=args.weak, keep=args.keep,
                             data_seed=args.data_seed)
            base_info.write_text(json.dumps(data))
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        sets: list[dict[str, Any]] = []
        for seed in range(args.seeds):
            projects = {v: work / f"seed{seed}-{v}" for v in VARIANTS}
            done = {v: finished(projects[v], args=args, seed=seed) for v in VARIANTS}
            set_file = work / f"seed{seed}-sets.json"
            if done["targeted"] is None or done["uniform"] is None or not set_file.is_file():
                done["targeted"] = done["uniform"] = None  # the uniform set's size follows the targeted one
            for variant in VARIANTS:  # (re)build what is missing from the base project
                if done[variant] is None:
                    shutil.rmtree(projects[variant], ignore_errors=True)
                    shutil.copytree(work / "base", projects[variant])
            if done["targeted"] is None:
                targeted = drive(augment_job(projects["targeted"], classes=[args.weak], per_class=args.per_class,
                                             copy_paste=True, seed=seed), lambda p: None)
                n_new = targeted["images"]
                if n_new:
                    drive(augment_job(projects["uniform"], mode="uniform", count=n_new, seed=seed), lambda p: None)
                set_file.write_text(json.dumps({"seed": seed, "derived_images": n_new,
                                                "by_kind": targeted.get("by_kind"), "per_class": targeted["per_class"]}))
            sets.append(json.loads(set_file.read_text()))
            for variant in VARIANTS:
                runs[variant].append(done[variant] or fine_tune(projects[variant], args=args, seed=seed))
        out = {
            "benchmark": "targeted augmentation for a weak class, equal training steps",
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "data": data, "sets": sets,
            "results": {v: {"weak_ap50": summary([r["weak_ap50"] for r in runs[v]]),
                            "map50": summary([r["map50"] for r in runs[v]]),
                            "runs": runs[v]} for v in VARIANTS},
            "paired": {f"{a}-{b}": {k: paired(runs[a], runs[b], k) for k in ("weak_ap50", "map50")}
                       for a, b in (("targeted", "uniform"), ("targeted", "none"), ("uniform", "none"))},
            "steps_per_run": args.epochs * args.steps, "wall_s": round(time.monotonic() - t0, 1),
        }
        print(json.dumps(out, indent=2))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
