#!/usr/bin/env python3
"""Run a labeltool edge bundle's detector on images. Needs only numpy, onnxruntime and pillow.

Usage::

    python infer.py IMAGE_OR_FOLDER [--model fp32|int8|fp16] [--threads N] [--out PATH]
                    [--score-threshold T] [--watch] [--interval S]

Output, one JSON object per image (a JSON array for a run over an image or a folder)::

    {"file": "part_001.png", "width": 1280, "height": 960, "ms": 14.2,
     "detections": [{"label": "scratch", "class_id": 0, "score": 0.91, "box": [x1, y1, x2, y2]}]}

``box``: float pixels of the image as displayed (EXIF orientation applied). ``ms``: wall time of
reading + preprocessing + network + decoding. An image that cannot be read gives
``{"file": ..., "error": "...", "detections": []}`` and the run goes on (exit code 1 at the end).
``--watch`` polls the folder, processes each new image once (after its size stopped changing for
one interval) and writes ``<file name>.json`` next to it (or into ``--out`` as a folder).

This file is copied verbatim into every bundle by labeltool (``labeltool/ml/bundle_infer.py``); it
imports no labeltool and no torch. Preprocessing and decoding reproduce labeltool's PyTorch pipeline:
image loading as ``labeltool.core.images.load_image(max_side=2*S)`` (JPEG draft decoding, EXIF
orientation, RGB conversion), the letterbox of ``labeltool.ml.data`` and torchvision's
``RetinaNet.postprocess_detections`` (per-level top-k, box decoding, class-wise NMS).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image, JpegImagePlugin

try:  # Pillow may be built without LittleCMS; CMYK images then use the plain conversion
    from PIL import ImageCms
except ImportError:  # pragma: no cover
    ImageCms = None  # type: ignore[assignment]

BUNDLE_FORMAT = 1  # preprocess.json layout this script reads
MODEL_FILES = {"fp32": "model_fp32.onnx", "int8": "model_int8.onnx", "fp16": "model_fp16.onnx"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAX_IMAGE_PIXELS = 250_000_000  # as labeltool: line-scan cameras make 50-150 MP frames
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
_BIT_DEPTHS = (8, 10, 12, 14, 16)  # 16-bit containers are scaled by the smallest depth holding the maximum
_NMS_VANILLA_NUMEL = 4000  # torchvision batched_nms on CPU: per-class loop above this many coordinates
log = logging.getLogger("infer")


class ImageError(Exception):
    """An image file cannot be read (missing, not an image, truncated, too large)."""


@dataclass
class Bundle:
    """A loaded bundle: ONNX session, preprocess spec, anchors float32[A, 4] xyxy letterbox px, labels."""

    directory: Path
    session: ort.InferenceSession
    spec: dict[str, Any]
    anchors: np.ndarray
    labels: list[str]
    model: str


def load_bundle(directory: str | Path | None = None, model: str = "fp32", threads: int | None = None) -> Bundle:
    """Open the bundle in ``directory`` (default: this file's folder) with the ``model`` variant."""
    directory = Path(directory) if directory is not None else Path(__file__).resolve().parent
    spec = json.loads((directory / "preprocess.json").read_text(encoding="utf-8"))
    if int(spec.get("bundle_format", 0)) > BUNDLE_FORMAT:
        raise ValueError(f"bundle format {spec['bundle_format']} is newer than this infer.py reads ({BUNDLE_FORMAT})")
    if model not in MODEL_FILES:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODEL_FILES)}")
    path = directory / MODEL_FILES[model]
    if not path.is_file():
        raise ValueError(f"{path} is missing: this bundle has no {model} model")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    anchors = np.load(directory / "anchors.npy", allow_pickle=False).astype(np.float32)
    labels = json.loads((directory / "labels.json").read_text(encoding="utf-8"))
    if anchors.shape != (sum(spec["anchors_per_level"]), 4):
        raise ValueError(f"anchors.npy has shape {anchors.shape}, preprocess.json expects {spec['anchors_per_level']}")
    return Bundle(directory, session, spec, anchors, list(labels), model)


# --- image loading (as labeltool.core.images.load_image) ------------------------------------------


def _orientation(img: Image.Image) -> int:
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = img.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError, EOFError, IndexError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _over_white(rgba: Image.Image) -> Image.Image:
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def _bits(peak: float) -> int:
    for bits in _BIT_DEPTHS:
        if peak <= 2**bits - 1:
            return bits
    return max(17, int(math.ceil(peak)).bit_length())


