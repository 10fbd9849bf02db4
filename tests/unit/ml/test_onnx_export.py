"""Edge export: ONNX graph and anchors, numpy decoding vs torchvision, FP32 parity with PyTorch,
INT8/FP16 bundles, and the bundle's infer.py in a fresh torch-free virtualenv (tiny random model)."""

from __future__ import annotations

import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.image_list import ImageList

from labeltool.core.images import probe_image
from labeltool.core.synth import generate_dataset
from labeltool.ml import bundle_infer as bi
from labeltool.ml.data import DetectionDataset, Sample
from labeltool.ml.model import build_model
from labeltool.ml.onnx_export import anchors_for, export_onnx, write_bundle
from labeltool.ml.predict import predict_samples
from labeltool.ml.presets import get_preset

SIZE = 128
CLASSES = ["scratch", "dent", "crack"]


@pytest.fixture(scope="module")
def model() -> RetinaNet:
    """Random edge-preset model whose class logits spread around the 0.05 threshold (not all ~0.01)."""
    torch.manual_seed(0)
    m = build_model(get_preset("edge"), num_classes=len(CLASSES), image_size=SIZE)
    with torch.no_grad():
        nn.init.normal_(m.head.classification_head.cls_logits.weight, std=0.07)  # Lite0 features: 0.1 puts >100 boxes over 0.5
        m.head.classification_head.cls_logits.bias.fill_(-4.0)
        nn.init.normal_(m.head.regression_head.bbox_reg.weight, std=0.02)
    return m.eval()


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    """Square PNGs, a wide PNG, a large EXIF-rotated JPEG (draft decoding), RGBA and 16-bit grey PNGs."""
    root = tmp_path_factory.mktemp("images")
    labels = generate_dataset(root, n_images=4, seed=3, size=160)
    paths = [r.source for r in labels.images]
    base = Image.open(paths[0]).convert("RGB")
    base.crop((0, 0, 160, 100)).save(root / "wide.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 420x300, displayed 300x420 (rotated)
    base.resize((420, 300)).save(root / "rotated.jpg", quality=92, exif=exif.tobytes())
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    rgba.save(root / "alpha.png")
    grey = (np.asarray(base.convert("L"), dtype=np.uint16) * 16).astype(np.uint16)  # 12-bit data in 16 bits
    Image.fromarray(grey).save(root / "grey16.png")
    paths += [root / n for n in ("wide.png", "rotated.jpg", "alpha.png", "grey16.png")]
    out = []
    for i, p in enumerate(paths):
        info = probe_image(p)
        out.append(Sample(image_id=i, path=Path(p), boxes=np.zeros((0, 4), np.float32),
                          labels=np.zeros(0, np.int64), split=None, width=info.width, height=info.height))
    assert (out[5].width, out[5].height) == (300, 420)
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, model: RetinaNet, samples: list[Sample]) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bundle")
    info = write_bundle(out, model=model, config={"class_names": CLASSES, "image_size": SIZE},
                        calibration_paths=[(s.path, s.width, s.height) for s in samples], int8=True, fp16=True)
    return out, info


def _bundle_detections(b: bi.Bundle, samples: list[Sample], score_thresh: float | None = None) -> list[tuple]:
    out = []
    for s in samples:
        x, meta = bi.preprocess(s.path, b.spec)
        cls, reg = bi.detect(b, x[None])
        boxes, scores, labels = bi.decode(cls[0], reg[0], anchors=b.anchors, spec=b.spec, score_thresh=score_thresh)
        out.append((bi.unletterbox(boxes, meta), scores, labels))
    return out


