"""A machine's GEMM roof (fp32 and int8): the method edgeclip's bench/roof.py and the device runner share.

The roof is the best a large square GEMM reaches with the benchmark's thread count, in each library
that can run one here: numpy's BLAS sgemm (device runner only: the one fp32 GEMM every device
has), every runtime of the device layer that offers `roof_gemms(threads)` in its
`runtime_<module>.py` (onnxruntime fp32 MatMul and u8s8 MatMulInteger / QLinearMatMul, OpenVINO fp32
MatMul), and on the workstation torch (bench/roof.py passes it in). Each library: one warm-up call,
then the fastest of ROOF_REPEATS calls; a library that is missing or refuses the op is left out with
its error. Python 3.8+, numpy only (the libraries are imported by their setups).

bench/roof.py loads this file by path (edgeclip's `paths.runner_module`), so the size, repeats,
clock and arithmetic are one definition on both sides. TensorRT offers no roof: its rows run on a GPU.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict

import numpy as np

ROOF_SIZE = 1024  # square GEMM: large enough to run at peak, small enough to time in ~10 ms a call
ROOF_METHOD = 3  # bumped when how the roof is measured changes: older cached roofs are measured again
ROOF_REPEATS = 5  # best of: the roof is a peak, the fastest call is the one least disturbed by neighbours
PRECISIONS = ("fp32", "int8")
# Blas thread-count variables: the runner starts the roof's process with them set to --threads, since
# numpy's BLAS reads them once at import and offers no call to change its thread count afterwards.
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                         "VECLIB_MAXIMUM_THREADS")

Setup = Callable[[np.ndarray, np.ndarray], Callable[[], Any]]  # (a, b) -> one GEMM call, everything built


def roof_clock(threads: int) -> Callable[[], float]:
    """One thread: the process's CPU time (on a loaded machine a 15 ms GEMM is nearly always preempted,
    and wall time then measured a roof 25% low); several threads: wall time (CPU time would sum them)."""
    return time.process_time if threads == 1 else time.perf_counter


def best_ms(call: Callable[[], Any], repeats: int, clock: Callable[[], float] = time.perf_counter) -> float:
    call()  # warm-up: packing, kernel selection, allocation
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = clock()
        call()
        best = min(best, clock() - start)
    return best * 1000.0


def operands(size: int) -> Dict[str, tuple]:
    """The GEMM inputs per precision, seeded: fp32 normal; int8 u8 activations x s8 weights."""
    rng = np.random.default_rng(0)
    a32, b32 = rng.standard_normal((size, size), dtype=np.float32), rng.standard_normal((size, size), dtype=np.float32)
    a8, b8 = rng.integers(0, 256, (size, size), dtype=np.uint8), rng.integers(-128, 128, (size, size), dtype=np.int8)
    return {"fp32": (a32, b32), "int8": (a8, b8)}


def numpy_gemms() -> Dict[str, Dict[str, Setup]]:
    return {"fp32": {"numpy": lambda a, b: (lambda: np.matmul(a, b))}}


def runtime_gemms(layer: Any, threads: int) -> Dict[str, Dict[str, Setup]]:
    """The roof GEMMs each runtime of the device layer (artifact_runtime.py) offers."""
    found: Dict[str, Dict[str, Setup]] = {}
    for name in layer.runtime_names():
        code = layer.runtime(name)
        for precision, libraries in (code.roof_gemms(threads) if hasattr(code, "roof_gemms") else {}).items():
            found.setdefault(precision, {}).update(libraries)
    return found


def error_text(exc: BaseException) -> str:
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"


def measure_roof(threads: int, layer: Any, *, size: int = ROOF_SIZE, repeats: int = ROOF_REPEATS,
                 first: Dict[str, Dict[str, Setup]] = None, with_numpy: bool = True) -> Dict[str, Any]:
    """GFLOP/s (int8: GOP/s) of a size² x size² GEMM per library; `fp32` / `int8` are the best library's
    figure (the hardware's reachable roof), None when no library ran that precision. `first`: libraries
    measured before the others (the workstation's torch); `with_numpy`: numpy's sgemm (the device's)."""
    tables = [first or {}, numpy_gemms() if with_numpy else {}, runtime_gemms(layer, threads)]
    inputs, ops, clock = operands(size), 2.0 * size ** 3, roof_clock(threads)
    roof: Dict[str, Any] = {"gemm": f"{size}x{size}x{size}", "threads": int(threads), "by_library": {}, "errors": {},
                            "clock": "process CPU time" if threads == 1 else "wall", "repeats": repeats,
                            "method": ROOF_METHOD}
    for precision in PRECISIONS:
        rates: Dict[str, float] = {}
        for table in tables:
            for library, setup in table.get(precision, {}).items():
                try:
                    call = setup(*inputs[precision])
                    rates[library] = round(ops / (best_ms(call, repeats, clock) / 1000.0) / 1e9, 1)
                except Exception as exc:  # noqa: BLE001 - a library missing or refusing the op leaves the others
                    roof["errors"][f"{precision} {library}"] = error_text(exc)
        roof["by_library"][precision] = rates
        roof[precision] = max(rates.values()) if rates else None
    return roof