def to_rgb8(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB: alpha over white, 16-bit grey by its sensor bit depth, CMYK via ICC."""
    mode = img.mode
    if mode in ("RGB", "L", "1"):
        if mode != "1" and "transparency" in img.info:
            return _over_white(img.convert("RGBA"))
        return img if mode == "RGB" else img.convert("RGB")
    if mode in ("P", "PA", "RGBA", "LA", "RGBa"):
        return _over_white(img.convert("RGBA"))
    if mode == "La":
        return _over_white(img.convert("LA").convert("RGBA"))
    if mode == "CMYK" and img.info.get("icc_profile") and ImageCms is not None:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
            dst = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            out = ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            out = None  # unusable profile: plain conversion below
        if out is not None and out.mode == "RGB":
            return out
    if mode.startswith("I") or mode == "F":
        values = np.asarray(img)
        if mode == "F":
            values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(values.max()) if values.size else 0.0
        if mode == "F" and peak <= 1.0:
            out8 = np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)
        elif values.dtype.kind in "iu" and peak <= 65535:
            lut = np.clip(np.rint(np.arange(65536) * (255.0 / (2 ** _bits(peak) - 1))), 0, 255).astype(np.uint8)
            out8 = lut[np.clip(values, 0, 65535)]
        else:
            scaled = values.astype(np.float32) * np.float32(255.0 / (2 ** _bits(peak) - 1))
            out8 = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(out8)).convert("RGB")
    return img.convert("RGB")


def load_rgb(path: str | Path, max_side: int) -> tuple[Image.Image, int, int]:
    """``(RGB image with longest side <= max_side, displayed width, displayed height)``; ``ImageError``."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with path.open("rb") as fp:
                img = Image.open(fp)
                orientation = _orientation(img)
                w, h = img.size
                if isinstance(img, JpegImagePlugin.JpegImageFile) and max_side / max(w, h) < 1:
                    scale = max_side / max(w, h)  # libjpeg DCT scaling, as labeltool's load_image
                    img.draft("RGB", (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))))
                img.load()
                rgb = to_rgb8(img)
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, MemoryError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: cannot read the image ({type(exc).__name__}: {exc})") from exc
    if max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    if orientation in _TRANSPOSE:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
    width, height = (h, w) if orientation >= 5 else (w, h)
    return rgb, width, height


def preprocess(path: str | Path, spec: dict[str, Any]) -> tuple[np.ndarray, dict[str, float]]:
    """Image file -> ``(float32[3, S, S] RGB 0..1 letterbox, meta {width, height, sx, sy})``.

    Longest side resized to S (bilinear), padded bottom/right with the fill value; mean/std
    normalization happens inside the ONNX graph. ``sx, sy``: scale from image to letterbox pixels.
    """
    size = int(spec["image_size"])
    img, width, height = load_rgb(path, max_side=int(spec.get("load_max_side", 2 * size)))
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if img.size != (new_w, new_h):
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    canvas = np.full((size, size, 3), int(spec["letterbox_fill"]), dtype=np.uint8)
    canvas[:new_h, :new_w] = arr
    tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)).astype(np.float32) / np.float32(255.0)
    return tensor, {"width": width, "height": height, "sx": new_w / width, "sy": new_h / height}


# --- network and decoding ----------------------------------------------------------------------------


