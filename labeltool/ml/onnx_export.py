"""Edge export, torch side: the ONNX graph, its anchors, INT8 quantization and the bundle's files.

The graph is backbone + FPN + RetinaNet heads with the mean/std normalization inside:

    images           float32[B, 3, S, S]  RGB 0..1 letterbox (pixel / 255), padded bottom/right with 114
    cls_logits       float32[B, A, C]     raw class logits (sigmoid classes), levels P3..P7 concatenated
    bbox_regression  float32[B, A, 4]     BoxCoder deltas (dx, dy, dw, dh) against ``anchors.npy``

Anchor decoding, top-k and class-wise NMS stay out of the graph: the bundle's ``infer.py``
(:mod:`labeltool.ml.bundle_infer`) does them in numpy exactly as torchvision's
``RetinaNet.postprocess_detections``. The legacy TorchScript exporter is used (``dynamo=False``).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.image_list import ImageList

from labeltool.core.errors import ImageLoadError, ModelError
from labeltool.ml import bundle_infer
from labeltool.ml.data import LETTERBOX_FILL, load_resized, pad_to_square

INPUT_NAME = "images"
OUTPUT_NAMES = ("cls_logits", "bbox_regression")
DEFAULT_OPSET = 17  # DESIGN.md: opset >= 17; the legacy exporter handles the whole detector at 17
LOAD_MAX_SIDE_FACTOR = 2  # labeltool's load_resized decodes JPEGs with max_side = 2 * image_size
# INT8 (quantize_int8): QDQ, per-channel int8 weights, uint8 activations, MinMax calibration, every op
# onnxruntime can quantize. Measured on a weakly trained edge-preset run (256 px, 40 val images, 32
# calibration images): mAP@.5 0.1635 fp32 -> 0.1608 int8; keeping the last head convs in float gave 0.1607
# (no gain); Conv-only quantization 0.1628 but larger score errors (p99 |d score| 0.0084 vs 0.0067).
INT8_EXCLUDE_HEAD_OUTPUTS = False
README_NAME = "README.md"


class _ExportGraph(nn.Module):
    """``images [B, 3, S, S]`` 0..1 -> ``(cls_logits [B, A, C], bbox_regression [B, A, 4])``."""

    def __init__(self, model: RetinaNet) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.head
        self.register_buffer("mean", torch.tensor(model.transform.image_mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(model.transform.image_std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = (images - self.mean) / self.std  # as GeneralizedRCNNTransform.normalize
        features = list(self.backbone(x).values())  # P3..P7, [B, C, S/8, S/8] ... [B, C, S/128, S/128]
        out = self.head(features)
        return out["cls_logits"], out["bbox_regression"]


class _PaddedConv(nn.Module):
    """A timm ``Conv2dSame`` with its TF "same" padding fixed for one input size: a constant zero pad,
    then the plain convolution (what ``Conv2dSame`` computes, without shape arithmetic in the graph)."""

    def __init__(self, conv: nn.Conv2d, pad: list[int]) -> None:
        super().__init__()
        self.pad = nn.ZeroPad2d(tuple(pad))  # (left, right, top, bottom)
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        return nn.Conv2d.forward(self.conv, self.pad(x))  # Conv2dSame's own padding attribute is 0


def _static_same_padding(graph: _ExportGraph, image_size: int) -> int:
    """Replace every timm ``Conv2dSame`` (EfficientNet-Lite's stride-2 convs) by a constant pad + conv
    for the fixed ``image_size`` input. Traced as is, its padding is computed from the input's shape at
    run time (Shape/Div/Ceil ops); onnxruntime's INT8 preparation mis-sized those pads (a 128 px input
    gave 15x15 instead of 16x16 P3 cells). Returns how many convs were replaced."""
    from timm.layers.conv2d_same import Conv2dSame
    from timm.layers.padding import pad_same_arg

    convs = {name: m for name, m in graph.named_modules() if isinstance(m, Conv2dSame)}
    if not convs:
        return 0
    sizes: dict[str, list[int]] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, args, name=name: sizes.__setitem__(name, list(args[0].shape[-2:])))
             for name, m in convs.items()]
    try:
        with torch.no_grad():
            graph(torch.zeros(1, 3, image_size, image_size))
    finally:
        for hook in hooks:
            hook.remove()
    for name, conv in convs.items():
        pad = pad_same_arg(sizes[name], list(conv.weight.shape[-2:]), list(conv.stride), list(conv.dilation))
        parent, _, child = name.rpartition(".")
        setattr(graph.get_submodule(parent) if parent else graph, child, _PaddedConv(conv, [int(p) for p in pad]))
    return len(convs)


def _check_model(model: object, image_size: object) -> None:
    if not isinstance(model, RetinaNet):
        raise TypeError(f"model must be a torchvision RetinaNet, got {type(model).__name__}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32 or image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32 and >= 32, got {image_size!r}")


def _cpu_copy(model: RetinaNet) -> RetinaNet:
    return copy.deepcopy(model).float().cpu().eval()


@torch.no_grad()
def anchors_for(model: RetinaNet, image_size: int) -> tuple[np.ndarray, list[int]]:
    """The model's own anchors for an ``image_size`` letterbox: ``(float32[A, 4] xyxy px, A per level)``.

    Computed by the model's ``AnchorGenerator`` on real feature maps, in the order of the head outputs.
    """
    _check_model(model, image_size)
    cpu = _cpu_copy(model)
    images = torch.zeros(1, 3, image_size, image_size)
    features = list(cpu.backbone(images).values())
    anchors = cpu.anchor_generator(ImageList(images, [(image_size, image_size)]), features)[0]  # [A, 4]
    per_location = cpu.anchor_generator.num_anchors_per_location()[0]
    per_level = [int(f.shape[2] * f.shape[3] * per_location) for f in features]
    return anchors.numpy().astype(np.float32), per_level


def export_onnx(model: RetinaNet, *, image_size: int, path: Path, opset: int = DEFAULT_OPSET) -> dict[str, Any]:
    """Write the ONNX graph of the module docstring to ``path`` (atomically) and ``onnx.checker`` it.

    The batch axis is dynamic. Returns ``{"opset", "input_name", "output_names", "anchors_per_level",
    "num_classes", "image_size"}``. ``ModelError`` when the export or the check fails.
    """
    _check_model(model, image_size)
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 17:
        raise ValueError(f"opset must be an int >= 17, got {opset!r}")
    path = Path(path)
    graph = _ExportGraph(_cpu_copy(model)).eval()
    _static_same_padding(graph, image_size)
    dummy = torch.rand(1, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # expected: the legacy exporter's deprecation notice and GroupNorm's batch-size check
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=".*The feature will be removed.*")
            warnings.filterwarnings("ignore", message=".*Converting a tensor to a Python boolean.*")
            torch.onnx.export(
                graph, (dummy,), str(tmp), dynamo=False, opset_version=opset, do_constant_folding=True,
                input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
            )
        onnx.checker.check_model(str(tmp), full_check=True)
        os.replace(tmp, path)
    except (RuntimeError, ValueError, TypeError, onnx.checker.ValidationError) as exc:
        raise ModelError(f"ONNX export to {path} failed: {exc}") from exc
    except OSError as exc:
        raise ModelError(f"cannot write {path}: {exc}. Check free disk space and permissions.") from exc
    finally:
        tmp.unlink(missing_ok=True)
    _, per_level = anchors_for(model, image_size)
    return {
        "opset": opset,
        "input_name": INPUT_NAME,
        "output_names": list(OUTPUT_NAMES),
        "anchors_per_level": per_level,
        "num_classes": int(model.head.classification_head.num_classes),
        "image_size": image_size,
    }


class _DropAxisWarnings(logging.Filter):
    """onnxruntime's quantizer logs one root-logger warning per GroupNorm affine constant that is
    per-channel quantized along a missing axis (it falls back to per-tensor); harmless and noisy."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is out-of-range for weight" not in record.getMessage()


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    root, filt = logging.getLogger(), _DropAxisWarnings()
    root.addFilter(filt)
    try:
        yield
    finally:
        root.removeFilter(filt)


