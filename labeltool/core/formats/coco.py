"""COCO object-detection JSON: reader and writer.

File format: ``{"images": [{"id", "file_name", "width", "height"}], "annotations": [{"id", "image_id",
"category_id", "bbox": [x, y, w, h], "iscrowd", "segmentation"}], "categories": [{"id", "name"}]}``.
``bbox`` is top-left x/y plus width/height in float pixels; it is converted to xyxy on read and back on
write (rounded to 3 decimals). Written category ids are 1..N in class order; any ids are read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from labeltool.core.errors import ImportFormatError
from labeltool.core.formats.common import (
    check_box,
    copy_image,
    export_images,
    parse_number,
    parse_size,
    prepare_dest,
    read_image_info,
    safe_relpath,
    write_text_atomic,
)
from labeltool.core.formats.limits import load_json
from labeltool.core.labels import ImageRecord, LabelSet, Report

ANNOTATIONS_FILENAME = "annotations.json"  # what write_coco writes; the reader takes any name
IMAGES_DIRNAME = "images"
# Non-standard per-image keys "split" (train/val/test) and "labeled": false (not annotated yet), written
# by labeltool so a COCO round trip keeps them; other tools ignore unknown keys.
_SPLITS = ("train", "val", "test")


def _load_json(json_path: Path) -> dict[str, Any]:
    data = load_json(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ImportFormatError(
            f"{json_path.name}: no 'images' list at the top level, so this is not a COCO annotation file. "
            "Pick the COCO .json that your labeling tool exported."
        )
    if not isinstance(data.get("categories"), list):
        raise ImportFormatError(
            f"{json_path.name}: no 'categories' list, so the class names are unknown. "
            "Pick a COCO object-detection .json file."
        )
    return data


def _pick_image_root(json_path: Path, names: list[str]) -> Path:
    """The candidate folder that holds most of ``names`` (first candidate wins ties)."""
    parent = json_path.parent
    candidates = [parent, parent / IMAGES_DIRNAME]
    if parent.name == "annotations":  # CVAT: annotations/instances_default.json + images/
        candidates += [parent.parent / IMAGES_DIRNAME, parent.parent]
    sample = names[:200]
    best, best_hits = parent, -1
    for cand in candidates:
        hits = sum((cand / n).is_file() for n in sample) if cand.is_dir() else -1
        if hits > best_hits:
            best, best_hits = cand, hits
    return best


def _read_categories(data: dict[str, Any], fname: str, report: Report) -> tuple[list[str], dict[Any, str]]:
    by_id: dict[Any, str] = {}
    order: list[tuple[Any, str]] = []
    for i, cat in enumerate(data["categories"]):
        where = f"categories[{i}]"
        if not isinstance(cat, dict):
            report.error(fname, where, "category is not an object; skipped")
            continue
        cid, name = cat.get("id"), cat.get("name")
        if isinstance(cid, bool) or not isinstance(cid, int | str):
            report.error(fname, f"{where}.id", f"category id {cid!r} is missing or not a number; skipped")
            continue
        if not isinstance(name, str) or not name.strip():
            report.error(fname, f"{where}.name", f"category name {name!r} is missing or empty; skipped")
            continue
        if cid in by_id:
            report.error(fname, f"{where}.id", f"category id {cid!r} appears twice; the second is skipped")
            continue
        if name in by_id.values():
            report.warning(fname, f"{where}.name", f"class {name!r} appears under two ids; merged into one")
        by_id[cid] = name
        order.append((cid, name))
    order.sort(key=lambda item: (not isinstance(item[0], int), item[0] if isinstance(item[0], int) else 0))
    classes: list[str] = []
    for _, name in order:
        if name not in classes:
            classes.append(name)
    return classes, by_id


def _read_images(
    data: dict[str, Any], fname: str, image_root: Path | None, json_path: Path, report: Report
) -> tuple[list[ImageRecord], dict[Any, ImageRecord]]:
    entries: list[tuple[int, dict[str, Any], str]] = []
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict):
            report.error(fname, f"images[{i}]", "image entry is not an object; skipped")
            continue
        try:
            entries.append((i, img, safe_relpath(img.get("file_name"))))
        except ValueError as exc:
            report.error(fname, f"images[{i}].file_name", f"{exc}; image skipped")
    root = image_root if image_root is not None else _pick_image_root(json_path, [n for _, _, n in entries])
    records: list[ImageRecord] = []
    by_id: dict[Any, ImageRecord] = {}
    seen_names: dict[str, int] = {}
    for i, img, name in entries:
        where = f"images[{i}]"
        iid = img.get("id")
        if isinstance(iid, bool) or not isinstance(iid, int | str):
            report.error(fname, f"{where}.id", f"image id {iid!r} is missing or not a number; image skipped")
            continue
        if iid in by_id:
            report.error(fname, f"{where}.id", f"image id {iid!r} is used twice; the second image is skipped")
            continue
        if name in seen_names:
            report.error(
                fname, f"{where}.file_name",
                f"{name!r} is already listed as images[{seen_names[name]}]; duplicate and its boxes skipped",
            )
            continue
        source = root / name
        if not source.is_file():
            report.error(fname, f"{where}.file_name", f"image file {name!r} not found in {root}; image and its boxes skipped")
            continue
        width, height = parse_size(img.get("width")), parse_size(img.get("height"))
        if width is None or height is None:
            try:
                width, height, _ = read_image_info(source)
            except (OSError, ValueError) as exc:
                report.error(fname, where, f"cannot read the size of {name!r} ({exc}); image skipped")
                continue
            report.warning(fname, f"{where}.width", "width/height missing or invalid; read from the image file")
        split = img.get("split")  # labeltool's own extension; other tools ignore it
        if split is not None and split not in _SPLITS:
            report.warning(fname, f"{where}.split", f"unknown split {split!r}; left unassigned")
            split = None
        labeled = img.get("labeled", True) is not False  # labeltool's extension, like "split"
        rec = ImageRecord(file_name=name, source=source, width=width, height=height, split=split, labeled=labeled)
        seen_names[name] = i
        by_id[iid] = rec
        records.append(rec)
    return records, by_id


def _polygon_bbox(seg: object) -> list[float] | None:
    """[x, y, w, h] around a COCO polygon list ``[[x1, y1, x2, y2, ...], ...]``; None if not one."""
    if not isinstance(seg, list) or not seg:
        return None
    polys = seg if isinstance(seg[0], list) else [seg]
    xs: list[float] = []
    ys: list[float] = []
    for poly in polys:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
            return None
        values = [parse_number(v) for v in poly]  # ValueError propagates to the caller
        xs.extend(values[0::2])
        ys.extend(values[1::2])
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _read_annotation(
    ann: object, i: int, fname: str, cats: dict[Any, str], images: dict[Any, ImageRecord],
    skipped_ids: set[Any], report: Report,
) -> None:
    where = f"annotations[{i}]"
    if not isinstance(ann, dict):
        report.error(fname, where, "annotation is not an object; skipped")
        return
    iid = ann.get("image_id")
    if isinstance(iid, bool) or not isinstance(iid, int | str):
        report.error(fname, f"{where}.image_id", f"image_id {iid!r} is missing or not a number; box skipped")
        return
    rec = images.get(iid)
    if rec is None:
        if iid not in skipped_ids:
            report.error(fname, f"{where}.image_id", f"image id {iid!r} is not in 'images'; box skipped")
        return  # boxes of an image that was already reported and skipped are dropped quietly
    cid = ann.get("category_id")
    if "category_id" not in ann:
        report.error(fname, f"{where}.category_id", "category_id is missing; box skipped")
        return
    if isinstance(cid, bool) or not isinstance(cid, int | str) or cid not in cats:
        report.error(fname, f"{where}.category_id", f"category_id {cid!r} is not in 'categories'; box skipped")
        return
    bbox = ann.get("bbox")
    field = f"{where}.bbox"
    try:
        if bbox is None or bbox == []:
            derived = _polygon_bbox(ann.get("segmentation"))
            if derived is None:
                report.error(fname, field, "bbox is missing and there is no polygon to derive it from; skipped")
                return
            report.warning(fname, field, "bbox is missing; derived from the segmentation polygon")
            bbox = derived
        if not isinstance(bbox, list) or len(bbox) != 4:
            report.error(fname, field, f"bbox must be a list of 4 numbers [x, y, width, height], got {bbox!r}; "
                         "box skipped")
            return
        x, y, w, h = (parse_number(v) for v in bbox)
    except ValueError as exc:
        report.error(fname, field, f"{exc}; box skipped")
        return
    if ann.get("iscrowd") in (1, True):
        report.warning(fname, f"{where}.iscrowd", "iscrowd=1 (a group of objects): kept as one box; "
                       "check it, detectors usually expect one box per object")
    box = check_box(cats[cid], x, y, x + w, y + h, width=rec.width, height=rec.height, report=report,
                    file=fname, field=field, original=f"bbox [{x:g}, {y:g}, {w:g}, {h:g}]")
    if box is not None:
        rec.boxes.append(box)


def read_coco(json_path: Path, *, image_root: Path | None = None) -> tuple[LabelSet, Report]:
    """Read a COCO detection JSON file into a ``LabelSet`` (boxes xyxy float pixels) and a ``Report``.

    ``image_root``: folder the ``file_name`` entries are relative to; default: the JSON's folder, or its
    ``images/`` subfolder (or, for ``annotations/x.json``, the sibling ``images/``), whichever holds
    the images. Images without annotations are kept. Bad records are reported and skipped; raises
    ``ImportFormatError`` only when the file is not readable JSON with ``images``/``categories``.
    """
    json_path = Path(os.path.abspath(json_path))
    image_root = Path(os.path.abspath(image_root)) if image_root is not None else None
    data = _load_json(json_path)
    fname = json_path.name
    report = Report()
    classes, cats = _read_categories(data, fname, report)
    raw_images = data["images"]
    records, by_id = _read_images(data, fname, image_root, json_path, report)
    skipped_ids = {
        img.get("id") for img in raw_images
        if isinstance(img, dict) and isinstance(img.get("id"), int | str)
    } - set(by_id)
    anns = data.get("annotations")
    if anns is None:
        anns = []
        report.warning(fname, "annotations", "no 'annotations' list; images imported without boxes")
    elif not isinstance(anns, list):
        report.error(fname, "annotations", "'annotations' is not a list; no boxes imported")
        anns = []
    for i, ann in enumerate(anns):
        _read_annotation(ann, i, fname, cats, by_id, skipped_ids, report)
    return LabelSet(classes=classes, images=records), report


def _r3(value: float) -> float:
    return round(value, 3) + 0.0  # + 0.0 turns -0.0 into 0.0


def coco_document(labels: LabelSet, report: Report) -> tuple[dict[str, Any], list[tuple[Path, str]]]:
    """The COCO JSON document for ``labels`` and the ``(source, file_name)`` pairs it refers to.

    Category ids are 1..N in class order, image and annotation ids 1..N; bbox ``[x, y, w, h]``
    floats rounded to 3 decimals; images with a split carry a ``"split"`` key. Images/boxes that
    cannot be exported are reported in ``report`` and left out.
    """
    images = export_images(labels, report)
    cat_id = {name: i + 1 for i, name in enumerate(labels.classes)}
    out_images: list[dict[str, Any]] = []
    out_anns: list[dict[str, Any]] = []
    for img_id, img in enumerate(images, start=1):
        entry: dict[str, Any] = {"id": img_id, "file_name": img.file_name, "width": img.width, "height": img.height}
        if img.split in _SPLITS:
            entry["split"] = img.split
        if not img.labeled and not img.boxes:
            entry["labeled"] = False
        out_images.append(entry)
        for box in img.boxes:
            x1, y1, x2, y2 = (_r3(v) for v in (box.x1, box.y1, box.x2, box.y2))
            w, h = _r3(x2 - x1), _r3(y2 - y1)
            out_anns.append({
                "id": len(out_anns) + 1, "image_id": img_id, "category_id": cat_id[box.label],
                "bbox": [x1, y1, w, h], "area": _r3(w * h), "iscrowd": 0, "segmentation": [],
            })
    doc = {
        "info": {"description": "exported by labeltool", "version": "1.0"},
        "licenses": [],
        "images": out_images,
        "annotations": out_anns,
        "categories": [{"id": cat_id[n], "name": n, "supercategory": ""} for n in labels.classes],
    }
    return doc, [(img.source, img.file_name) for img in images]


def write_coco_json(labels: LabelSet, path: Path) -> Report:
    """Write only the COCO JSON for ``labels`` to ``path`` (atomically); images are not copied."""
    report = Report()
    doc, _ = coco_document(labels, report)
    write_text_atomic(Path(path), json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return report


def write_coco(labels: LabelSet, dest: Path) -> Report:
    """Export ``labels`` as ``dest/annotations.json`` + ``dest/images/<file_name>`` (copied).

    ``dest`` must be empty or not exist (else ``ExportError``). See :func:`coco_document` for the
    ids and rounding. Returns a ``Report`` of images/boxes that could not be exported.
    """
    dest = prepare_dest(Path(dest))
    report = Report()
    doc, files = coco_document(labels, report)
    for source, file_name in files:
        copy_image(source, dest / IMAGES_DIRNAME / file_name)
    write_text_atomic(dest / ANNOTATIONS_FILENAME, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return report
