"""What the GUI's train, export and welcome panels show, computed without Qt.

The panels (``labeltool/gui/train_panel.py``, ``export_panel.py``, ``welcome.py``) only lay these
out: the training curve, the "now vs previous model" rows, the verification tables and verdict,
the deploy result in words, default folders, and the demo project's job arguments.
All inputs are the result dicts the jobs return (``train_job``, ``verify_job``, ``deploy_job``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from labeltool.core.progress import Progress

from .demo import DEMO_ANALYZE_MINUTES, DEMO_MARKER, DEMO_TRAIN_MINUTES
from .export import VERIFICATION_SUFFIX, weak_model_note
from .kinds import DEMO, DEPLOY, EXPORT, TRAIN, VERIFY

TRAIN_TARGET, EXPORT_TARGET, VERIFY_TARGET = TRAIN.target, EXPORT.target, VERIFY.target  # jobs/kinds.py
DEPLOY_TARGET, DEMO_TARGET = DEPLOY.target, DEMO.target

LOSS_SMOOTHING = 0.8  # EMA weight of the running value (TensorBoard-style, bias-corrected)
SAME_AP = 0.005  # an AP change smaller than half a point counts as "same" (not coloured)

Verdict = Literal["better", "worse", "same", "none"]


# ------------------------------------------------------------------------------- training curve

def smooth(values: Iterable[float], weight: float = LOSS_SMOOTHING) -> list[float]:
    """Bias-corrected exponential moving average (the first value is not dragged towards 0)."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"weight must be in [0, 1), got {weight}")
    out, acc = [], 0.0
    for i, v in enumerate(values, start=1):
        acc = weight * acc + (1.0 - weight) * float(v)
        out.append(acc / (1.0 - weight ** i))
    return out


class TrainCurve:
    """Points of a live training: loss per step ('train' events) and val mAP@.5 per epoch ('eval')."""

    def __init__(self) -> None:
        self.loss: list[tuple[int, float]] = []  # (step, loss of that step)
        self.maps: list[tuple[int, float]] = []  # (last step of the epoch, val mAP@.5)

    def clear(self) -> None:
        self.loss.clear()
        self.maps.clear()

    def add(self, progress: Progress) -> bool:
        """Take a Progress event; True when it added a point."""
        m = progress.metrics
        if progress.stage == "train" and "loss" in m:
            step = int(m.get("step", len(self.loss) + 1))
            self.loss.append((step, float(m["loss"])))
            return True
        if progress.stage == "eval" and "map50" in m:
            step = self.loss[-1][0] if self.loss else int(m.get("epoch", len(self.maps) + 1))
            self.maps.append((step, float(m["map50"])))
            return True
        return False

    def smoothed(self) -> list[tuple[int, float]]:
        return list(zip((s for s, _ in self.loss), smooth(v for _, v in self.loss), strict=True))


# -------------------------------------------------------------------- now vs the previous model

@dataclass(frozen=True, slots=True)
class CompareRow:
    """One class of the "now vs previous model" table. AP values are fractions (None: unknown)."""

    name: str
    n_gt: int | None
    now: float | None
    before: float | None
    delta: float | None
    verdict: Verdict


def verdict(delta: float | None) -> Verdict:
    """'better' / 'worse' beyond half an AP point, else 'same'; 'none' when unknown."""
    if delta is None:
        return "none"
    return "better" if delta > SAME_AP else "worse" if delta < -SAME_AP else "same"


def compare_rows(result: dict[str, Any]) -> list[CompareRow]:
    """Per-class AP@.5 of a ``train_job`` result, with the previous model's where there is one."""
    if result.get("delta"):
        return [CompareRow(d["name"], d.get("n_gt"), d.get("ap50_now"), d.get("ap50_before"), d.get("ap50_delta"),
                           verdict(d.get("ap50_delta"))) for d in result["delta"]]
    return [CompareRow(c["name"], c.get("n_gt"), c.get("ap50"), None, None, "none")
            for c in result.get("eval", {}).get("per_class", [])]


def points(delta: float | None) -> str:
    """An AP/mAP difference (fraction) as signed points: +2.4, or – when unknown."""
    return "–" if delta is None else f"{delta * 100:+.1f}"