def test_anchors_are_the_models_own(model: RetinaNet) -> None:
    anchors, per_level = anchors_for(model, SIZE)
    per_location = 9  # 3 scales x 3 aspect ratios
    assert per_level == [(SIZE // s) ** 2 * per_location for s in (8, 16, 32, 64, 128)]
    assert anchors.shape == (sum(per_level), 4) and anchors.dtype == np.float32
    images = torch.zeros(1, 3, SIZE, SIZE)
    with torch.no_grad():
        features = list(model.backbone(images).values())
    expected = model.anchor_generator(ImageList(images, [(SIZE, SIZE)]), features)[0].numpy()
    np.testing.assert_array_equal(anchors, expected)


def test_export_onnx_graph_matches_torch_heads(model: RetinaNet, tmp_path: Path) -> None:
    info = export_onnx(model, image_size=SIZE, path=tmp_path / "m.onnx")
    assert info["opset"] == 17 and info["input_name"] == "images"
    assert info["output_names"] == ["cls_logits", "bbox_regression"]
    onnx.checker.check_model(str(tmp_path / "m.onnx"))
    a = sum(info["anchors_per_level"])
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    cls, reg = sess.run(None, {"images": x.numpy()})
    assert cls.shape == (2, a, len(CLASSES)) and reg.shape == (2, a, 4)  # dynamic batch
    with torch.no_grad():
        out = model.head(list(model.backbone(model.transform.normalize(x)).values()))
    np.testing.assert_allclose(cls, out["cls_logits"].numpy(), atol=1e-4)
    np.testing.assert_allclose(reg, out["bbox_regression"].numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="image_size"):
        export_onnx(model, image_size=100, path=tmp_path / "bad.onnx")


def _from_input(graph: onnx.GraphProto, value: str) -> bool:
    """Whether ``value`` is computed (transitively) from a graph input (the image tensor)."""
    producer = {o: n for n in graph.node for o in n.output}
    inputs = {i.name for i in graph.input}

    def walk(v: str) -> bool:
        node = producer.get(v)
        return v in inputs or (node is not None and any(walk(i) for i in node.input if i))

    return walk(value)


def test_same_padding_is_constant_in_every_bundle_model(bundle: tuple[Path, dict]) -> None:
    """EfficientNet-Lite's TF 'same' pads are computed from the input shape when traced as is; the export
    fixes them for its input size, so no model of the bundle (INT8 included) sizes its feature maps at
    run time, and the INT8 model has as many anchors as the FP32 one."""
    for name in ("model_fp32.onnx", "model_int8.onnx", "model_fp16.onnx"):
        graph = onnx.load(str(bundle[0] / name)).graph
        assert "Ceil" not in {n.op_type for n in graph.node}, name  # (the head's reshapes keep their Shape ops)
        pads = [n for n in graph.node if n.op_type == "Pad"]
        assert not any(_from_input(graph, n.input[1]) for n in pads), name
        assert pads or name != "model_fp32.onnx"  # INT8 preparation folds the constant pads into the convs


def test_int8_model_keeps_short_names(bundle: tuple[Path, dict]) -> None:
    """The quantizer's long value names are renamed to short ids (a tenth of the INT8 file otherwise);
    the input and output names infer.py uses stay."""
    graph = onnx.load(str(bundle[0] / "model_int8.onnx")).graph
    io_names = {v.name for v in graph.input} | {v.name for v in graph.output}
    assert io_names == {"images", "cls_logits", "bbox_regression"}
    inner = {v for n in graph.node for v in (*n.input, *n.output)} - io_names - {""}
    assert inner and max(len(v) for v in inner | {n.name for n in graph.node}) <= 8


def test_decode_boxes_matches_torchvision_box_coder() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (500, 2)).astype(np.float32)
    anchors = np.concatenate([xy, xy + rng.uniform(4, 60, (500, 2)).astype(np.float32)], axis=1)
    rel = rng.normal(0, 1.5, (500, 4)).astype(np.float32)
    rel[:5, 2:] = 9.0  # beyond the log(1000/16) clamp
    coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    expected = coder.decode_single(torch.from_numpy(rel), torch.from_numpy(anchors)).numpy()
    got = bi.decode_boxes(rel, anchors, weights=coder.weights, clip=coder.bbox_xform_clip)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("n", [300, 1500])  # <= 1000 boxes: torchvision's offset trick; more: per-class loop
def test_batched_nms_matches_torchvision(n: int) -> None:
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 120, (n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(2, 40, (n, 2)).astype(np.float32)], axis=1)
    boxes[:10, 2:] = boxes[:10, :2]  # empty boxes (clipped outside the image)
    scores = rng.permutation(n).astype(np.float32) / n + 0.01
    labels = rng.integers(0, 3, n).astype(np.int64)
    expected = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                                           torch.from_numpy(labels), 0.5).numpy()
    np.testing.assert_array_equal(bi.batched_nms(boxes, scores, labels, 0.5), expected)


def test_bundle_preprocess_equals_training_pipeline(bundle: tuple[Path, dict], samples: list[Sample]) -> None:
    b = bi.load_bundle(bundle[0])
    dataset = DetectionDataset(samples, size=SIZE)
    for i, s in enumerate(samples):
        x, meta = bi.preprocess(s.path, b.spec)
        image, _, ref_meta = dataset[i]
        np.testing.assert_array_equal(x, image.numpy(), err_msg=s.path.name)
        assert (meta["width"], meta["height"]) == (s.width, s.height)
        assert meta["sx"] == ref_meta["sx"] and meta["sy"] == ref_meta["sy"]


