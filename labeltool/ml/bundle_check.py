"""Verification driver: runs an edge bundle's own ``infer.py`` in a child process, without torch.

Executed as a script (``python bundle_check.py BUNDLE REQUEST.json``) by ``jobs/export.py``; it
imports nothing from labeltool. The request is ``{"model": "fp32"|"int8", "threads": N,
"images": [[path, width, height], ...], "warmup": N}``. It prints one JSON object: per image the
detections in original pixels (``boxes``, ``scores``, ``labels``) and the model latency (ONNX
Runtime session + numpy decoding at batch 1, image decoding excluded: PyTorch is timed the same
way), and ``torch_imported`` — which must be false, or the bundle would not run on the line.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    bundle_dir, request_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text(encoding="utf-8"))
    spec = importlib.util.spec_from_file_location("bundle_infer", bundle_dir / "infer.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"{bundle_dir / 'infer.py'} cannot be loaded")
    infer = importlib.util.module_from_spec(spec)
    sys.modules["bundle_infer"] = infer  # dataclasses look their module up there
    spec.loader.exec_module(infer)
    bundle = infer.load_bundle(bundle_dir, model=request["model"], threads=request.get("threads"))
    tensors = [infer.preprocess(path, bundle.spec) for path, _, _ in request["images"]]
    for tensor, _ in tensors[: int(request.get("warmup", 3))]:  # first runs allocate; not timed
        infer.detect(bundle, tensor[None])
    out = []
    for tensor, meta in tensors:
        t0 = time.perf_counter()
        cls, reg = infer.detect(bundle, tensor[None])
        boxes, scores, labels = infer.decode(cls[0], reg[0], anchors=bundle.anchors, spec=bundle.spec)
        ms = (time.perf_counter() - t0) * 1000.0
        boxes = infer.unletterbox(boxes, meta)
        out.append({"boxes": boxes.tolist(), "scores": scores.tolist(), "labels": labels.tolist(), "ms": ms})
    json.dump({"images": out, "torch_imported": "torch" in sys.modules}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
