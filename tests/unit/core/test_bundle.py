"""Bundle manifest, deterministic zip and safe unzip: real folders and real (hostile) zip files."""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from labeltool.core.bundle import (
    DEFAULT_MAX_UNPACKED_BYTES,
    FORMAT_VERSION,
    MANIFEST,
    extract_bundle,
    verify_manifest,
    write_manifest,
    zip_bundle,
)
from labeltool.core.errors import BundleError

FILES = ("model_fp32.onnx", "model_int8.onnx", "anchors.npy", "labels.json", "preprocess.json", "infer.py",
         "README.md", "calib/sample.txt")


def make_bundle(folder: Path, version: int = 1) -> Path:
    for name in FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(f"{name} v{version}\n".encode() * (50 + version))
    write_manifest(folder, meta={"run_id": f"run-{version}", "snapshot_id": version, "preset": "edge"})
    return folder


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "bundle")


# ------------------------------------------------------------------------------------------ manifest

def test_manifest_lists_every_file_with_hash_size_and_meta(bundle: Path) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(FILES)
    assert manifest["files"]["calib/sample.txt"]["size"] == (bundle / "calib/sample.txt").stat().st_size
    assert manifest["format_version"] == FORMAT_VERSION and manifest["run_id"] == "run-1"
    assert manifest["labeltool_version"] and manifest["created"].endswith("Z")
    assert verify_manifest(bundle) == manifest
    assert not [p for p in bundle.iterdir() if p.name.endswith(".tmp")]


def test_meta_cannot_override_the_file_table(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="files"):
        write_manifest(tmp_path, meta={"files": {}})


