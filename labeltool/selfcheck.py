"""``labeltool --self-check``: prove that an installation (above all the frozen one-folder build) works.

Headless and offline. In a temporary folder it builds a small demo project and then exercises every
layer the app ships, the way the app uses it:

- ``imports``   the compiled libraries load (torch, torchvision's C++ ops, ONNX Runtime, OpenCV, ...)
- ``weights``   the edge preset's pretrained backbone is found (the installed weight package: sha256,
                name map and shapes checked); starting from random weights is a failure
- ``demo``      synthetic images with defects → a new project → COCO import (SQLite, Pillow)
- ``gui``       the main window built offscreen, the project opened and its first image painted (the
                Qt side is app.py's ``window_check``, passed in: this module imports no Qt)
- ``train``     one real optimisation step (autograd, albumentations) + validation (pycocotools)
- ``predict``   the new run predicts 2 images in this process
- ``spawn``     a prediction job in a *spawned* child process, as the GUI runs its jobs: this is where
                frozen apps break (``multiprocessing.freeze_support()`` in app.py)
- ``export``    ONNX export of the run and verification of the bundle, whose ``infer.py`` runs in a
                child process started with ``sys.executable`` (the frozen executable itself)

One line per check (OK / FAIL / SKIP, seconds, detail); the exit status is 0 only when all pass.
A check whose prerequisite failed is skipped (and counts as a failure).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import platform
import queue
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import labeltool

DEMO_IMAGES = 12  # enough for a train/val split with every class; renders in about a second
CHILD_TIMEOUT_S = 300.0  # the spawned child imports torch from scratch: seconds, not minutes
PREDICT_IMAGES = 2


class CheckError(Exception):
    """A self-check found something wrong (the message says what)."""


def _ok(cond: bool, message: str) -> None:
    if not cond:
        raise CheckError(message)


def _frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


BUILD_INFO = "labeltool-build.json"  # written by pyinstaller.spec into the frozen app's contents folder


def build_info() -> dict[str, Any]:
    """Frozen build only: what pyinstaller.spec recorded (``version``, ``cuda``); ``{}`` from source."""
    if not _frozen():
        return {}
    path = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / BUILD_INFO
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def describe_build() -> str:
    """"from source", "frozen CPU build" or "frozen CUDA build"."""
    if not _frozen():
        return "from source"
    info = build_info()
    return f"frozen {'CUDA' if info.get('cuda') else 'CPU'} build" if info else "frozen build"


# --- the checks -------------------------------------------------------------------------------------
# Each takes the shared state dict, may add to it, and returns a one-line detail for the report.


def check_imports(state: dict[str, Any]) -> str:
    import albumentations
    import cleanlab
    import cv2
    import numpy as np
    import onnx
    import onnxruntime
    import pycocotools.mask  # noqa: F401  (compiled extension)
    import timm
    import torch
    import torchvision

    # torchvision's C++ operators live in a separate shared library; a build that misses it imports
    # fine and fails at the first NMS ("operator torchvision::nms does not exist")
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    _ok(keep.tolist() == [0, 2], f"torchvision.ops.nms returned {keep.tolist()}, expected [0, 2]")
    providers = onnxruntime.get_available_providers()
    _ok("CPUExecutionProvider" in providers, f"onnxruntime has no CPU provider (has {providers})")
    _ok(cv2.resize(np.zeros((4, 4, 3), np.uint8), (2, 2)).shape == (2, 2, 3), "cv2.resize failed")
    state["torch_threads"] = torch.get_num_threads()
    return (f"torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}, "
            f"cleanlab {cleanlab.__version__}, albumentations {albumentations.__version__}, "
            f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}")


def check_weights(state: dict[str, Any]) -> str:
    from labeltool.ml.presets import DEFAULT_PRESET, get_preset
    from labeltool.ml.weights import check_state_dict, read_backbone_state_dict, resolve_weights

    preset = get_preset(DEFAULT_PRESET)
    source = resolve_weights(preset.backbone)  # a changed package file fails here, with its own message
    state["weights_kind"] = source.kind
    _ok(source.kind != "random", f"the {preset.name} preset would start from random weights: {source.message}")
    if source.path is not None:  # a file that training would refuse fails here, with its own message
        tensors = read_backbone_state_dict(source.path, preset.backbone)
        check_state_dict(tensors, backbone=preset.backbone, path=source.path)
        return f"{source.message} ({len(tensors)} tensors, checked against {preset.backbone})"
    return source.message


def check_demo(state: dict[str, Any]) -> str:
    from labeltool.core.store import Project
    from labeltool.jobs import drive
    from labeltool.jobs.demo import demo_job

    root = state["root"] / "demo"
    result = drive(demo_job(root, n_images=DEMO_IMAGES, train_minutes=0, analyze_minutes=0, export=False),
                   lambda _p: None)
    project = Path(result["project"])
    with Project.open(project) as p:
        n_images, n_classes = len(p.images()), len(p.classes())
    _ok(n_images == DEMO_IMAGES, f"the demo project has {n_images} images, expected {DEMO_IMAGES}")
    _ok(n_classes > 0, "the demo project has no classes")
    state["project"] = project
    return f"{n_images} images, {result['boxes']} boxes, {n_classes} classes in {project}"


def check_gui(state: dict[str, Any]) -> str:
    # The window check itself lives with the Qt code (app.py): this module stays Qt-free (layering rule).
    return state["gui_check"](state["project"], state["root"])


def check_train(state: dict[str, Any]) -> str:
    from labeltool.jobs import drive
    from labeltool.jobs.model import train_job

    # one optimisation step on one batch of 2 (augmented) images, then validation: a real backward pass
    result = drive(train_job(state["project"], epochs=1, steps_per_epoch=1, batch_size=2, patience=1, seed=0),
                   lambda _p: None)
    losses = [h.get("loss") for h in result["history"]]
    _ok(result["images_seen"] == 2, f"training saw {result['images_seen']} images, expected 2")
    _ok(bool(losses) and all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in losses),
        f"training loss is not a positive finite number: {losses}")
    state["run_id"], state["run_dir"] = result["run_id"], Path(result["run_dir"])
    _ok((state["run_dir"] / "model.safetensors").is_file(), f"the run folder {state['run_dir']} has no model")
    return (f"run {result['run_id']}: 1 step, loss {losses[-1]:.3f}, {result['n_train']} train / "
            f"{result['n_val']} val images, val mAP@.5 {result['map50']:.3f}, weights: {result['weights']['kind']}")


def check_predict(state: dict[str, Any]) -> str:
    import numpy as np

    from labeltool.core.store import Project
    from labeltool.ml.checkpoint import load_checkpoint
    from labeltool.ml.data import Sample
    from labeltool.ml.predict import predict_samples

    with Project.open(state["project"]) as p:
        images = p.images()[:PREDICT_IMAGES]
        root = p.root
    model, cfg = load_checkpoint(state["run_dir"])
    model.score_thresh = 0.0  # a 1-step model scores everything low; keep its boxes so they can be checked
    samples = [Sample(im.id, root / im.path, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), im.split,
                      im.width, im.height) for im in images]
    dets = predict_samples(model, samples, size=int(cfg["image_size"]), batch_size=PREDICT_IMAGES)
    _ok(len(dets) == len(samples), f"{len(dets)} results for {len(samples)} images")
    n_boxes = 0
    for im, (boxes, scores, labels) in zip(images, dets, strict=True):
        _ok(len(boxes) > 0, f"no detections at all for {im.path} with the score threshold at 0")
        _ok(bool(np.isfinite(boxes).all() and np.isfinite(scores).all()), f"non-finite detections for {im.path}")
        inside = (boxes[:, 0] >= -1e-3) & (boxes[:, 1] >= -1e-3) & (boxes[:, 2] <= im.width + 1e-3) & (
            boxes[:, 3] <= im.height + 1e-3)
        _ok(bool(inside.all()), f"detections outside the {im.width}x{im.height} image {im.path}")
        _ok(bool(((labels >= 0) & (labels < len(cfg["class_names"]))).all()), f"unknown class ids for {im.path}")
        n_boxes += len(boxes)
    return f"{len(samples)} images, {n_boxes} boxes (score threshold 0), max score {max(float(d[1].max()) for d in dets):.3f}"


def _child_predict(project_dir: str, results: Any) -> None:
    """Runs in a spawned child: the project's prediction job, the way the GUI runs jobs."""
    try:
        from labeltool.jobs import drive
        from labeltool.jobs.model import predict_job

        events: list[str] = []
        result = drive(predict_job(Path(project_dir), batch_size=4), lambda p: events.append(p.stage))
        results.put(("ok", {"pid": os.getpid(), "result": result, "events": len(events)}))
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent, which prints it
        results.put(("error", "".join(traceback.format_exception(exc))))