def detect(bundle: Bundle, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32[B, 3, S, S] -> raw head outputs ``(cls_logits [B, A, C], bbox_regression [B, A, 4])``."""
    spec = bundle.spec
    cls, reg = bundle.session.run(spec["output_names"], {spec["input_name"]: np.ascontiguousarray(batch, np.float32)})
    return cls.astype(np.float32, copy=False), reg.astype(np.float32, copy=False)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32)


def decode_boxes(rel: np.ndarray, anchors: np.ndarray, *, weights: Sequence[float], clip: float) -> np.ndarray:
    """torchvision ``BoxCoder.decode_single`` in float32: deltas [N, 4] + anchors [N, 4] -> xyxy [N, 4]."""
    f = np.float32
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    ctr_x = anchors[:, 0] + f(0.5) * widths
    ctr_y = anchors[:, 1] + f(0.5) * heights
    dx, dy = rel[:, 0] / f(weights[0]), rel[:, 1] / f(weights[1])
    dw = np.minimum(rel[:, 2] / f(weights[2]), f(clip))
    dh = np.minimum(rel[:, 3] / f(weights[3]), f(clip))
    pred_ctr_x, pred_ctr_y = dx * widths + ctr_x, dy * heights + ctr_y
    half_w, half_h = f(0.5) * (np.exp(dw) * widths), f(0.5) * (np.exp(dh) * heights)
    return np.stack([pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Greedy NMS as torchvision's CPU kernel: indices kept, by decreasing score (IoU > thresh suppressed)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    with np.errstate(invalid="ignore", divide="ignore"):
        while order.size:
            i, rest = order[0], order[1:]
            keep.append(i)
            w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
            h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
            inter = w * h
            iou = inter / (areas[i] + areas[rest] - inter)
            order = rest[~(iou > np.float32(iou_thresh))]  # NaN (two empty boxes) is not suppressed
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Class-wise NMS as ``torchvision.ops.batched_nms`` on CPU (coordinate offset trick or per-class loop)."""
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    if boxes.size > _NMS_VANILLA_NUMEL:
        keep_mask = np.zeros(len(scores), dtype=bool)
        for c in np.unique(labels):
            idx = np.nonzero(labels == c)[0]
            keep_mask[idx[nms(boxes[idx], scores[idx], iou_thresh)]] = True
        kept = np.nonzero(keep_mask)[0]
        return kept[np.argsort(-scores[kept], kind="stable")]
    offsets = labels.astype(np.float32) * (boxes.max() + np.float32(1))
    return nms(boxes + offsets[:, None], scores, iou_thresh)


def decode(cls_logits: np.ndarray, bbox_regression: np.ndarray, *, anchors: np.ndarray, spec: dict[str, Any],
           score_thresh: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's head outputs (``[A, C]``, ``[A, 4]``) -> ``(boxes float32[N, 4] letterbox px,
    scores float32[N], labels int64[N])``, exactly as torchvision's ``RetinaNet.postprocess_detections``."""
    thresh = float(spec["score_thresh"] if score_thresh is None else score_thresh)
    size = float(spec["image_size"])
    coder = spec["box_coder"]
    num_classes = cls_logits.shape[-1]
    all_boxes, all_scores, all_labels = [], [], []
    start = 0
    for count in spec["anchors_per_level"]:
        logits = cls_logits[start:start + count]
        scores = _sigmoid(logits).ravel()
        idxs = np.nonzero(scores > np.float32(thresh))[0]
        scores = scores[idxs]
        top = np.argsort(-scores, kind="stable")[: int(spec["topk_candidates"])]
        scores, idxs = scores[top], idxs[top]
        anchor_idx = idxs // num_classes + start
        boxes = decode_boxes(bbox_regression[anchor_idx], anchors[anchor_idx],
                             weights=coder["weights"], clip=coder["bbox_xform_clip"])
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], np.float32(0), np.float32(size))
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], np.float32(0), np.float32(size))
        all_boxes.append(boxes)
        all_scores.append(scores)
        all_labels.append(idxs % num_classes)
        start += count
    boxes = np.concatenate(all_boxes).astype(np.float32).reshape(-1, 4)
    scores = np.concatenate(all_scores).astype(np.float32)
    labels = np.concatenate(all_labels).astype(np.int64)
    keep = batched_nms(boxes, scores, labels, float(spec["nms_thresh"]))[: int(spec["detections_per_img"])]
    return boxes[keep], scores[keep], labels[keep]


def unletterbox(boxes: np.ndarray, meta: dict[str, float]) -> np.ndarray:
    """Letterbox px -> image px (as ``labeltool.ml.data.unletterbox_boxes``), clipped to the image."""
    out = boxes.astype(np.float32, copy=True).reshape(-1, 4)
    out[:, [0, 2]] /= meta["sx"]
    out[:, [1, 3]] /= meta["sy"]
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, meta["width"])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, meta["height"])
    return out


