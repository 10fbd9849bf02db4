"""The analysis report: self-contained HTML (escaped text, embedded PNG thumbnails, inline SVG) + JSON."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from labeltool.core import issues as iss
from labeltool.core.errors import ProjectError
from labeltool.core.issues import NewIssue
from labeltool.core.report import QUICK_NOTE, analysis_report_data, write_report
from labeltool.core.store import Project

WEAK = [
    {"class": "scratch", "boxes": 12, "images": 9, "ap50": 0.81, "label_quality": 0.9, "confused_with": None,
     "confusion_share": 0.0, "recommendation": "ok", "reason": "enough consistent examples"},
    {"class": "<b>x", "boxes": 3, "images": 2, "ap50": None, "label_quality": 0.42, "confused_with": "scratch",
     "confusion_share": 0.5, "recommendation": "label more", "reason": "only 3 boxes & often called 'scratch'"},
]


class Setup:
    def __init__(self, root: Path) -> None:
        self.p = p = Project.create(root)
        self.scratch, self.odd, self.dent = (p.add_class(n) for n in ("scratch", "<b>x", "dent"))
        self.images = []
        for k, size in enumerate(((320, 200), (64, 48))):
            Image.new("RGB", size, (90 + 40 * k, 120, 90)).save(p.images_dir / f"part{k}.png")
            with p.edit("add image") as e:
                self.images.append(e.insert("images", {
                    "path": f"images/part{k}.png", "sha256": f"h{k}", "width": size[0], "height": size[1],
                    "split": "train", "added_at": "t", "origin": None, "labeled": 1}))
        a, b = self.images
        with p.edit("label") as e:
            self.b1 = e.add_box(image_id=a, class_id=self.scratch, xyxy=(20, 20, 120, 60))
            self.b2 = e.add_box(image_id=a, class_id=self.odd, xyxy=(150, 100, 200, 150))
            self.b3 = e.add_box(image_id=b, class_id=self.dent, xyxy=(2, 2, 20, 20))
            self.b4 = e.add_box(image_id=b, class_id=self.dent, xyxy=(3, 3, 21, 21))

    def analyse(self, mode: str = "kfold", **kw: Any) -> int:
        a, b = self.images
        found = [
            NewIssue("overlooked", a, None, self.dent, 0.11, {"action": "add_box", "class_id": self.dent,
                                                            "xyxy": [230, 30, 280, 70]}),
            NewIssue("swap", a, self.b2, self.odd, 0.2, {"action": "set_class", "box_id": self.b2,
                                                         "class_id": self.scratch}),
            NewIssue("badloc", a, self.b1, self.scratch, 0.3, {"action": "move_box", "box_id": self.b1,
                                                               "xyxy": [25, 22, 130, 66]}),
            NewIssue("spurious", b, self.b3, self.dent, 0.4, {"action": "delete_box", "box_id": self.b3}),
            NewIssue("duplicate", b, self.b4, self.dent, 0.05, {"action": "delete_box", "box_id": self.b4}),
        ]
        aid, _ = iss.record_analysis(
            self.p, snapshot_id=self.p.create_snapshot(), run_id=None, mode=mode,
            folds=5 if mode == "kfold" else None, config={"thresholds": {"overlooked_min_score": 0.35}},
            summary={"weak_classes": WEAK, "timings": {"predict": 12.5}}, issues=found, **kw)
        return aid


@pytest.fixture
def s(tmp_path: Path) -> Setup:
    setup = Setup(tmp_path / "line-3")
    yield setup
    setup.p.close()


def test_no_analysis_yet_says_what_to_do(s: Setup, tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="labeltool analyze"):
        write_report(s.p, tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r.json").exists()


def test_report_data_has_counts_weak_classes_and_resolved_issues(s: Setup) -> None:
    aid = s.analyse()
    iss.reject_issues(s.p, [iss.list_issues(s.p, types=["spurious"])[0].id])
    data = analysis_report_data(s.p, max_issues=3)
    assert data["schema_version"] == 1 and data["project"]["name"] == "line-3"
    a = data["analysis"]
    assert (a["id"], a["mode"], a["folds"], a["note"]) == (aid, "kfold", 5, None)
    assert a["thresholds"] == {"overlooked_min_score": 0.35}
    assert data["counts"]["by_type"]["spurious"]["rejected"] == 1
    assert (data["counts"]["open"], data["counts"]["total"], data["issues_open"]) == (4, 5, 4)
    assert data["weak_classes"] == WEAK and data["summary"] == {"timings": {"predict": 12.5}}
    assert [i["type"] for i in data["issues"]] == ["duplicate", "overlooked", "swap"]  # 3 most likely, open
    dup, over, swap = data["issues"]
    assert dup["image"] == "images/part1.png" and dup["box_xyxy"] == [3, 3, 21, 21] and dup["class"] == "dent"
    assert dup["fix_text"] == "delete the box"
    assert over["box_xyxy"] is None and over["fix"] == {"action": "add_box", "class_id": s.dent,
                                                         "xyxy": [230, 30, 280, 70], "class": "dent"}
    assert over["fix_text"] == "add a 'dent' box"
    assert swap["fix_text"] == "change '<b>x' to 'scratch'" and swap["fix"]["class"] == "scratch"
    json.dumps(data, allow_nan=False)  # JSON-able


def _pngs(page: str) -> list[Image.Image]:
    found = re.findall(r'href="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(b, validate=True))) for b in found]


def test_html_is_self_contained_escaped_and_shows_everything(s: Setup, tmp_path: Path) -> None:
    s.analyse()
    out = write_report(s.p, tmp_path / "out" / "report.html", thumb_side=128)
    page = out.read_text(encoding="utf-8")
    assert out == tmp_path / "out" / "report.html"
    for text in ("line-3", "scratch", "dent", "Missing box", "Wrong class", "Badly placed box", "Box on nothing",
                 "Duplicate box", "overlooked", "swap", "badloc", "spurious", "duplicate", "label more",
                 "only 3 boxes &amp; often called &#x27;scratch&#x27;", "overlooked_min_score", "0.35",
                 "Add a &#x27;dent&#x27; box", "Snap the box", "Delete the box", "images/part0.png"):
        assert text in page, text
    assert "<b>x" not in page and "&lt;b&gt;x" in page  # class names are escaped everywhere
    assert "&lt;b&gt;x → scratch" in page  # the swap label on the thumbnail
    assert "stroke-dasharray" in page and page.count('class="chart"') == 2  # suggestions dashed; 2 bar charts
    pngs = _pngs(page)
    assert len(pngs) == 5  # one thumbnail per issue card
    assert all(im.format == "PNG" for im in pngs)
    assert {im.size for im in pngs} == {(128, 80), (64, 48)}  # longest side <= thumb_side, never enlarged
    big = next(im for im in pngs if im.size == (128, 80))
    assert big.convert("RGB").getpixel((5, 5)) == (90, 120, 90)  # the image itself; boxes are SVG on top
    assert not re.search(r'(src|href)="(?!data:)', page) and "<script" not in page  # nothing external, no JS
    assert QUICK_NOTE not in page and "Quick mode" not in page
    data = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert data["schema_version"] == 1
    assert {"project", "analysis", "counts", "weak_classes", "summary", "issues", "issues_open"} <= set(data)
    assert {"id", "type", "score", "impact", "image", "class", "box_xyxy", "fix", "fix_text"} <= set(data["issues"][0])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.json"]  # no temp files


def test_quick_mode_shows_the_warning(s: Setup, tmp_path: Path) -> None:
    s.analyse(mode="quick")
    page = write_report(s.p, tmp_path / "q.html").read_text(encoding="utf-8")
    assert 'class="warn"' in page and "Quick mode is less reliable" in page
    assert analysis_report_data(s.p)["analysis"]["note"] == QUICK_NOTE
    kfold = s.analyse()
    page = write_report(s.p, tmp_path / "k.html", analysis_id=kfold).read_text(encoding="utf-8")
    assert 'class="warn"' not in page


def test_missing_image_file_and_deleted_box_do_not_break_the_report(s: Setup, tmp_path: Path) -> None:
    s.analyse()
    (s.p.images_dir / "part1.png").unlink()
    s.p.delete_boxes([s.b1])
    page = write_report(s.p, tmp_path / "r.html", max_issues=10).read_text(encoding="utf-8")
    assert page.count("image not available") == 2  # the two issues on part1.png
    assert len(_pngs(page)) == 3
    badloc = next(i for i in analysis_report_data(s.p)["issues"] if i["type"] == "badloc")
    assert badloc["box_xyxy"] is None


def test_bad_arguments(s: Setup, tmp_path: Path) -> None:
    s.analyse()
    with pytest.raises(ValueError, match="json"):
        write_report(s.p, tmp_path / "r.json")
    with pytest.raises(ValueError, match="thumb_side"):
        write_report(s.p, tmp_path / "r.html", thumb_side=4)
    with pytest.raises(ValueError, match="max_issues"):
        analysis_report_data(s.p, max_issues=-1)
