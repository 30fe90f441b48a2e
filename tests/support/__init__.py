"""Stand-ins for tools the tests cannot install here (TensorRT's trtexec)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path


def write_fake_trtexec(folder, python: str | None = None):
    """An executable `trtexec` in `folder` that runs tests/support/fake_trtexec.py with `python`
    (the device's TensorRT: $FAKE_TRTEXEC_TENSORRT, default 8.6)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    script = Path(__file__).parent / "fake_trtexec.py"
    wrapper = folder / "trtexec"
    # The graph check needs onnx; a device interpreter without it hands the check to this one.
    wrapper.write_text(f'#!/bin/sh\n: "${{FAKE_TRTEXEC_CHECKER_PYTHON:={sys.executable}}}"\nexport FAKE_TRTEXEC_CHECKER_PYTHON\n'
                       f'exec "{python or sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder
