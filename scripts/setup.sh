#!/usr/bin/env bash
# Create .venv with Python 3.11 and install labeltool with its test tools (idempotent: the install
# is skipped when pyproject.toml has not changed since the last successful one).
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  PY=$(find_python) || { echo "error: labeltool needs Python 3.11 (python3.11 not found on PATH)" >&2; exit 1; }
  echo "creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi

stamp=.venv/.labeltool-install-stamp
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing labeltool and its dependencies into .venv (first time: ~5.5 GB, a few minutes)" >&2
  # (this machine's pip config lists local index folders that may be absent; hide those warnings only)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]' \
    2> >(grep -v "^WARNING: Location 'file://" >&2)
  # The pinned pair must have won over any machine-local CPU-only torch wheel.
  .venv/bin/python -c 'import torchvision, torch; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)'
  echo "$want" > "$stamp"
fi
