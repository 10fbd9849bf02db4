#!/usr/bin/env bash
# Build the frozen one-folder app (dist/labeltool/) with PyInstaller and run its self-check.
#
#   bash scripts/build_app.sh            CPU build (CUDA libraries torch loads only for GPU work left out)
#   LABELTOOL_BUILD_KEEP_CUDA=1 bash scripts/build_app.sh    keep every CUDA library (a build for GPU machines)
#
# PyInstaller goes into the project's .venv (set up by scripts/setup.sh): the build has to analyse
# exactly the packages the app runs with, and a second environment would repeat the 5.5 GB install.
# Prints the build time, the folder size and the self-check result; exits non-zero when the build
# or the self-check fails. The full PyInstaller log is build/pyinstaller.log.
set -euo pipefail
cd "$(dirname "$0")/.."

PYINSTALLER_VERSION=6.22.3          # supports Python 3.11 and ships the torch / nvidia-* / PySide6 hooks
HOOKS_CONTRIB_VERSION=2026.9        # the torch, timm, onnxruntime and cv2 hooks

bash scripts/setup.sh
if ! .venv/bin/python - "$PYINSTALLER_VERSION" "$HOOKS_CONTRIB_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("pyinstaller"), version("pyinstaller-hooks-contrib")) == tuple(sys.argv[1:3]) else 1)
EOF
then
  echo "installing pyinstaller $PYINSTALLER_VERSION into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    "pyinstaller==$PYINSTALLER_VERSION" "pyinstaller-hooks-contrib==$HOOKS_CONTRIB_VERSION" \
    2> >(grep -v "^WARNING: Location 'file://" >&2)
fi

mkdir -p build
log=build/pyinstaller.log
echo "building dist/labeltool with PyInstaller $PYINSTALLER_VERSION (log: $log) ..." >&2
start=$(date +%s)
if ! .venv/bin/pyinstaller --noconfirm --clean pyinstaller.spec >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "error: the PyInstaller build failed; the full log is $log" >&2
  exit 1
fi
build_s=$(( $(date +%s) - start ))
size=$(du -sh dist/labeltool | cut -f1)
files=$(find dist/labeltool -type f | wc -l)

echo "running dist/labeltool/labeltool --self-check ..." >&2
check_start=$(date +%s)
set +e
dist/labeltool/labeltool --self-check
check_rc=$?
set -e
check_s=$(( $(date +%s) - check_start ))

echo
echo "build:      $((build_s / 60)) min $((build_s % 60)) s (PyInstaller $PYINSTALLER_VERSION)"
echo "size:       $size in $files files (du -sh dist/labeltool)"
echo "self-check: $([ $check_rc -eq 0 ] && echo passed || echo "FAILED (exit $check_rc)") in ${check_s} s"
exit $check_rc
