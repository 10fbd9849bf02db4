#!/usr/bin/env bash
# Set everything up and run the main job on built-in demo data: labeltool demo [DIR]
# (DIR defaults to ./labeltool-demo, relative to where you run this).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bash "$repo/scripts/setup.sh"
exec "$repo/.venv/bin/labeltool" demo "$@"
