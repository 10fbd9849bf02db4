"""Project → LabelSet → an annotation format on disk (COCO, YOLO, Pascal VOC)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import config
from .labels import BoxRecord, ImageRecord, LabelSet, Report
from .store import Project

EXPORT_FORMATS = ("coco", "yolo", "voc")


def project_labelset(project: Project, *, include_unlabeled: bool = True) -> LabelSet:
    """The project's current labels in neutral form; ``source`` = the image file in the project.

    ``include_unlabeled=False`` leaves out images nobody has annotated yet (an annotated image
    without boxes — a defect-free part — is kept).
    """
    classes = project.classes()
    names = {c.id: c.name for c in classes}
    by_image = project.all_boxes()
    prefix = config.IMAGES_DIRNAME + "/"
    records: list[ImageRecord] = []
    for image in project.images():
        boxes = by_image.get(image.id, [])
        if not image.labeled and not include_unlabeled:
            continue
        name = image.path[len(prefix):] if image.path.startswith(prefix) else image.path
        records.append(
            ImageRecord(
                file_name=name,
                source=project.image_file(image),
                width=image.width,
                height=image.height,
                boxes=[BoxRecord(names[b.class_id], b.x1, b.y1, b.x2, b.y2) for b in boxes],
                split=image.split,
                labeled=image.labeled,
            )
        )
    return LabelSet(classes=[c.name for c in classes], images=records)


def export_project(project: Project, dest: Path, *, fmt: str, include_unlabeled: bool = False,
                   labels: LabelSet | None = None) -> Report:
    """Write the project's labels and images to ``dest`` (an empty or new folder) as ``fmt``.

    Unlabeled images are left out unless ``include_unlabeled`` (a warning says how many), so a
    training tool does not take them for defect-free parts. ``labels``: the caller's
    ``project_labelset(project, include_unlabeled=...)`` when it already has it (read once).
    """
    from .formats import write_coco, write_voc, write_yolo

    writers: dict[str, Callable[[LabelSet, Path], Report]] = {
        "coco": write_coco,
        "yolo": write_yolo,
        "voc": write_voc,
    }
    if fmt not in writers:
        raise ValueError(f"export format must be one of {', '.join(EXPORT_FORMATS)}; got {fmt!r}")
    if labels is None:
        labels = project_labelset(project, include_unlabeled=include_unlabeled)
    report = writers[fmt](labels, dest)
    left_out = project.image_count() - len(labels.images)
    if left_out:
        report.warning(
            str(dest), "images",
            f"{left_out} unlabeled image(s) were not exported; use --include-unlabeled to export them too",
        )
    return report
