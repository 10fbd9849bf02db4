"""The first-run screen: its buttons and the recent-projects list emit what the window acts on."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from labeltool.core.store import Project
from labeltool.gui.welcome import TAGLINE, WelcomeWidget, demo_job_request
from labeltool.jobs.demo import DEMO_ANALYZE_MINUTES, DEMO_MARKER, DEMO_TRAIN_MINUTES

pytestmark = pytest.mark.gui


def test_buttons_emit_their_requests(qtbot, tmp_path: Path) -> None:
    w = WelcomeWidget(demo_root=tmp_path / "demo")
    qtbot.addWidget(w)
    for button, signal in ((w.demo_button, w.demo_requested), (w.open_button, w.open_requested),
                           (w.new_button, w.new_requested)):
        with qtbot.waitSignal(signal, timeout=1000):
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert f"Builds it in {tmp_path / 'demo'} first" in w.demo_label.text()
    assert w.recent_empty.isVisibleTo(w) and not w.recent_list.isVisibleTo(w)


def test_recent_list_click_emits_the_path(qtbot, tmp_path: Path) -> None:
    Project.create(tmp_path / "line-3").close()
    w = WelcomeWidget(demo_root=tmp_path / "demo")
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    qtbot.waitExposed(w)
    paths = [str(tmp_path / "line-3"), str(tmp_path / "gone")]
    w.set_recent(paths)
    assert w.recent_paths() == paths and w.recent_list.isVisibleTo(w)
    assert w.recent_list.item(0).text() == paths[0]
    assert w.recent_list.item(1).text() == f"{paths[1]}  (not found)"
    for row, path in enumerate(paths):
        rect = w.recent_list.visualItemRect(w.recent_list.item(row))
        with qtbot.waitSignal(w.recent_chosen, timeout=1000) as blocker:
            qtbot.mouseClick(w.recent_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        assert blocker.args == [path]
    w.recent_list.setCurrentRow(0)
    with qtbot.waitSignal(w.recent_chosen, timeout=1000) as blocker:
        qtbot.keyClick(w.recent_list, Qt.Key.Key_Return)
    assert blocker.args == [paths[0]]


def test_demo_request_and_an_existing_demo(qtbot, tmp_path: Path) -> None:
    target, kwargs = demo_job_request(tmp_path / "demo")
    assert target == "labeltool.jobs.demo:demo_job"
    # the demo's own budgets for the first model and the analysis; fixes, fine-tune and export are left to the user
    assert kwargs == {"root": str(tmp_path / "demo"), "train_minutes": DEMO_TRAIN_MINUTES,
                      "analyze_minutes": DEMO_ANALYZE_MINUTES, "review": 0, "finetune_epochs": 0,
                      "export": False}
    assert demo_job_request(tmp_path / "demo", analysis=False)[1]["analyze_minutes"] == 0.0
    root = tmp_path / "demo"
    Project.create(root / "project").close()
    (root / DEMO_MARKER).write_text("made by `labeltool demo`\n")
    (root / "project" / "runs" / "20250101-000000-edge").mkdir(parents=True)
    w = WelcomeWidget(demo_root=root)
    qtbot.addWidget(w)
    assert w.demo_label.text().startswith(f"Opens {root / 'project'}")
    assert TAGLINE.startswith("Label defect boxes")
