"""This machine's GEMM roof (fp32 and int8), and how close a report row comes to it.

A latency alone does not say whether a model is compute-bound (near the roof: only fewer FLOPs help)
or overhead-bound (far below it: per-op dispatch, memory traffic, quantize/dequantize around float
ops dominate). The roof is the best a large square GEMM reaches with the same thread count, in
every library edgeclip times with (torch, onnxruntime, OpenVINO for fp32; onnxruntime's u8s8
MatMulInteger / QLinearMatMul for int8). It is measured once per machine and cached under
cache_dir()/roof, keyed by CPU model + flags + thread count + library versions (any of them changes
the roof).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from edgeclip.bench.environment import cpu_model, library_versions
from edgeclip.io_utils import read_json, write_json
from edgeclip.paths import cache_dir
from edgeclip.utils import stable_hash

ROOF_SIZE = 1024  # square GEMM: large enough to run at peak, small enough to time in ~10 ms a call
ROOF_METHOD = 3  # bumped when how the roof is measured changes: older cached roofs are measured again
ROOF_REPEATS = 5  # best of: the roof is a peak, the fastest call is the one least disturbed by neighbours
_ROOF_PRECISION = {"fp32": "fp32", "int8": "int8"}  # which roof a row's precision is compared with


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


def _best_ms(call: Callable[[], Any], repeats: int, clock: Callable[[], float] = time.perf_counter) -> float:
    call()  # warm-up: packing, kernel selection, allocation
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = clock()
        call()
        best = min(best, clock() - start)
    return best * 1000.0


def roof_clock(threads: int) -> Callable[[], float]:
    """One thread: the process's CPU time (on a loaded machine a 15 ms GEMM is nearly always preempted,
    and wall time then measured a roof 25% low); several threads: wall time (CPU time would sum them)."""
    return time.process_time if threads == 1 else time.perf_counter


def _ort_session(graph_nodes: list[Any], inputs: list[Any], outputs: list[Any], initializers: list[Any],
                 threads: int) -> Any:
    import onnxruntime as ort
    from onnx import helper

    graph = helper.make_graph(graph_nodes, "roof", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 8)
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _fp32_torch(a: np.ndarray, b: np.ndarray, threads: int, repeats: int) -> float:
    import torch

    previous = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        with torch.no_grad():
            return _best_ms(lambda: torch.mm(ta, tb), repeats, roof_clock(threads))
    finally:
        torch.set_num_threads(previous)


def _fp32_onnxruntime(a: np.ndarray, b: np.ndarray, threads: int, repeats: int) -> float:
    from onnx import TensorProto, helper, numpy_helper

    n = a.shape[0]
    session = _ort_session([helper.make_node("MatMul", ["A", "B"], ["C"])],
                           [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
                           [helper.make_tensor_value_info("C", TensorProto.FLOAT, [n, n])],
                           [numpy_helper.from_array(b, "B")], threads)
    return _best_ms(lambda: session.run(None, {"A": a}), repeats, roof_clock(threads))


def _fp32_openvino(a: np.ndarray, b: np.ndarray, threads: int, repeats: int) -> float:
    import openvino as ov
    import openvino.opset13 as ops

    parameter = ops.parameter(list(a.shape), np.float32, name="A")
    model = ov.Model([ops.matmul(parameter, ops.constant(b), False, False)], [parameter], "roof")
    # f32 pinned as edgeclip's OpenVINO artifacts pin it: on a CPU with bf16 (AVX512_BF16/AMX) OpenVINO's
    # default is bf16, which measured a "fp32" roof 1.9x this one's.
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
    return _best_ms(lambda: request.infer({0: a}), repeats, roof_clock(threads))


def _int8_onnxruntime(op: str, a: np.ndarray, b: np.ndarray, threads: int, repeats: int) -> float:
    """u8 activations x s8 weights (onnxruntime's fast int8 GEMM on x86: VNNI/AMX when present)."""
    from onnx import TensorProto, helper, numpy_helper

    n = a.shape[0]
    a_zero, b_zero = numpy_helper.from_array(np.array(128, np.uint8), "a_zero"), numpy_helper.from_array(np.array(0, np.int8), "b_zero")
    weights = numpy_helper.from_array(b, "B")
    if op == "MatMulInteger":
        node = helper.make_node("MatMulInteger", ["A", "B", "a_zero", "b_zero"], ["C"])
        out_type, extra = TensorProto.INT32, []
    else:
        scale = lambda name: numpy_helper.from_array(np.array(0.01, np.float32), name)  # noqa: E731
        node = helper.make_node("QLinearMatMul", ["A", "a_scale", "a_zero", "B", "b_scale", "b_zero", "c_scale", "c_zero"], ["C"])
        out_type = TensorProto.UINT8
        extra = [scale("a_scale"), scale("b_scale"), scale("c_scale"), numpy_helper.from_array(np.array(128, np.uint8), "c_zero")]
    session = _ort_session([node], [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
                           [helper.make_tensor_value_info("C", out_type, [n, n])], [weights, a_zero, b_zero, *extra], threads)
    return _best_ms(lambda: session.run(None, {"A": a}), repeats, roof_clock(threads))


def measure_roof(threads: int, size: int = ROOF_SIZE, repeats: int = ROOF_REPEATS) -> dict[str, Any]:
    """GFLOP/s (int8: GOP/s) of a size² x size² GEMM per library; a library that fails is left out
    with its error. `fp32` / `int8` are the best library's figure (the hardware's reachable roof)."""
    rng = np.random.default_rng(0)
    a32, b32 = rng.standard_normal((size, size), dtype=np.float32), rng.standard_normal((size, size), dtype=np.float32)
    a8, b8 = rng.integers(0, 256, (size, size), dtype=np.uint8), rng.integers(-128, 128, (size, size), dtype=np.int8)
    ops = 2.0 * size ** 3
    measurements: dict[str, dict[str, Callable[[], float]]] = {
        "fp32": {"torch": lambda: _fp32_torch(a32, b32, threads, repeats),
                 "onnxruntime": lambda: _fp32_onnxruntime(a32, b32, threads, repeats),
                 "openvino": lambda: _fp32_openvino(a32, b32, threads, repeats)},
        "int8": {"onnxruntime MatMulInteger u8s8": lambda: _int8_onnxruntime("MatMulInteger", a8, b8, threads, repeats),
                 "onnxruntime QLinearMatMul u8s8": lambda: _int8_onnxruntime("QLinearMatMul", a8, b8, threads, repeats)},
    }
    roof: dict[str, Any] = {"gemm": f"{size}x{size}x{size}", "threads": int(threads), "by_library": {}, "errors": {},
                            "clock": "process CPU time" if threads == 1 else "wall", "repeats": repeats}
    for precision, libraries in measurements.items():
        rates = {}
        for library, measure in libraries.items():
            try:
                rates[library] = round(ops / (measure() / 1000.0) / 1e9, 1)
            except Exception as exc:  # noqa: BLE001 - a library missing or refusing the op leaves the others
                roof["errors"][f"{precision} {library}"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        roof["by_library"][precision] = rates
        roof[precision] = max(rates.values()) if rates else None
    return roof


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


def apply_roof(rows: Iterable[Any], roof: dict[str, Any]) -> None:
    """achieved GFLOP/s = row FLOPs / p50 latency, and % of the roof of the row's precision, on every
    row that has both (a dual-encoder reference row has per-tower FLOPs and no single latency)."""
    for row in rows:
        p50 = (row.latency_ms or {}).get("p50")
        if not row.flops or not p50:
            continue
        row.achieved_gflops = float(row.flops / (p50 / 1000.0) / 1e9)
        ceiling = roof_for(row.precision, roof)
        if ceiling:
            row.roof_gflops = ceiling
            row.roof_percent = float(100.0 * row.achieved_gflops / ceiling)
