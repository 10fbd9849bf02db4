"""Signed bundles: verify and deploy run or install a bundle's code only when a trusted key signed it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from labeltool.core.bundle import MANIFEST, write_manifest
from labeltool.core.errors import BundleError
from labeltool.core.signing import TRUSTED_DIRNAME, public_key_file, signature_status
from labeltool.jobs import drive
from labeltool.jobs.export import deploy_job, verify_job
from labeltool.ml.bundle_infer import check_signature

PAYLOAD = "import pathlib, sys\npathlib.Path(sys.argv[0]).with_name('..').joinpath('PWNED').touch()\n"


def bundle(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "infer.py").write_text("print('detect')\n")
    (folder / "labels.json").write_text('["dent"]')
    write_manifest(folder, meta={"run_id": 1, "snapshot_id": 1, "preset": "edge"}, sign=True)
    return folder


def tamper(folder: Path, *, resign_with: Path | None = None) -> None:
    """Replace infer.py with a payload and re-hash the manifest, as an attacker would."""
    (folder / "infer.py").write_text(PAYLOAD)
    manifest = json.loads((folder / MANIFEST).read_text())
    if resign_with is None:
        meta = {k: v for k, v in manifest.items() if k not in ("format", "format_version", "files", "signature")}
        write_manifest(folder, meta=meta)  # unsigned, hashes fine
    else:  # a valid signature by another installation's key
        old = os.environ["LABELTOOL_KEY_DIR"]
        os.environ["LABELTOOL_KEY_DIR"] = str(resign_with)
        try:
            meta = {k: v for k, v in manifest.items() if k not in ("format", "format_version", "files", "signature")}
            write_manifest(folder, meta=meta, sign=True)
        finally:
            os.environ["LABELTOOL_KEY_DIR"] = old


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LABELTOOL_KEY_DIR", str(tmp_path / "keys"))
    return tmp_path / "keys"


@pytest.mark.parametrize("how", ["unsigned", "other-key", "stale-signature"])
def test_a_tampered_bundle_is_neither_run_nor_installed(tmp_path: Path, keys: Path, how: str) -> None:
    b = bundle(tmp_path / "b")
    if how == "stale-signature":  # files changed, old signature kept
        sig = json.loads((b / MANIFEST).read_text())["signature"]
        tamper(b)
        manifest = json.loads((b / MANIFEST).read_text())
        (b / MANIFEST).write_text(json.dumps({**manifest, "signature": sig}, indent=2, sort_keys=True) + "\n")
    else:
        tamper(b, resign_with=tmp_path / "attacker" if how == "other-key" else None)
    status = signature_status(json.loads((b / MANIFEST).read_text()))[0]
    assert status == {"unsigned": "unsigned", "other-key": "unknown-key", "stale-signature": "bad-signature"}[how]
    with pytest.raises(BundleError, match="will not run its infer.py.*--trust-bundle"):
        drive(verify_job(b, tmp_path / "no-project-needed"), lambda e: None)
    with pytest.raises(BundleError, match="will not install it"):
        drive(deploy_job(b, str(tmp_path / "line")), lambda e: None)
    assert not (tmp_path / "line").exists() and not list(tmp_path.rglob("PWNED"))
    assert check_signature(b, public_key_file()) is not None  # the line PC's infer.py refuses it too


def test_own_and_trusted_signatures_pass(tmp_path: Path, keys: Path) -> None:
    b = bundle(tmp_path / "b")
    assert signature_status(json.loads((b / MANIFEST).read_text()))[0] == "trusted"
    assert check_signature(b, public_key_file()) is None
    result = drive(deploy_job(b, str(tmp_path / "line")), lambda e: None)
    assert result["action"] == "deploy" and (tmp_path / "line" / "current" / "infer.py").is_file()
    # a bundle from another export PC: refused until its public key is trusted here
    other = tmp_path / "other-keys"
    b2 = tmp_path / "b2"
    shutil.copytree(b, b2)
    tamper(b2, resign_with=other)
    assert signature_status(json.loads((b2 / MANIFEST).read_text()))[0] == "unknown-key"
    (keys / TRUSTED_DIRNAME).mkdir()
    shutil.copy(other / "signing-key.pub", keys / TRUSTED_DIRNAME / "line2.pub")
    assert signature_status(json.loads((b2 / MANIFEST).read_text()))[0] == "trusted"
    with pytest.raises(BundleError, match="has a signature that does not match"):  # changed after signing
        (b2 / "labels.json").write_text('["x"]')
        manifest = json.loads((b2 / MANIFEST).read_text())
        manifest["files"]["labels.json"]["size"] = 5
        (b2 / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        from labeltool.core.signing import require_trusted
        require_trusted(json.loads((b2 / MANIFEST).read_text()), where="b2", action="run it")


def test_trust_bundle_accepts_an_unsigned_bundle_knowingly(tmp_path: Path, keys: Path) -> None:
    b = bundle(tmp_path / "b")
    tamper(b)
    result = drive(deploy_job(b, str(tmp_path / "line"), trust_bundle=True), lambda e: None)
    assert result["action"] == "deploy"
