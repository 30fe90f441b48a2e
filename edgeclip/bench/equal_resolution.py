"""A student timed at the teacher's input size, so "× teacher" is never only a resolution trick.

A CIFAR-10 student exported for 32×32 inputs against a 224² ViT compares ~50× fewer pixels as well
as a smaller network. Here the student's artifact is opened again with its image input resized to
the speed reference's size (a convolutional network with global pooling runs at any size) and timed
in the same interleaved run. Where that is impossible (a fixed-size graph such as a ViT's position
embedding, a backend whose engine is built for one shape, a text encoder) the row says why.

The rules are the device runner's (devices/runner/equal_size.py, loaded by path), so a row timed on
a device (`--remote`, runner flag `--equal-size`) is opened, checked and recorded the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeclip.backends import BACKENDS
from edgeclip.paths import runner_module
from edgeclip.runtimes.base import device_runtime

_SHARED = runner_module("equal_size.py")
RunFn = _SHARED.RunFn
NATIVE_IS_TEACHER_SIZE: str = _SHARED.NATIVE_IS_TEACHER_SIZE
image_size = _SHARED.image_size
reference_size = _SHARED.reference_size
example_input = _SHARED.example_input
equal_resolution_record = _SHARED.equal_resolution_record
native_record = _SHARED.native_record
failed_record = _SHARED.failed_record


def resized_runner(manifest: dict[str, Any], directory: Path, size: int, threads: int) -> tuple[RunFn | None, str | None]:
    """(run at size×size, None), or (None, why it cannot run there). The runner has run once."""
    backend = manifest.get("backend", "")
    # The device layer's runtime for the backend opens it at another size when it can (`open_resized`).
    row = BACKENDS.get(backend) if backend in BACKENDS else None
    code = device_runtime(row.runtime_module) if row is not None and row.has_device_runtime else None
    return _SHARED.resized_runner(manifest, Path(directory) / manifest.get("model_file", ""), size, threads, code)


def equal_resolution_runs(items: list[Any], threads: int) -> dict[tuple[str, int], tuple[RunFn, np.ndarray]]:
    """Student BenchItems (bench/harness.py) opened again at the speed reference's input size: {("equal", index): (run, input)}.
    Students that cannot run there get their `equal_resolution` record (why) now; those already at
    that size get one that takes their own latency. Nothing to do without a speed reference."""
    size = reference_size(item.manifest for item in items if item.row.role == "speed_reference")
    if size is None:
        return {}
    runs: dict[tuple[str, int], tuple[RunFn, np.ndarray]] = {}
    for index, item in enumerate(items):
        if item.row.role != "student" or item.directory is None or item.runtime is None:
            continue
        if image_size(item.manifest) == size:
            item.row.equal_resolution = equal_resolution_record(size, None, note=NATIVE_IS_TEACHER_SIZE)
            continue
        run, why_not = resized_runner(item.manifest, item.directory, size, threads)
        if run is None:
            item.row.equal_resolution = equal_resolution_record(size, None, why_not)
        else:
            runs[("equal", index)] = (run, example_input(size))
    return runs
