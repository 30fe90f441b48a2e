"""`python -m edgeclip ...` is the `edgeclip` command (useful inside a checkout or a venv without scripts on PATH)."""

import sys

from edgeclip.cli import main

sys.exit(main())