class _Reader:
    """onnxruntime ``CalibrationDataReader``: one ``{"images": float32[1, 3, S, S]}`` per calibration image."""

    def __init__(self, images: Iterable[np.ndarray]) -> None:
        self._it: Iterator[np.ndarray] = iter(images)
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        arr = next(self._it, None)
        if arr is None:
            return None
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[1] != 3:
            raise ValueError(f"calibration images must be float32[3, S, S] or [1, 3, S, S], got {arr.shape}")
        self.count += arr.shape[0]
        return {INPUT_NAME: np.ascontiguousarray(arr)}


def head_output_nodes(model_path: Path) -> list[str]:
    """Names of the Conv nodes that produce the head outputs (last cls/bbox convs of every level)."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "Conv"
            and any(w.endswith(("cls_logits.weight", "bbox_reg.weight")) for w in n.input)]


def quantize_int8(fp32_path: Path, int8_path: Path, calibration: Iterable[np.ndarray], *,
                  exclude_head_outputs: bool = INT8_EXCLUDE_HEAD_OUTPUTS) -> None:
    """Static INT8 quantization (QDQ, per-channel int8 weights, uint8 activations, MinMax calibration).

    ``calibration`` yields preprocessed images float32[3, S, S] (RGB 0..1 letterbox, as infer.py's
    ``preprocess``). The model is first prepared with ``quant_pre_process`` (shape inference + graph
    optimization). ``exclude_head_outputs`` keeps the final cls/bbox convs in float (measured: no
    accuracy gain, see ``INT8_EXCLUDE_HEAD_OUTPUTS``). Written atomically; ``ModelError`` on failure.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    images = iter(calibration)
    first = next(images, None)
    if first is None:
        raise ModelError("INT8 quantization needs at least one calibration image; none could be read")
    reader = _Reader(itertools.chain([first], images))
    with tempfile.TemporaryDirectory(prefix="labeltool-int8-") as tmpdir:
        prepared = Path(tmpdir) / "prepared.onnx"
        try:
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        except (RuntimeError, ValueError, OSError, onnx.checker.ValidationError):
            shutil.copyfile(fp32_path, prepared)  # optimization is optional; quantize the plain graph
        exclude = head_output_nodes(prepared) if exclude_head_outputs else []
        out = Path(tmpdir) / "int8.onnx"
        try:
            with _quiet_quantizer():
                quantize_static(
                    str(prepared), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude or None,
                )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"INT8 quantization of {fp32_path} failed: {exc}") from exc
        compact_names(out)
        onnx.checker.check_model(str(out))
        tmp = int8_path.with_name(f".{int8_path.name}.tmp-{os.getpid()}")
        try:
            shutil.copyfile(out, tmp)
            os.replace(tmp, int8_path)
        finally:
            tmp.unlink(missing_ok=True)


