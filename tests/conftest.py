"""Repository-wide test setup: headless Qt, shared-data location, small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# bundle signing keys of the test run: never the developer's own (core/signing.py)
if "LABELTOOL_KEY_DIR" not in os.environ:
    import tempfile

    os.environ["LABELTOOL_KEY_DIR"] = tempfile.mkdtemp(prefix="labeltool-test-keys-")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """Path of ``../shared/data/<name>``; skips the test when absent, or fails when
    ``LABELTOOL_REQUIRE_SHARED=1`` (set by ``.ci/run``, so CI never silently skips it)."""
    path = SHARED_DATA / name
    if not path.is_dir():
        if os.environ.get("LABELTOOL_REQUIRE_SHARED") == "1":
            pytest.fail(f"{path} is missing but LABELTOOL_REQUIRE_SHARED=1 (CI must have ../shared/data)")
        pytest.skip(f"{path} not found: the shared DeepPCB sample exists only beside the development checkout")
    return path


@pytest.fixture
def deeppcb() -> Path:
    return shared_dataset("deeppcb")
