"""labeltool desktop application: ``python app.py [PROJECT_DIR]``."""

from __future__ import annotations

import multiprocessing
import sys

if __name__ == "__main__":
    # Needed in the frozen (PyInstaller) build: jobs and cleanlab start child processes.
    multiprocessing.freeze_support()
    from labeltool.gui.main import main

    sys.exit(main(sys.argv))
