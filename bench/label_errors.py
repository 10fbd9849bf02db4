"""Label-error detection benchmark; prints JSON.

  python bench/label_errors.py detect --dataset demo|deeppcb [--folds 3] [--minutes-per-fold 4]
      inject known noise (5 % swapped, 5 % dropped, 5 % shifted, 3 % spurious boxes), get K-fold
      out-of-sample predictions, score; per noise type precision@k / recall@k / recall@2k of the
      ranked issues (k = number truly corrupted), image-level precision@k, AUROC and average
      precision — ours vs cleanlab's defaults on the same predictions. With --budget-epochs E (or
      --budget-minutes M) it also runs the relabel-budget experiment: restore the true labels of the
      top 10 % images by our ranking vs 10 % random images, retrain (plus clean and noisy baselines,
      all from the same seed) and report the share of the injected errors each removes and the
      fraction of the noise-induced mAP@.5 loss each recovers, on a separately generated clean test
      set (--test-images). --arm-results F keeps finished arms, so a cut run goes on where it stopped.
      With --finetune-epochs E the arms do what a user does after fixing issues instead: continue
      training the noisy model (trained --budget-epochs from scratch) for E epochs on their labels
      (all four arms start from the same weights, which keeps the spread between them small); --start-seed S
      lets several --train-seed runs fine-tune one start model. --ranking picks the top arm's order:
      impact (likelihood x class headroom), likelihood (the image score) or oracle (most injected errors).
  python bench/label_errors.py speed [--images 1000]
      scoring time for N images x 10 boxes x 100 predictions: ours vs cleanlab's public functions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from labeltool.core.fix_priority import class_headroom, image_impacts
from labeltool.core.labels import LabelSet
from labeltool.core.noise import NoiseRecord, inject_noise
from labeltool.jobs import drive
from labeltool.ml.checkpoint import save_checkpoint
from labeltool.ml.data import Sample
from labeltool.ml.evaluate import evaluate_detections
from labeltool.ml.fit import TrainOptions, fit
from labeltool.ml.oof import OutOfSample, out_of_sample_predictions
from labeltool.ml.predict import predict_samples, use_all_cores
from labeltool.ml.presets import get_preset
from labeltool.ml.quality import score_labels
from labeltool.ml.quality_baseline import (
    benchmark_inputs,
    cleanlab_default_image_scores,
    time_cleanlab_public,
)

DEEPPCB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "deeppcb"
FRACTIONS = {"swap": 0.05, "drop": 0.05, "shift": 0.05, "spurious": 0.03}
FIX_SHARE = 0.10
ARMS = ("clean", "noisy", "top_fixed", "random_fixed")
TEST_SEED_OFFSET = 1000  # the relabel-budget test set: other images than the training set's
TEST_ID_OFFSET = 10**6


def clean_labels(dataset: str, work: Path, n_images: int, seed: int) -> LabelSet:
    if dataset == "demo":
        from labeltool.core.synth import generate_dataset

        return generate_dataset(work / "data", n_images=n_images, seed=seed)
    from labeltool.core.formats import read_yolo

    if not DEEPPCB.is_dir():
        sys.exit(f"{DEEPPCB} not found")
    labels, _ = read_yolo(DEEPPCB)
    return labels


def to_samples(labels: LabelSet, first_id: int = 0) -> list[Sample]:
    classes = {n: i for i, n in enumerate(labels.classes)}
    out = []
    for i, im in enumerate(labels.images):
        boxes = np.array([[b.x1, b.y1, b.x2, b.y2] for b in im.boxes], np.float32).reshape(-1, 4)
        labs = np.array([classes[b.label] for b in im.boxes], np.int64)
        out.append(Sample(first_id + i, Path(im.source), boxes, labs, None, int(im.width), int(im.height),
                          np.arange(len(im.boxes), dtype=np.int64)))
    return out


def truth(clean: LabelSet, records: list[NoiseRecord]) -> dict[str, list[tuple[int, Any]]]:
    """Corrupted items per kind: (image index, noisy box index) or, for drop, (image index, clean box)."""
    index = {im.file_name: i for i, im in enumerate(clean.images)}
    dropped: dict[int, list[int]] = {}
    for r in records:
        if r.kind == "drop":
            dropped.setdefault(index[r.file_name], []).append(int(r.box_index))
    spurious_seen: dict[int, int] = {}
    out: dict[str, list[tuple[int, Any]]] = {k: [] for k in FRACTIONS}
    for r in records:
        i = index[r.file_name]
        if r.kind == "drop":
            b = r.before
            out["drop"].append((i, (b.x1, b.y1, b.x2, b.y2)))
        elif r.kind in ("swap", "shift"):
            j = int(r.box_index)
            out[r.kind].append((i, j - sum(d < j for d in dropped.get(i, []))))
        else:  # spurious boxes come after the kept boxes, in record order
            kept = len(clean.images[i].boxes) - len(dropped.get(i, []))
            out["spurious"].append((i, kept + spurious_seen.get(i, 0)))
            spurious_seen[i] = spurious_seen.get(i, 0) + 1
    return out


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def hits(cand: Any, kind: str, item: tuple[int, Any]) -> bool:
    i, what = item
    if cand.image_index != i:
        return False
    if kind == "drop":
        return cand.type == "overlooked" and cand.suggested_box is not None and _iou(cand.suggested_box, what) >= 0.5
    return cand.box_index == what


def detection_metrics(candidates: list[Any], items: dict[str, list[tuple[int, Any]]]) -> dict[str, Any]:
    k = sum(len(v) for v in items.values())
    out: dict[str, Any] = {"k": k, "candidates": len(candidates)}
    top_k_hits = sum(any(hits(c, kind, it) for kind, its in items.items() for it in its) for c in candidates[:k])
    out["precision_at_k"] = round(top_k_hits / max(1, k), 4)
    for kind, its in items.items():
        found = {m: sum(any(hits(c, kind, it) for c in candidates[:m]) for it in its) for m in (k, 2 * k)}
        out[kind] = {"n": len(its), "recall_at_k": round(found[k] / max(1, len(its)), 4),
                     "recall_at_2k": round(found[2 * k] / max(1, len(its)), 4)}
    return out


def image_metrics(scores: np.ndarray, corrupted: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    k = int(corrupted.sum())
    order = np.argsort(scores, kind="stable")
    return {"precision_at_k": round(float(corrupted[order[:k]].mean()), 4),
            "auroc": round(float(roc_auc_score(corrupted, -scores)), 4),
            "average_precision": round(float(average_precision_score(corrupted, -scores)), 4)}


def progress_to_stderr(p: Any) -> None:
    if p.stage in ("folds",) or p.stage.endswith("eval"):
        print(f"[{time.strftime('%H:%M:%S')}] {p.stage} {p.done}/{p.total} {p.message}", file=sys.stderr, flush=True)


def save_oof(oof: OutOfSample, path: Path) -> None:
    """Keep the expensive out-of-sample predictions so scoring can be re-run (--load-oof)."""
    path.write_text(json.dumps({
        "detections": [[d[0].tolist(), d[1].tolist(), d[2].tolist()] for d in oof.detections],
        "folds": oof.folds, "per_fold": oof.per_fold, "weights": oof.weights}))


def load_oof(path: Path) -> OutOfSample:
    raw = json.loads(path.read_text())
    dets = [(np.asarray(b, np.float32).reshape(-1, 4), np.asarray(s, np.float32), np.asarray(lab, np.int64))
            for b, s, lab in raw["detections"]]
    return OutOfSample(dets, raw["folds"], raw["per_fold"], raw["weights"])


def cmd_detect(args: argparse.Namespace) -> dict[str, Any]:
    threads = use_all_cores()
    preset = get_preset(args.preset)
    with tempfile.TemporaryDirectory(prefix="lt-bench-") as tmp:
        clean = clean_labels(args.dataset, Path(tmp), args.images, args.seed)
        noisy, records = inject_noise(clean, fractions=FRACTIONS, seed=args.seed)
        samples = to_samples(noisy)
        # a fixed epoch count (when given) makes the result independent of other load on the machine
        budget = {"epochs": args.epochs_per_fold} if args.epochs_per_fold else {"minutes": args.minutes_per_fold}
        options = TrainOptions(preset=preset.name, seed=args.seed, patience=10**6, **budget)
        t = time.perf_counter()
        if args.load_oof:
            oof = load_oof(args.load_oof)
        else:
            oof = drive(out_of_sample_predictions(samples, list(noisy.classes), k=args.folds, preset=preset,
                                                  options=options), progress_to_stderr)
        oof_s = time.perf_counter() - t
        if args.save_oof:
            save_oof(oof, args.save_oof)
        kw = {"gt_boxes": [s.boxes for s in samples], "gt_labels": [s.labels for s in samples],
              "pred_boxes": [d[0] for d in oof.detections], "pred_scores": [d[1] for d in oof.detections],
              "pred_labels": [d[2] for d in oof.detections]}
        ours = score_labels(**kw, num_classes=len(noisy.classes))
        # the fix order: likelihood x the class's headroom (1 - out-of-sample AP against the noisy labels)
        oof_eval = evaluate_detections(**kw, class_names=list(noisy.classes))
        priority = image_impacts(ours.candidates, len(samples), class_headroom([c.ap50 for c in oof_eval.per_class]))
        baseline = cleanlab_default_image_scores(**kw, num_classes=len(noisy.classes))
        items = truth(clean, records)
        corrupted = np.zeros(len(samples), dtype=bool)
        for its in items.values():
            for i, _ in its:
                corrupted[i] = True
        result: dict[str, Any] = {
            "benchmark": "label_errors", "dataset": args.dataset, "images": len(samples),
            "boxes_clean": sum(len(im.boxes) for im in clean.images), "noise": FRACTIONS,
            "corrupted": {k: len(v) for k, v in items.items()}, "corrupted_images": int(corrupted.sum()),
            "folds": args.folds, "training_per_fold": budget, "threads": threads,
            "weights": oof.weights, "oof_s": round(oof_s, 1), "per_fold": oof.per_fold,
            "thresholds": ours.thresholds.to_dict(), "scoring_s": round(ours.timings["total"], 3),
            "ours": {"boxes": detection_metrics(ours.candidates, items),
                     "images": image_metrics(ours.image_scores, corrupted),
                     "fix_order_images": image_metrics(-priority, corrupted)},
            "cleanlab_default": {"images": image_metrics(np.asarray(baseline), corrupted)},
        }
        if args.budget_minutes or args.budget_epochs:
            errors = errors_per_image(len(samples), items)
            # oracle: the images holding the most injected errors (an upper bound for any ranking, not a ranking)
            order = {"impact": -priority, "likelihood": ours.image_scores, "oracle": -errors.astype(float)}[args.ranking]
            result["relabel_budget"] = relabel_budget(clean, noisy, errors, order, args, Path(tmp))
    return result


def errors_per_image(n: int, items: dict[str, list[tuple[int, Any]]]) -> np.ndarray:
    """How many injected errors each image holds."""
    out = np.zeros(n, dtype=np.int64)
    for its in items.values():
        for i, _ in its:
            out[i] += 1
    return out


def relabel_budget(clean: LabelSet, noisy: LabelSet, errors: np.ndarray, image_scores: np.ndarray,
                   args: argparse.Namespace, work: Path) -> dict:
    """Retrain on clean / noisy / top-10 %-fixed / random-10 %-fixed labels; score each on clean test images.

    Demo set: every labeled image trains and a separately generated clean set of ``--test-images``
    images is the test set (60 val images were too few: their mAP moved by more than the effect).
    DeepPCB: a fixed fifth of the images is held out as the test set. Each arm trains with the same
    seed (same initial weights, batch order and augmentation), so arms differ only by their labels.
    Finished arms are kept in ``--arm-results`` (JSON) and not trained again.
    """
    n = len(clean.images)
    clean_s, noisy_s = to_samples(clean), to_samples(noisy)
    if args.dataset == "demo" and args.test_images:
        from labeltool.core.synth import generate_dataset

        test_labels = generate_dataset(work / "test", n_images=args.test_images, seed=args.seed + TEST_SEED_OFFSET)
        test_s = to_samples(test_labels, first_id=TEST_ID_OFFSET)
        train_idx = list(range(n))
    else:
        val = {i for i in range(n) if int(hashlib.sha256(f"val:{i}".encode()).hexdigest(), 16) % 5 == 0}
        test_s = [clean_s[i] for i in sorted(val)]
        train_idx = [i for i in range(n) if i not in val]
    # fixes only where they can matter: among the images that train
    n_fix = max(1, round(FIX_SHARE * len(train_idx)))
    pool = np.asarray(train_idx)
    top = set(pool[np.argsort(image_scores[pool], kind="stable")[:n_fix]].tolist())
    train_seed = args.seed if args.train_seed is None else args.train_seed
    rnd = set(np.random.default_rng(train_seed).choice(pool, n_fix, replace=False).tolist())  # a new draw per seed
    preset = get_preset(args.preset)
    budget = {"epochs": args.budget_epochs} if args.budget_epochs else {"minutes": args.budget_minutes}
    fixed_by_arm = {"clean": set(range(n)), "noisy": set(), "top_fixed": top, "random_fixed": rnd}
    key = f"{args.dataset}:{n}:seed{args.seed}:{preset.name}:{json.dumps(budget)}:test{len(test_s)}"
    cache_key = key if train_seed == args.seed else f"{key}:train_seed{train_seed}"
    cache = json.loads(args.arm_results.read_text()) if args.arm_results and args.arm_results.exists() else {}

    def keep() -> None:
        if args.arm_results:
            args.arm_results.write_text(json.dumps(cache, indent=1))

    init_dir = None
    if args.finetune_epochs:
        # the start model: trained with --start-seed (default: the training seed); seeds that share it share the model
        start_seed = train_seed if args.start_seed is None else args.start_seed
        start_key = (key if start_seed == args.seed else f"{key}:train_seed{start_seed}") + f":finetune{args.finetune_epochs}"
        cache_key += f":finetune{args.finetune_epochs}" + (f":start_seed{start_seed}" if start_seed != train_seed else "")
        init_dir, start = noisy_model(noisy_s, train_idx, test_s, list(clean.classes), budget, start_seed, args,
                                      work / "noisy-model", key=start_key)
        if start is not None:
            cache[f"{start_key}:start_model"] = start
            keep()
    kept = cache.setdefault(cache_key, {})
    # the top arm is kept per ranking, so both rankings can be compared against the same other arms
    stored = {a: f"{a}:{args.ranking}" if a == "top_fixed" else a for a in ARMS}
    arms = {a: kept[stored[a]] for a in ARMS if stored[a] in kept}
    for arm in [a for a in ARMS if a in args.arms]:
        fixed = sorted(fixed_by_arm[arm]) if arm in ("top_fixed", "random_fixed") else None
        if arm in arms and arms[arm].get("fixed") == fixed:
            continue  # trained before on the same labels (a fix set ranked by other code is trained again)
        train = [clean_s[i] if i in fixed_by_arm[arm] else noisy_s[i] for i in train_idx]
        arm_budget = {"epochs": args.finetune_epochs} if init_dir else budget
        t = time.perf_counter()
        model = train_and_save(train, test_s, list(clean.classes), arm_budget, train_seed, args, init_dir=init_dir)
        arms[arm] = kept[stored[arm]] = {**score(model, test_s, list(clean.classes), args),
                                         "train_s": round(time.perf_counter() - t, 1), "fixed": fixed}
        print(f"[{time.strftime('%H:%M:%S')}] arm {arm}: {json.dumps(arms[arm])}", file=sys.stderr, flush=True)
        keep()
    out: dict[str, Any] = {
        "test_images": len(test_s), "train_images": len(train_idx), "fixed_images": n_fix, "training": budget,
        "train_seed": train_seed, "ranking": args.ranking,
        **({"finetune_epochs": args.finetune_epochs, "start_model": cache.get(f"{start_key}:start_model")}
           if init_dir else {}),
        # what each 10 % fixes at the label level: the share of the training images' injected errors removed
        "errors_removed": {"top_fixed": round(float(errors[sorted(top)].sum() / max(1, errors[pool].sum())), 4),
                           "random_fixed": round(float(errors[sorted(rnd)].sum() / max(1, errors[pool].sum())), 4),
                           "random_expected": round(n_fix / len(train_idx), 4)},
        "arms": arms,
    }
    if "clean" in arms and "noisy" in arms:
        loss = arms["clean"]["map50"] - arms["noisy"]["map50"]
        out["noise_map50_loss"] = round(loss, 4)
        out["recovered_fraction"] = {k: (round((arms[k]["map50"] - arms["noisy"]["map50"]) / loss, 3) if loss > 0
                                         and k in arms else None) for k in ("top_fixed", "random_fixed")}
    return out


def train_and_save(train: list[Sample], test_s: list[Sample], classes: list[str], budget: dict, seed: int,
                   args: argparse.Namespace, *, init_dir: Path | None = None, save_to: Path | None = None) -> Any:
    """Train (from scratch, or on from the model in ``init_dir``) with a fixed seed; keep the last weights."""
    preset = get_preset(args.preset)
    opts = TrainOptions(preset=preset.name, seed=seed, patience=10**6, **budget)
    # a few test images for fit's per-epoch check (it keeps the last weights); the full test set once at the end
    res = drive(fit(train, test_s[:4], classes, preset=preset, options=opts, keep_best=False, init_dir=init_dir),
                progress_to_stderr)
    if save_to is not None:
        save_checkpoint(res.model, save_to, preset=preset, class_names=classes)
    return res.model


def score(model: Any, test_s: list[Sample], classes: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """mAP@.5 and per-class AP@.5 of ``model`` on the clean test images."""
    dets = predict_samples(model, test_s, size=get_preset(args.preset).image_size)
    ev = evaluate_detections(gt_boxes=[s.boxes for s in test_s], gt_labels=[s.labels for s in test_s],
                             pred_boxes=[d[0] for d in dets], pred_scores=[d[1] for d in dets],
                             pred_labels=[d[2] for d in dets], class_names=classes)
    return {"map50": round(ev.map50, 4), "ap50": {c.name: c.ap50 and round(c.ap50, 4) for c in ev.per_class}}


def noisy_model(noisy_s: list[Sample], train_idx: list[int], test_s: list[Sample], classes: list[str],
                budget: dict, seed: int, args: argparse.Namespace, tmp_dir: Path, *,
                key: str) -> tuple[Path, dict[str, Any] | None]:
    """The model every fine-tuning arm starts from: trained from scratch on all noisy training labels.

    Kept next to ``--arm-results`` (a folder named after the cache key), so a cut run does not train it again.
    Returns its folder and, when trained now, its test scores (None when it was kept from before).
    """
    folder = tmp_dir
    if args.arm_results:
        folder = args.arm_results.parent / f"{args.arm_results.stem}-start-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    if (folder / "config.json").is_file():
        return folder, None
    t = time.perf_counter()
    model = train_and_save([noisy_s[i] for i in train_idx], test_s, classes, budget, seed, args, save_to=folder)
    result = {**score(model, test_s, classes, args), "train_s": round(time.perf_counter() - t, 1), "folder": str(folder)}
    print(f"[{time.strftime('%H:%M:%S')}] start model: {json.dumps(result)}", file=sys.stderr, flush=True)
    return folder, result


def cmd_speed(args: argparse.Namespace) -> dict[str, Any]:
    inputs = benchmark_inputs(n_images=args.images)
    ours, cl = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        score_labels(**inputs)
        ours.append(time.perf_counter() - t)
        cl.append(time_cleanlab_public(**inputs))
    return {"benchmark": "label_scoring_speed", "images": args.images, "boxes_per_image": 10,
            "preds_per_image": 100, "ours_s": [round(v, 3) for v in ours], "cleanlab_public_s": [round(v, 3) for v in cl],
            "ours_median_s": round(float(np.median(ours)), 3), "cleanlab_public_median_s": round(float(np.median(cl)), 3),
            "speedup": round(float(np.median(cl) / np.median(ours)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("detect")
    p.add_argument("--dataset", default="demo", choices=("demo", "deeppcb"))
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--preset", default="edge")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--minutes-per-fold", type=float, default=4.0)
    p.add_argument("--epochs-per-fold", type=int, default=0, help="fixed epochs instead of --minutes-per-fold")
    p.add_argument("--budget-minutes", type=float, default=0.0, help="run the relabel-budget experiment")
    p.add_argument("--budget-epochs", type=int, default=0, help="relabel-budget experiment with fixed epochs")
    p.add_argument("--test-images", type=int, default=300,
                   help="relabel budget, demo set: size of the separately generated clean test set")
    p.add_argument("--arms", type=lambda v: v.split(","), default=list(ARMS),
                   help="relabel-budget arms to train (comma-separated): " + ",".join(ARMS))
    p.add_argument("--finetune-epochs", type=int, default=0,
                   help="relabel budget: arms continue training the noisy model for this many epochs")
    p.add_argument("--ranking", default="impact", choices=("impact", "likelihood", "oracle"),
                   help="relabel budget: fix first by likelihood x class headroom (the queue's fix order), by "
                        "likelihood alone (the image score), or (upper bound) the images with most injected errors")
    p.add_argument("--train-seed", type=int, help="relabel budget: another training seed, same data, noise and ranking")
    p.add_argument("--start-seed", type=int,
                   help="relabel budget with --finetune-epochs: the noisy start model's training seed (default: "
                        "--train-seed); several --train-seed runs with one --start-seed fine-tune the same model")
    p.add_argument("--arm-results", type=Path, help="keep finished relabel-budget arms in this JSON file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-oof", type=Path, help="write the out-of-sample predictions to this JSON file")
    p.add_argument("--load-oof", type=Path, help="reuse predictions saved with --save-oof (same dataset/seed)")
    p = sub.add_parser("speed")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    out = cmd_detect(args) if args.cmd == "detect" else cmd_speed(args)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