def compact_names(path: Path) -> None:
    """Rename the inner tensors and nodes of the ONNX model at ``path`` to short ids, in place.

    The quantizer names every value after its whole module path plus suffixes
    (``/backbone/body/blocks.5/blocks.5.0/conv_pwl/Conv_output_0_QuantizeLinear_Output``): for the
    EfficientNet-Lite0 INT8 model those names were ~0.6 MB of a 4.5 MB file, on a line PC that keeps
    several versions. Graph inputs and outputs keep their names (infer.py uses them)."""
    model = onnx.load(str(path))
    graph = model.graph
    if any(node.op_type in ("If", "Loop", "Scan") for node in graph.node):  # names inside subgraphs: not handled
        raise ModelError(f"{path}: subgraphs are not expected in the exported detector")
    keep = {v.name for v in graph.input} | {v.name for v in graph.output} | {""}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for init in graph.initializer:
        init.name = short(init.name)
    for i, node in enumerate(graph.node):
        node.name = f"n{i}"
        node.doc_string = ""
        node.input[:] = [short(v) for v in node.input]
        node.output[:] = [short(v) for v in node.output]
    for info in graph.value_info:
        info.name = short(info.name)
    onnx.save(model, str(path))


def _calibration_images(paths: list[tuple[Path, int, int]], size: int, skipped: list[str]) -> Iterator[np.ndarray]:
    for path, width, height in paths:
        try:
            arr, _, _ = load_resized(Path(path), size, width=int(width), height=int(height))
        except ImageLoadError as exc:
            skipped.append(str(exc))
            continue
        square = pad_to_square(arr, size)  # uint8[S, S, 3]
        yield np.ascontiguousarray(square.transpose(2, 0, 1)).astype(np.float32) / np.float32(255.0)


