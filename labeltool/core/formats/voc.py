"""Pascal VOC XML annotations: reader and writer.

One XML file per image: ``<annotation><filename>x.jpg</filename><size><width/><height/><depth/></size>
<object><name>cls</name><bndbox><xmin/><ymin/><xmax/><ymax/></bndbox></object>...</annotation>``.
Layouts read: classic VOC (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/{train,val,test}.txt``)
and labelImg (XML beside the images). Coordinates are pixel corners read as floats without a 1-offset
(labelImg convention) and written as integers rounded to nearest (round-trip error <= 0.5 px).
Class order: ``labels.txt`` (one name per line; CVAT's ``labelmap.txt`` also read), else first appearance.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from labeltool.core import config
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
from labeltool.core.formats.limits import XmlFileError, parse_xml
from labeltool.core.labels import ImageRecord, LabelSet, Report

SPLITS = ("train", "val", "test")  # ImageSets/Main/<split>.txt files read and written
LABELS_FILENAME = "labels.txt"


def _read_class_file(root: Path, report: Report) -> list[str]:
    for name, sep in ((LABELS_FILENAME, None), ("labelmap.txt", ":")):
        path = root / name
        if not path.is_file():
            continue
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            report.error(name, "", f"cannot read the class list ({exc}); classes taken from the XML files")
            return []
        classes: list[str] = []
        for line in lines:
            entry = line.split(sep)[0].strip() if sep else line.strip()
            if entry and not line.lstrip().startswith("#") and entry not in classes:
                classes.append(entry)
        return classes
    return []


def _read_splits(root: Path, report: Report) -> dict[str, str]:
    """Image id (XML path under Annotations/ without '.xml') -> split, from ImageSets/Main."""
    splits: dict[str, str] = {}
    for split in SPLITS:
        path = root / "ImageSets" / "Main" / f"{split}.txt"
        if not path.is_file():
            continue
        fname = f"ImageSets/Main/{split}.txt"
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            report.error(fname, "", f"cannot read the split list ({exc}); ignored")
            continue
        for n, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts:
                continue
            if parts[0] in splits and splits[parts[0]] != split:
                report.warning(fname, f"line {n}", f"{parts[0]!r} is also in {splits[parts[0]]}; kept there")
            else:
                splits.setdefault(parts[0], split)
    return splits


def _find_image(name: str, dirs: list[Path]) -> Path | None:
    candidates = [d / name for d in dirs] + [d / name.rsplit("/", 1)[-1] for d in dirs]
    return next((c for c in candidates if c.is_file()), None)


def _find_by_stem(xml: Path, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for ext in config.IMAGE_EXTENSIONS:
            for candidate in (d / (xml.stem + ext), d / (xml.stem + ext.upper())):
                if candidate.is_file():
                    return candidate
    return None


def _text(elem: ET.Element, path: str) -> str | None:
    found = elem.find(path)
    return found.text.strip() if found is not None and found.text is not None else None


def _read_xml(
    xml: Path, fname: str, dirs: list[Path], root: Path, image_root: Path, report: Report
) -> ImageRecord | None:
    try:
        ann = parse_xml(xml)
    except XmlFileError as exc:
        report.error(fname, "", str(exc))
        return None
    if ann.tag != "annotation":
        report.error(fname, "", f"root element is <{ann.tag}>, not <annotation>: not a Pascal VOC file; skipped")
        return None
    raw = _text(ann, "filename")
    image: Path | None = None
    if raw:
        try:
            name = safe_relpath(raw)
        except ValueError as exc:
            report.error(fname, "filename", f"{exc}; image skipped")
            return None
        image = _find_image(name, dirs)
    if image is None:
        image = _find_by_stem(xml, dirs)
        if image is None:
            report.error(fname, "filename", f"image {raw or xml.stem!r} not found; image and its boxes skipped")
            return None
        if raw:
            report.warning(fname, "filename", f"image {raw!r} not found; using {image.name} (same name as the XML)")
    base = image_root if image.is_relative_to(image_root) else root
    rec = ImageRecord(file_name=image.relative_to(base).as_posix(), source=image)
    rec.width, rec.height = parse_size(_text(ann, "size/width")), parse_size(_text(ann, "size/height"))
    if rec.width is None or rec.height is None:
        try:
            rec.width, rec.height, _ = read_image_info(image)
        except (OSError, ValueError) as exc:
            report.error(fname, "size", f"size missing and the image cannot be read ({exc}); skipped")
            return None
        report.warning(fname, "size", "width/height missing or zero; read from the image file")
    for j, obj in enumerate(ann.findall("object"), start=1):
        _read_object(obj, f"object[{j}]", rec, fname, report)
    return rec


def _read_object(obj: ET.Element, where: str, rec: ImageRecord, fname: str, report: Report) -> None:
    label = _text(obj, "name")
    if not label:
        report.error(fname, f"{where}.name", "class name missing; box skipped")
        return
    if obj.find("bndbox") is None:
        report.error(fname, f"{where}.bndbox", "no <bndbox>; box skipped")
        return
    coords: list[float] = []
    for key in ("xmin", "ymin", "xmax", "ymax"):
        text = _text(obj, f"bndbox/{key}")
        try:
            if not text:
                raise ValueError(f"<{key}> is missing")
            coords.append(parse_number(text))
        except ValueError as exc:
            report.error(fname, f"{where}.bndbox.{key}", f"{exc}; box skipped")
            return
    box = check_box(label, *coords, width=rec.width, height=rec.height, report=report, file=fname,
                    field=f"{where}.bndbox")
    if box is not None:
        rec.boxes.append(box)


def read_voc(root: Path) -> tuple[LabelSet, Report]:
    """Read a folder of Pascal VOC XML files into a ``LabelSet`` (xyxy float pixels) and a ``Report``.

    Classic layout (``root/Annotations``): images looked up in ``JPEGImages/`` (same subfolder as the
    XML) then beside the XML; ``file_name`` is relative to ``JPEGImages/``; splits from
    ``ImageSets/Main/{train,val,test}.txt``. Otherwise XML files are searched recursively and images
    are beside them; ``file_name`` is relative to ``root``. Raises ``ImportFormatError`` when ``root``
    is not a folder or holds no XML files.
    """
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise ImportFormatError(f"{root} is not a folder. Pick the folder that holds the VOC .xml files.")
    report = Report()
    classic = (root / "Annotations").is_dir()
    xml_root = root / "Annotations" if classic else root
    image_root = root / "JPEGImages" if classic else root
    xmls = sorted(
        p for p in xml_root.rglob("*.xml") if not any(s.startswith(".") for s in p.relative_to(xml_root).parts)
    )
    if not xmls:
        raise ImportFormatError(f"no .xml annotation files found in {xml_root}. Pick a Pascal VOC folder.")
    classes = _read_class_file(root, report)
    fixed = set(classes)
    splits = _read_splits(root, report) if classic else {}
    records: list[ImageRecord] = []
    seen: dict[str, str] = {}
    for xml in xmls:
        fname = xml.relative_to(root).as_posix()
        sub = xml.parent.relative_to(xml_root)
        dirs = [image_root / sub, xml.parent] if classic else [xml.parent]
        rec = _read_xml(xml, fname, dirs, root, image_root, report)
        if rec is None:
            continue
        if rec.file_name in seen:
            report.error(fname, "filename", f"image {rec.file_name!r} is already annotated by {seen[rec.file_name]};"
                         " this file is skipped")
            continue
        seen[rec.file_name] = fname
        rec.split = splits.get(xml.relative_to(xml_root).with_suffix("").as_posix())
        for j, box in enumerate(rec.boxes):
            if box.label not in classes:
                if fixed:
                    report.warning(fname, f"object[{j + 1}].name",
                                   f"class {box.label!r} is not in {LABELS_FILENAME}; added at the end")
                classes.append(box.label)
        records.append(rec)
    return LabelSet(classes=classes, images=records), report


def _px(value: float, limit: int) -> int:
    """Round half up (monotone, so a box >= 1 px stays >= 1 px) and keep inside [0, limit]."""
    return min(max(math.floor(value + 0.5), 0), limit)


def _sub(parent: ET.Element, tag: str, text: str | int) -> ET.Element:
    elem = ET.SubElement(parent, tag)
    elem.text = str(text)
    return elem


def write_voc(labels: LabelSet, dest: Path) -> Report:
    """Export ``labels`` as classic Pascal VOC; returns a ``Report`` of what was not exported.

    Writes ``dest/Annotations/<file_name without extension>.xml``, ``dest/JPEGImages/<file_name>``,
    ``dest/ImageSets/Main/<split>.txt`` for the images that have a split, and ``dest/labels.txt``
    (all class names in class order, one per line). Corners are integers rounded to nearest.
    ``dest`` must be empty or not exist (else ``ExportError``).
    """
    dest = prepare_dest(Path(dest))
    report = Report()
    images = export_images(labels, report)
    split_ids: dict[str, list[str]] = {}
    used: set[str] = set()
    for img in images:
        image_id = img.file_name.rsplit(".", 1)[0] if "." in img.file_name.rsplit("/", 1)[-1] else img.file_name
        if image_id in used:
            report.error(img.file_name, "file_name", f"another image already uses the annotation name "
                         f"{image_id}.xml; image not exported")
            continue
        used.add(image_id)
        try:
            depth = read_image_info(img.source)[2]
        except (OSError, ValueError):
            depth = 3
        ann = ET.Element("annotation")
        _sub(ann, "folder", "JPEGImages")
        _sub(ann, "filename", img.file_name.rsplit("/", 1)[-1])
        size = ET.SubElement(ann, "size")
        for tag, value in (("width", img.width), ("height", img.height), ("depth", depth)):
            _sub(size, tag, value)
        _sub(ann, "segmented", 0)
        for box in img.boxes:
            obj = ET.SubElement(ann, "object")
            for tag, value in (("name", box.label), ("pose", "Unspecified"), ("truncated", 0), ("difficult", 0)):
                _sub(obj, tag, value)
            bnd = ET.SubElement(obj, "bndbox")
            for tag, value, limit in (("xmin", box.x1, img.width), ("ymin", box.y1, img.height),
                                      ("xmax", box.x2, img.width), ("ymax", box.y2, img.height)):
                _sub(bnd, tag, _px(value, limit))
        ET.indent(ann)
        copy_image(img.source, dest / "JPEGImages" / img.file_name)
        write_text_atomic(dest / "Annotations" / f"{image_id}.xml", ET.tostring(ann, encoding="unicode") + "\n")
        if img.split in SPLITS:
            split_ids.setdefault(img.split, []).append(image_id)
        elif img.split:
            report.warning(img.file_name, "split", f"split {img.split!r} is not train/val/test; not listed in "
                           "ImageSets/Main")
    (dest / "Annotations").mkdir(exist_ok=True)
    (dest / "JPEGImages").mkdir(exist_ok=True)
    for split, ids in split_ids.items():
        write_text_atomic(dest / "ImageSets" / "Main" / f"{split}.txt", "".join(i + "\n" for i in ids))
    write_text_atomic(dest / LABELS_FILENAME, "".join(c + "\n" for c in labels.classes))
    return report
