"""Start the real app on a real X display, show a project, and save a screenshot of the whole screen.

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screen_grab.py PROJECT OUT.png [--image N] [--one-to-one]

Unlike ``scripts/screenshots.py`` (offscreen, widget grabs), this goes through the xcb platform
plugin and a window manager-less X server, the way a user's desktop starts the app, and captures
the screen (``QScreen.grabWindow(0)``), so missing system libraries (e.g. ``libxcb-cursor0``) or a
window that does not fit the screen show up here.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from labeltool.gui.main import MainWindow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--image", type=int, default=0, help="row of the image list to show")
    parser.add_argument("--one-to-one", action="store_true", help="show the image at 100 %% (default: fit)")
    parser.add_argument("--delay-ms", type=int, default=2500, help="wait before the grab (thumbnails, paint)")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        sys.exit("no X display: run under xvfb-run (see the docstring)")
    if not (args.project / "project.db").is_file():
        sys.exit(f"{args.project} is not a labeltool project (no project.db)")
    app = QApplication(sys.argv[:1])
    sys.stdout.write(f"platform: {app.platformName()}\n")
    window = MainWindow()
    window.show()
    if not window.open_project(args.project):
        return 1
    window.image_list.setCurrentRow(args.image)

    def grab() -> None:
        if args.one_to_one:
            window.canvas.zoom_one()
        app.processEvents()
        screen = app.primaryScreen()
        pixmap = screen.grabWindow(0)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        ok = pixmap.save(str(args.out))
        sys.stdout.write(f"{args.out}: {pixmap.width()}x{pixmap.height()} saved={ok}; window "
                         f"{window.width()}x{window.height()} on screen {screen.size().width()}x"
                         f"{screen.size().height()}\n")
        window.close()
        app.exit(0 if ok else 1)

    QTimer.singleShot(args.delay_ms, grab)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
