"""The data commands of the real CLI, run as a user would (subprocess, exit codes, messages)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labeltool.core.issues import list_issues
from labeltool.core.runs import list_runs
from labeltool.core.store import Project


def cli(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "labeltool.cli", *map(str, args)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "LABELTOOL_DEBUG": ""},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"labeltool {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def boxes_by_hash(root: Path) -> dict[str, list[tuple[str, float, float, float, float]]]:
    """sha256 of each image's file -> sorted (class name, x1, y1, x2, y2)."""
    with Project.open(root) as p:
        names = {c.id: c.name for c in p.classes()}
        by_image = p.all_boxes()
        out = {}
        for img in p.images():
            assert hashlib.sha256(p.image_file(img).read_bytes()).hexdigest() == img.sha256
            out[img.sha256] = sorted((names[b.class_id], *b.xyxy) for b in by_image.get(img.id, []))
        return out


def assert_same_boxes(a: dict, b: dict, tol: float) -> float:
    """Same images (by content hash), and per image a one-to-one match of boxes of the same class
    whose coordinates differ by at most ``tol`` px. Returns the worst difference."""
    assert a.keys() == b.keys()
    worst = 0.0
    for key in a:
        assert len(a[key]) == len(b[key]), key
        left = list(b[key])
        for box in a[key]:
            diffs = [max(abs(u - v) for u, v in zip(box[1:], other[1:], strict=True)) if other[0] == box[0]
                     else float("inf") for other in left]
            best = min(range(len(left)), key=diffs.__getitem__)
            worst = max(worst, diffs[best])
            left.pop(best)
    assert worst <= tol
    return worst


@pytest.mark.shared_data
@pytest.mark.slow
def test_deeppcb_round_trip_through_coco_and_voc_is_identical(deeppcb: Path, tmp_path: Path) -> None:
    cli("new", tmp_path / "p")
    out = cli("import", tmp_path / "p", deeppcb, "--format", "yolo")
    assert "imported 500 new images, 3641 boxes" in out.stdout
    original = boxes_by_hash(tmp_path / "p")
    stats = json.loads(cli("stats", tmp_path / "p", "--json").stdout)
    assert stats["splits"] == {"train": 400, "val": 100}
    assert [c["name"] for c in stats["classes"]] == ["open", "short", "mousebite", "spur", "copper", "pin-hole"]
    assert [c["boxes"] for c in stats["classes"]] == [716, 614, 713, 604, 520, 474]
    for fmt in ("coco", "voc", "yolo"):
        cli("export", tmp_path / "p", tmp_path / f"out-{fmt}", "--format", fmt)
        cli("new", tmp_path / f"p-{fmt}")
        cli("import", tmp_path / f"p-{fmt}", tmp_path / f"out-{fmt}", "--format", fmt, "--strict")
        assert_same_boxes(original, boxes_by_hash(tmp_path / f"p-{fmt}"), tol=0.5)
        again = json.loads(cli("stats", tmp_path / f"p-{fmt}", "--json").stdout)
        assert again["splits"] == stats["splits"] and again["classes"] == stats["classes"]


def test_demo_data_then_import_gives_the_noisy_labels(tmp_path: Path) -> None:
    out = cli("demo-data", tmp_path / "d", "--images", "30", "--noise", "0.2", "--seed", "3")
    assert "injected errors" in out.stdout
    noise = json.loads((tmp_path / "d" / "noise.json").read_text())
    clean = json.loads((tmp_path / "d" / "annotations_clean.json").read_text())
    noisy = json.loads((tmp_path / "d" / "annotations.json").read_text())
    assert len(noise["records"]) == round(0.2 * len(clean["annotations"]) + 1e-9) or len(noise["records"]) >= 1
    n_drop = sum(r["kind"] == "drop" for r in noise["records"])
    n_spurious = sum(r["kind"] == "spurious" for r in noise["records"])
    assert len(noisy["annotations"]) == len(clean["annotations"]) - n_drop + n_spurious
    cli("new", tmp_path / "p")
    cli("import", tmp_path / "p", tmp_path / "d" / "annotations.json")
    stats = json.loads(cli("stats", tmp_path / "p", "--json").stdout)
    assert stats["images"] == 30 and stats["boxes"] == len(noisy["annotations"])
    assert stats["labeled_images"] == 30  # defect-free parts are labeled, not unlabeled