def preprocess_spec(model: RetinaNet, *, image_size: int, info: dict[str, Any]) -> dict[str, Any]:
    """The bundle's ``preprocess.json``: everything infer.py needs besides the model and anchors."""
    coder = model.box_coder
    return {
        "bundle_format": bundle_infer.BUNDLE_FORMAT,
        "image_size": image_size,
        "input_name": info["input_name"],
        "output_names": info["output_names"],
        "input_layout": "NCHW float32 RGB 0..1 (pixel / 255); mean/std normalization is inside the ONNX graph",
        "mean": [float(v) for v in model.transform.image_mean],
        "std": [float(v) for v in model.transform.image_std],
        "resize": "bilinear",
        "longest_side": image_size,
        "letterbox_fill": LETTERBOX_FILL,
        "letterbox_pad": "bottom-right",
        "load_max_side": LOAD_MAX_SIDE_FACTOR * image_size,
        "exif_transpose": True,
        "score_thresh": float(model.score_thresh),
        "nms_thresh": float(model.nms_thresh),
        "topk_candidates": int(model.topk_candidates),
        "detections_per_img": int(model.detections_per_img),
        "num_classes": info["num_classes"],
        "anchors_per_level": info["anchors_per_level"],
        "box_coder": {"weights": [float(w) for w in coder.weights], "bbox_xform_clip": float(coder.bbox_xform_clip)},
    }


def _readme(spec: dict[str, Any], labels: list[str], models: list[str]) -> str:
    names = ", ".join(labels)
    return f"""# Defect detector bundle

Made by labeltool. Detects: {names}. Input: any image; it is resized to {spec['image_size']} px internally.

## Install (once, on the line computer)

    python -m pip install numpy onnxruntime pillow

Python 3.9 or newer. No internet is needed afterwards; torch is not needed.

## Run

    python infer.py photo.jpg                        # one image, prints JSON
    python infer.py images/ --out results.json       # every image of a folder
    python infer.py images/ --model int8             # faster, smaller model ({', '.join(models)} available)
    python infer.py incoming/ --watch                # keep running: each new image gets <file name>.json next to it
    python infer.py incoming/ --watch --out results/ # ... written into results/ instead

Options: `--threads N` (CPU threads), `--score-threshold 0.3` (hide weaker detections; default
{spec['score_thresh']}), `--interval 0.5` (seconds between folder checks in watch mode). Stop watch mode
with Ctrl+C. An image that cannot be read is logged and reported with an `"error"`; the rest goes on.

## Output

One JSON object per image:

    {{"file": "part_001.png", "width": 1280, "height": 960, "ms": 14.2,
      "detections": [{{"label": "{labels[0]}", "class_id": 0, "score": 0.91, "box": [x1, y1, x2, y2]}}]}}

`box` is in pixels of the original image (left, top, right, bottom), `score` is 0..1, `ms` the time
for that image. Exit code: 0 all images done, 1 some image could not be read.

## Files

`model_*.onnx` the network, `anchors.npy` and `preprocess.json` the settings infer.py needs,
`labels.json` the class names in order. Do not edit them.
"""


