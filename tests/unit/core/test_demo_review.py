"""The demo's reviewer: accepts the suggested fixes that make the labels truer, rejects the others."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from test_issues import World

from labeltool.core import issues as iss
from labeltool.core.store import Project
from labeltool.jobs.demo import review_top_issues


def _truth(tmp: Path) -> Path:
    """What is really on the World's images: a: a crack where b1 says scratch, the dent b2, a second dent
    where the overlooked issue points; b: one crack (b3 and b4 are the same defect)."""
    for name in ("a.png", "b.png"):
        Image.new("RGB", (100, 80)).save(tmp / name)
    boxes = [(1, "crack", (10, 10, 40, 30)), (1, "dent", (50, 40, 90, 70)), (1, "dent", (61, 5, 80, 26)),
             (2, "crack", (5, 5, 20, 20))]
    cats = ["scratch", "dent", "crack"]
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 80},
                      {"id": 2, "file_name": "b.png", "width": 100, "height": 80}],
           "categories": [{"id": i + 1, "name": n} for i, n in enumerate(cats)],
           "annotations": [{"id": k + 1, "image_id": im, "category_id": cats.index(c) + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1]} for k, (im, c, (x1, y1, x2, y2)) in enumerate(boxes)]}
    (tmp / "truth.json").write_text(json.dumps(doc))
    return tmp / "truth.json"


def test_review_accepts_the_true_fixes_and_rejects_the_wrong_ones(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as p:
        w = World(p)
        # by score: duplicate (right), overlooked (right), swap to crack (right), badloc (wrong: b2 is
        # already exact), spurious on b1 (wrong: it is a real crack; reviewed after the swap fixed it)
        w.analyse(w.all())
    truth = _truth(tmp_path)
    result = review_top_issues(tmp_path / "p", 10, truth=truth)
    assert (result["reviewed"], result["accepted"], result["rejected"], result["skipped_stale"]) == (5, 3, 2, 0)
    assert result["by_type"] == {"duplicate": {"accepted": 1, "rejected": 0}, "overlooked": {"accepted": 1, "rejected": 0},
                                 "swap": {"accepted": 1, "rejected": 0}, "badloc": {"accepted": 0, "rejected": 1},
                                 "spurious": {"accepted": 0, "rejected": 1}}
    with Project.open(tmp_path / "p") as p:
        status = {i.type: i.status for i in iss.list_issues(p, status=None)}
        assert status == {"duplicate": "accepted", "overlooked": "accepted", "swap": "accepted",
                          "badloc": "rejected", "spurious": "rejected"}
        names = {c.id: c.name for c in p.classes()}
        labels = sorted((names[b.class_id], b.xyxy) for i in (w.a, w.b) for b in p.boxes(i))
        assert labels == [("crack", (5, 5, 20, 20)), ("crack", (10, 10, 40, 30)), ("dent", (50, 40, 90, 70)),
                          ("dent", (60, 5, 80, 25))]
        assert p.can_undo()  # each decision is a normal edit
    assert review_top_issues(tmp_path / "p", 10, truth=truth)["reviewed"] == 0  # nothing open is left
