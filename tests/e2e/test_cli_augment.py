"""augment → list → preview → train (derived images in training only) → delete through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labeltool.core.store import Project

from .test_cli_data import cli

pytestmark = pytest.mark.slow


def test_augment_list_preview_train_delete(tmp_path: Path) -> None:
    cli("demo-data", tmp_path / "d", "--images", "24", "--noise", "0")
    cli("new", tmp_path / "p")
    cli("import", tmp_path / "p", tmp_path / "d" / "annotations.json")

    bad = cli("augment", tmp_path / "p", "--classes", "dent,dnet", check=False)
    assert bad.returncode == 1 and "unknown class 'dnet'" in bad.stderr and "scratch, dent, crack" in bad.stderr
    bad = cli("augment", tmp_path / "p", check=False)
    assert bad.returncode == 1 and "run `labeltool analyze` first" in bad.stderr

    out = cli("augment", tmp_path / "p", "--no-flip", "crack")
    assert "never mirrored (orientation-sensitive): crack" in out.stdout
    out = cli("augment", tmp_path / "p", "--classes", "dent", "--copy-paste", "--preview", tmp_path / "prev",
              "--seed", "2")
    assert "augment set 1:" in out.stdout and "copy-paste composites" in out.stdout and "dent" in out.stdout
    assert (tmp_path / "prev" / "augment-set-1.png").is_file()

    listed = json.loads(cli("augment", tmp_path / "p", "--list", "--json").stdout)
    assert [(s["id"], s["status"], s["classes"]) for s in listed] == [(1, "active", ["dent"])]
    n_derived = listed[0]["images"]
    assert n_derived > 0 and (tmp_path / "p" / "derived" / "1").is_dir()

    out = cli("train", tmp_path / "p", "--epochs", "1", "--image-size", "64", "--batch-size", "8", "--json")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["n_derived"] == n_derived and result["n_val"] > 0
    with Project.open(tmp_path / "p") as p:  # the run validated on real images only
        val = [im for im in p.images(split="val")]
        assert val and not any(im.path.startswith("derived/") for im in val)

    out = cli("train", tmp_path / "p", "--epochs", "1", "--image-size", "64", "--batch-size", "8", "--json",
              "--no-derived")
    assert json.loads(out.stdout.strip().splitlines()[-1])["n_derived"] == 0

    out = cli("augment", tmp_path / "p", "--delete", "1")
    assert f"deleted augment set 1 ({n_derived} images" in out.stdout
    assert "deleted" in cli("augment", tmp_path / "p", "--list").stdout
    bad = cli("augment", tmp_path / "p", "--delete", "7", check=False)
    assert bad.returncode == 1 and "augment set 7 does not exist" in bad.stderr
