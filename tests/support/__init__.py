"""Stand-ins for tools the tests cannot install here (TensorRT's trtexec)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path


def write_fake_trtexec(folder, python: str | None = None):
    """An executable `trtexec` in `folder` that runs tests/support/fake_trtexec.py with `python`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    script = Path(__file__).parent / "fake_trtexec.py"
    wrapper = folder / "trtexec"
    wrapper.write_text(f'#!/bin/sh\nexec "{python or sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder
