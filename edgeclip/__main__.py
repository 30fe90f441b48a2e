"""`python -m edgeclip ...` (also `torchrun --nproc_per_node N -m edgeclip distill ...`)."""

import sys

from edgeclip.cli import main

sys.exit(main())