def check_spawn(state: dict[str, Any]) -> str:
    from labeltool.core.runs import predictions
    from labeltool.core.store import Project

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_child_predict, args=(str(state["project"]), results), daemon=True)
    child.start()
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    try:
        message = None
        while message is None:
            try:
                message = results.get(timeout=1.0)
            except queue.Empty:
                if not child.is_alive():  # it may have answered just before it ended
                    try:
                        message = results.get(timeout=1.0)
                    except queue.Empty:
                        raise CheckError(f"the spawned child ended (exit code {child.exitcode}) without a "
                                         "result; see its output above") from None
                elif time.monotonic() > deadline:
                    raise CheckError(f"the spawned child sent no result within {CHILD_TIMEOUT_S:.0f} s") from None
        status, payload = message
        child.join(timeout=60)
    finally:
        if child.is_alive():
            child.terminate()
            child.join(5)
    _ok(status == "ok", f"the job failed in the spawned child:\n{payload}")
    _ok(child.exitcode == 0, f"the spawned child exited with {child.exitcode}")
    result = payload["result"]
    _ok(payload["pid"] != os.getpid(), "the job ran in this process, not in a child")
    _ok(payload["events"] > 0, "the child's job reported no progress")
    _ok(result["images"] == DEMO_IMAGES and result["run_id"] == state["run_id"],
        f"the child predicted {result['images']} images with run {result['run_id']}, "
        f"expected {DEMO_IMAGES} with run {state['run_id']}")
    with Project.open(state["project"]) as p:
        stored = sum(len(predictions(p, im.id, run_id=state["run_id"])) for im in p.images())
    _ok(stored == result["boxes"], f"the child reported {result['boxes']} model boxes, the project holds {stored}")
    return (f"predict job in child pid {payload['pid']}: {result['images']} images, {result['boxes']} model boxes "
            "stored (score >= 0.05)")


