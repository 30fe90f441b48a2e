"""edgeclip.runtimes: load and run an exported artifact (bench and demo use these).

`load_runtime(artifact_dir, threads=0) -> Runtime` reads the artifact's manifest and takes the
backend's runtime class from the backend table (edgeclip/backends.py): by default `ArtifactRuntime`,
which opens the artifact with the device layer (devices/runner/artifact_runtime.py — the code the
device runner and the accident demo run). Imports stay lazy and torch-free so these paths run on a
device that has only numpy, PIL and the backend runtime. `TorchRuntime`
(edgeclip.runtimes.torch_runtime) is the unexported PyTorch reference with the same interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgeclip.backends import get_backend
from edgeclip.manifest import read_manifest

if TYPE_CHECKING:
    from edgeclip.runtimes.base import Runtime


def runtime_class(backend: str) -> type["Runtime"]:
    """The runtime class of a backend row (unknown backend → UserError with close matches)."""
    return get_backend(backend).load_runtime()


def load_runtime(artifact_dir: str | Path, threads: int = 0) -> "Runtime":
    """Runtime for `<artifact_dir>` (a dir with manifest.json); `threads=0` lets the backend decide."""
    manifest = read_manifest(artifact_dir)
    return runtime_class(manifest["backend"])(artifact_dir, manifest, threads)


__all__ = ["load_runtime", "runtime_class"]