@pytest.mark.parametrize("score_thresh", [0.05, 0.5])
def test_fp32_bundle_matches_pytorch(bundle: tuple[Path, dict], model: RetinaNet, samples: list[Sample],
                                     score_thresh: float) -> None:
    torch_model = copy.deepcopy(model)
    torch_model.score_thresh = score_thresh
    expected = predict_samples(torch_model, samples, size=SIZE)
    got = _bundle_detections(bi.load_bundle(bundle[0], threads=2), samples, score_thresh=score_thresh)
    counts = [len(e[0]) for e in expected]
    assert sum(counts) > 0, counts
    if score_thresh > 0.05:  # fewer candidates than detections_per_img: the score threshold decides
        assert min(counts) < torch_model.detections_per_img, counts
    for s, (eb, es, el), (gb, gs, gl) in zip(samples, expected, got, strict=True):
        assert len(gb) == len(eb), s.path.name
        np.testing.assert_array_equal(gl, el, err_msg=s.path.name)
        np.testing.assert_allclose(gb, eb, atol=1e-3, err_msg=s.path.name)
        np.testing.assert_allclose(gs, es, atol=1e-4, err_msg=s.path.name)


def test_bundle_files_and_spec(bundle: tuple[Path, dict], samples: list[Sample]) -> None:
    out, info = bundle
    files = info["files"]
    for name in ("model_fp32.onnx", "model_int8.onnx", "model_fp16.onnx", "anchors.npy", "labels.json",
                 "preprocess.json", "infer.py", "README.md"):
        assert files[name] == (out / name).stat().st_size > 0, name
    assert info["calibration_images"] == len(samples) and info["calibration_skipped"] == []
    assert files["model_int8.onnx"] < files["model_fp32.onnx"] / 2.5
    assert json.loads((out / "labels.json").read_text()) == CLASSES
    spec = json.loads((out / "preprocess.json").read_text())
    assert spec["image_size"] == SIZE and spec["letterbox_fill"] == 114 and spec["resize"] == "bilinear"
    assert spec["score_thresh"] == 0.05 and spec["nms_thresh"] == 0.5 and spec["topk_candidates"] == 1000
    assert spec["anchors_per_level"] == info["anchors_per_level"] and len(spec["mean"]) == 3
    assert (out / "infer.py").read_text() == Path(bi.__file__).read_text()
    readme = (out / "README.md").read_text()
    assert "pip install numpy onnxruntime pillow" in readme and "--watch" in readme
    for name in ("model_int8.onnx", "model_fp16.onnx"):
        onnx.checker.check_model(str(out / name))