def ap_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def compare_summary(result: dict[str, Any]) -> tuple[str, Verdict]:
    """The overall line under a finished training, and its colour."""
    now = float(result["map50"])
    head = f"Validation mAP@.5 {now:.3f} ({result.get('n_val', '?')} images)"
    prev_id = result.get("previous_run_id")
    if prev_id is None:
        return f"{head}. This is the project's first model: there is no previous model to compare with.", "none"
    previous = result.get("previous")
    if not previous:
        return (f"{head}. The previous model (run {prev_id}) could not be loaded (its files are gone): "
                "no comparison."), "none"
    before = float(previous["map50"])
    v = verdict(now - before)
    word = {"better": "better than", "worse": "worse than", "same": "about the same as"}[v]
    return (f"{head}: {word} the previous model (run {prev_id}, {before:.3f}, {points(now - before)} points) "
            "on the same images.", v)


def train_footer(result: dict[str, Any]) -> str:
    """Epochs, speed and notes of a finished training, in a sentence or two."""
    parts = [f"Run {result['run_id']}: {result.get('epochs_done', '?')} epochs, "
             f"{result.get('images_per_s', 0):.1f} images/s, {result.get('wall_s', 0):.0f} s in all. "
             "It is now the project's current model."]
    weights = result.get("weights") or {}
    if weights.get("kind") == "random":
        parts.append("It started from random weights (no pretrained backbone found), so it is weaker than it "
                     "could be.")
    parts.extend(result.get("notes") or [])
    return " ".join(parts)


# ---------------------------------------------------------------------------------- verification

VARIANTS = (("torch_fp32", "PyTorch FP32"), ("ort_fp32", "ONNX FP32"), ("ort_int8", "ONNX INT8"))


def variants(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, label) of the models a verification report compares, PyTorch first."""
    return [(k, label) for k, label in VARIANTS if k in report.get("map50", {})]


def class_rows(report: dict[str, Any]) -> list[tuple[str, list[tuple[str, Verdict]]]]:
    """Per class: name and cells (text, colour) — PyTorch AP, then each bundle model's AP and Δ."""
    keys = [k for k, _ in variants(report)][1:]
    rows = []
    for r in report["per_class_ap50"]:
        cells: list[tuple[str, Verdict]] = [(ap_text(r.get("torch_fp32")), "none")]
        for k in keys:
            diff = r.get(f"{k}_diff")
            cells += [(ap_text(r.get(k)), "none"), (points(diff), verdict(diff))]
        rows.append((r["class"], cells))
    return rows


