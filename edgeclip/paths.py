"""Where edgeclip keeps caches and runs."""

from __future__ import annotations

import importlib.resources
import os
import time
from pathlib import Path
from types import ModuleType


def cache_dir() -> Path:
    """Cache root: $EDGECLIP_CACHE, else ~/.cache/edgeclip. Created on demand."""
    root = Path(os.environ.get("EDGECLIP_CACHE", Path.home() / ".cache" / "edgeclip"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def data_dir() -> Path:
    """Files edgeclip ships besides code. In the repository they live in the top-level devices/ and
    export/ folders (where people read them); edgeclip/_data/ links to them, so an editable
    checkout and an installed wheel (which holds copies) find them the same way."""
    return Path(str(importlib.resources.files("edgeclip") / "_data"))


def devices_dir() -> Path:
    """Target profiles: $EDGECLIP_DEVICES, else the shipped devices/ folder."""
    return Path(os.environ.get("EDGECLIP_DEVICES", data_dir() / "devices"))


def runner_dir() -> Path:
    """devices/runner/: the standalone files that ship to a device (runner, runtime layer, tokenizer)."""
    return data_dir() / "devices" / "runner"


def runner_path() -> Path:
    """The standalone on-device benchmark runner (devices/runner/edgeclip_runner.py)."""
    return runner_dir() / "edgeclip_runner.py"


def runner_files() -> list[Path]:
    """What ships to a device with the runner: every Python file of devices/runner/ (it loads its siblings)."""
    return sorted(runner_dir().glob("*.py"))


def runner_module(file_name: str) -> "ModuleType":
    """A standalone module of devices/runner/ (e.g. clip_tokenizer.py, artifact_runtime.py), loaded by path:
    edgeclip uses the very file the device runs instead of a copy that could drift. Each file is executed
    once, as `edgeclip_device_<stem>` (the name artifact_runtime.load_sibling uses too)."""
    import importlib.util
    import sys

    name = f"edgeclip_device_{Path(file_name).stem}"
    if name not in sys.modules:
        path = runner_dir() / file_name
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        sys.modules[name] = module
    return sys.modules[name]


def kit_dir(backend: str) -> Path:
    """The on-target build kit of a backend (export/<backend>/)."""
    return data_dir() / "export" / backend


RUNS_DIR = Path("runs")


def default_run_dir(*parts: object) -> Path:
    """`runs/<part>-<part>-...-<YYYYmmdd-HHMMSS>`: the run directory when --out is not given."""
    words = [str(p) for p in parts if p not in (None, "")]
    return RUNS_DIR / "-".join([*words, time.strftime("%Y%m%d-%H%M%S")])
