"""This machine's GEMM roof (fp32 and int8), and how close a report row comes to it.

A latency alone does not say whether a model is compute-bound (near the roof: only fewer FLOPs help)
or overhead-bound (far below it: per-op dispatch, memory traffic, quantize/dequantize around float
ops dominate). The roof is the best a large square GEMM reaches with the same thread count, in
every library edgeclip times with (torch, onnxruntime, OpenVINO for fp32; onnxruntime's u8s8
MatMulInteger / QLinearMatMul for int8). It is measured once per machine and cached under
cache_dir()/roof, keyed by CPU model + flags + thread count + library versions (any of them changes
the roof). How it is measured (size, repeats, clock, the onnxruntime/OpenVINO GEMMs) is the device
runner's devices/runner/gemm_roof.py, loaded by path: a device measures its own roof the same way
(numpy's sgemm in place of torch) and `apply_roof` compares its rows with it (bench/remote.py).
GPU rows (a backend that needs CUDA, or a runner row that ran on a GPU provider) get no % of a CPU
roof: their `roof_why_not` says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from edgeclip.backends import BACKENDS
from edgeclip.bench.environment import cpu_model, library_versions
from edgeclip.io_utils import read_json, write_json
from edgeclip.paths import cache_dir, runner_module
from edgeclip.utils import stable_hash

_DEVICE = runner_module("gemm_roof.py")  # the method, shared with the device runner (devices/runner/gemm_roof.py)
ROOF_SIZE: int = _DEVICE.ROOF_SIZE
ROOF_METHOD: int = _DEVICE.ROOF_METHOD  # bumped there when how the roof is measured changes: cached roofs are re-measured
ROOF_REPEATS: int = _DEVICE.ROOF_REPEATS
_ROOF_PRECISION = {"fp32": "fp32", "int8": "int8"}  # which roof a row's precision is compared with
THIS_MACHINE = "this machine"  # roof_source of rows timed here; device rows name the device (bench/remote.py)


def cpu_flags() -> list[str]:
    """The CPU's feature flags (x86 /proc/cpuinfo "flags", arm "Features"); empty when unknown."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features"):
                    return sorted(value.split())
    except OSError:
        pass
    return []


def roof_cache_key(threads: int) -> str:
    """What the roof depends on: CPU model and flags, thread count, library versions."""
    return f"t{int(threads)}-" + stable_hash(cpu_model(), cpu_flags(), int(threads), library_versions(), ROOF_SIZE,
                                              ROOF_METHOD)


def _torch_gemm(threads: int) -> Callable[[np.ndarray, np.ndarray], Callable[[], Any]]:
    def setup(a: np.ndarray, b: np.ndarray) -> Callable[[], Any]:
        import torch

        if threads > 0:
            torch.set_num_threads(threads)  # restored by measure_roof
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)

        def call() -> Any:
            with torch.no_grad():
                return torch.mm(ta, tb)
        return call
    return setup


def measure_roof(threads: int, size: int = ROOF_SIZE, repeats: int = ROOF_REPEATS) -> dict[str, Any]:
    """GFLOP/s (int8: GOP/s) of a size² x size² GEMM per library on this machine: torch first, then the
    device layer's runtimes (onnxruntime fp32/int8, OpenVINO fp32) — the libraries edgeclip times with,
    measured by the device runner's method (gemm_roof.py). numpy's BLAS is left out here: edgeclip
    times nothing with it, and its thread count cannot be set once numpy is imported."""
    # lazy: torch stays off the import path of `edgeclip bench` until a roof is measured
    import torch

    previous = torch.get_num_threads()
    try:
        return _DEVICE.measure_roof(threads, runner_module("artifact_runtime.py"), size=size, repeats=repeats,
                                    first={"fp32": {"torch": _torch_gemm(threads)}}, with_numpy=False)
    finally:
        torch.set_num_threads(previous)


def machine_roof(threads: int, *, measure: Callable[[int], dict[str, Any]] = measure_roof,
                 cache: Path | None = None) -> dict[str, Any]:
    """The roof for `threads` on this machine: read from the cache, else measured and cached.
    The result says whether it came from the cache (`cached`) and under which key."""
    key = roof_cache_key(threads)
    # EDGECLIP_ROOF_CACHE: the roof is the machine's, so a test session with a cache per test shares one.
    path = (cache or Path(os.environ.get("EDGECLIP_ROOF_CACHE") or cache_dir() / "roof")) / f"{key}.json"
    if path.is_file():
        try:
            return {**read_json(path), "cached": True, "key": key}
        except ValueError:  # a torn or corrupt cache file: measure again
            pass
    roof = measure(threads)
    write_json(path, roof)
    return {**roof, "cached": False, "key": key}


def roof_for(precision: str, roof: dict[str, Any]) -> float | None:
    """GFLOP/s roof a row of `precision` is compared with; None where none was measured (fp16 on a CPU)."""
    which = _ROOF_PRECISION.get(precision)
    value = roof.get(which) if which else None
    return float(value) if isinstance(value, (int, float)) else None


def gpu_reason(backend: str) -> str | None:
    """Why a row of `backend` gets no % of the CPU's roof: its backend runs on a GPU (backend table)."""
    row = BACKENDS.get(backend) if backend in BACKENDS else None
    return f"not measured for GPU ({backend}) rows" if row is not None and "cuda" in row.requires else None


def roof_source(roof: dict[str, Any], machine: str) -> str:
    """Where a row's roof was measured: "device pi@rpi5, 1024x1024x1024 GEMM" (which library set it is in
    the roof's `by_library`: the cache here, the report environment's `roof` for a device)."""
    return f"{machine}, {roof.get('gemm') or 'square'} GEMM"


def apply_roof(rows: Iterable[Any], roof: dict[str, Any], machine: str = THIS_MACHINE) -> None:
    """achieved GFLOP/s = row FLOPs / p50 latency, and % of the roof of the row's precision measured on
    `machine`, on every row that has both (a dual-encoder reference row has per-tower FLOPs and no
    single latency). A row that ran on a GPU (its backend, or the runner's `roof_why_not`) and a
    precision without a measured roof keep their GFLOP/s and get `roof_why_not` instead of a %."""
    for row in rows:
        p50 = (row.latency_ms or {}).get("p50")
        if not row.flops or not p50:
            continue
        row.achieved_gflops = float(row.flops / (p50 / 1000.0) / 1e9)
        row.roof_why_not = row.roof_why_not or gpu_reason(row.backend)
        if row.roof_why_not:
            continue
        ceiling = roof_for(row.precision, roof)
        if ceiling:
            row.roof_gflops = ceiling
            row.roof_percent = float(100.0 * row.achieved_gflops / ceiling)
            row.roof_source = roof_source(roof, machine)
        else:
            # The roof's errors say why (a library missing, the roof process failing): keys "<precision> <library>" or "roof".
            errors = [f"{key.partition(' ')[2] or key}: {error}" for key, error in (roof.get("errors") or {}).items()
                      if key.partition(" ")[0] in (row.precision, "roof")]
            row.roof_why_not = f"no {row.precision} GEMM roof measured on {machine}" + (f" ({errors[0]})" if errors else "")
