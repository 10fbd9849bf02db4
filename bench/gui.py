"""GUI benchmark (offscreen Qt); prints JSON.

  python bench/gui.py [--images 5000] [--frames 200] [--boxes 200] [--width 4000 --height 3000]

1. **Launch to first image painted**: a project with ``--images`` small PNG files; the clock starts
   before PySide6 and the GUI are imported and stops when the canvas viewport has painted the first
   image (an event filter sees the Paint event after the image was set).
2. **Frame time**: one ``--width`` x ``--height`` image with ``--boxes`` random boxes in a 1280x800
   window; ``--frames`` view changes (pans of 37 px, then zooms at the cursor by one wheel notch in
   and out, alternating), each followed by a synchronous ``repaint()`` of the canvas viewport; the
   time of set_view + paint is one frame. Median and p99 are reported, in milliseconds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image as PILImage  # noqa: E402

from labeltool.core.store import Project  # noqa: E402


def _png(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def make_list_project(root: Path, n: int) -> None:
    with Project.create(root) as p:
        p.add_class("scratch")
        data = _png((640, 480), (90, 140, 90))
        with p.edit("add images") as e:
            for i in range(n):
                name = f"images/{i:05d}.png"
                (p.root / name).write_bytes(data)
                e.insert("images", {"path": name, "sha256": f"sha{i}", "width": 640, "height": 480, "split": None,
                                    "added_at": "t", "origin": None, "labeled": 0})


def make_big_image_project(root: Path, width: int, height: int, n_boxes: int) -> None:
    rng = random.Random(0)
    with Project.create(root) as p:
        classes = [p.add_class(name) for name in ("scratch", "dent", "spot", "crack")]
        img = PILImage.effect_noise((width, height), 40).convert("RGB")
        img.save(p.root / "images" / "big.jpg", quality=90)
        with p.edit("add image") as e:
            image_id = e.insert("images", {"path": "images/big.jpg", "sha256": "big", "width": width,
                                           "height": height, "split": None, "added_at": "t", "origin": None,
                                           "labeled": 1})
        with p.edit("add boxes") as e:
            for _ in range(n_boxes):
                w, h = rng.uniform(20, 300), rng.uniform(20, 300)
                x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
                e.insert("boxes", {"image_id": image_id, "class_id": rng.choice(classes),
                                   "x1": x, "y1": y, "x2": x + w, "y2": y + h})


def launch_to_first_paint(project_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    from labeltool.gui.probe import MainWindow, application, open_until_first_image_painted

    application()
    window = MainWindow()
    painted = open_until_first_image_painted(window, project_dir)
    thumbs = window.image_model.loader.requested
    count = window.image_list.count()
    window.close()
    return {"images": count, "launch_to_first_image_s": None if painted is None else round(painted - started, 3),
            "thumbnails_requested_at_start": thumbs}


def frame_times(project_dir: Path, frames: int) -> dict[str, Any]:
    from labeltool.gui import constants as C
    from labeltool.gui import geometry as geo
    from labeltool.gui.probe import MainWindow, application, timed_repaint

    app = application()
    window = MainWindow()
    window.resize(1280, 800)
    window.show()
    window.open_project(project_dir)
    app.processEvents()
    canvas = window.canvas
    w, h = canvas.viewport().width(), canvas.viewport().height()
    canvas.set_view(geo.zoom_at(canvas.view_state, factor=2.0, anchor=(w / 2, h / 2)))
    times: list[float] = []
    for i in range(frames):
        state = canvas.view_state
        if i % 10 < 8:  # pan
            new = geo.panned(state, dx=37 if (i // 40) % 2 == 0 else -37, dy=23 if i % 3 else -23)
        else:  # zoom in / out at the cursor
            factor = C.ZOOM_STEP if i % 20 < 10 else 1 / C.ZOOM_STEP
            new = geo.zoom_at(state, factor=factor, anchor=(w * 0.4, h * 0.6))
        t0 = time.perf_counter()
        canvas.set_view(new)
        timed_repaint(window)
        times.append((time.perf_counter() - t0) * 1000)
    window.close()
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return {"frames": frames, "boxes": len(canvas.boxes), "frame_ms_median": round(statistics.median(times), 2),
            "frame_ms_p99": round(p99, 2), "frame_ms_max": round(times[-1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--boxes", type=int, default=200)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_list_project(Path(tmp) / "list", args.images)
        make_big_image_project(Path(tmp) / "big", args.width, args.height, args.boxes)
        result: dict[str, Any] = {"cpu_count": os.cpu_count()}
        result.update(launch_to_first_paint(Path(tmp) / "list"))
        result.update(frame_times(Path(tmp) / "big", args.frames))
        result["image_size"] = [args.width, args.height]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
