"""SSH targets for :mod:`labeltool.core.deploy`: paramiko SFTP with strict host-key checking.

Host keys come from ``~/.ssh/known_hosts``, ``/etc/ssh/ssh_known_hosts`` and an optional extra file,
read-only; an unknown host is refused (never added), a changed key is refused louder. The remote side
gets the same layout and steps as a folder target; SFTP cannot fsync, and a server without the
``posix-rename@openssh.com`` extension gets a remove+rename instead of an atomic link replace.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .bundle import MANIFEST, parse_manifest
from .deploy import SshTarget
from .errors import BundleError, DeployError


class _SftpFs:
    """The same operations on a remote folder through paramiko's SFTP client."""

    def __init__(self, sftp: Any, target: SshTarget) -> None:
        self.sftp, self.target, self.root = sftp, target, target.path

    def _p(self, rel: str) -> str:
        return posixpath.join(self.root, rel) if rel else self.root

    def display(self, rel: str = "") -> str:
        return f"{self.target}/{rel}" if rel else str(self.target)

    def ensure_root(self) -> None:
        parent = posixpath.dirname(self.root.rstrip("/")) or "."
        try:
            self.sftp.stat(parent)
        except FileNotFoundError:
            raise DeployError(f"{parent} does not exist on {self.target.host}; create it first") from None
        kind = self.kind("")
        if kind is None:
            self.sftp.mkdir(self.root)
        elif kind == "file":
            raise DeployError(f"{self.display()} is a file; give a folder to deploy into")

    def kind(self, rel: str) -> str | None:
        try:
            mode = self.sftp.lstat(self._p(rel)).st_mode
        except FileNotFoundError:
            return None
        mode = mode or 0
        return "link" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file"

    def readlink(self, rel: str) -> str:
        return self.sftp.readlink(self._p(rel)) or ""

    def mkdir(self, rel: str) -> None:
        if self.kind(rel) != "dir":
            self.sftp.mkdir(self._p(rel))

    def listdir(self, rel: str) -> list[str]:
        return self.sftp.listdir(self._p(rel))

    def rename(self, src: str, dst: str) -> None:
        self.sftp.rename(self._p(src), self._p(dst))  # SFTP rename never replaces an existing name

    def replace(self, src: str, dst: str) -> None:
        try:
            self.sftp.posix_rename(self._p(src), self._p(dst))
        except OSError:  # no posix-rename@openssh.com on this server: not atomic, but a short window
            if self.kind(dst) in ("link", "file"):
                self.remove(dst)
            self.rename(src, dst)

    def symlink(self, link_target: str, rel: str) -> bool:
        try:
            self.sftp.symlink(link_target, self._p(rel))
        except OSError:
            return False
        return True

    def remove(self, rel: str) -> None:
        self.sftp.remove(self._p(rel))

    def rmtree(self, rel: str) -> None:
        kind = self.kind(rel)
        if kind == "dir":
            for name in self.listdir(rel):
                self.rmtree(posixpath.join(rel, name))
            self.sftp.rmdir(self._p(rel))
        elif kind:
            self.remove(rel)

    def read_bytes(self, rel: str) -> bytes:
        with self.sftp.open(self._p(rel), "rb") as fh:
            return fh.read()

    def write_new(self, rel: str, data: bytes) -> None:
        with self.sftp.open(self._p(rel), "wbx") as fh:  # paramiko: 'w' for write access, 'x' = O_EXCL
            fh.write(data)

    def put_bundle(self, src: Path, manifest: dict[str, Any] | None, rel: str) -> None:
        assert manifest is not None  # zips are unpacked locally before connecting
        self.mkdir(rel)
        for name in sorted(manifest["files"]) + [MANIFEST]:  # the manifest last
            parts = name.split("/")
            for k in range(1, len(parts)):
                self.mkdir(posixpath.join(rel, *parts[:k]))
            try:
                self.sftp.put(str(src / name), self._p(posixpath.join(rel, name)), confirm=True)
            except OSError as exc:  # paramiko reports a full disk as a size mismatch after the upload
                raise DeployError(f"uploading {name!r} to {self.display()} failed ({exc}); check that the "
                                  "device has free space and the folder is writable, then deploy again") from exc

    def check(self, rel: str) -> None:
        """Sizes only (hashing would download everything; the SSH transport is integrity-protected)."""
        where = self.display(rel)
        manifest = parse_manifest(self.read_bytes(posixpath.join(rel, MANIFEST)), where=where)
        for name, entry in sorted(manifest["files"].items()):
            try:
                size = self.sftp.stat(self._p(posixpath.join(rel, name))).st_size
            except FileNotFoundError:
                raise BundleError(f"{where}: {name!r} is missing; deploy the bundle again") from None
            if size != entry["size"]:
                raise BundleError(f"{where}: {name!r} has {size} bytes, not {entry['size']}; deploy again")


