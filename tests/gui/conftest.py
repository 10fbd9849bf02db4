"""GUI test setup: the recent-projects list goes to a file in the test's temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from labeltool.gui import main as gui_main


@pytest.fixture(autouse=True)
def _private_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "settings.ini")
    monkeypatch.setattr(gui_main, "default_settings", lambda: QSettings(path, QSettings.Format.IniFormat))
