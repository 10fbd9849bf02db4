"""labeltool desktop application.

    python app.py [PROJECT_DIR]                 the labeling workspace (optionally opening a project)
    python app.py --self-check [--workdir DIR] [--no-gui] [--keep]
                                                headless check of the installation; exit 0 when it works
    python app.py --version

The same entry point is the frozen (PyInstaller) executable ``dist/labeltool/labeltool``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import runpy
import sys
from pathlib import Path

USAGE = "labeltool [PROJECT_DIR] | --self-check [--workdir DIR] [--no-gui] [--keep] | --version"


def _frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def _frozen_setup() -> None:
    """Frozen build only: pretrained weights are looked for in ``models/`` beside the executable (the
    one folder the user sees), unless ``LABELTOOL_MODELS_DIR`` says otherwise. A CPU build (without the
    cuDNN engine libraries, see pyinstaller.spec) hides GPUs from torch, which would otherwise pick one
    and fail at the first convolution."""
    from labeltool.selfcheck import build_info

    os.environ.setdefault("LABELTOOL_MODELS_DIR", str(Path(sys.executable).resolve().parent / "models"))
    if build_info().get("cuda") is False:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def _bundled_script(argv: list[str]) -> Path | None:
    """Frozen build only: ``labeltool SCRIPT.py ARGS...`` for a script shipped inside the app folder.

    Jobs start helper scripts as ``[sys.executable, script, ...]`` (the bundle verifier runs the
    bundle's ``infer.py`` that way, without torch); frozen, ``sys.executable`` is this program, so it
    must run the script as the Python interpreter would. Only files inside the app folder qualify.
    """
    if not _frozen() or len(argv) < 2 or not argv[1].endswith(".py"):
        return None
    script = Path(argv[1]).resolve()
    inside = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)).resolve()
    return script if script.is_file() and script.is_relative_to(inside) else None


def window_check(project: Path, scratch: Path) -> str:
    """The self-check's ``gui`` check: the main window built offscreen (unless QT_QPA_PLATFORM says
    otherwise), ``project`` opened, its first image shown and the window painted; then closed again."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from labeltool.gui import main as gui_main
    from labeltool.selfcheck import CheckError

    def fail(cond: bool, message: str) -> None:
        if not cond:
            raise CheckError(message)

    app = QApplication.instance() or QApplication(["labeltool", "--self-check"])

    def error_instead_of_dialog(_parent: object, title: str, exc: BaseException) -> None:
        raise CheckError(f"the window reported an error: {title}: {exc}")

    shown = gui_main.show_error
    gui_main.show_error = error_instead_of_dialog  # a modal error dialog would wait forever for a click
    window = gui_main.MainWindow()
    try:
        # the user's recent-projects list must not learn about a temporary folder
        window.settings = QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat)
        fail(window.open_project(project), f"the window could not open {project}")
        window.show()
        app.processEvents()
        rows = window.image_model.rowCount()
        total = len(window.project.images()) if window.project is not None else -1
        fail(rows == total > 0, f"the image list shows {rows} of the project's {total} images")
        image = window.canvas.image
        fail(image is not None, "no image is shown on the canvas after opening the project")
        shot = window.grab()
        fail(not shot.isNull() and shot.width() > 0, "painting the window offscreen failed")
        return (f"platform {QApplication.platformName()}, {rows} images listed, first image {image.width}x"
                f"{image.height} with {len(window.canvas.boxes)} boxes, window painted {shot.width()}x{shot.height()}")
    finally:
        gui_main.show_error = shown
        if window.project is not None:
            window.project.close()
            window.project = None
        window.close()
        window.deleteLater()
        app.processEvents()


def _self_check(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="labeltool --self-check", description=(
        "Headless check of this installation: builds a small demo project in a temporary folder, opens it in "
        "the window offscreen, trains one step, predicts (also in a spawned child process), exports and "
        "verifies an ONNX bundle. Prints one line per check; exit status 0 when all pass."))
    parser.add_argument("--workdir", type=Path, help="where the temporary folder goes (default: the system's)")
    parser.add_argument("--no-gui", action="store_true", help="skip the window check (no Qt)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder for inspection")
    opts = parser.parse_args(args)
    from labeltool.selfcheck import self_check

    return self_check(opts.workdir, gui_check=None if opts.no_gui else window_check, keep=opts.keep)


def main(argv: list[str]) -> int:
    if _frozen():
        _frozen_setup()
    script = _bundled_script(argv)
    if script is not None:
        sys.argv = [str(script), *argv[2:]]
        sys.path.insert(0, str(script.parent))
        runpy.run_path(str(script), run_name="__main__")  # a script's sys.exit(n) ends the process here
        return 0
    first = argv[1] if len(argv) > 1 else ""
    if first == "--version":
        import labeltool
        from labeltool.selfcheck import describe_build

        sys.stdout.write(f"labeltool {labeltool.__version__} ({describe_build()})\n")
        return 0
    if first in ("-h", "--help"):
        sys.stdout.write(f"usage: {USAGE}\n\n{__doc__.strip()}\n")
        return 0
    if first == "--self-check":
        return _self_check(argv[2:])
    if first.startswith("--"):
        sys.stderr.write(f"labeltool: unknown option {first}\nusage: {USAGE}\n")
        return 2
    from labeltool.gui.main import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":
    # First thing: in the frozen build a spawned child process (GUI jobs, the self-check, cleanlab's
    # pools) re-runs this executable, and freeze_support() turns it into the child instead of a new app.
    multiprocessing.freeze_support()
    sys.exit(main(sys.argv))
