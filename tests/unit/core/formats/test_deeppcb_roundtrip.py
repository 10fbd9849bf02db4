"""The real DeepPCB sample (../shared/data/deeppcb): YOLO import, COCO/VOC export and re-import."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from labeltool.core.formats import read_coco, read_voc, read_yolo, write_coco, write_voc
from labeltool.core.labels import LabelSet

CLASSES = ["open", "short", "mousebite", "spur", "copper", "pin-hole"]
# (train, val) boxes per class, from the sample's README
BOX_COUNTS = {"open": (599, 117), "short": (531, 83), "mousebite": (587, 126), "spur": (513, 91),
              "copper": (432, 88), "pin-hole": (396, 78)}


def _by_name(labels: LabelSet) -> dict[str, list[tuple[str, float, float, float, float]]]:
    return {i.file_name: [(b.label, b.x1, b.y1, b.x2, b.y2) for b in i.boxes] for i in labels.images}


@pytest.mark.shared_data
def test_deeppcb_yolo_import_and_coco_voc_round_trip(deeppcb_dir: Path, tmp_path: Path) -> None:
    labels, report = read_yolo(deeppcb_dir / "data.yaml")
    assert report.entries == []
    assert labels.classes == CLASSES
    assert len(labels.images) == 500
    assert Counter(i.split for i in labels.images) == {"train": 400, "val": 100}
    counts = Counter((b.label, i.split) for i in labels.images for b in i.boxes)
    assert {c: (counts[c, "train"], counts[c, "val"]) for c in CLASSES} == BOX_COUNTS
    assert all((i.width, i.height) == (640, 640) for i in labels.images)

    assert write_coco(labels, tmp_path / "coco").entries == []
    assert write_voc(labels, tmp_path / "voc").entries == []
    coco, coco_report = read_coco(tmp_path / "coco" / "annotations.json")
    voc, voc_report = read_voc(tmp_path / "voc")
    assert coco_report.entries == [] and voc_report.entries == []
    assert coco.classes == CLASSES and voc.classes == CLASSES
    assert [i.split for i in voc.images] == [i.split for i in labels.images]

    want = _by_name(labels)
    for other in (coco, voc):
        got = _by_name(other)
        assert got.keys() == want.keys()
        for name, boxes in want.items():
            assert [b[0] for b in got[name]] == [b[0] for b in boxes], name
            for b, g in zip(boxes, got[name], strict=True):
                assert max(abs(p - q) for p, q in zip(b[1:], g[1:], strict=True)) <= 0.5, (name, b, g)
