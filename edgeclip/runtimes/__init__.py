"""edgeclip.runtimes: load and run an exported artifact (bench and demo use these).

`load_runtime(artifact_dir, threads=0) -> Runtime` reads the artifact's manifest and picks the
backend's runtime. Imports stay lazy and torch-free so the ONNX/OpenVINO paths run on a device
that has only numpy, PIL and the backend runtime. `TorchRuntime` (edgeclip.runtimes.torch_runtime)
is the unexported PyTorch reference with the same interface.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from edgeclip.exporters.manifest import read_manifest

if TYPE_CHECKING:
    from edgeclip.runtimes.base import Runtime

# manifest backend → "module:Class" (imported only when used).
RUNTIMES = {
    "onnx": "edgeclip.runtimes.onnxruntime_runtime:OnnxRuntime",
    "openvino": "edgeclip.runtimes.openvino_runtime:OpenVinoRuntime",
    "coreml": "edgeclip.runtimes.coreml_runtime:CoreMLRuntime",
    "tensorrt": "edgeclip.runtimes.tensorrt_runtime:TensorRTRuntime",
}


def runtime_class(backend: str) -> type["Runtime"]:
    from edgeclip.errors import unknown_name_error

    if backend not in RUNTIMES:
        raise unknown_name_error("runtime backend", backend, RUNTIMES, "the manifest names a backend this edgeclip cannot run")
    module_name, class_name = RUNTIMES[backend].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_runtime(artifact_dir: str | Path, threads: int = 0) -> "Runtime":
    """Runtime for `<artifact_dir>` (a dir with manifest.json); `threads=0` lets the backend decide."""
    manifest = read_manifest(artifact_dir)
    return runtime_class(manifest["backend"])(artifact_dir, manifest, threads)


__all__ = ["RUNTIMES", "load_runtime", "runtime_class"]