def run_image(bundle: Bundle, path: str | Path, *, score_thresh: float | None = None) -> dict[str, Any]:
    """Detect on one image file -> the output JSON object (with ``"error"`` when it cannot be read)."""
    t0 = time.perf_counter()
    try:
        tensor, meta = preprocess(path, bundle.spec)
    except ImageError as exc:
        log.warning("%s", exc)
        return {"file": Path(path).name, "error": str(exc), "detections": []}
    cls, reg = detect(bundle, tensor[None])
    boxes, scores, labels = decode(cls[0], reg[0], anchors=bundle.anchors, spec=bundle.spec, score_thresh=score_thresh)
    boxes = unletterbox(boxes, meta)
    ms = (time.perf_counter() - t0) * 1000.0
    dets = [{"label": bundle.labels[int(labels[i])], "class_id": int(labels[i]), "score": round(float(scores[i]), 6),
             "box": [round(float(v), 4) for v in boxes[i]]} for i in range(len(scores))]  # no zip(strict): Python 3.9
    return {"file": Path(path).name, "width": meta["width"], "height": meta["height"], "detections": dets,
            "ms": round(ms, 2)}


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (not hidden), sorted by name."""
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_EXTENSIONS), key=lambda p: p.name.casefold())


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def watch(bundle: Bundle, folder: Path, *, out_dir: Path | None = None, interval: float = 0.5,
          score_thresh: float | None = None, stop: Callable[[], bool] | None = None) -> None:
    """Poll ``folder``; detect on every new or changed image once its size and time stopped changing
    for one poll, write ``<file name>.json`` (next to it or into ``out_dir``) and print it as one line."""
    done: dict[Path, tuple[int, int]] = {}
    pending: dict[Path, tuple[int, int]] = {}
    while stop is None or not stop():
        for path in list_images(folder):
            try:
                st = path.stat()
            except OSError:
                continue
            sig = (st.st_size, st.st_mtime_ns)
            target = (out_dir or folder) / f"{path.name}.json"
            if done.get(path) == sig:
                continue
            if path not in done and target.exists() and target.stat().st_mtime_ns >= st.st_mtime_ns:
                done[path] = sig  # processed before a restart
                continue
            if pending.get(path) != sig:
                pending[path] = sig  # wait one poll: the camera may still be writing it
                continue
            result = run_image(bundle, path, score_thresh=score_thresh)
            try:
                _write_json(target, result)
            except OSError as exc:
                log.error("cannot write %s: %s", target, exc)
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
            done[path] = sig
            pending.pop(path, None)
        time.sleep(interval)


def check_signature(directory: Path, public_key_file: Path) -> str | None:
    """Why the bundle in ``directory`` must not run (not signed by the key in ``public_key_file``, or a
    file differs from its manifest), or None when it may. Same rule as labeltool's core/signing.py."""
    import base64
    import hashlib

    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        return "checking a signature needs the cryptography package: pip install cryptography"
    directory = Path(directory)
    try:
        parts = Path(public_key_file).read_text(encoding="utf-8").split()
        key = base64.b64decode(parts[1], validate=True)
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        sig = manifest.pop("signature")
        body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
        if base64.b64decode(sig["public_key"], validate=True) != key:
            return f"the bundle is signed by another key than {public_key_file}; not running it"
        Ed25519PublicKey.from_public_bytes(key).verify(base64.b64decode(sig["value"], validate=True), body)
    except (OSError, ValueError, KeyError, IndexError, TypeError, InvalidSignature) as exc:
        return f"the bundle's signature cannot be checked against {public_key_file} ({type(exc).__name__}); not running it"
    for name, entry in manifest["files"].items():
        path = directory / name
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return f"{name} is missing from the bundle; not running it"
        if digest != entry["sha256"]:
            return f"{name} differs from the signed manifest; not running it"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; returns the exit code (0 ok, 1 some image failed, 2 bad arguments)."""
    parser = argparse.ArgumentParser(description="Detect defects with a labeltool edge bundle.")
    parser.add_argument("input", type=Path, help="an image file or a folder of images")
    parser.add_argument("--model", choices=sorted(MODEL_FILES), default="fp32", help="model variant (default fp32)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for onnxruntime (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write (folder in --watch mode)")
    parser.add_argument("--score-threshold", type=float, default=None, help="minimum score (default from bundle)")
    parser.add_argument("--watch", action="store_true", help="keep polling the folder for new images")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between polls in --watch mode")
    parser.add_argument("--bundle", type=Path, default=None, help="bundle folder (default: this script's folder)")
    parser.add_argument("--public-key", type=Path, default=None,
                        help="refuse to run unless the bundle is signed by this key (labeltool's signing-key.pub; "
                             "needs the cryptography package) and every file matches the manifest")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.score_threshold is not None and not 0.0 <= args.score_threshold < 1.0:
        parser.error("--score-threshold must be in [0, 1)")
    if not args.input.exists():
        parser.error(f"{args.input} does not exist")
    if args.public_key is not None:
        problem = check_signature(args.bundle or Path(__file__).resolve().parent, args.public_key)
        if problem:
            log.error("%s", problem)
            return 3
    bundle = load_bundle(args.bundle, model=args.model, threads=args.threads)
    if args.watch:
        if not args.input.is_dir():
            parser.error("--watch needs a folder")
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        log.info("watching %s (model %s); Ctrl+C to stop", args.input, args.model)
        try:
            watch(bundle, args.input, out_dir=args.out, interval=args.interval, score_thresh=args.score_threshold)
        except KeyboardInterrupt:
            pass
        return 0
    paths = list_images(args.input) if args.input.is_dir() else [args.input]
    results = [run_image(bundle, p, score_thresh=args.score_threshold) for p in paths]
    if args.out is not None:
        _write_json(args.out, results)
    else:
        sys.stdout.write(json.dumps(results, indent=1) + "\n")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
