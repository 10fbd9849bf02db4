"""Screenshots of the labeling workspace for docs/screenshots/ (offscreen Qt, no display needed).

    QT_QPA_PLATFORM=offscreen python scripts/screenshots.py DEMO_PROJECT PCB_PROJECT PCB_SOURCE [OUT_DIR]

DEMO_PROJECT / PCB_PROJECT: projects to open; PCB_SOURCE: a YOLO folder imported into a fresh
temporary project through the window (for the import summary). PNGs are palette-reduced when larger
than 300 KB.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from loop_screenshots import png_bytes  # noqa: E402 (this folder: shared PNG size limit)
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from labeltool.core.store import Project  # noqa: E402
from labeltool.gui import geometry as geo  # noqa: E402
from labeltool.gui import main as gui_main  # noqa: E402
from labeltool.gui.main import MainWindow  # noqa: E402


def settle(app: QApplication, window: MainWindow | None = None, rounds: int = 20) -> None:
    for _ in range(rounds):
        app.processEvents()
        if window is not None:
            window.image_model.loader.wait(2000)  # thumbnails of the visible rows decoded


def save(widget: QWidget, path: Path) -> None:
    data = png_bytes(widget.grab())  # at most LIMIT bytes (recompressed / 256 colours)
    path.write_bytes(data)
    sys.stdout.write(f"{path}  {len(data) // 1024} KB\n")


def main(argv: list[str]) -> int:
    demo, pcb, source = (Path(a) for a in argv[1:4])
    out = Path(argv[4]) if len(argv) > 4 else Path("docs/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([])
    settings = QSettings(str(out / ".screenshots-settings.ini"), QSettings.Format.IniFormat)
    gui_main.default_settings = lambda: settings  # leave the user's recent-projects list alone
    window = MainWindow()
    window.resize(1440, 900)  # what a 1600x1000 screen gets by default
    window.show()
    window.open_project(demo)
    settle(app, window)
    save(window, out / "demo_window.png")

    window.open_project(pcb)
    settle(app)
    window.step_image(3)
    settle(app, window)
    save(window, out / "pcb_window.png")
    canvas = window.canvas
    box = canvas.boxes[0]
    canvas.select_box(box.id)
    cx, cy = (box.xyxy[0] + box.xyxy[2]) / 2, (box.xyxy[1] + box.xyxy[3]) / 2
    zoom = 3.0
    w, h = canvas.viewport().width(), canvas.viewport().height()
    canvas.set_view(geo.ViewState(zoom, w / 2 - cx * zoom, h / 2 - cy * zoom))
    settle(app)
    save(window, out / "pcb_zoom.png")

    window.show_shortcuts()
    settle(app)
    assert window.sheet is not None
    save(window.sheet, out / "shortcuts.png")
    window.sheet.close()

    with tempfile.TemporaryDirectory() as tmp:
        Project.create(Path(tmp) / "p").close()
        window.open_project(Path(tmp) / "p")
        window.import_source(source)
        settle(app)
        if window.report_dialog is not None:
            save(window.report_dialog, out / "import_summary.png")
            window.report_dialog.close()
        window.close()
    (out / ".screenshots-settings.ini").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
