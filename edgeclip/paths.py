"""Where edgeclip keeps caches and runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Cache root: $EDGECLIP_CACHE, else ~/.cache/edgeclip. Created on demand."""
    root = Path(os.environ.get("EDGECLIP_CACHE", Path.home() / ".cache" / "edgeclip"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def devices_dir() -> Path:
    """Target profiles: $EDGECLIP_DEVICES, else the repository's devices/ folder."""
    return Path(os.environ.get("EDGECLIP_DEVICES", REPO_ROOT / "devices"))


RUNS_DIR = Path("runs")


def default_run_dir(*parts: object) -> Path:
    """`runs/<part>-<part>-...-<YYYYmmdd-HHMMSS>`: the run directory when --out is not given."""
    words = [str(p) for p in parts if p not in (None, "")]
    return RUNS_DIR / "-".join([*words, time.strftime("%Y%m%d-%H%M%S")])
