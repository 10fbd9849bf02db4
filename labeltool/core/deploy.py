"""Deploy a verified bundle to an edge device (a folder or mounted drive, or SSH) with rollback.

Layout on the target (a local folder, or a folder on the device over SSH)::

    target/current -> versions/<id>    the live bundle: the line runs target/current/infer.py
    target/previous -> versions/<id>   the bundle before it, kept for rollback
    target/versions/<id>/              complete bundles, manifest-verified before they go live
    target/deployed.json               what is live: manifest sha256, run, snapshot, time

Why symlinks: a folder cannot be renamed over a non-empty one on POSIX, so a swap by folder renames
(current→previous, new→current) has a moment with no ``current``. Replacing the ``current`` link by
renaming a temporary link onto it (``os.replace`` / SFTP posix-rename) is atomic: a reader opening
``target/current/...`` gets the old bundle or the new one, never a gap or a half-written folder.
``infer.py`` should resolve its folder once (``Path(__file__).resolve().parent``) so a swap while it
runs cannot mix files of two versions.

Fallback where symlinks cannot be made (FAT/exFAT USB sticks, SFTP servers that refuse them):
``current/`` and ``previous/`` are plain folders swapped by renames; the line's path is the same. A
crash between the renames leaves no ``current``; the next deploy or rollback first puts ``previous``
back. Either way, the copy is verified against its manifest on the target before the swap, files are
fsynced (folder targets; SFTP cannot fsync), and a failure at any step leaves ``current`` untouched
and removes the partial copy. One deployer per target at a time; leftovers (``.lt-*``) of a crashed
deploy are removed by the next one. Rollback swaps current and previous (rolling back twice = forward).
SSH targets (paramiko SFTP, strict host-key checking) live in :mod:`labeltool.core.deploy_ssh`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import posixpath
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .bundle import MANIFEST, extract_bundle, fsync_dir, read_manifest, verify_manifest
from .errors import BundleError, DeployError

CURRENT, PREVIOUS, VERSIONS, DEPLOYED = "current", "previous", "versions", "deployed.json"
_TMP = ".lt-"  # prefix of every temporary name this module makes on a target


@dataclass(frozen=True)
class FolderTarget:
    path: Path

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    user: str | None
    path: str  # absolute, or relative to the login folder

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path if self.path.startswith("/") else "/~/" + self.path
        return f"ssh://{self.user + '@' if self.user else ''}{host}:{self.port}{path}"


@dataclass(frozen=True)
class DeployResult:
    target: str                 # as given: a folder or an ssh:// address
    live_path: str              # the path the line runs: <target>/current
    mode: str                   # "symlink" or "rename" (the fallback without symlinks)
    manifest_sha256: str        # identifies the live bundle
    run_id: Any
    previous_sha256: str | None
    action: str                 # "deploy" or "rollback"


def parse_target(target: str | Path) -> FolderTarget | SshTarget:
    """``ssh://[user@]host[:port]/abs/path`` (``/~/path``: under the login folder) or a local folder."""
    text = str(target)
    if text.lower().startswith(("ssh://", "sftp://")):
        url = urlsplit(text)
        example = "write it as ssh://user@host:22/opt/inspection"
        if url.password is not None:
            raise DeployError(f"{url.hostname}: do not put a password in the address; pass it separately "
                              "or use a key file")
        try:
            port = url.port or 22
        except ValueError:
            raise DeployError(f"{text!r} has an invalid port; {example}") from None
        path = unquote(url.path)
        if not url.hostname or path in ("", "/", "/~", "/~/") or url.query or url.fragment:
            raise DeployError(f"{text!r} needs a host and a folder on the device; {example}")
        path = (path[3:] if path.startswith("/~/") else path).rstrip("/") or "/"
        return SshTarget(url.hostname, port, unquote(url.username) if url.username else None, path)
    if re.match(r"[A-Za-z][\w+.-]*://", text):
        raise DeployError(f"{text!r}: only local folders and ssh:// addresses can be deploy targets")
    if re.match(r"(?:[^/\\:@]+@)?[^/\\:]{2,}:", text):
        raise DeployError(f"{text!r} looks like an scp-style address; write it as ssh://user@host:22/path "
                          "(or ./name for a local folder whose name contains ':')")
    return FolderTarget(Path(text).expanduser())


# ------------------------------------------------------------------------------- target filesystems

class _LocalFs:
    """A target folder on this machine (a mounted device is just a folder)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _p(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def display(self, rel: str = "") -> str:
        return str(self._p(rel))

    def ensure_root(self) -> None:
        if not self.root.parent.is_dir():
            raise DeployError(f"{self.root.parent} does not exist (is the device mounted?); create it or "
                              "give an existing folder")
        if self.root.exists() and not self.root.is_dir():
            raise DeployError(f"{self.root} is a file; give a folder to deploy into")
        self.root.mkdir(exist_ok=True)

    def kind(self, rel: str) -> str | None:
        try:
            mode = os.lstat(self._p(rel)).st_mode
        except FileNotFoundError:
            return None
        return "link" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file"

    def readlink(self, rel: str) -> str:
        return os.readlink(self._p(rel))

    def mkdir(self, rel: str) -> None:
        self._p(rel).mkdir(exist_ok=True)

    def listdir(self, rel: str) -> list[str]:
        return os.listdir(self._p(rel))

    def rename(self, src: str, dst: str) -> None:
        if self.kind(dst):  # os.rename would silently replace a file or an empty folder
            raise FileExistsError(errno.EEXIST, "already exists", self.display(dst))
        os.rename(self._p(src), self._p(dst))
        fsync_dir(self._p(dst).parent)

    def replace(self, src: str, dst: str) -> None:
        os.replace(self._p(src), self._p(dst))
        fsync_dir(self._p(dst).parent)

    def symlink(self, link_target: str, rel: str) -> bool:
        try:
            os.symlink(link_target, self._p(rel))
        except (OSError, NotImplementedError):
            return False
        return True

    def remove(self, rel: str) -> None:
        os.unlink(self._p(rel))

    def rmtree(self, rel: str) -> None:
        if self.kind(rel) == "dir":
            shutil.rmtree(self._p(rel))
        elif self.kind(rel):
            self.remove(rel)

    def read_bytes(self, rel: str) -> bytes:
        return self._p(rel).read_bytes()

    def write_new(self, rel: str, data: bytes) -> None:
        with open(self._p(rel), "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def put_bundle(self, src: Path, manifest: dict[str, Any] | None, rel: str) -> None:
        if manifest is None:  # a zip: unpacked and verified straight into the target
            extract_bundle(src, self._p(rel))
            return
        dest = self._p(rel)
        dest.mkdir()
        for name in sorted(manifest["files"]) + [MANIFEST]:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            with open(src / name, "rb") as fin, open(dest / name, "xb") as fout:
                shutil.copyfileobj(fin, fout, 1024 * 1024)
                fout.flush()
                os.fsync(fout.fileno())
        for folder, _dirs, _files in os.walk(dest):
            fsync_dir(Path(folder))

    def check(self, rel: str) -> None:
        verify_manifest(self._p(rel), where=self.display(rel))


# ------------------------------------------------------------------------------ the shared procedure

if TYPE_CHECKING:
    from .deploy_ssh import _SftpFs

    _Fs = _LocalFs | _SftpFs

def _link_version(fs: _Fs, name: str) -> str | None:
    if fs.kind(name) != "link":
        return None
    return f"{VERSIONS}/{posixpath.basename(fs.readlink(name).rstrip('/'))}"


def _point(fs: _Fs, name: str, version: str, token: str) -> None:
    """Atomically make ``name`` a link to ``version`` (a temporary link renamed over it)."""
    if fs.kind(version) != "dir":  # never make a dangling link
        raise DeployError(f"{fs.display(version)} is missing; the layout of {fs.display()} was changed by "
                          "hand — deploy a bundle again")
    tmp = f"{_TMP}link-{token}"
    if not fs.symlink(version, tmp):
        raise DeployError(f"cannot create a symbolic link in {fs.display()}; the target changed under us")
    fs.replace(tmp, name)


def _recover(fs: _Fs) -> None:
    """Put ``previous`` back as ``current`` if a crashed swap left no ``current``."""
    if fs.kind(CURRENT) is None:
        if fs.kind(PREVIOUS) == "dir":
            fs.rename(PREVIOUS, CURRENT)
        elif (prev := _link_version(fs, PREVIOUS)) is not None:
            _point(fs, CURRENT, prev, secrets.token_hex(4))


def _info(fs: _Fs, name: str) -> dict[str, Any] | None:
    if fs.kind(name) is None:
        return None
    try:
        raw = fs.read_bytes(posixpath.join(name, MANIFEST))
        meta = json.loads(raw)
    except (OSError, ValueError) as exc:  # only for `previous`: `current` was just verified
        return {"manifest_sha256": None, "error": f"cannot read its {MANIFEST}: {exc}"}
    version = _link_version(fs, name)
    return {"manifest_sha256": hashlib.sha256(raw).hexdigest(),
            "version": posixpath.basename(version) if version else None,
            **{k: meta.get(k) for k in ("run_id", "snapshot_id", "preset", "created", "labeltool_version")}}


def _record(fs: _Fs, target: str, action: str, token: str) -> DeployResult:
    mode = "symlink" if fs.kind(CURRENT) == "link" else "rename"
    current, previous = _info(fs, CURRENT), _info(fs, PREVIOUS)
    assert current is not None
    state = {"action": action, "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "mode": mode,
             "live_path": CURRENT, "current": current, "previous": previous}
    tmp = f"{_TMP}deployed-{token}.tmp"
    try:
        fs.write_new(tmp, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())
        fs.replace(tmp, DEPLOYED)
    except OSError as exc:
        raise DeployError(f"the {action} went through ({fs.display(CURRENT)} is run {current['run_id']}) but "
                          f"{fs.display(DEPLOYED)} could not be written: {exc.strerror or exc}; free some "
                          "space; the next deploy or rollback rewrites it") from exc
    return DeployResult(target, fs.display(CURRENT), mode, current["manifest_sha256"], current["run_id"],
                        previous["manifest_sha256"] if previous else None, action)


def _cleanup(fs: _Fs) -> None:
    """Remove temporaries and versions that are neither current nor previous (best effort)."""
    with suppress(OSError):
        for name in fs.listdir(""):
            if name.startswith((_TMP, "." + _TMP)):
                with suppress(OSError):
                    fs.rmtree(name)
        if fs.kind(VERSIONS) == "dir":
            keep = {_link_version(fs, CURRENT), _link_version(fs, PREVIOUS)}
            for name in fs.listdir(VERSIONS):
                if f"{VERSIONS}/{name}" not in keep:
                    with suppress(OSError):
                        fs.rmtree(f"{VERSIONS}/{name}")


def _deploy(fs: _Fs, src: Path, manifest: dict[str, Any] | None, target: str) -> DeployResult:
    fs.ensure_root()
    _recover(fs)
    token = secrets.token_hex(4)
    kind = fs.kind(CURRENT)
    if kind == "file":
        raise DeployError(f"{fs.display(CURRENT)} is a file; move it away, then deploy again")
    if kind is None:  # a fresh target: use symlinks if this filesystem has them
        probe = f"{_TMP}probe-{token}"
        kind = "link" if fs.symlink(VERSIONS, probe) else "dir"
        with suppress(OSError):
            fs.remove(probe)
    incoming, placed = f"{_TMP}incoming-{token}", None
    try:
        fs.put_bundle(src, manifest, incoming)
        if manifest is not None:  # (a zip was verified while unpacking into the target)
            fs.check(incoming)
            if fs.read_bytes(f"{incoming}/{MANIFEST}") != (src / MANIFEST).read_bytes():
                raise BundleError(f"{fs.display(incoming)}: {MANIFEST} changed while copying; deploy again")
        if kind == "link":
            fs.mkdir(VERSIONS)
            sha = hashlib.sha256(fs.read_bytes(f"{incoming}/{MANIFEST}")).hexdigest()
            stem = f"{VERSIONS}/{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{sha[:12]}"
            placed, k = stem, 1
            while fs.kind(placed):  # the same bundle deployed twice within a second
                k += 1
                placed = f"{stem}-{k}"
            fs.rename(incoming, placed)
            if (old := _link_version(fs, CURRENT)) is not None:
                _point(fs, PREVIOUS, old, token)
            _point(fs, CURRENT, placed, token)  # the commit point
        else:
            trash = f"{_TMP}trash-{token}"
            had_previous = fs.kind(PREVIOUS) is not None
            if had_previous:
                fs.rename(PREVIOUS, trash)
            try:
                if fs.kind(CURRENT):
                    fs.rename(CURRENT, PREVIOUS)
                fs.rename(incoming, CURRENT)  # the commit point
            except BaseException:
                with suppress(Exception):  # best effort: the original error is the one to report
                    _recover(fs)
                    if had_previous and fs.kind(PREVIOUS) is None:
                        fs.rename(trash, PREVIOUS)
                raise
    except BaseException:
        with suppress(Exception):
            fs.rmtree(incoming)
        with suppress(Exception):
            if placed and placed not in (_link_version(fs, CURRENT), _link_version(fs, PREVIOUS)):
                fs.rmtree(placed)
        raise
    result = _record(fs, target, "deploy", token)
    _cleanup(fs)
    return result


def _rollback(fs: _Fs, target: str) -> DeployResult:
    if fs.kind("") != "dir":
        raise DeployError(f"nothing is deployed at {fs.display()}; deploy a bundle first")
    _recover(fs)
    cur_kind, prev_kind = fs.kind(CURRENT), fs.kind(PREVIOUS)
    if cur_kind is None:
        raise DeployError(f"nothing is deployed at {fs.display()}; deploy a bundle first")
    if prev_kind is None:
        raise DeployError(f"{fs.display()} has no previous bundle to roll back to (only one was deployed); "
                          "deploy the older bundle again instead")
    if cur_kind != prev_kind:
        raise DeployError(f"{fs.display()}: current and previous are of different kinds ({cur_kind}, "
                          f"{prev_kind}); deploy a bundle again to repair the layout")
    fs.check(PREVIOUS)
    token = secrets.token_hex(4)
    if cur_kind == "link":
        cur, prev = _link_version(fs, CURRENT), _link_version(fs, PREVIOUS)
        assert cur is not None and prev is not None
        _point(fs, CURRENT, prev, token)  # the commit point
        _point(fs, PREVIOUS, cur, token)
    else:
        swap = f"{_TMP}swap-{token}"
        fs.rename(CURRENT, swap)
        try:
            fs.rename(PREVIOUS, CURRENT)
        except BaseException:
            with suppress(Exception):
                fs.rename(swap, CURRENT)
            raise
        fs.rename(swap, PREVIOUS)
    return _record(fs, target, "rollback", token)


def _guarded(fs: _Fs, action: str, run: Callable[[], DeployResult]) -> DeployResult:
    try:
        return run()
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise DeployError(f"{action} to {fs.display()} failed: {exc.strerror or exc}{where}; check that the "
                          "target is writable and has free space, then try again") from exc


def _source(bundle: Path) -> dict[str, Any] | None:
    """The verified manifest of a bundle folder; None for a zip (verified while it is unpacked)."""
    bundle = Path(bundle)
    if bundle.is_dir():
        return verify_manifest(bundle)
    if bundle.is_file():
        return None
    raise DeployError(f"bundle {bundle} not found; give the bundle folder or its .zip")


# ------------------------------------------------------------------------------------- folder targets

def deploy_to_folder(bundle: Path, target_dir: Path) -> DeployResult:
    """Deploy a bundle folder or zip into ``target_dir``; the line runs ``target_dir/current/``."""
    fs = _LocalFs(Path(target_dir))
    manifest = _source(Path(bundle))
    return _guarded(fs, "deploy", lambda: _deploy(fs, Path(bundle), manifest, str(target_dir)))


def rollback_folder(target_dir: Path) -> DeployResult:
    """Make ``previous`` live again (and the rolled-back bundle the new ``previous``)."""
    fs = _LocalFs(Path(target_dir))
    return _guarded(fs, "rollback", lambda: _rollback(fs, str(target_dir)))


# ---------------------------------------------------------------------------------------- SSH targets

def _ssh_target(target: str | SshTarget) -> SshTarget:
    parsed = parse_target(target) if isinstance(target, str) else target
    if not isinstance(parsed, SshTarget):
        raise DeployError(f"{target!r} is not an ssh:// address; write it as ssh://user@host:22/path")
    return parsed


def deploy_over_ssh(bundle: Path, target: str | SshTarget, *, known_hosts: Path | None = None,
                    key_file: Path | None = None, password: str | None = None,
                    timeout: float = 20.0) -> DeployResult:
    """Deploy over SFTP to ``ssh://user@host:port/path`` (host key must be known); same layout remotely."""
    from .deploy_ssh import sftp_target

    ssh = _ssh_target(target)
    bundle = Path(bundle)
    with tempfile.TemporaryDirectory(prefix="labeltool-deploy-") as tmp:
        manifest = _source(bundle)
        if manifest is None:  # a zip: unpack and verify here, before connecting
            bundle = extract_bundle(bundle, Path(tmp) / "bundle")
            manifest = read_manifest(bundle)
        with sftp_target(ssh, known_hosts, key_file, password, timeout) as fs:
            return _guarded(fs, "deploy", lambda: _deploy(fs, bundle, manifest, str(ssh)))


def rollback_over_ssh(target: str | SshTarget, *, known_hosts: Path | None = None,
                      key_file: Path | None = None, password: str | None = None,
                      timeout: float = 20.0) -> DeployResult:
    """Roll back the bundle deployed at an ssh:// target (see :func:`rollback_folder`)."""
    from .deploy_ssh import sftp_target

    ssh = _ssh_target(target)
    with sftp_target(ssh, known_hosts, key_file, password, timeout) as fs:
        return _guarded(fs, "rollback", lambda: _rollback(fs, str(ssh)))


def deploy(bundle: Path, target: str | Path, **ssh_options: Any) -> DeployResult:
    """Deploy to a folder or an ssh:// address (``ssh_options``: known_hosts, key_file, password)."""
    parsed = parse_target(target)
    if isinstance(parsed, FolderTarget):
        return deploy_to_folder(bundle, parsed.path)
    return deploy_over_ssh(bundle, parsed, **ssh_options)


def rollback(target: str | Path, **ssh_options: Any) -> DeployResult:
    """Roll back a folder or ssh:// target."""
    parsed = parse_target(target)
    if isinstance(parsed, FolderTarget):
        return rollback_folder(parsed.path)
    return rollback_over_ssh(parsed, **ssh_options)
