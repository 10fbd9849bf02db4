"""YOLO (Ultralytics) detection datasets: reader and writer.

Layout: ``data.yaml`` with ``path`` (dataset root, relative to the yaml's folder), ``train``/``val``/
``test`` (a folder, a list of folders, or a .txt file listing image paths) and ``names`` (a list or an
``{id: name}`` dict). The label file of ``.../images/.../x.jpg`` is ``.../labels/.../x.txt``: one
``class cx cy w h`` line per box, normalised to [0, 1] by the image width/height (a polygon line
``class x1 y1 x2 y2 ...`` is turned into its bounding box). Written with 6 decimals.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from labeltool.core.class_names import class_name_problem
from labeltool.core.errors import ImportFormatError
from labeltool.core.formats.common import (
    check_box,
    copy_image,
    display_path,
    export_images,
    is_image_file,
    list_images,
    parse_number,
    prepare_dest,
    read_image_info,
    write_text_atomic,
)
from labeltool.core.formats.limits import load_yaml
from labeltool.core.labels import ImageRecord, LabelSet, Report

SPLITS = ("train", "val", "test")  # data.yaml keys read, in this order
YAML_NAMES = ("data.yaml", "data.yml")


def _find_yaml(data_yaml: Path) -> Path:
    if data_yaml.is_dir():
        for name in YAML_NAMES:
            if (data_yaml / name).is_file():
                return data_yaml / name
        raise ImportFormatError(
            f"{data_yaml} has no data.yaml. A YOLO dataset needs a data.yaml naming its image folders and "
            "classes; pick the dataset folder that contains it (or import the images as a plain folder)."
        )
    if not data_yaml.is_file():
        raise ImportFormatError(f"{data_yaml} does not exist. Pick a YOLO data.yaml or its folder.")
    return data_yaml


def _load_yaml(path: Path) -> dict[str, Any]:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ImportFormatError(f"{path.name}: expected keys like 'train', 'val' and 'names'; found none.")
    return data


def _read_names(data: dict[str, Any], yname: str, report: Report) -> tuple[list[str], dict[int, str]]:
    """Classes in id order and the id -> class map."""
    names = data.get("names")
    id_to_name: dict[int, str] = {}
    if isinstance(names, list):
        id_to_name = {i: _name(n) for i, n in enumerate(names)}
    elif isinstance(names, dict):
        for key, value in names.items():
            try:
                cid = int(key)
            except (TypeError, ValueError):
                report.error(yname, f"names[{key!r}]", "class id is not a whole number; class skipped")
                continue
            id_to_name[cid] = _name(value)
        if sorted(id_to_name) != list(range(len(id_to_name))):
            report.warning(yname, "names", "class ids are not 0..N-1; they are renumbered in that order")
    elif names is None and isinstance(data.get("nc"), int) and data["nc"] >= 0:
        id_to_name = {i: f"class{i}" for i in range(data["nc"])}
        report.warning(yname, "names", f"no 'names'; classes named class0..class{data['nc'] - 1}")
    else:
        raise ImportFormatError(
            f"{yname}: 'names' (the class names) is missing or not a list/dict. Add e.g. "
            "'names: [scratch, dent]' to the file."
        )
    for cid in sorted(id_to_name):
        if (problem := class_name_problem(id_to_name[cid])) is not None:
            report.error(yname, f"names[{cid}]", f"{problem}; class id {cid} and its boxes are skipped. Give it a "
                         "plain one-line name in the file")
            del id_to_name[cid]
    classes: list[str] = []
    for cid in sorted(id_to_name):
        if id_to_name[cid] in classes:
            report.warning(yname, f"names[{cid}]", f"class {id_to_name[cid]!r} appears twice; merged into one")
        else:
            classes.append(id_to_name[cid])
    return classes, id_to_name


def _name(value: object) -> Any:  # noqa: ANN401
    """A YAML class name as text; null and lists/maps stay as they are, so they are refused by name
    (core/class_names.py) instead of becoming a class called 'None'."""
    return value if value is None or isinstance(value, (list, dict)) else str(value)


def _resolve_root(data: dict[str, Any], ydir: Path, yname: str, report: Report) -> Path:
    raw = data.get("path")
    if raw in (None, ""):
        return ydir
    root = Path(str(raw))
    root = root if root.is_absolute() else ydir / root
    if not root.is_dir():
        report.warning(yname, "path", f"folder {raw!r} not found; paths are read relative to {ydir} instead")
        return ydir
    return Path(os.path.abspath(root))


def _resolve_entry(root: Path, entry: str) -> Path:
    """Like Ultralytics: ``root / entry``, else with a leading '../' stripped when that exists."""
    path = Path(os.path.abspath(root / entry))
    if not path.exists() and entry.startswith("../"):
        path = Path(os.path.abspath(root / entry[3:]))
    return path


def _list_file(path: Path, root: Path, yname: str, key: str, report: Report) -> list[Path]:
    """Images listed in a .txt file (one path per line, relative to the file's folder or absolute)."""
    fname = display_path(path, root)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        report.error(yname, key, f"cannot read the image list {fname} ({exc}); split skipped")
        return []
    found: list[Path] = []
    for n, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry:
            continue
        img = Path(os.path.abspath(path.parent / entry))
        if not img.is_relative_to(root):
            report.error(fname, f"line {n}", f"{entry!r} is outside the dataset folder {root}; refused")
        elif not is_image_file(img):
            report.error(fname, f"line {n}", f"{entry!r} is not an image file name; skipped")
        elif not img.is_file():
            report.error(fname, f"line {n}", f"image {entry!r} not found; skipped")
        else:
            found.append(img)
    return found


def label_path_for(image: Path) -> Path:
    """``.../images/.../x.jpg`` -> ``.../labels/.../x.txt`` (last 'images' component); else ``x.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _read_labels(
    label: Path, rec: ImageRecord, id_to_name: dict[int, str], fname: str, report: Report
) -> bool:
    """Fill ``rec.boxes`` from a label file; False (reported) when the file cannot be read."""
    try:
        lines = label.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        report.error(fname, "", f"cannot read the label file ({exc}); image skipped")
        return False
    n_ids = len(id_to_name)
    for n, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"line {n}"
        if len(parts) != 5 and (len(parts) < 7 or len(parts) % 2 == 0):
            report.error(fname, where, f"expected 5 values 'class cx cy w h', got {len(parts)}; box skipped")
            continue
        try:
            cid = int(parts[0])
        except ValueError:
            report.error(fname, where, f"class id {parts[0]!r} is not a whole number; box skipped")
            continue
        if cid not in id_to_name:
            report.error(fname, where, f"class id {cid} is not in data.yaml names (0..{n_ids - 1}); box skipped")
            continue
        try:
            values = [parse_number(v) for v in parts[1:]]
        except ValueError as exc:
            report.error(fname, where, f"{exc}; box skipped")
            continue
        if len(values) > 4:
            xs, ys = values[0::2], values[1::2]
            values = [(min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)]
            report.warning(fname, where, "segmentation polygon; its bounding box is used")
        cx, cy, w, h = values
        width, height = rec.width or 0, rec.height or 0
        box = check_box(
            id_to_name[cid], (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width,
            (cy + h / 2) * height, width=width, height=height, report=report, file=fname, field=where,
            original=f"box 'cx cy w h' = {cx:g} {cy:g} {w:g} {h:g}",
        )
        if box is not None:
            rec.boxes.append(box)
    return True


def _collect(
    data: dict[str, Any], root: Path, yname: str, report: Report
) -> tuple[dict[Path, str], set[Path], set[Path]]:
    """image path -> split (first split wins); the folders that hold them; the split folders named."""
    images: dict[Path, str] = {}
    dirs: set[Path] = set()
    split_dirs: set[Path] = set()
    for key in SPLITS:
        value = data.get(key)
        if value in (None, ""):
            continue
        entries = value if isinstance(value, list) else [value]
        overlap = 0
        for entry in entries:
            path = _resolve_entry(root, str(entry))
            if path in split_dirs:
                continue  # e.g. 'val: images/train' for a set without validation images
            if path.is_dir():
                found = list_images(path)
                dirs.add(path)
                split_dirs.add(path)
            elif path.is_file() and path.suffix.lower() == ".txt":
                found = _list_file(path, root, yname, key, report)
                dirs.update(p.parent for p in found)
            else:
                report.error(yname, key, f"{entry!r} is not an existing folder or .txt image list; skipped")
                continue
            for img in found:
                if img in images:
                    overlap += 1
                else:
                    images[img] = key
        if overlap:
            report.warning(yname, key, f"{overlap} images are also in an earlier split; kept there")
    return images, dirs, split_dirs


def read_yolo(data_yaml: Path) -> tuple[LabelSet, Report]:
    """Read a YOLO dataset (``data.yaml`` or the folder holding it) into a ``LabelSet`` and ``Report``.

    Boxes become xyxy float pixels using each image's size (read from the file header, EXIF
    orientation applied); ``width``/``height`` are set. ``file_name`` is relative to the common parent
    of the split image folders (``images/train/x.jpg`` -> ``train/x.jpg``; Roboflow
    ``train/images/x.jpg`` stays so); ``split`` is the data.yaml key. An image without a label file
    has no boxes. Raises ``ImportFormatError`` when data.yaml is missing/unreadable or no images exist.
    """
    yaml_path = _find_yaml(Path(data_yaml))
    ydir = Path(os.path.abspath(yaml_path.parent))
    yname = yaml_path.name
    report = Report()
    data = _load_yaml(yaml_path)
    classes, id_to_name = _read_names(data, yname, report)
    root = _resolve_root(data, ydir, yname, report)
    if not any(data.get(k) for k in SPLITS):
        raise ImportFormatError(f"{yname}: no 'train', 'val' or 'test' entry; add e.g. 'train: images/train'.")
    found, dirs, split_dirs = _collect(data, root, yname, report)
    if not found:
        raise ImportFormatError(
            f"{yname}: no images found in its train/val/test folders (under {root}). Check the paths in "
            "data.yaml."
        )
    base = Path(os.path.commonpath([str(d) for d in dirs]))
    if base in dirs:
        base = base.parent
    records: list[ImageRecord] = []
    label_files: set[Path] = set()
    for img, split in found.items():
        rec = ImageRecord(file_name=img.relative_to(base).as_posix(), source=img, split=split)
        label = label_path_for(img)
        rec.labeled = label.is_file()
        label_files.add(label)
        try:
            rec.width, rec.height, _ = read_image_info(img)
        except (OSError, ValueError) as exc:
            report.error(display_path(img, root), "", f"cannot read the image ({exc}); skipped")
            continue
        if label.is_file() and not _read_labels(label, rec, id_to_name, display_path(label, root), report):
            continue
        records.append(rec)
    _report_orphans(split_dirs, label_files, root, report)
    return LabelSet(classes=classes, images=records), report


def _report_orphans(dirs: set[Path], label_files: set[Path], root: Path, report: Report) -> None:
    """Label files in the labels/ folders that belong to no image: the image is missing."""
    for d in sorted(dirs):
        label_dir = label_path_for(d / "x").parent
        if label_dir == d or not label_dir.is_dir():
            continue
        for txt in sorted(label_dir.rglob("*.txt")):
            if txt not in label_files and txt.name != "classes.txt":
                report.error(display_path(txt, root), "", "label file has no image (image missing); skipped")


_SPLIT_ALIASES = {"train": ("train",), "val": ("val", "valid"), "test": ("test",)}  # Roboflow says "valid"


def _export_rel(file_name: str, split: str) -> str:
    """Path under images/<split>/: drop a leading '<split>/' and 'images/' (the layout adds them), and
    rename inner 'images' folders so the label path (last 'images' -> 'labels') stays unambiguous."""
    parts = file_name.split("/")
    if len(parts) > 1 and parts[0] in _SPLIT_ALIASES[split]:
        parts = parts[1:]
    if len(parts) > 1 and parts[0] == "images":
        parts = parts[1:]
    return "/".join(p if p != "images" or i == len(parts) - 1 else "images_" for i, p in enumerate(parts))


def write_yolo(labels: LabelSet, dest: Path) -> Report:
    """Export ``labels`` in the Ultralytics layout; returns a ``Report`` of what was not exported.

    Writes ``dest/data.yaml`` (``path: .``, ``train: images/train``, ``val: images/val`` or the train
    folder when there are no val images, ``test`` when there are test images, ``names: {0: ..}``),
    ``dest/images/<split>/<file>`` and ``dest/labels/<split>/<stem>.txt`` (``class cx cy w h``,
    normalised, 6 decimals; empty for images without boxes). Split ``None`` goes to train.
    ``dest`` must be empty or not exist (else ``ExportError``).
    """
    dest = prepare_dest(Path(dest))
    report = Report()
    images = export_images(labels, report)
    class_id = {name: i for i, name in enumerate(labels.classes)}
    used: set[Path] = set()
    counts = dict.fromkeys(SPLITS, 0)
    for img in images:
        split = img.split or "train"
        if split not in SPLITS:
            report.warning(img.file_name, "split", f"split {split!r} is not train/val/test; written to train")
            split = "train"
        target = dest / "images" / split / _export_rel(img.file_name, split)
        label = label_path_for(target)
        if target in used or label in used:
            report.error(img.file_name, "file_name", f"another image is already written as {target.stem} in "
                         f"{split}; image not exported")
            continue
        used.update((target, label))
        lines = [
            f"{class_id[b.label]} {(b.x1 + b.x2) / 2 / img.width:.6f} {(b.y1 + b.y2) / 2 / img.height:.6f} "
            f"{(b.x2 - b.x1) / img.width:.6f} {(b.y2 - b.y1) / img.height:.6f}"
            for b in img.boxes
        ]
        copy_image(img.source, target)
        if img.labeled or lines:  # no label file = not annotated yet (an empty one = no defects)
            write_text_atomic(label, "".join(line + "\n" for line in lines))
        counts[split] += 1
    (dest / "images" / "train").mkdir(parents=True, exist_ok=True)  # Ultralytics needs it, even empty
    (dest / "labels" / "train").mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "path": ".",
        "train": "images/train",
        "val": "images/val" if counts["val"] else "images/train",
    }
    if counts["test"]:
        doc["test"] = "images/test"
    doc["nc"] = len(labels.classes)
    doc["names"] = dict(enumerate(labels.classes))
    write_text_atomic(dest / "data.yaml", yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return report
