"""analyze → issues → accept/reject → report through the real CLI on a tiny noisy project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labeltool.core.store import Project

from .test_cli_data import cli

pytestmark = pytest.mark.slow


def test_analyze_review_and_report(tmp_path: Path) -> None:
    cli("demo-data", tmp_path / "d", "--images", "16", "--noise", "0.25", "--seed", "2")
    cli("new", tmp_path / "p")
    cli("import", tmp_path / "p", tmp_path / "d" / "annotations.json")
    with Project.open(tmp_path / "p") as p:  # 3 boxes drawn twice (1 px apart): errors any model lets us find
        for b in [bs[0] for bs in p.all_boxes().values() if bs][:3]:
            x1, y1, x2, y2 = b.xyxy
            p.add_box(b.image_id, b.class_id, (x1 + 1, y1, x2, y2))
    out = cli("analyze", tmp_path / "p", "--folds", "2", "--epochs-per-fold", "2", "--image-size", "64", "--json")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # 2-epoch fold models find few defects (other issue types come and go with them); the duplicates stay
    assert result["mode"] == "kfold" and result["counts"]["recorded"] >= 3
    assert {r["class"] for r in result["weak_classes"]} == {"scratch", "dent", "crack", "stain", "chip"}
    assert all(r["recommendation"] in ("relabel", "collect more images", "augment", "ok", "not judged")
               for r in result["weak_classes"])
    assert "high" in result["thresholds"] and result["thresholds"]["source"]
    assert any("found few defects" in n for n in result["notes"])  # 2 epochs from scratch: says so

    issues = [json.loads(line) for line in cli("issues", tmp_path / "p", "--json").stdout.splitlines()]
    assert len(issues) == result["counts"]["recorded"]
    assert sum(i["type"] == "duplicate" for i in issues) >= 3  # one stays open for the report
    assert [i["score"] for i in issues] == sorted(i["score"] for i in issues)
    first = issues[0]
    assert {"id", "type", "score", "impact", "image", "box", "fix"} <= set(first)
    # the impact order needs class APs that say which class is weak; 2-epoch models cannot: most likely first
    with Project.open(tmp_path / "p") as p:
        summary = json.loads(p.connection.execute("SELECT summary FROM analyses").fetchone()[0])
    assert "class_headroom" in summary and summary["class_headroom"] is None
    text = cli("issues", tmp_path / "p", "--order", "impact").stdout
    assert text.startswith("most likely first — this analysis cannot tell which classes are weak: "
                           "its fold models were too weak to judge classes")
    assert "give the analysis more minutes, or pretrained weights" in text.splitlines()[0]
    by_impact = [json.loads(line) for line in cli("issues", tmp_path / "p", "--order", "impact", "--json")
                 .stdout.splitlines()]
    assert [i["id"] for i in by_impact] == [i["id"] for i in issues]
    assert all(i["impact"] == pytest.approx(1 - i["score"], abs=2e-4) for i in by_impact)
    # with class headroom (as a full analysis with usable fold models stores it): ordered by gain, shown per row
    with Project.open(tmp_path / "p") as p:
        weak_id = next(c.id for c in p.classes() if c.name == issues[-1]["class"]) if issues[-1]["class"] else None
        rooms = {str(c.id): (0.9 if c.id == weak_id else 0.05) for c in p.classes()}
        p.connection.execute("UPDATE analyses SET summary = ?", (json.dumps({**summary, "class_headroom": rooms}),))
        p.connection.commit()
    lines = cli("issues", tmp_path / "p", "--order", "impact").stdout.splitlines()
    assert lines[0].startswith("biggest expected model gain first")
    gains = [float(line.split("gain ")[1].split()[0]) for line in lines[1:]]
    assert len(gains) == len(issues) and gains == sorted(gains, reverse=True)
    if weak_id is not None:  # an issue of the weak class first (the least likely issue's class was made weak)
        top = next(i for i in issues if lines[1].startswith(f"#{i['id']} "))
        assert issues[-1]["class"] in (top["class"], top["fix"].get("class"))
    with Project.open(tmp_path / "p") as p:
        p.connection.execute("UPDATE analyses SET summary = ?", (json.dumps(summary),))
        p.connection.commit()

    with Project.open(tmp_path / "p") as p:
        boxes_before = p.box_count()
    cli("issues", tmp_path / "p", "accept", first["id"])
    with Project.open(tmp_path / "p") as p:
        change = {"add_box": 1, "delete_box": -1}.get(first["fix"]["action"], 0)
        assert p.box_count() == boxes_before + change
        assert p.history(limit=1)[0].action == "accept issue"
    if len(issues) > 1:
        cli("issues", tmp_path / "p", "reject", issues[1]["id"])
        rejected = [json.loads(x) for x in cli("issues", tmp_path / "p", "--status", "rejected", "--json")
                    .stdout.splitlines()]
        assert [r["id"] for r in rejected] == [issues[1]["id"]]

    bad = cli("issues", tmp_path / "p", "accept", first["id"], check=False)
    assert bad.returncode == 1 and "labeltool analyze" in bad.stderr

    out = cli("report", tmp_path / "p", tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "scratch" in html
    assert json.loads((tmp_path / "report.json").read_text())["schema_version"] == 1


def test_quick_check_needs_a_model_and_says_it_is_less_reliable(tmp_path: Path) -> None:
    cli("demo-data", tmp_path / "d", "--images", "10", "--noise", "0.2")
    cli("new", tmp_path / "p")
    cli("import", tmp_path / "p", tmp_path / "d" / "annotations.json")
    no_model = cli("analyze", tmp_path / "p", "--quick", check=False)
    assert no_model.returncode == 1 and "needs a trained model" in no_model.stderr
    cli("train", tmp_path / "p", "--epochs", "1", "--image-size", "64", "--batch-size", "4")
    out = cli("analyze", tmp_path / "p", "--quick")
    assert "NOTE: quick check" in out.stdout and "run the full check" in out.stdout