def check_export(state: dict[str, Any]) -> str:
    from labeltool.jobs import drive
    from labeltool.jobs.export import export_model_job, verify_job

    bundle = state["root"] / "bundle"
    exported = drive(export_model_job(state["project"], bundle, int8=False, make_zip=False), lambda _p: None)
    _ok((bundle / "model_fp32.onnx").is_file() and (bundle / "infer.py").is_file(),
        f"the bundle {bundle} lacks model_fp32.onnx or infer.py")
    report = drive(verify_job(bundle, state["project"], threads=1), lambda _p: None)
    _ok(report["verified"], f"the bundle was not verified against PyTorch: {report.get('map50')}")
    size_mb = exported["files"]["model_fp32.onnx"] / 1e6
    return (f"ONNX FP32 {size_mb:.1f} MB; infer.py in a child process on {report['n_images']} images: "
            f"mAP@.5 {report['map50']}, latency {report['latency_median_ms']} ms")


CHECKS: tuple[tuple[str, Callable[[dict[str, Any]], str], tuple[str, ...]], ...] = (
    # name, check, the checks it needs
    ("imports", check_imports, ()),
    ("weights", check_weights, ("imports",)),
    ("demo", check_demo, ()),
    ("gui", check_gui, ("demo",)),
    ("train", check_train, ("imports", "weights", "demo")),
    ("predict", check_predict, ("train",)),
    ("spawn", check_spawn, ("train",)),
    ("export", check_export, ("train",)),
)


GuiCheck = Callable[[Path, Path], str]  # (project folder, scratch folder) -> detail; raises when broken


def self_check(workdir: Path | None = None, *, gui_check: GuiCheck | None = None, keep: bool = False,
               out: TextIO | None = None) -> int:
    """Run every check in a new temporary folder below ``workdir`` (default: the system's); print one
    line each to ``out`` (stdout) and return 0 when all passed, else 1.

    ``gui_check`` opens the demo project in the main window (app.py passes its own, which imports Qt);
    without it the window is not checked (counted as skipped, not failed). ``keep`` leaves the temporary
    folder for inspection."""
    out = out or sys.stdout
    t_all = time.monotonic()

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    say(f"labeltool {labeltool.__version__} self-check ({describe_build()}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, executable {sys.executable})")
    passed: set[str] = set()
    failed = 0
    state: dict[str, Any] = {"gui_check": gui_check}
    t0 = time.monotonic()
    try:
        base = Path(workdir).expanduser() if workdir is not None else None
        state["root"] = Path(tempfile.mkdtemp(prefix="labeltool-selfcheck-", dir=base))
    except OSError as exc:
        say(f"FAIL workdir   {time.monotonic() - t0:6.1f} s  cannot create a temporary folder in "
            f"{workdir or tempfile.gettempdir()}: {exc}")
        say("self-check FAILED: the working folder must be a writable folder (--workdir)")
        return 1
    say(f"OK   workdir   {time.monotonic() - t0:6.1f} s  {state['root']}")
    try:
        for name, check, needs in CHECKS:
            if name == "gui" and gui_check is None:
                say(f"SKIP {name:<9} {0.0:6.1f} s  not asked for (--no-gui)")
                continue
            missing = [n for n in needs if n not in passed]
            if missing:
                failed += 1
                say(f"SKIP {name:<9} {0.0:6.1f} s  needs {', '.join(missing)}, which failed")
                continue
            t0 = time.monotonic()
            try:
                detail = check(state)
            except Exception as exc:  # noqa: BLE001 - any failure is a FAIL line; the traceback helps a bug report
                failed += 1
                say(f"FAIL {name:<9} {time.monotonic() - t0:6.1f} s  {type(exc).__name__}: {exc}")
                if not isinstance(exc, CheckError):
                    say("".join("     | " + line for line in
                                "".join(traceback.format_exception(exc)).rstrip().splitlines(keepends=True)))
            else:
                passed.add(name)
                say(f"OK   {name:<9} {time.monotonic() - t0:6.1f} s  {detail}")
    finally:
        if keep:
            say(f"kept {state['root']}")
        else:
            shutil.rmtree(state["root"], ignore_errors=True)
    total = time.monotonic() - t_all
    if failed:
        say(f"self-check FAILED: {failed} check(s) did not pass ({total:.1f} s)")
        return 1
    say(f"self-check passed ({total:.1f} s)")
    return 0
