"""Guard for the PySide6 pin: a void Qt call must not steal a reference to None.

PySide6-Essentials 6.12.0 on CPython 3.11 does (one per QPainter.setBrush, QWidget.update, ...): the
GUI aborts with "Fatal Python error: none_dealloc" after a few thousand paints. Run in a child
process, so a bad build fails this test instead of killing the test session.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui

PROBE = """
import sys
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QGuiApplication, QImage, QPainter
app = QGuiApplication([])
img = QImage(8, 8, QImage.Format.Format_RGB32)
p = QPainter(img)
before = sys.getrefcount(None)
for _ in range(2000):
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.setBrush(QBrush())
    p.drawRect(0, 0, 2, 2)
print(sys.getrefcount(None) - before)
p.end()
"""


def test_void_qt_calls_keep_none_alive() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lost = -int(proc.stdout.strip().splitlines()[-1])
    assert lost < 100, f"PySide6 lost {lost} references to None in 6,000 calls: pin another PySide6 version"
