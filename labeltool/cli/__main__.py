"""``python -m labeltool.cli``."""

import sys

from labeltool.cli import main

sys.exit(main())