def test_tampered_file_is_named(bundle: Path) -> None:
    data = bytearray((bundle / "model_int8.onnx").read_bytes())
    data[10] ^= 0xFF  # same size, different content
    (bundle / "model_int8.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"'model_int8.onnx' does not match its sha256"):
        verify_manifest(bundle)


def test_truncated_file_is_named(bundle: Path) -> None:
    (bundle / "anchors.npy").write_bytes(b"x")
    with pytest.raises(BundleError, match=r"'anchors.npy' has 1 bytes"):
        verify_manifest(bundle)


def test_extra_file_is_named(bundle: Path) -> None:
    (bundle / "calib" / "notes.txt").write_text("added later")
    with pytest.raises(BundleError, match=r"'calib/notes.txt' is not listed in manifest.json"):
        verify_manifest(bundle)


def test_missing_file_is_named(bundle: Path) -> None:
    (bundle / "labels.json").unlink()
    with pytest.raises(BundleError, match=r"'labels.json' is listed in manifest.json but missing"):
        verify_manifest(bundle)


def test_first_bad_file_in_name_order_is_reported(bundle: Path) -> None:
    (bundle / "README.md").write_text("changed")
    (bundle / "anchors.npy").unlink()
    with pytest.raises(BundleError, match="'README.md'"):  # 'R' < 'a' in code-point order
        verify_manifest(bundle)


@pytest.mark.parametrize(("content", "message"), [
    (None, "has no manifest.json"),
    (b"{not json", "not valid JSON"),
    (b"[]", "not a labeltool bundle manifest"),
    (json.dumps({"format": "labeltool-edge-bundle", "format_version": FORMAT_VERSION + 1, "files": {}}).encode(),
     "made by a newer labeltool"),
    (json.dumps({"format": "labeltool-edge-bundle", "format_version": 1,
                 "files": {"../outside": {"sha256": "0" * 64, "size": 1}}}).encode(), "'..' component"),
    (json.dumps({"format": "labeltool-edge-bundle", "format_version": 1,
                 "files": {"infer.py": {"sha256": "xyz", "size": 1}}}).encode(), "needs a sha256 and a size"),
])
def test_bad_manifest_is_refused(bundle: Path, content: bytes | None, message: str) -> None:
    if content is None:
        (bundle / MANIFEST).unlink()
    else:
        (bundle / MANIFEST).write_bytes(content)
    with pytest.raises(BundleError, match=message):
        verify_manifest(bundle)


def test_symlink_in_bundle_is_refused(bundle: Path) -> None:
    os.symlink("/etc/hostname", bundle / "link.txt")
    with pytest.raises(BundleError, match="'link.txt' is a symbolic link"):
        write_manifest(bundle, meta={})
    with pytest.raises(BundleError, match="'link.txt' is a symbolic link"):
        verify_manifest(bundle)


# ----------------------------------------------------------------------------------------------- zip

def test_zip_round_trip_is_deterministic(bundle: Path, tmp_path: Path) -> None:
    first = zip_bundle(bundle, tmp_path / "out" / "b.zip")
    os.utime(bundle / "infer.py", (1_000_000, 1_000_000))  # mtimes must not matter
    second = zip_bundle(bundle, tmp_path / "b2.zip")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        assert names == sorted(names) and MANIFEST in names
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    dest = extract_bundle(first, tmp_path / "unpacked")
    assert tree(dest) == tree(bundle)
    for name in FILES:
        assert (dest / name).read_bytes() == (bundle / name).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b2.zip", "bundle", "out", "unpacked"]


def test_zip_refuses_a_tampered_bundle_and_writes_nothing(bundle: Path, tmp_path: Path) -> None:
    (bundle / "infer.py").write_text("print('evil')")
    with pytest.raises(BundleError, match="'infer.py'"):
        zip_bundle(bundle, tmp_path / "b.zip")
    assert not (tmp_path / "b.zip").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def _hostile_zip(bundle: Path, path: Path, name: str, *, symlink: bool = False, twice: bool = False) -> Path:
    """A zip with the bundle's files plus one hostile entry (written after the good ones)."""
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we write on purpose
        for f in sorted([*FILES, MANIFEST]):
            zf.write(bundle / f, f)
        info = zipfile.ZipInfo(name)
        if symlink:
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd" if symlink else "evil")
        if twice:
            zf.writestr(zipfile.ZipInfo(name), "evil again")
    return path


ABS = f"/tmp/labeltool-evil-{secrets.token_hex(4)}"


@pytest.mark.parametrize(("entry", "kw", "reason"), [
    ("../evil", {}, "'..' component"),
    (ABS, {}, "absolute path"),
    ("a/../../evil", {}, "'..' component"),
    ("C:/evil", {}, "drive letter"),
    ("..\\evil", {}, "backslash"),
    ("./evil", {}, "'.' path component"),
    ("evil-link", {"symlink": True}, "symbolic link"),
    ("infer.py", {}, "appears twice"),
    ("INFER.PY", {}, "appears twice"),
    ("dup.txt", {"twice": True}, "appears twice"),
])
def test_hostile_zip_is_refused_and_leaves_nothing(bundle: Path, tmp_path: Path, entry: str, kw: dict,
                                                   reason: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    zpath = _hostile_zip(bundle, work / "hostile.zip", entry, **kw)
    dest = work / "sub" / "dest"
    before = tree(tmp_path)
    with pytest.raises(BundleError, match=rf"entry '{re.escape(entry[:2])}.*{reason}") as exc:
        extract_bundle(zpath, dest)
    assert "refusing to unpack" in str(exc.value)
    assert tree(tmp_path) == before  # no dest, no temp folder, nothing outside
    assert not Path(ABS).exists() and not (tmp_path / "evil").exists() and not Path("/evil").exists()


def test_zip_bomb_limit(bundle: Path, tmp_path: Path) -> None:
    zpath = zip_bundle(bundle, tmp_path / "b.zip")
    with pytest.raises(BundleError, match="unpacks to more than 100 bytes"):
        extract_bundle(zpath, tmp_path / "dest", max_unpacked_bytes=100)
    assert not (tmp_path / "dest").exists()
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, "{}")
        zf.writestr("zeros.bin", bytes(64 * 1024 * 1024))
    assert (tmp_path / "bomb.zip").stat().st_size < 1024 * 1024  # 64 MiB of zeros in < 1 MiB
    with pytest.raises(BundleError, match="zip bomb"):
        extract_bundle(tmp_path / "bomb.zip", tmp_path / "dest", max_unpacked_bytes=16 * 1024 * 1024)
    assert DEFAULT_MAX_UNPACKED_BYTES >= 1024**3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.zip", "bomb.zip", "bundle"]


def damaged_zip(bundle: Path, path: Path) -> Path:
    """A stored (uncompressed) bundle zip with one byte of its last entry flipped: a CRC error mid-unpack."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted([*FILES, MANIFEST]):
            zf.write(bundle / f, f)
        last = zf.infolist()[-1]
    data = bytearray(path.read_bytes())
    start = last.header_offset + 30 + len(last.filename.encode()) + len(last.extra)
    data[start + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def test_damaged_zip_mid_unpack_leaves_nothing(bundle: Path, tmp_path: Path) -> None:
    zpath = damaged_zip(bundle, tmp_path / "damaged.zip")
    with pytest.raises(BundleError, match=r"entry 'preprocess.json' is damaged"):
        extract_bundle(zpath, tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "damaged.zip"]


def test_zip_with_valid_crc_but_tampered_content_fails_verification(bundle: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "t.zip", "w") as zf:
        for f in sorted([*FILES, MANIFEST]):
            zf.writestr(f, b"tampered" if f == "model_fp32.onnx" else (bundle / f).read_bytes())
    with pytest.raises(BundleError, match=r"t.zip: 'model_fp32.onnx' has 8 bytes"):
        extract_bundle(tmp_path / "t.zip", tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "t.zip"]


def test_extract_refuses_non_empty_dest_and_non_zip(bundle: Path, tmp_path: Path) -> None:
    zpath = zip_bundle(bundle, tmp_path / "b.zip")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep me")
    with pytest.raises(BundleError, match="not an empty folder"):
        extract_bundle(zpath, tmp_path / "busy")
    assert (tmp_path / "busy" / "x").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert extract_bundle(zpath, tmp_path / "empty") == tmp_path / "empty"
    assert verify_manifest(tmp_path / "empty")
    (tmp_path / "no.zip").write_text("not a zip")
    with pytest.raises(BundleError, match="not a zip file"):
        extract_bundle(tmp_path / "no.zip", tmp_path / "dest")
    with pytest.raises(BundleError, match="not found"):
        extract_bundle(tmp_path / "missing.zip", tmp_path / "dest")
