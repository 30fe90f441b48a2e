"""`python3 -m accident_demo ...` on the device (or `python -m edgeclip.video.accident_demo` here)."""

import sys

from .runner import main

sys.exit(main())
