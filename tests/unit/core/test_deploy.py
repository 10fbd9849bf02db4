"""Deploy and rollback: real target folders, and a real SSH/SFTP server (asyncssh) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labeltool.core.bundle import MANIFEST, manifest_sha256, write_manifest, zip_bundle
from labeltool.core.deploy import (
    FolderTarget,
    SshTarget,
    deploy,
    deploy_over_ssh,
    deploy_to_folder,
    parse_target,
    rollback,
    rollback_folder,
    rollback_over_ssh,
)
from labeltool.core.errors import BundleError, DeployError

asyncssh = pytest.importorskip("asyncssh")

FILES = ("model_fp32.onnx", "model_int8.onnx", "anchors.npy", "labels.json", "preprocess.json", "infer.py",
         "README.md", "calib/sample.txt")


def make_bundle(folder: Path, version: int) -> Path:
    for name in FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(f"{name} v{version}\n".encode() * (50 + version))
    write_manifest(folder, meta={"run_id": f"run-{version}", "snapshot_id": version, "preset": "edge"})
    return folder


def live_run(target: Path) -> str:
    """What the line would load: the run id of target/current."""
    return json.loads((target / "current" / MANIFEST).read_text())["run_id"]


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir() if p.name.startswith("."))


@pytest.fixture
def bundles(tmp_path: Path) -> list[Path]:
    return [make_bundle(tmp_path / f"bundle{v}", v) for v in (1, 2, 3)]


# ---------------------------------------------------------------------------------------- targets

@pytest.mark.parametrize(("text", "expected"), [
    ("/mnt/usb/inspection", FolderTarget(Path("/mnt/usb/inspection"))),
    ("relative/dir", FolderTarget(Path("relative/dir"))),
    ("ssh://pi@10.0.0.7/opt/inspection/", SshTarget("10.0.0.7", 22, "pi", "/opt/inspection")),
    ("ssh://line-3:2222/~/bundles", SshTarget("line-3", 2222, None, "bundles")),
    ("sftp://u@[fe80::1]:23/srv/x", SshTarget("fe80::1", 23, "u", "/srv/x")),
])
def test_parse_target(text: str, expected: object) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("ssh://u:pw@host/x", "do not put a password"),
    ("ssh://host", "needs a host and a folder"),
    ("ssh://host:99999/x", "invalid port"),
    ("ftp://host/x", "only local folders and ssh://"),
    ("pi@line-3:/opt/x", "scp-style"),
])
def test_parse_target_refuses(text: str, message: str) -> None:
    with pytest.raises(DeployError, match=message):
        parse_target(text)


# ----------------------------------------------------------------------------------- folder targets

def test_folder_deploy_twice_then_rollback(bundles: list[Path], tmp_path: Path) -> None:
    target = tmp_path / "device"
    first = deploy_to_folder(bundles[0], target)
    assert (first.mode, first.action, first.run_id, first.previous_sha256) == ("symlink", "deploy", "run-1", None)
    assert first.live_path == str(target / "current") and (target / "current" / "infer.py").is_file()
    second = deploy(bundles[1], str(target))
    assert live_run(target) == "run-2" and second.previous_sha256 == first.manifest_sha256
    assert second.manifest_sha256 == manifest_sha256(bundles[1])
    assert os.readlink(target / "current").startswith("versions/") and (target / "previous").is_symlink()
    state = json.loads((target / "deployed.json").read_text())
    assert state["current"]["run_id"] == "run-2" and state["previous"]["run_id"] == "run-1"
    assert state["current"]["manifest_sha256"] == second.manifest_sha256 and state["live_path"] == "current"
    assert leftovers(target) == []

    back = rollback_folder(target)
    assert (back.action, back.run_id, live_run(target)) == ("rollback", "run-1", "run-1")
    assert json.loads((target / "previous" / MANIFEST).read_text())["run_id"] == "run-2"
    assert rollback(str(target)).run_id == "run-2"  # rolling back twice goes forward again

    deploy_to_folder(bundles[2], target)  # only current and previous are kept
    assert live_run(target) == "run-3" and len(list((target / "versions").iterdir())) == 2
    assert leftovers(target) == []


def test_a_reader_always_sees_one_complete_bundle(bundles: list[Path], tmp_path: Path) -> None:
    """While deploys and rollbacks run, a reader resolving current/ once finds a whole, single version."""
    target = tmp_path / "device"
    deploy_to_folder(bundles[0], target)
    stop, seen, errors = threading.Event(), set(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                folder = (target / "current").resolve(strict=True)
                run = json.loads((folder / MANIFEST).read_text())["run_id"]
                version = run.split("-")[1]
                assert (folder / "labels.json").read_text().startswith(f"labels.json v{version}\n")
                seen.add(run)
            except Exception as exc:  # noqa: BLE001 - collected and reported below
                errors.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:  # (a third deploy would delete the oldest version: a reader must not take that long)
        deploy_to_folder(bundles[1], target)
        for _ in range(8):
            rollback_folder(target)
    finally:
        stop.set()
        thread.join()
    assert errors == [] and seen


def test_rollback_needs_a_previous_bundle(bundles: list[Path], tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="nothing is deployed"):
        rollback_folder(tmp_path / "device")
    deploy_to_folder(bundles[0], tmp_path / "device")
    with pytest.raises(DeployError, match="no previous bundle"):
        rollback_folder(tmp_path / "device")
    assert live_run(tmp_path / "device") == "run-1"


def test_tampered_bundle_is_refused_before_touching_the_target(bundles: list[Path], tmp_path: Path) -> None:
    target = tmp_path / "device"
    deploy_to_folder(bundles[0], target)
    before = {p.name: p for p in target.iterdir()}, (target / "deployed.json").read_bytes()
    (bundles[1] / "model_int8.onnx").write_bytes(b"tampered")
    with pytest.raises(BundleError, match="'model_int8.onnx'"):
        deploy_to_folder(bundles[1], target)
    assert ({p.name: p for p in target.iterdir()}, (target / "deployed.json").read_bytes()) == before
    assert live_run(target) == "run-1"


def test_deploy_failing_midway_leaves_current_untouched(bundles: list[Path], tmp_path: Path) -> None:
    """A zip whose last entry is damaged fails while it is being unpacked inside the target."""
    target = tmp_path / "device"
    deploy_to_folder(bundles[0], target)
    deploy_to_folder(zip_bundle(bundles[1], tmp_path / "b2.zip"), target)  # a good zip works
    assert live_run(target) == "run-2"
    before = sorted(os.listdir(target)), sorted(os.listdir(target / "versions"))
    state = (target / "deployed.json").read_bytes()
    with zipfile.ZipFile(tmp_path / "bad.zip", "w", zipfile.ZIP_STORED) as zf:
        for name in sorted([*FILES, MANIFEST]):
            zf.write(bundles[2] / name, name)
        last = zf.infolist()[-1]
    data = bytearray((tmp_path / "bad.zip").read_bytes())
    data[last.header_offset + 30 + len(last.filename) + len(last.extra) + 3] ^= 0xFF
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="is damaged"):
        deploy_to_folder(tmp_path / "bad.zip", target)
    assert (sorted(os.listdir(target)), sorted(os.listdir(target / "versions"))) == before
    assert (target / "deployed.json").read_bytes() == state and live_run(target) == "run-2"


def test_missing_mount_point_is_not_created(bundles: list[Path], tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="is the device mounted"):
        deploy_to_folder(bundles[0], tmp_path / "media" / "usb" / "inspection")
    assert not (tmp_path / "media").exists()


def test_rename_fallback_layout_without_symlinks(bundles: list[Path], tmp_path: Path) -> None:
    """The layout a FAT stick gets (plain current/ and previous/ folders), swapped by renames."""
    target = tmp_path / "stick"
    target.mkdir()
    shutil.copytree(bundles[0], target / "current")  # as left by a deploy on a FAT stick
    assert deploy_to_folder(bundles[1], target).mode == "rename"
    assert live_run(target) == "run-2" and json.loads((target / "previous" / MANIFEST).read_text())["run_id"] == "run-1"
    deploy_to_folder(bundles[2], target)
    assert live_run(target) == "run-3" and not (target / "current").is_symlink()
    assert sorted(os.listdir(target)) == ["current", "deployed.json", "previous"]
    assert rollback_folder(target).run_id == "run-2"
    # a deploy that crashed after moving current to previous, before moving the new one in:
    os.rename(target / "previous", target / ".lt-trash-crashed")
    os.rename(target / "current", target / "previous")
    os.mkdir(target / ".lt-incoming-crashed")
    with pytest.raises(DeployError, match="no previous bundle"):
        rollback_folder(target)
    assert live_run(target) == "run-2"  # put back before anything else
    assert deploy_to_folder(bundles[0], target).previous_sha256 == manifest_sha256(bundles[1])
    assert sorted(os.listdir(target)) == ["current", "deployed.json", "previous"]  # leftovers removed


# -------------------------------------------------------------------------------------- SSH targets

class LimitedSFTP(asyncssh.SFTPServer):
    """An SFTP server without symlinks / posix-rename, or one whose disk fills up (per ``flags``)."""

    flags: dict[str, object] = {}

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        if self.flags.get("no_symlinks"):
            raise asyncssh.SFTPOpUnsupported("symlinks are not supported here")
        return super().symlink(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        if self.flags.get("no_posix_rename"):
            self.flags["refused_posix_rename"] = int(self.flags.get("refused_posix_rename", 0)) + 1  # type: ignore[call-overload]
            raise asyncssh.SFTPOpUnsupported("posix-rename is not supported here")
        return super().posix_rename(oldpath, newpath)

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        left = self.flags.get("bytes_left")
        if isinstance(left, int):
            if left < len(data):
                raise asyncssh.SFTPNoSpaceOnFilesystem("No space left on device")
            self.flags["bytes_left"] = left - len(data)
        return super().write(file_obj, offset, data)


class PasswordServer(asyncssh.SSHServer):
    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == "line" and password == "s3cret"


class SshServer:
    """A real SSH server with SFTP on 127.0.0.1, run by its own event loop in a thread."""

    def __init__(self, root: Path) -> None:
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.key_file = root / "id_ed25519"
        client_key.write_private_key(str(self.key_file))
        self.key_file.chmod(0o600)
        LimitedSFTP.flags = self.flags = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())

        async def listen() -> asyncssh.SSHAcceptor:
            return await asyncssh.listen("127.0.0.1", 0, server_host_keys=[self.host_key],
                                         server_factory=PasswordServer, authorized_client_keys=authorized,
                                         sftp_factory=LimitedSFTP)

        self.server = self._call(listen())
        self.port = self.server.get_port()
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_key.export_public_key().decode()}")

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    def url(self, path: Path, user: str = "line") -> str:
        return f"ssh://{user}@127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        async def stop_listening() -> None:  # on the loop's thread: asyncio objects are not thread-safe, and
            self.server.close()  # a connection that ends meanwhile wakes the same waiters (seen in CI)
            await self.server.wait_closed()

        self._call(stop_listening())

        async def cancel_the_rest() -> None:  # SFTP sessions of connections the client already closed
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    (tmp_path / "keys").mkdir()
    server = SshServer(tmp_path / "keys")
    yield server
    server.close()


def test_ssh_deploy_twice_then_rollback(bundles: list[Path], tmp_path: Path, sshd: SshServer) -> None:
    device = tmp_path / "device"
    device.mkdir()
    url = sshd.url(device / "inspection")
    opts = {"known_hosts": sshd.known_hosts, "key_file": sshd.key_file}
    first = deploy_over_ssh(bundles[0], url, **opts)
    assert (first.mode, first.run_id, first.live_path) == ("symlink", "run-1", url + "/current")
    second = deploy(zip_bundle(bundles[1], tmp_path / "b2.zip"), url, known_hosts=sshd.known_hosts,
                    password="s3cret")
    target = device / "inspection"
    assert live_run(target) == "run-2" and second.previous_sha256 == first.manifest_sha256
    assert (target / "current").is_symlink() and (target / "previous").is_symlink()
    assert json.loads((target / "deployed.json").read_text())["current"]["run_id"] == "run-2"
    assert leftovers(target) == []
    assert rollback_over_ssh(url, **opts).run_id == "run-1" and live_run(target) == "run-1"
    assert rollback(url, **opts).run_id == "run-2"
    deploy_over_ssh(bundles[2], url, **opts)
    assert live_run(target) == "run-3" and len(list((target / "versions").iterdir())) == 2
    for name in FILES:
        assert (target / "current" / name).read_bytes() == (bundles[2] / name).read_bytes()


def test_ssh_server_without_posix_rename_or_symlinks(bundles: list[Path], tmp_path: Path,
                                                     sshd: SshServer) -> None:
    opts = {"known_hosts": sshd.known_hosts, "key_file": sshd.key_file}
    sshd.flags["no_posix_rename"] = True  # link swap falls back to remove + rename
    links = tmp_path / "links"
    links.mkdir()
    for b in bundles[:2]:
        assert deploy_over_ssh(b, sshd.url(links / "t"), **opts).mode == "symlink"
    assert live_run(links / "t") == "run-2" and rollback_over_ssh(sshd.url(links / "t"), **opts).run_id == "run-1"
    assert sshd.flags["refused_posix_rename"] >= 3  # type: ignore[operator]
    sshd.flags["no_symlinks"] = True  # plain folders swapped by renames
    for b in bundles:
        assert deploy_over_ssh(b, sshd.url(tmp_path / "plain"), **opts).mode == "rename"
    assert live_run(tmp_path / "plain") == "run-3" and not (tmp_path / "plain" / "current").is_symlink()
    assert rollback_over_ssh(sshd.url(tmp_path / "plain"), **opts).run_id == "run-2"
    assert sorted(os.listdir(tmp_path / "plain")) == ["current", "deployed.json", "previous"]


def test_ssh_disk_full_midway_leaves_current_untouched(bundles: list[Path], tmp_path: Path,
                                                       sshd: SshServer) -> None:
    url = sshd.url(tmp_path / "t")
    opts = {"known_hosts": sshd.known_hosts, "key_file": sshd.key_file}
    deploy_over_ssh(bundles[0], url, **opts)
    before = sorted(os.listdir(tmp_path / "t")), (tmp_path / "t" / "deployed.json").read_bytes()
    sshd.flags["bytes_left"] = 3000  # a few files fit, then the device's disk is full
    with pytest.raises(DeployError, match=r"uploading '.*' to ssh://.* failed .*free space"):
        deploy_over_ssh(bundles[1], url, **opts)
    assert (sorted(os.listdir(tmp_path / "t")), (tmp_path / "t" / "deployed.json").read_bytes()) == before
    assert live_run(tmp_path / "t") == "run-1" and len(os.listdir(tmp_path / "t" / "versions")) == 1


def test_unknown_host_key_is_refused(bundles: list[Path], tmp_path: Path, sshd: SshServer) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(DeployError, match=rf"not a known SSH host.*ssh-keyscan -p {sshd.port} 127.0.0.1"):
        deploy_over_ssh(bundles[0], sshd.url(tmp_path / "t"), known_hosts=empty, key_file=sshd.key_file)
    assert not (tmp_path / "t").exists() and empty.read_text() == ""  # nothing written, key not added
    with pytest.raises(DeployError, match="not a known SSH host"):
        rollback_over_ssh(sshd.url(tmp_path / "t"), known_hosts=empty, key_file=sshd.key_file)


def test_changed_host_key_and_bad_login_are_refused(bundles: list[Path], tmp_path: Path,
                                                    sshd: SshServer) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {other}")
    with pytest.raises(DeployError, match="has CHANGED"):
        deploy_over_ssh(bundles[0], sshd.url(tmp_path / "t"), known_hosts=wrong, key_file=sshd.key_file)
    with pytest.raises(DeployError, match="login to .* was refused"):
        deploy_over_ssh(bundles[0], sshd.url(tmp_path / "t"), known_hosts=sshd.known_hosts, password="nope")
    with pytest.raises(DeployError, match="does not exist on 127.0.0.1"):
        deploy_over_ssh(bundles[0], sshd.url(tmp_path / "no" / "t"), known_hosts=sshd.known_hosts,
                        key_file=sshd.key_file)
    assert not (tmp_path / "t").exists() and not (tmp_path / "no").exists()
    assert stat.S_IMODE(sshd.key_file.stat().st_mode) == 0o600