def write_bundle(out_dir: Path, *, model: RetinaNet, config: dict[str, Any],
                 calibration_paths: list[tuple[Path, int, int]], int8: bool = True, fp16: bool = False) -> dict[str, Any]:
    """Write an edge bundle into ``out_dir`` (no manifest; see core/bundle.py).

    Files: ``model_fp32.onnx``, ``model_int8.onnx`` (when ``int8``; calibrated on
    ``calibration_paths`` = ``(path, displayed width, displayed height)``), ``model_fp16.onnx`` (when
    ``fp16``; float32 inputs/outputs), ``anchors.npy``, ``labels.json``, ``preprocess.json``,
    ``infer.py``, ``README.md``. Returns ``{"files": {name: bytes}, "calibration_images": n,
    "calibration_skipped": [reasons], "onnx": export info}``.
    """
    class_names = config.get("class_names")
    image_size = config.get("image_size")
    if not isinstance(class_names, list) or not class_names or not all(isinstance(c, str) for c in class_names):
        raise ValueError(f"config['class_names'] must be a non-empty list of strings, got {class_names!r}")
    _check_model(model, image_size)
    if len(class_names) != model.head.classification_head.num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with "
                         f"{model.head.classification_head.num_classes} classes")
    if int8 and not calibration_paths:
        raise ValueError("int8=True needs calibration_paths (project images)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = out_dir / bundle_infer.MODEL_FILES["fp32"]
    info = export_onnx(model, image_size=image_size, path=fp32)
    anchors, per_level = anchors_for(model, image_size)
    np.save(out_dir / "anchors.npy", anchors, allow_pickle=False)
    spec = preprocess_spec(model, image_size=image_size, info=info)
    models = ["fp32"]
    skipped: list[str] = []
    used = 0
    if int8:
        def counted() -> Iterator[np.ndarray]:  # streamed: a 512 px image is 3 MB as float32
            nonlocal used
            for image in _calibration_images(calibration_paths, image_size, skipped):
                used += 1
                yield image

        try:
            quantize_int8(fp32, out_dir / bundle_infer.MODEL_FILES["int8"], counted())
        except ModelError as exc:
            if used == 0:
                raise ModelError(f"none of the {len(calibration_paths)} calibration images could be read: "
                                 f"{skipped[:3]}") from exc
            raise
        models.append("int8")
    if fp16:
        from onnxruntime.transformers.float16 import convert_float_to_float16
        from onnxruntime.transformers.onnx_model import OnnxModel

        half = OnnxModel(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True))
        half.topological_sort()  # the converter appends the input Cast after its consumers
        half = half.model
        onnx.checker.check_model(half)
        onnx.save(half, str(out_dir / bundle_infer.MODEL_FILES["fp16"]))
        models.append("fp16")
    spec["models"] = {m: bundle_infer.MODEL_FILES[m] for m in models}
    texts = {
        "labels.json": json.dumps(class_names, indent=1) + "\n",
        "preprocess.json": json.dumps(spec, indent=1) + "\n",
        "infer.py": Path(bundle_infer.__file__).read_text(encoding="utf-8"),
        README_NAME: _readme(spec, class_names, models),
    }
    for name, text in texts.items():
        tmp = out_dir / f".{name}.tmp-{os.getpid()}"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out_dir / name)
    names = [bundle_infer.MODEL_FILES[m] for m in models] + ["anchors.npy", *texts]
    return {
        "files": {n: (out_dir / n).stat().st_size for n in names},
        "calibration_images": used,
        "calibration_skipped": skipped,
        "onnx": info,
        "models": models,
        "anchors_per_level": per_level,
    }