def test_demo_command_builds_project_and_prints_stats(tmp_path: Path) -> None:
    out = cli("demo", tmp_path / "demo", "--images", "24", "--train-minutes", "0.15", "--analyze-minutes", "0.3",
              "--finetune-epochs", "1", "--review", "15", "--offline")
    assert "demo project:" in out.stdout
    assert "mAP (all)" in out.stdout and "WARNING" not in out.stderr  # --offline, yet pretrained
    assert "pretrained ImageNet tf_efficientnet_lite0 weights from the installed package" in out.stderr
    assert "first model: the pretrained edge detector" in out.stdout
    assert "label-quality analysis" in out.stdout and "recommendation" in out.stdout
    assert "step 8/8: verify bundle" in out.stderr  # a progress line per step
    assert (tmp_path / "demo" / "project" / "project.db").is_file()
    with Project.open(tmp_path / "demo" / "project") as p:
        n_accepted = len(list_issues(p, status="accepted"))
        n_rejected = len(list_issues(p, status="rejected"))
        runs = list_runs(p)
        sets = p.connection.execute("SELECT count(*) FROM augment_sets").fetchone()[0]
        n_derived = p.connection.execute("SELECT count(*) FROM images WHERE path LIKE 'derived/%'").fetchone()[0]
    # the 24 generated images + the augment set (how many depends on which classes the weak models flag)
    assert n_derived > 0 and f"images    {24 + n_derived}  " in out.stdout
    # the demo reviews the top of the queue as a user would (tests/unit/core/test_demo_review.py checks the
    # decisions); 0.3-minute fold models on 24 images may raise nothing at all
    if n_accepted + n_rejected:
        assert "3. reviewed the top" in out.stdout and "The fold models were weak" in out.stdout
        assert f"Accepted {n_accepted} " in out.stdout and f"rejected {n_rejected} " in out.stdout
        assert n_accepted + n_rejected <= 15
    else:
        assert "3. nothing to review" in out.stdout or "no longer applied" in out.stdout
    assert sets == 1 and "4. augment set" in out.stdout
    assert len(runs) == 2 and runs[1].previous_id == runs[0].id and runs[1].config["weights"]["kind"] == "run"
    assert "5. fine-tuned the first model" in out.stdout and "Δ" in out.stdout  # the before/after table
    assert "6. edge bundle:" in out.stdout and "VERIFIED" in out.stdout
    assert (tmp_path / "demo" / "bundle.zip").is_file() and (tmp_path / "demo" / "bundle.verification.json").is_file()
    cli("demo", tmp_path / "demo", "--images", "10", "--train-minutes", "0", "--analyze-minutes", "0")  # rebuilt
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    bad = cli("demo", tmp_path / "mine", "--train-minutes", "0", "--analyze-minutes", "0", check=False)
    assert bad.returncode == 1 and "not made by `labeltool demo`" in bad.stderr
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "precious"


def test_user_errors_exit_1_with_a_message_and_no_traceback(tmp_path: Path) -> None:
    cases = [
        (("stats", tmp_path / "nope"), "labeltool new"),
        (("import", tmp_path / "nope", tmp_path), "no such project folder"),
        (("export", tmp_path / "nope", tmp_path / "x", "--format", "coco"), "no such project folder"),
    ]
    cli("new", tmp_path / "p")
    (tmp_path / "broken.json").write_text('{"images": [')
    cases += [
        (("import", tmp_path / "p", tmp_path / "broken.json"), "line 1"),
        (("import", tmp_path / "p", tmp_path / "missing.json"), "no such file or folder"),
        (("new", tmp_path / "p"), "already holds a project"),
        (("demo-data", tmp_path / "dd", "--images", "0"), "n_images"),
    ]
    for args, expected in cases:
        proc = cli(*args, check=False)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert expected in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    usage = cli("import", tmp_path / "p", check=False)
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_bad_files_are_reported_not_fatal_and_strict_stops(tmp_path: Path) -> None:
    src = tmp_path / "folder"
    cli("demo-data", tmp_path / "d", "--images", "4")
    src.mkdir()
    for p in sorted((tmp_path / "d" / "images").iterdir())[:3]:
        (src / p.name).write_bytes(p.read_bytes())
    (src / "zero.png").write_bytes(b"")
    (src / "notes.jpg").write_text("not an image")
    cli("new", tmp_path / "p")
    strict = cli("import", tmp_path / "p", src, "--strict", check=False)
    assert strict.returncode == 1 and "zero.png" in strict.stderr and "nothing was imported" in strict.stderr
    out = cli("import", tmp_path / "p", src, "--json")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["images_added"] == 3 and result["images_skipped"] == 2
    assert sorted(e["file"] for e in result["errors"]) == ["notes.jpg", "zero.png"]
    logs = list((tmp_path / "p" / "logs").glob("import-*.json"))
    assert len(logs) == 1 and json.loads(logs[0].read_text())["images_skipped"] == 2
