"""A student opened again at the teacher's input size, so "× teacher" is never only a resolution trick.

The rules edgeclip's bench/equal_resolution.py (rows timed on the workstation) and the device runner
(`--equal-size N`) share: which size the speed reference takes (`reference_size`), whether and how an
artifact runs at another size (`resized_runner`: the runtime's `open_resized` in its
`runtime_<module>.py`, its output checked), the row's `equal_resolution` record, and each why-not.
Python 3.8+, numpy only.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Tuple

import numpy as np

RunFn = Callable[[np.ndarray], Any]
NATIVE_IS_TEACHER_SIZE = "the student's own input size is the teacher's"


def image_size(manifest: dict) -> Optional[int]:
    """The square image size an artifact takes, or None (text encoder, non-square or symbolic)."""
    declared = (manifest.get("inputs") or [{}])[0]
    shape = declared.get("shape") or []
    # int: token ids; uint8: camera frames of a fused-preprocessing artifact (NHWC, resized in its graph)
    if str(declared.get("dtype", "float32")).startswith(("int", "uint")) or len(shape) != 4:
        return None
    height, width = shape[2], shape[3]
    return height if isinstance(height, int) and height == width else None


def reference_size(manifests: Iterable[dict]) -> Optional[int]:
    """The input size of the speed reference among `manifests` (role speed_reference); None when there is
    none or they disagree (then no single size is "the teacher's")."""
    sizes = {image_size(m) for m in manifests if m.get("role") == "speed_reference"}
    sizes.discard(None)
    return int(sizes.pop()) if len(sizes) == 1 else None


def example_input(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, size, size)).astype(np.float32)


def _one_line(text: str, limit: int) -> str:
    line = (str(text).strip().splitlines() or ["unknown error"])[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def resized_runner(manifest: dict, model_path: str, size: int, threads: int, code: Any,
                   options: Any = None) -> Tuple[Optional[RunFn], Optional[str]]:
    """(run at size x size, None), or (None, why it cannot run there). `code` is the artifact's runtime
    module (None when there is none); the runner has run once and its output kept the declared shape."""
    native = image_size(manifest)
    frame = (manifest.get("preprocessing") or {}).get("fused_frame")
    if native is None and frame:
        return None, (f"fused preprocessing: takes {frame[0]}x{frame[1]} camera frames and resizes them in its graph; "
                      f"export it without --fused-preprocess to time the model at {size}x{size}")
    if native is None:
        return None, "not a square image input (text encoder or fixed non-square shape)"
    backend = manifest.get("backend", "")
    resizer = getattr(code, "open_resized", None)
    if resizer is None:
        return None, f"the {backend} artifact is built for {native}x{native} only; export the student at {size}x{size} to time it there"
    try:
        run = resizer(str(model_path), size, threads, manifest, options)
        shape = tuple(np.asarray(run(example_input(size))).shape)
    except Exception as exc:  # noqa: BLE001 - a fixed-size graph fails here: the row says so, the run goes on
        return None, f"fixed-size model: runs only at {native}x{native} ({_one_line(f'{type(exc).__name__}: {exc}', 160)})"
    # OpenVINO can "succeed" on a graph that flattens pixels: a Reshape to (-1, features) turns the extra
    # pixels into extra batch rows. The output must keep the declared shape at batch 1.
    declared = [d if isinstance(d, int) else None for d in ((manifest.get("outputs") or [{}])[0].get("shape") or [])[1:]]
    if shape[:1] != (1,) or len(shape) != len(declared) + 1 or any(d is not None and d != got for d, got in zip(declared, shape[1:])):
        return None, (f"fixed-size model: runs only at {native}x{native} (at {size}x{size} it outputs shape {list(shape)}, "
                      f"not [1, {', '.join(str(d) for d in declared)}])")
    return run, None


def equal_resolution_record(size: int, latency_ms: Optional[dict], why_not: Optional[str] = None,
                            note: Optional[str] = None) -> dict:
    """The row's `equal_resolution` field; `speedup` is filled by edgeclip's Report.fill_speedups."""
    record = {"input_size": int(size), "latency_ms": latency_ms, "speedup": None, "why_not": why_not}
    if note:
        record["note"] = note
    return record


def native_record(size: int, latency_ms: Optional[dict]) -> dict:
    """A student already at the teacher's size: its own timing is the equal-size one."""
    return equal_resolution_record(size, latency_ms, None if latency_ms else "the student itself was not timed",
                                   NATIVE_IS_TEACHER_SIZE)


def failed_record(size: int, error: str) -> dict:
    return equal_resolution_record(size, None, f"failed at this size: {_one_line(error, 300)}")
