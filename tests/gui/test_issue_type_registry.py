"""Adding a label check is one new module plus one registry entry: a toy check flows to the scoring,
the issue queue, the command line, the report and the review panel with nothing else edited."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from labeltool.core.issue_types import IssueType, register, type_names, unregister
from labeltool.core.issues import list_issues, record_analysis
from labeltool.core.report import analysis_report_data, write_report
from labeltool.core.store import Project

pytestmark = pytest.mark.gui

TOY_MODULE = textwrap.dedent('''
    """A toy label check: boxes under 4 px on a side are not defects anyone can see."""
    import numpy as np

    def score(gt_boxes, gt_labels, pred_boxes, pred_scores, pred_labels, thresholds):
        side = np.minimum(gt_boxes[:, 2] - gt_boxes[:, 0], gt_boxes[:, 3] - gt_boxes[:, 1])
        return np.where(side < 4, 0.01, 1.0)
''')


@pytest.fixture
def toy_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "toy_tiny_check.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    kind = register(IssueType("tiny", "Tiny box", "the box is too small to be a defect", "delete_box",
                              scorer="toy_tiny_check:score"))
    yield kind
    unregister("tiny")


def test_a_registered_check_reaches_every_consumer(tmp_path: Path, toy_check: IssueType, qtbot, capsys) -> None:
    from labeltool.cli import main
    from labeltool.gui.review_panel import ReviewPanel
    from labeltool.jobs.analysis import _new_issue
    from labeltool.ml.data import snapshot_samples
    from labeltool.ml.quality import score_labels

    with Project.create(tmp_path / "p") as p:
        cid = p.add_class("dent")
        for n in range(3):
            path = p.root / "images" / f"im{n}.png"
            PILImage.fromarray(np.full((64, 64, 3), 40 * n, np.uint8)).save(path)
            with p.edit("add image") as e:
                iid = e.insert("images", {"path": f"images/im{n}.png", "sha256": f"{n:064d}", "width": 64,
                                          "height": 64, "split": "train", "added_at": "t", "origin": "x", "labeled": 1})
            p.add_box(iid, cid, (10, 10, 30, 30))
        tiny = p.add_box(iid, cid, (50, 50, 52, 52))
        snapshot = p.create_snapshot()
        names, samples = snapshot_samples(p, snapshot)
        quality = score_labels(
            gt_boxes=[s.boxes for s in samples], gt_labels=[s.labels for s in samples],
            pred_boxes=[s.boxes[:1] for s in samples], pred_scores=[np.array([0.9])] * 3,
            pred_labels=[np.array([0])] * 3, num_classes=1)
        found = [c for c in quality.candidates if c.type == "tiny"]
        assert len(found) == 1 and found[0].score == pytest.approx(0.01)
        issues = [_new_issue(c, samples, names, {"dent": cid}) for c in quality.candidates]
        aid, counts = record_analysis(p, snapshot_id=snapshot, run_id=None, mode="kfold", folds=2, config={},
                                      summary={}, issues=issues)
        (queued,) = [i for i in list_issues(p, analysis_id=aid) if i.type == "tiny"]
        assert queued.box_id == tiny and queued.fix == {"action": "delete_box", "box_id": tiny}

    assert "tiny" in type_names()
    assert main(["issues", str(tmp_path / "p"), "--type", "tiny", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["type"] for r in rows] == ["tiny"]

    with Project.open(tmp_path / "p") as p:
        data = analysis_report_data(p)
        assert data["counts"]["by_type"]["tiny"]["open"] == 1
        page = write_report(p, tmp_path / "report.html").read_text()
    assert "Tiny box" in page and "the box is too small to be a defect" in page

    panel = ReviewPanel()
    qtbot.addWidget(panel)
    with Project.open(tmp_path / "p") as p:
        panel.set_project(p)
        index = panel.type_combo.findData("tiny")
        assert index >= 0 and panel.type_combo.itemText(index) == "Tiny box"
        panel.type_combo.setCurrentIndex(index)
        panel.type_combo.activated.emit(index)
        assert panel.current_issue() is not None and panel.current_issue().type == "tiny"
        panel.accept_current()
        assert tiny not in {b.id for b in p.boxes(iid)}
        panel.set_project(None)