def test_infer_template_imports_no_labeltool_or_torch() -> None:
    tree = ast.parse(Path(bi.__file__).read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    # cryptography only inside check_signature (--public-key), behind an ImportError with the pip command
    assert mods - set(sys.stdlib_module_names) == {"numpy", "onnxruntime", "PIL", "cryptography"}
    source = Path(bi.__file__).read_text()
    assert source.count("from cryptography") == 2 and "except ImportError:" in source.split("def check_signature")[1]


@pytest.mark.parametrize("variant", ["int8", "fp16"])
def test_reduced_bundles_give_sane_detections(bundle: tuple[Path, dict], samples: list[Sample], variant: str) -> None:
    b, ref = bi.load_bundle(bundle[0], model=variant), bi.load_bundle(bundle[0])
    x = np.stack([bi.preprocess(s.path, b.spec)[0] for s in samples])
    cls, reg = bi.detect(b, x)
    ref_cls, _ = bi.detect(ref, x)
    assert cls.shape == ref_cls.shape and reg.shape == (len(samples), ref.anchors.shape[0], 4)
    corr = np.corrcoef(cls.ravel(), ref_cls.ravel())[0, 1]
    assert corr > (0.9 if variant == "int8" else 0.999), corr
    for s in samples:
        r = bi.run_image(b, s.path)
        assert (r["width"], r["height"]) == (s.width, s.height) and len(r["detections"]) <= 100
        for d in r["detections"]:
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 <= x2 <= s.width and 0 <= y1 <= y2 <= s.height
            assert 0.05 < d["score"] <= 1 and d["label"] == CLASSES[d["class_id"]]


def test_unreadable_image_is_reported_not_raised(bundle: tuple[Path, dict], tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(bi.ImageError, match="broken.jpg"):
        bi.preprocess(bad, {"image_size": SIZE, "letterbox_fill": 114})
    r = bi.run_image(bi.load_bundle(bundle[0]), bad)
    assert r["detections"] == [] and "broken.jpg" in r["error"]


# --- infer.py as a line technician runs it: a fresh virtualenv without torch ------------------------


@pytest.fixture(scope="session")
def bundle_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python of a new virtualenv with only numpy, onnxruntime and pillow (from the package index)."""
    venv = tmp_path_factory.mktemp("venv") / "edge"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "numpy", "onnxruntime", "pillow"],
                         capture_output=True, text=True, timeout=600)
    if pip.returncode != 0:
        if os.environ.get("LABELTOOL_REQUIRE_SHARED") == "1":  # CI has the package index: never skip there
            pytest.fail(f"pip install into the edge virtualenv failed: {pip.stderr[-500:]}")
        pytest.skip(f"cannot install numpy/onnxruntime/pillow into a virtualenv (offline?): {pip.stderr[-500:]}")
    return python


@pytest.mark.slow
def test_infer_script_runs_without_torch(bundle: tuple[Path, dict], samples: list[Sample], bundle_python: Path,
                                         tmp_path: Path) -> None:
    no_torch = subprocess.run([str(bundle_python), "-c", "import torch"], capture_output=True, text=True)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    folder = tmp_path / "line"
    folder.mkdir()
    for s in samples:
        shutil.copy(s.path, folder / s.path.name)
    (folder / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out.json"
    proc = subprocess.run([str(bundle_python), str(bundle[0] / "infer.py"), str(folder), "--out", str(out),
                           "--threads", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # one unreadable image
    assert "zz_broken.png" in proc.stderr
    results = json.loads(out.read_text())
    assert [r["file"] for r in results] == sorted([s.path.name for s in samples] + ["zz_broken.png"], key=str.casefold)
    by_name = {r["file"]: r for r in results}
    assert by_name["zz_broken.png"]["detections"] == [] and "error" in by_name["zz_broken.png"]
    expected = _bundle_detections(bi.load_bundle(bundle[0]), samples)
    for s, (eb, es, el) in zip(samples, expected, strict=True):
        r = by_name[s.path.name]
        assert (r["width"], r["height"]) == (s.width, s.height) and r["ms"] > 0
        assert [d["class_id"] for d in r["detections"]] == el.tolist()
        assert [d["label"] for d in r["detections"]] == [CLASSES[c] for c in el]
        np.testing.assert_allclose([d["box"] for d in r["detections"]], eb.reshape(-1, 4), atol=1e-3)
        np.testing.assert_allclose([d["score"] for d in r["detections"]], es, atol=1e-4)
    one = subprocess.run([str(bundle_python), str(bundle[0] / "infer.py"), str(samples[0].path), "--model", "int8",
                          "--score-threshold", "0.5"], capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    [single] = json.loads(one.stdout)
    assert single["file"] == samples[0].path.name and all(d["score"] > 0.5 for d in single["detections"])


def _wait_for(paths: list[Path], timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert proc.poll() is None, f"watch mode exited early: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {[p.name for p in paths if not p.exists()]}"
        time.sleep(0.1)


@pytest.mark.slow
def test_infer_watch_mode_processes_new_images_once(bundle: tuple[Path, dict], samples: list[Sample],
                                                     bundle_python: Path, tmp_path: Path) -> None:
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    inbox.mkdir()
    proc = subprocess.Popen([str(bundle_python), str(bundle[0] / "infer.py"), str(inbox), "--watch",
                             "--interval", "0.1", "--out", str(results), "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        shutil.copy(samples[0].path, inbox / "a.png")
        (inbox / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 corrupt")
        _wait_for([results / "a.png.json", results / "b.jpg.json"], 60, proc)
        shutil.copy(samples[5].path, inbox / "c.jpg")  # arrives later; the corrupt one did not stop the loop
        _wait_for([results / "c.jpg.json"], 60, proc)
        time.sleep(0.5)  # a few more polls: nothing is processed twice
    finally:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    a = json.loads((results / "a.png.json").read_text())
    assert a["file"] == "a.png" and (a["width"], a["height"]) == (samples[0].width, samples[0].height)
    assert "error" in json.loads((results / "b.jpg.json").read_text()) and "b.jpg" in stderr
    assert json.loads((results / "c.jpg.json").read_text())["height"] == samples[5].height
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert sorted(r["file"] for r in lines) == ["a.png", "b.jpg", "c.jpg"]
