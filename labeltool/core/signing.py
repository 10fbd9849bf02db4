"""Signed bundles: who exported this, and may its code run here?

A bundle carries code (``infer.py``) that ``verify`` runs and ``deploy`` installs on a line PC. Its
manifest lists every file's sha256, but anyone can edit ``infer.py`` and re-hash the manifest; a hash
list is not a signature. So each installation has an ed25519 signing key (``cryptography``'s
implementation), made on first use in :func:`key_dir`; ``export-model`` signs the manifest, and
``verify``/``deploy`` run or install a bundle's code only when the manifest is signed by a key this
installation trusts: its own, or a public key copied into ``<key dir>/trusted/`` (another export PC).
Anything else is refused unless the user says ``--trust-bundle``.

The signature sits in the manifest itself (key ``signature``: the signer's public key and an
ed25519 signature over the manifest's canonical JSON without that key), so the bundle, its zip and
its deployed copies carry it with no extra file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from .errors import BundleError

SIGNATURE_KEY = "signature"
PRIVATE_NAME = "signing-key.pem"
PUBLIC_NAME = "signing-key.pub"
TRUSTED_DIRNAME = "trusted"


def key_dir() -> Path:
    """Where this installation keeps its signing key: ``$LABELTOOL_KEY_DIR``, else the user's config folder."""
    if env := os.environ.get("LABELTOOL_KEY_DIR"):
        return Path(env)
    if sys.platform == "win32":  # pragma: no cover
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "labeltool" / "keys"


def canonical(manifest: dict[str, Any]) -> bytes:
    """The bytes that are signed: the manifest without its signature, as ``write_manifest`` writes it."""
    body = {k: v for k, v in manifest.items() if k != SIGNATURE_KEY}
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8")


def key_id(public_raw: bytes) -> str:
    """A short, stable name for a public key (first 16 hex digits of its sha256)."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _private_key() -> Any:  # noqa: ANN401 (cryptography's Ed25519PrivateKey)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    folder = key_dir()
    path = folder / PRIVATE_NAME
    if path.is_file():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as exc:
            raise BundleError(f"cannot read this installation's signing key {path} ({exc}); move it away and "
                              "export again to make a new one (bundles signed with the old key then need "
                              "--trust-bundle)") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise BundleError(f"{path} is not an ed25519 key; move it away and export again to make a new one")
        return key
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, path)
    (folder / PUBLIC_NAME).write_text(_public_text(key.public_key()), encoding="utf-8")
    return key


def _raw(public_key: Any) -> bytes:  # noqa: ANN401
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _public_text(public_key: Any) -> str:  # noqa: ANN401
    return f"ed25519 {base64.b64encode(_raw(public_key)).decode()} labeltool\n"


def public_key_file() -> Path:
    """This installation's public key file (made on first use): copy it to a line PC or another
    labeltool installation that should trust bundles exported here."""
    _private_key()
    return key_dir() / PUBLIC_NAME


def sign_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with a ``signature`` entry by this installation's key."""
    key = _private_key()
    public = _raw(key.public_key())
    signature = key.sign(canonical(manifest))
    return {**manifest, SIGNATURE_KEY: {"algorithm": "ed25519", "public_key": base64.b64encode(public).decode(),
                                        "key_id": key_id(public), "value": base64.b64encode(signature).decode()}}


def read_public_key(path: Path) -> bytes:
    """Raw 32-byte ed25519 key from a ``signing-key.pub`` file (``ed25519 <base64> [comment]``)."""
    try:
        parts = Path(path).read_text(encoding="utf-8").split()
        raw = base64.b64decode(parts[1], validate=True) if len(parts) >= 2 and parts[0] == "ed25519" else b""
    except (OSError, ValueError, UnicodeDecodeError):
        raw = b""
    if len(raw) != 32:
        raise BundleError(f"{path} is not a labeltool public key (a line 'ed25519 <base64> ...')")
    return raw


def trusted_keys() -> dict[str, Path]:
    """key id -> file of every public key this installation trusts (its own included)."""
    folder = key_dir()
    found: dict[str, Path] = {}
    candidates = [folder / PUBLIC_NAME, *sorted((folder / TRUSTED_DIRNAME).glob("*.pub"))]
    for path in candidates:
        if path.is_file():
            try:
                found[key_id(read_public_key(path))] = path
            except BundleError:
                continue
    return found


def signature_status(manifest: dict[str, Any]) -> tuple[str, str]:
    """``(status, signer key id)``; status: 'trusted', 'unknown-key', 'unsigned' or 'bad-signature'."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    sig = manifest.get(SIGNATURE_KEY)
    if not isinstance(sig, dict):
        return "unsigned", ""
    try:
        public = base64.b64decode(str(sig.get("public_key", "")), validate=True)
        value = base64.b64decode(str(sig.get("value", "")), validate=True)
        Ed25519PublicKey.from_public_bytes(public).verify(value, canonical(manifest))
    except (ValueError, InvalidSignature):
        return "bad-signature", str(sig.get("key_id", ""))
    kid = key_id(public)
    return ("trusted" if kid in trusted_keys() else "unknown-key"), kid


def require_trusted(manifest: dict[str, Any], *, where: str, action: str, trust: bool = False) -> str:
    """BundleError unless the manifest is signed by a trusted key (or ``trust``); returns the status.

    ``action`` says what would happen ("run its infer.py", "install it on the line PC")."""
    status, kid = signature_status(manifest)
    if status == "trusted" or trust:
        return status
    folder = key_dir() / TRUSTED_DIRNAME
    why = {
        "unsigned": "is not signed (exported by an older labeltool, or its signature was removed)",
        "unknown-key": f"is signed by key {kid}, which this installation does not trust",
        "bad-signature": "has a signature that does not match its manifest (changed after the export)",
    }[status]
    return_hint = (f"If you know where it comes from, add that installation's public key to {folder} "
                   "(its file is shown by `labeltool signing-key`), or pass --trust-bundle to accept it once.")
    raise BundleError(f"{where} {why}; labeltool will not {action}. Re-export it here, or: {return_hint}")
