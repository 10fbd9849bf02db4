"""Benchmark of the project store; prints JSON.

Import of N generated small images with ~10 boxes each (default 5,000 images / 50,000 boxes),
time to open that project (open + list images + classes, as the GUI does at start), to fetch one
image's boxes, and to export COCO.  Usage: python bench/store.py [--images N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from labeltool.core.exporting import export_project
from labeltool.core.ingest import import_labelset
from labeltool.core.labels import BoxRecord, ImageRecord, LabelSet
from labeltool.core.store import Project
from labeltool.jobs import drive

CLASSES = ["scratch", "dent", "crack", "stain", "chip"]


def make_dataset(root: Path, n_images: int, boxes_per_image: int, size: int, seed: int) -> LabelSet:
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n_images):
        path = root / f"img_{i:05d}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, compress_level=1)
        boxes = []
        for _ in range(boxes_per_image):
            x1, y1 = rng.uniform(0, size - 8, 2)
            w, h = rng.uniform(4, size / 3, 2)
            boxes.append(BoxRecord(CLASSES[int(rng.integers(len(CLASSES)))], float(x1), float(y1),
                                   float(min(size, x1 + w)), float(min(size, y1 + h))))
        images.append(ImageRecord(file_name=path.name, source=path, boxes=boxes))
    return LabelSet(classes=CLASSES, images=images)


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--boxes-per-image", type=int, default=10)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temp dir, removed)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="labeltool-bench-", dir=args.out))
    try:
        (work / "src").mkdir()
        t = time.perf_counter()
        labels = make_dataset(work / "src", args.images, args.boxes_per_image, args.size, 0)
        gen_s = time.perf_counter() - t

        t = time.perf_counter()
        with Project.create(work / "proj") as project:
            summary = drive(import_labelset(project, labels), lambda p: None)
        import_s = time.perf_counter() - t

        open_s = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            with Project.open(work / "proj") as project:
                images = project.images()
                project.classes()
            open_s.append(time.perf_counter() - t)

        rng = np.random.default_rng(1)
        with Project.open(work / "proj") as project:
            ids = [images[int(i)].id for i in rng.integers(0, len(images), 1000)]
            fetch_s = []
            for image_id in ids:
                t = time.perf_counter()
                project.boxes(image_id)
                fetch_s.append(time.perf_counter() - t)
            export_s = []
            for k in range(3):
                t = time.perf_counter()
                export_project(project, work / f"coco{k}", fmt="coco")
                export_s.append(time.perf_counter() - t)
                shutil.rmtree(work / f"coco{k}")
            n_boxes = project.box_count()
        print(json.dumps({
            "benchmark": "store",
            "images": summary.images_added,
            "boxes": n_boxes,
            "image_size_px": args.size,
            "generate_s": round(gen_s, 2),
            "import_s": round(import_s, 2),
            "open_median_ms": median_ms(open_s),
            "open_max_ms": round(max(open_s) * 1000, 3),
            "open_repeats": args.repeats,
            "fetch_boxes_median_ms": median_ms(fetch_s),
            "fetch_boxes_p99_ms": round(float(np.percentile(fetch_s, 99)) * 1000, 3),
            "export_coco_median_s": round(statistics.median(export_s), 2),
        }, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
