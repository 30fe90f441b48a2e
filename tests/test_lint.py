"""The linter is part of the test command: pyflakes' rules (via ruff) find nothing in the repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing() -> None:
    # ruff is a dev dependency (pyproject [dev]/[all], pinned in constraints): missing it is a set-up error.
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                             "edgeclip", "benchmarks", "tests", "devices", "export", "docs"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