class _UnknownHost(Exception):
    def __init__(self, hostname: str, key: Any) -> None:
        super().__init__(hostname)
        self.key = key


@contextmanager
def sftp_target(target: SshTarget, known_hosts: Path | None, key_file: Path | None,
                password: str | None, timeout: float) -> Iterator[_SftpFs]:
    """An SFTP session on ``target`` wrapped as a deploy filesystem; closed on exit."""
    import paramiko

    class RefuseUnknown(paramiko.RejectPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            raise _UnknownHost(hostname, key)

    where = f"{target.host}:{target.port}"
    keyname = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
    if key_file is not None and not Path(key_file).is_file():
        raise DeployError(f"SSH key file {key_file} not found; check the path")
    files = [Path("~/.ssh/known_hosts").expanduser(), Path("/etc/ssh/ssh_known_hosts")]
    if known_hosts is not None:
        if not Path(known_hosts).is_file():
            raise DeployError(f"known_hosts file {known_hosts} not found; check the path")
        files.append(Path(known_hosts))
    client = paramiko.SSHClient()
    for file in files:
        with suppress(OSError):  # read-only: labeltool never adds host keys
            client.load_system_host_keys(str(file))
    client.set_missing_host_key_policy(RefuseUnknown())
    auto = key_file is None and password is None
    try:
        client.connect(target.host, port=target.port, username=target.user, password=password,
                       key_filename=str(key_file) if key_file else None, look_for_keys=auto,
                       allow_agent=auto, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
        sftp = client.open_sftp()
    except _UnknownHost as exc:
        client.close()
        fp = base64.b64encode(hashlib.sha256(exc.key.asbytes()).digest()).decode().rstrip("=")
        scan = f"ssh-keyscan {'-p ' + str(target.port) + ' ' if target.port != 22 else ''}{target.host}"
        raise DeployError(
            f"{where} is not a known SSH host: its {exc.key.get_name()} key SHA256:{fp} is in none of "
            f"{', '.join(map(str, files))}. Check this fingerprint with the device's administrator, then "
            f"add the key: {scan} >> ~/.ssh/known_hosts (or pass that line in a known_hosts file). "
            "labeltool never trusts an unknown host automatically.") from None
    except paramiko.BadHostKeyException:
        client.close()
        raise DeployError(
            f"the SSH host key of {where} has CHANGED since it was recorded in known_hosts: the device was "
            "reinstalled or someone is intercepting the connection. Ask the device's administrator; if the "
            f"new key is right, remove the old one (ssh-keygen -R '{keyname}') and add "
            "the new one with ssh-keyscan.") from None
    except paramiko.AuthenticationException:
        client.close()
        raise DeployError(f"SSH login to {where} as {target.user or 'the current user'} was refused; give "
                          "the right user in the address and a key file or password") from None
    except (paramiko.SSHException, OSError) as exc:
        client.close()
        reason = re.sub(r"^\[Errno [^\]]*\] ", "", str(exc))
        raise DeployError(f"cannot connect to {where} over SSH: {reason}; check the address, the port and "
                          "that the device is on and runs an SSH server with SFTP") from exc
    try:
        yield _SftpFs(sftp, target)
    except (paramiko.SSHException, EOFError) as exc:
        raise DeployError(f"the SSH connection to {where} broke off ({exc}); the device's current/ is the "
                          "old or the new bundle, never a mix; deploy again to be sure") from exc
    finally:
        client.close()