def speed_rows(report: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """mAP@.5, median latency and file size per model; bundle models with their ratio to PyTorch."""
    keys = [k for k, _ in variants(report)]
    lat, size = report["latency_median_ms"], report["size_bytes"]

    def ratio(values: dict[str, float], k: str) -> str:
        ref = values.get("torch_fp32")
        if k == "torch_fp32" or not ref:
            return ""
        r = values[k] / ref
        return f" ({r:.2f}×)" if r >= 0.1 else f" ({r:.2g}×)"  # 0.0055×, not 0.01× / 0.00×

    return [
        ("mAP@.5", [f"{report['map50'][k]:.3f}" for k in keys]),
        ("latency, ms", [f"{lat[k]:.1f}{ratio(lat, k)}" for k in keys]),
        ("size, MB", [f"{size[k] / 1e6:.1f}{ratio(size, k)}" for k in keys]),
    ]


def speed_note(report: dict[str, Any]) -> str:
    """How the latency was measured (the line under the speed table)."""
    threads = report.get("threads", "?")
    return (f"Latency: median over {report.get('n_images', '?')} validation images, one image at a time, "
            f"{threads} CPU thread{'s' if threads != 1 else ''}, model + box decoding; (×): ratio to PyTorch.")


def _drop_text(name: str, drop: float, limit: float) -> str:
    if abs(drop) < 0.0005:
        return f"{name} scores the same mAP@.5 as PyTorch"
    way = "lower" if drop > 0 else "higher"
    return f"{name} scores {abs(drop) * 100:.1f} points {way} (at most {limit * 100:.1f} lower allowed)"


def verification_verdict(report: dict[str, Any]) -> str:
    """Verified or not, and why, in words."""
    checks = [(k.upper(), report[f"{k}_map50_drop"], report[f"max_{k}_drop"])
              for k in ("fp32", "int8") if f"{k}_map50_drop" in report]
    said = "; ".join(_drop_text(n, d, lim) for n, d, lim in checks)
    where = f"on {report.get('n_images', '?')} validation images"
    if report.get("verified"):
        text = f"Verified {where}: {said}."
    else:
        failed = [n for n, d, lim in checks if d > lim + 1e-9]
        if "FP32" in failed:
            todo = "the ONNX model does not reproduce PyTorch; export again, and report a bug if it persists"
        else:
            todo = "deploy an FP32-only bundle or export again with more calibration images"
        text = f"NOT verified {where}: {said}. What to do: {todo}."
    hurt = report.get("int8_most_hurt_classes")
    if hurt:
        text += f" INT8 hurts these classes most: {', '.join(hurt)}."
    weak = weak_model_note(report) if report.get("verified") else None  # a failed bundle: fix that first
    return f"{text} {weak}" if weak else text



REPORT_KEYS = {"verified", "map50", "latency_median_ms", "size_bytes", "per_class_ap50"}  # what the panel shows


def verification_file(bundle: str | Path) -> Path:
    """Where ``verify_job`` writes a bundle's report (beside the folder, ``.zip`` removed)."""
    return Path(str(bundle).removesuffix(".zip") + VERIFICATION_SUFFIX)


def read_verification(bundle: str | Path) -> dict[str, Any] | None:
    """The bundle's verification report, or None when it was never verified (or the file is unreadable
    or incomplete: then the bundle counts as not verified)."""
    try:
        report = json.loads(verification_file(bundle).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and REPORT_KEYS <= set(report) else None


def export_summary(result: dict[str, Any]) -> str:
    """One sentence on a written bundle: where, which models, their sizes."""
    models = [f"{name.removeprefix('model_').removesuffix('.onnx').upper()} {size / 1e6:.1f} MB"
              for name, size in result.get("files", {}).items() if name.endswith(".onnx")]
    text = f"Bundle of run {result['run_id']} written to {result['bundle']} ({', '.join(models)})"
    if result.get("calibration_images"):
        text += f"; INT8 calibrated on {result['calibration_images']} project images"
    return text + "."


def deploy_sentence(result: dict[str, Any]) -> str:
    """What a ``deploy_job`` result means for the line, in words."""
    link = "" if result.get("mode") != "rename" else " (this target has no links: switched by renaming)"
    if result.get("action") == "rollback":
        return (f"Rolled back: {result['live_path']} is the previous bundle again (run {result.get('run_id')})"
                f"{link}. The line picks it up at its next start.")
    text = (f"Deployed run {result.get('run_id')} to {result['target']}: the line runs "
            f"{result['live_path']}/infer.py{link}.")
    if result.get("previous_sha256"):
        text += " The bundle deployed before stays as 'previous': Roll back restores it."
    else:
        text += " It is the first bundle on this target, so there is nothing to roll back to yet."
    if result.get("verified") is False:
        text += " Warning: this bundle did not pass verification."
    elif result.get("verified") is None:
        text += " Note: this bundle was not verified."
    return text


# ------------------------------------------------------------------------------- folders, demo

def default_bundle_dir(project_root: Path, run_id: int | None, now: datetime | None = None) -> Path:
    """``<project>/exports/run<id>-<time>``: a new, not yet existing folder for the next bundle."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = Path(project_root) / "exports" / (f"run{run_id}-{stamp}" if run_id is not None else stamp)
    out, n = base, 2
    while out.exists() or out.with_name(out.name + ".zip").exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out


def latest_bundle(project_root: Path) -> Path | None:
    """The newest bundle folder under ``<project>/exports`` (one with a manifest), or None."""
    folder = Path(project_root) / "exports"
    try:
        bundles = [p for p in folder.iterdir() if p.is_dir() and (p / "manifest.json").is_file()]
    except OSError:
        return None
    return max(bundles, key=lambda p: p.stat().st_mtime, default=None)


def default_demo_root() -> Path:
    """Where the welcome screen's demo project goes: ``~/labeltool-demo``."""
    return Path.home() / "labeltool-demo"


def demo_job_kwargs(root: Path, *, analysis: bool = True) -> dict[str, Any]:
    """Arguments of ``demo_job`` for a newcomer: noisy demo labels, a first model and (with
    ``analysis``) the suspected label errors; the fixes, fine-tuning and export are left to the user in
    the window. About 8 min on 2 CPU cores (2.5 without analysis; the full demo's step times, README)."""
    return {"root": str(root), "train_minutes": DEMO_TRAIN_MINUTES,
            "analyze_minutes": DEMO_ANALYZE_MINUTES if analysis else 0.0, "review": 0, "finetune_epochs": 0,
            "export": False}


def existing_demo_project(root: Path) -> Path | None:
    """The demo project under ``root`` when an earlier demo run finished its training, else None."""
    project = Path(root) / "project"
    runs = project / "runs"
    if not (Path(root) / DEMO_MARKER).is_file() or not (project / "project.db").is_file() or not runs.is_dir():
        return None
    return project if any(not p.name.startswith(".") for p in runs.iterdir()) else None
