"""train → export-model → verify → deploy / rollback through the real CLI on a tiny project."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from .test_cli_data import cli

pytestmark = pytest.mark.slow


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("edge")
    cli("demo-data", tmp / "d", "--images", "24", "--noise", "0")
    cli("new", tmp / "p")
    cli("import", tmp / "p", tmp / "d" / "annotations.json")
    cli("train", tmp / "p", "--epochs", "2", "--image-size", "64", "--batch-size", "4")
    return tmp


def test_export_verify_deploy_rollback(trained: Path) -> None:
    tmp = trained
    out = cli("export-model", tmp / "p", tmp / "bundle", "--calibration-images", "8", "--json")
    res = last_json(out.stdout)
    assert res["run_id"] == 1 and res["calibration_images"] == 8
    names = set(res["files"])
    assert {"model_fp32.onnx", "model_int8.onnx", "anchors.npy", "labels.json", "preprocess.json", "infer.py",
            "README.md"} <= names
    assert json.loads((tmp / "bundle" / "labels.json").read_text()) == ["scratch", "dent", "crack", "stain", "chip"]
    manifest = json.loads((tmp / "bundle" / "manifest.json").read_text())
    assert manifest["run_id"] == 1 and manifest["snapshot_id"] >= 1 and set(manifest["files"]) == names
    assert (tmp / "bundle.zip").is_file()

    # the zip verifies like the folder; FP32 reproduces PyTorch exactly (same boxes -> same mAP)
    ver = last_json(cli("verify", tmp / "bundle.zip", tmp / "p", "--json", "--threads", "1").stdout)
    assert ver["fp32_map50_drop"] == pytest.approx(0.0, abs=1e-3)
    assert {"int8_map50_drop", "int8_latency_ratio", "int8_size_ratio", "fp32_latency_ratio"} <= set(ver)
    assert 0.1 < ver["int8_size_ratio"] < 0.5  # INT8 weights: about a quarter of FP32
    assert len(ver["per_class_ap50"]) == 5 and ver["n_images"] >= 1
    assert Path(ver["report_file"]).is_file()
    human = cli("verify", tmp / "bundle", tmp / "p", check=False)
    assert "mAP@.5" in human.stdout and "FP32: mAP@.5 drop" in human.stdout
    assert human.returncode == (0 if ver["verified"] else 1)

    target = tmp / "line"
    target.mkdir()
    d1 = cli("deploy", tmp / "bundle", target)
    assert "deployed run 1" in d1.stdout
    live = target / "current"
    assert (live / "infer.py").is_file() and json.loads((live / "manifest.json").read_text())["run_id"] == 1

    # a second model, exported and deployed over the first; rollback brings run 1 back
    cli("train", tmp / "p", "--epochs", "1", "--image-size", "64", "--batch-size", "4")
    cli("export-model", tmp / "p", tmp / "bundle2", "--no-int8", "--no-zip")
    assert not (tmp / "bundle2" / "model_int8.onnx").exists() and not (tmp / "bundle2.zip").exists()
    cli("deploy", tmp / "bundle2", target)
    assert json.loads((live / "manifest.json").read_text())["run_id"] == 2
    back = cli("deploy", target, "--rollback")
    assert "rolled back" in back.stdout
    assert json.loads((live / "manifest.json").read_text())["run_id"] == 1


def test_edge_errors_are_clear(trained: Path, tmp_path: Path) -> None:
    tmp = trained
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [
        (("export-model", tmp / "p", tmp_path / "full"), "not an empty folder"),
        (("export-model", tmp / "p", tmp_path / "b", "--run", "99"), "run 99 does not exist"),
        (("verify", tmp_path / "nothing", tmp / "p"), "neither a bundle folder nor"),
        (("deploy", tmp_path / "nothing"), "give BUNDLE and TARGET"),
    ]
    for args, expected in cases:
        proc = cli(*args, check=False)
        assert proc.returncode != 0 and expected in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr

    # a tampered bundle is refused by verify and by deploy, naming the file
    cli("export-model", tmp / "p", tmp_path / "b", "--no-int8", "--no-zip")
    (tmp_path / "b" / "labels.json").write_text('["x"]')
    for args in (("verify", tmp_path / "b", tmp / "p"), ("deploy", tmp_path / "b", tmp_path / "line")):
        proc = cli(*args, check=False)
        assert proc.returncode == 1 and "labels.json" in proc.stderr, proc.stderr

    # a zip with a path-traversal entry is refused before anything is written
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../escaped.txt", "x")
        z.writestr("manifest.json", "{}")
    proc = cli("verify", evil, tmp / "p", check=False)
    assert proc.returncode == 1 and "escaped" in proc.stderr
    assert not (tmp_path.parent / "escaped.txt").exists()
