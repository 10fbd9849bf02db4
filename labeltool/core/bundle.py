"""Edge bundle integrity: a manifest of every file's sha256 and size, a deterministic zip, a safe unzip.

A bundle folder holds ``manifest.json`` plus the files it lists (models, anchors, labels, preprocessing
spec, ``infer.py``, README). Nothing may be added, removed or changed after :func:`write_manifest`:
:func:`verify_manifest` names the first file that differs. :func:`extract_bundle` treats a zip as
untrusted input (zip-slip, symlinks, duplicates, zip bombs) and leaves nothing behind on failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import BundleError

MANIFEST = "manifest.json"
FORMAT = "labeltool-edge-bundle"
FORMAT_VERSION = 1
DEFAULT_MAX_UNPACKED_BYTES = 2 * 1024**3  # an edge bundle is tens of MB; this only stops zip bombs
DEFAULT_MAX_ENTRIES = 1000
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same bundle always gives the same zip bytes
_CHUNK = 1024 * 1024
_RESERVED = {"format", "format_version", "files", "signature"}


# ---------------------------------------------------------------------------------------------- helpers

def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's content."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (new/renamed names) to disk; a no-op where the OS does not allow it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then ``os.replace`` it onto ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def unsafe_name_reason(name: str) -> str | None:
    """Why a relative bundle path (posix, from a manifest or a zip entry) is unsafe, or None if it is fine."""
    if not name:
        return "has an empty name"
    if "\\" in name:
        return "contains a backslash"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains control characters"
    if name.startswith("/"):
        return "is an absolute path"
    if re.match(r"[A-Za-z]:", name):
        return "starts with a drive letter"
    if ":" in name:
        return "contains ':'"
    parts = name.split("/")
    if ".." in parts:
        return "contains a '..' component"
    if any(p in ("", ".") for p in parts):
        return "has an empty or '.' path component"
    return None


def _list_files(bundle_dir: Path, where: str) -> list[str]:
    """Relative posix paths of every regular file under ``bundle_dir`` except the manifest, sorted."""
    names: list[str] = []
    for root, dirs, files in os.walk(bundle_dir):
        for entry in sorted(dirs + files):
            full = Path(root, entry)
            rel = full.relative_to(bundle_dir).as_posix()
            mode = full.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
                raise BundleError(f"{where}: {rel!r} is {kind}; a bundle holds plain files only — "
                                  "replace it with a copy of the file or remove it")
            if stat.S_ISREG(mode) and rel != MANIFEST:
                names.append(rel)
    return sorted(names)


# --------------------------------------------------------------------------------------------- manifest

def write_manifest(bundle_dir: Path, *, meta: dict[str, Any], sign: bool = False) -> dict[str, Any]:
    """Hash every file of ``bundle_dir`` and write ``manifest.json`` (atomically); returns the manifest.
    With ``sign``, this installation's key signs it (``core/signing.py``).

    ``meta`` (run_id, snapshot_id, preset, …) is stored as is; ``created`` and ``labeltool_version``
    are filled in when missing.
    """
    from labeltool import __version__

    bundle_dir = Path(bundle_dir)
    if clash := _RESERVED & set(meta):
        raise ValueError(f"meta must not set {sorted(clash)}: they are written by write_manifest")
    files = {}
    for name in _list_files(bundle_dir, str(bundle_dir)):
        path = bundle_dir / name
        files[name] = {"sha256": file_sha256(path), "size": path.stat().st_size}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "labeltool_version": __version__,
        **meta,
        "files": files,
    }
    if sign:
        from .signing import sign_manifest

        manifest = sign_manifest(manifest)
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    atomic_write_bytes(bundle_dir / MANIFEST, data)
    return manifest


def read_manifest(bundle_dir: Path, *, where: str | None = None) -> dict[str, Any]:
    """The parsed and structurally checked manifest of ``bundle_dir`` (files are not hashed)."""
    bundle_dir = Path(bundle_dir)
    where = where or str(bundle_dir)
    redo = "re-export the bundle with labeltool"
    if not bundle_dir.is_dir():
        raise BundleError(f"{where} is not a folder; give the bundle folder (the one holding {MANIFEST})")
    try:
        raw = (bundle_dir / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{where} has no {MANIFEST}: it is not a labeltool bundle or it is incomplete; "
                          f"{redo}") from None
    except OSError as exc:
        raise BundleError(f"{where}: cannot read {MANIFEST}: {exc.strerror}; check its permissions") from exc
    return parse_manifest(raw, where=where)


MAX_MANIFEST_BYTES = 16 * 1024**2  # a manifest lists a dozen files; more is not a bundle's


def bundle_manifest(bundle: Path) -> dict[str, Any]:
    """The manifest of a bundle folder or .zip, structurally checked, without hashing or unpacking the
    files (who signed it can be decided from this alone; the files are checked where they are used)."""
    bundle = Path(bundle)
    if bundle.is_dir():
        return read_manifest(bundle)
    try:
        with zipfile.ZipFile(bundle) as zf:
            info = zf.getinfo(MANIFEST)
            if info.file_size > MAX_MANIFEST_BYTES:
                raise BundleError(f"{bundle}: {MANIFEST} is {info.file_size:,} bytes; this is not a labeltool bundle")
            raw = zf.read(info)
    except KeyError:
        raise BundleError(f"{bundle} has no {MANIFEST}: it is not a labeltool bundle zip") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{bundle} is neither a bundle folder nor a readable bundle .zip ({exc})") from exc
    return parse_manifest(raw, where=str(bundle))


def parse_manifest(raw: bytes, *, where: str) -> dict[str, Any]:
    """Parse manifest bytes and check their structure; ``where`` names the bundle in messages."""
    redo = "re-export the bundle with labeltool"
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where}: {MANIFEST} is not valid JSON ({exc}); {redo}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{where}: {MANIFEST} is not a labeltool bundle manifest; {redo}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{where}: {MANIFEST} has no valid format_version; {redo}")
    if version > FORMAT_VERSION:
        raise BundleError(f"{where} was made by a newer labeltool (bundle format {version}; this labeltool "
                          f"reads up to {FORMAT_VERSION}); update labeltool on this machine")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BundleError(f"{where}: {MANIFEST} has no 'files' table; {redo}")
    for name, entry in files.items():
        if reason := unsafe_name_reason(name) or (name == MANIFEST and "is the manifest itself"):
            raise BundleError(f"{where}: {MANIFEST} lists {name!r}, which {reason}; {redo}")
        ok = (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
              and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) is not None
              and isinstance(entry.get("size"), int) and entry["size"] >= 0)
        if not ok:
            raise BundleError(f"{where}: {MANIFEST} entry for {name!r} needs a sha256 and a size; {redo}")
    return manifest


def manifest_sha256(bundle_dir: Path) -> str:
    """sha256 of the manifest file itself: one hash that identifies the whole bundle content."""
    return file_sha256(Path(bundle_dir) / MANIFEST)


def verify_manifest(bundle_dir: Path, *, where: str | None = None) -> dict[str, Any]:
    """Check every file against the manifest; raise :class:`BundleError` naming the first bad one.

    Files are checked in sorted name order: listed but missing, present but unlisted, wrong size,
    wrong sha256. ``where`` is the name used in messages (default: the folder). Returns the manifest.
    """
    bundle_dir = Path(bundle_dir)
    where = where or str(bundle_dir)
    manifest = read_manifest(bundle_dir, where=where)
    listed: dict[str, dict[str, Any]] = manifest["files"]
    present = set(_list_files(bundle_dir, where))
    again = "copy the bundle again from the export, or re-export it"
    for name in sorted(set(listed) | present):
        if name not in listed:
            raise BundleError(f"{where}: {name!r} is not listed in {MANIFEST} (added after the export?); "
                              f"remove it or re-export the bundle")
        if name not in present:
            raise BundleError(f"{where}: {name!r} is listed in {MANIFEST} but missing; {again}")
        path = bundle_dir / name
        try:
            size = path.stat().st_size
            if size != listed[name]["size"]:
                raise BundleError(f"{where}: {name!r} has {size} bytes but {MANIFEST} says "
                                  f"{listed[name]['size']} (changed or truncated); {again}")
            if file_sha256(path) != listed[name]["sha256"]:
                raise BundleError(f"{where}: {name!r} does not match its sha256 in {MANIFEST} "
                                  f"(changed or corrupted); {again}")
        except OSError as exc:
            raise BundleError(f"{where}: cannot read {name!r}: {exc.strerror}; check its permissions") from exc
    return manifest


# ------------------------------------------------------------------------------------------------- zip

def zip_bundle(bundle_dir: Path, zip_path: Path) -> Path:
    """Verify ``bundle_dir`` and write it as a deterministic zip (sorted names, fixed times), atomically."""
    bundle_dir, zip_path = Path(bundle_dir), Path(zip_path)
    if zip_path.resolve().is_relative_to(bundle_dir.resolve()):
        raise BundleError(f"{zip_path} is inside the bundle folder {bundle_dir}; write the zip elsewhere")
    manifest = verify_manifest(bundle_dir)
    names = sorted([*manifest["files"], MANIFEST])
    tmp = zip_path.with_name(f".{zip_path.name}.{secrets.token_hex(4)}.tmp")
    try:
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as fh:
            with zipfile.ZipFile(fh, "w") as zf:
                for name in names:
                    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.create_system = 3
                    info.external_attr = 0o100644 << 16
                    info.file_size = (bundle_dir / name).stat().st_size
                    with open(bundle_dir / name, "rb") as src, \
                            zf.open(info, "w", force_zip64=info.file_size > 2**31) as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, zip_path)
    except OSError as exc:
        raise BundleError(f"cannot write {zip_path}: {exc.strerror or exc}; check that the folder is "
                          "writable and has free space") from exc
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(zip_path.parent)
    return zip_path


def _plan_entries(zip_path: Path, infos: list[zipfile.ZipInfo], max_bytes: int,
                  max_entries: int) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    """Check every entry before anything is written; the regular files to unpack, with their path parts."""
    refuse = (f"refusing to unpack {zip_path}; use a bundle zip written by labeltool, not one from an "
              "unknown source")
    if len(infos) > max_entries:
        raise BundleError(f"{zip_path} has {len(infos)} entries (more than {max_entries}); {refuse}")
    seen: set[str] = set()
    total = 0
    plan = []
    for info in infos:
        name = info.filename
        is_dir = name.endswith("/")
        fmt = stat.S_IFMT(info.external_attr >> 16)
        if "\x00" in info.orig_filename:
            reason = "contains a NUL character"
        elif fmt == stat.S_IFLNK:
            reason = "is a symbolic link"
        elif fmt not in (0, stat.S_IFREG, stat.S_IFDIR):
            reason = "is a special file (not a regular file or folder)"
        elif info.flag_bits & 0x1:
            reason = "is encrypted"
        else:
            reason = unsafe_name_reason(name[:-1] if is_dir else name)
        if reason is None and name.rstrip("/").casefold() in seen:
            reason = "appears twice (names are compared ignoring case)"
        if reason:
            raise BundleError(f"{zip_path}: entry {name!r} {reason}; {refuse}")
        seen.add(name.rstrip("/").casefold())
        if is_dir:
            continue
        total += info.file_size
        if total > max_bytes:
            raise BundleError(f"{zip_path} unpacks to more than {max_bytes} bytes (at entry {name!r}; a zip "
                              f"bomb?); {refuse}, or raise max_unpacked_bytes if it is really this large")
        plan.append((info, name.split("/")))
    return plan


def _unpack_one(zf: zipfile.ZipFile, info: zipfile.ZipInfo, parts: list[str], root: Path,
                zip_path: Path) -> None:
    target = root.joinpath(*parts)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.realpath(target).startswith(os.path.realpath(root) + os.sep):
            raise BundleError(f"{zip_path}: entry {info.filename!r} would be written outside the bundle "
                              "folder; refusing to unpack it")
        written = 0
        with zf.open(info) as src, open(target, "xb") as dst:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > info.file_size:
                    raise BundleError(f"{zip_path}: entry {info.filename!r} unpacks to more than its "
                                      "declared size (a zip bomb?); refusing to unpack it")
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise BundleError(f"{zip_path}: entry {info.filename!r} is damaged or unsupported ({exc}); "
                          "copy the zip again or re-export the bundle") from exc
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise BundleError(f"{zip_path}: entry {info.filename!r} clashes with another entry (a file and a "
                          "folder of the same name); re-export the bundle") from exc


def extract_bundle(zip_path: Path, dest_dir: Path, *, max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
                   max_entries: int = DEFAULT_MAX_ENTRIES) -> Path:
    """Safely unpack a bundle zip into ``dest_dir`` (new or empty) and verify its manifest.

    Every entry is checked before anything is written; files go to a temporary folder beside
    ``dest_dir`` that is renamed into place only after the manifest verifies. On any failure nothing
    is left behind.
    """
    zip_path, dest = Path(zip_path), Path(dest_dir)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BundleError(f"{dest} already exists and is not an empty folder; choose a new folder or "
                          "remove it first")
    try:
        zf = zipfile.ZipFile(zip_path)
    except FileNotFoundError:
        raise BundleError(f"{zip_path} not found; check the path of the bundle zip") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"{zip_path} is not a zip file or is damaged ({exc}); copy it again or "
                          "re-export the bundle") from exc
    with zf:
        plan = _plan_entries(zip_path, zf.infolist(), max_unpacked_bytes, max_entries)
        tmp: Path | None = None
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.unpack-", dir=dest.parent))
            os.chmod(tmp, 0o755)
            for info, parts in plan:
                _unpack_one(zf, info, parts, tmp, zip_path)
            verify_manifest(tmp, where=str(zip_path))
            for root, _dirs, _files in os.walk(tmp):
                fsync_dir(Path(root))
            try:
                os.rename(tmp, dest)
            except OSError:
                if not (dest.is_dir() and not any(dest.iterdir())):
                    raise
                dest.rmdir()  # platforms where a folder cannot be renamed over an empty one
                os.rename(tmp, dest)
            tmp = None
            fsync_dir(dest.parent)
        except OSError as exc:
            raise BundleError(f"cannot unpack {zip_path} into {dest}: {exc.strerror or exc}; check that the "
                              "folder is writable and has free space") from exc
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
    return dest
