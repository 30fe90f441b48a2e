"""A student timed at the teacher's input size, so "× teacher" is never only a resolution trick.

A CIFAR-10 student exported for 32×32 inputs against a 224² ViT compares ~50× fewer pixels as well
as a smaller network. Here the student's artifact is opened again with its image input resized to
the speed reference's size (a convolutional network with global pooling runs at any size) and timed
in the same interleaved run. Where that is impossible (a fixed-size graph such as a ViT's position
embedding, a backend whose engine is built for one shape, a text encoder) the row says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeclip.backends import BACKENDS
from edgeclip.bench.report import one_line
from edgeclip.runtimes.base import device_runtime

RunFn = Callable[[np.ndarray], Any]


def image_size(manifest: dict[str, Any]) -> int | None:
    """The square image size an artifact takes, or None (text encoder, non-square or symbolic)."""
    declared = (manifest.get("inputs") or [{}])[0]
    shape = declared.get("shape") or []
    if str(declared.get("dtype", "float32")).startswith("int") or len(shape) != 4:
        return None
    height, width = shape[2], shape[3]
    return height if isinstance(height, int) and height == width else None


def example_input(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, size, size)).astype(np.float32)


def resized_runner(manifest: dict[str, Any], directory: Path, size: int, threads: int) -> tuple[RunFn | None, str | None]:
    """(run at size×size, None), or (None, why it cannot run there). The runner has run once."""
    native = image_size(manifest)
    if native is None:
        return None, "not a square image input (text encoder or fixed non-square shape)"
    backend = manifest.get("backend", "")
    # The device layer's runtime for the backend opens it at another size when it can (`open_resized`).
    code = device_runtime(BACKENDS.get(backend).runtime_module) if backend in BACKENDS and BACKENDS.get(backend).has_device_runtime else None
    resizer = getattr(code, "open_resized", None)
    if resizer is None:
        return None, f"the {backend} artifact is built for {native}x{native} only; export the student at {size}x{size} to time it there"
    try:
        run = resizer(Path(directory) / manifest["model_file"], size, threads, manifest)
        shape = tuple(np.asarray(run(example_input(size))).shape)
    except Exception as exc:  # noqa: BLE001 - a fixed-size graph fails here: the row says so, the run goes on
        return None, f"fixed-size model: runs only at {native}x{native} ({one_line(f'{type(exc).__name__}: {exc}', 160)})"
    # OpenVINO can "succeed" on a graph that flattens pixels: a Reshape to (-1, features) turns the extra
    # pixels into extra batch rows. The output must keep the declared shape at batch 1.
    declared = [d if isinstance(d, int) else None for d in ((manifest.get("outputs") or [{}])[0].get("shape") or [])[1:]]
    if shape[:1] != (1,) or len(shape) != len(declared) + 1 or any(d is not None and d != got for d, got in zip(declared, shape[1:])):
        return None, (f"fixed-size model: runs only at {native}x{native} (at {size}x{size} it outputs shape {list(shape)}, "
                      f"not [1, {', '.join(str(d) for d in declared)}])")
    return run, None


def equal_resolution_record(size: int, latency_ms: dict[str, Any] | None, why_not: str | None = None,
                            note: str | None = None) -> dict[str, Any]:
    """The row's `equal_resolution` field; `speedup` is filled by Report.fill_speedups."""
    record: dict[str, Any] = {"input_size": int(size), "latency_ms": latency_ms, "speedup": None, "why_not": why_not}
    if note:
        record["note"] = note
    return record


NATIVE_IS_TEACHER_SIZE = "the student's own input size is the teacher's"


def equal_resolution_runs(items: list[Any], threads: int) -> dict[tuple[str, int], tuple[RunFn, np.ndarray]]:
    """Student BenchItems (bench/harness.py) opened again at the speed reference's input size: {("equal", index): (run, input)}.
    Students that cannot run there get their `equal_resolution` record (why) now; those already at
    that size get one that takes their own latency. Nothing to do without a speed reference."""
    sizes = {image_size(item.manifest) for item in items if item.row.role == "speed_reference"}
    sizes.discard(None)
    if len(sizes) != 1:
        return {}
    size = int(sizes.pop())
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
