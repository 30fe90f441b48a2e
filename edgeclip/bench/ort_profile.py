"""Where onnxruntime spends a call: compute nodes, the other nodes, and time outside any node.

A small CNN far below the GEMM roof (bench/roof.py) loses its time to something other than
arithmetic. onnxruntime's profiler times every node; summed per run, this splits a call into
compute nodes (Conv/Gemm/MatMul and their fused and int8 forms), the other nodes (activations,
squeeze-excite pooling and multiplies, quantize/dequantize, reshapes) and what is left of the
session's `model_run` outside any node (input/output binding, allocation, scheduling).
"""

from __future__ import annotations

import collections
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeclip.runtimes.base import device_runtime

COMPUTE_OPS = frozenset({"Conv", "FusedConv", "NchwcConv", "QLinearConv", "ConvInteger", "Gemm", "FusedGemm", "MatMul",
                         "FusedMatMul", "MatMulInteger", "QLinearMatMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"})
SKIPPED_CALLS = 3  # the first calls allocate and pick kernels: not what a device pays per frame


def profile_onnx(model_path: str | Path, batch: np.ndarray, *, threads: int = 1, runs: int = 30) -> dict[str, Any]:
    """Mean µs per run: model_run, compute nodes, other nodes, outside nodes; and per op type."""
    import onnxruntime as ort  # noqa: F401 - imported here: profiling is optional and torch-free

    options = device_runtime("onnxruntime").session_options(threads, "all")
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as work:
        options.profile_file_prefix = str(Path(work) / "profile")
        options.optimized_model_filepath = str(Path(work) / "optimized.onnx")  # the graph the profile's nodes are in
        import onnxruntime

        session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: batch}
        for _ in range(SKIPPED_CALLS + runs):
            session.run(None, feed)
        trace = json.loads(Path(session.end_profiling()).read_text())
        kinds = conv_kinds(Path(work) / "optimized.onnx")
    return summarize_trace(trace, kinds)


def conv_kinds(optimized_path: Path) -> dict[str, str]:
    """Node name -> "depthwise conv" | "1x1 conv" | "kxk conv" for the convolutions of an optimized graph
    (depthwise and pointwise convolutions have little arithmetic per byte: they run far below the roof)."""
    import onnx

    if not optimized_path.is_file():
        return {}
    kinds = {}
    for node in onnx.load(str(optimized_path), load_external_data=False).graph.node:
        if "Conv" not in node.op_type:
            continue
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        kernel = list(attributes.get("kernel_shape") or [])
        if int(attributes.get("group", 1)) > 1:
            kinds[node.name] = "depthwise conv"
        elif kernel and all(k == 1 for k in kernel):
            kinds[node.name] = "1x1 conv"
        else:
            kinds[node.name] = f"{'x'.join(map(str, kernel)) or 'kxk'} conv"
    return kinds


def summarize_trace(trace: list[dict[str, Any]], kinds: dict[str, str] | None = None) -> dict[str, Any]:
    """The split of an onnxruntime profile (chrome-trace events) into compute / other / outside nodes.

    Profiles are wall-clock: on a loaded machine a call or node that lost its core is inflated. So each
    node counts with its median over the timed calls, and a call with the median model_run; what the
    node medians do not cover is "outside nodes"."""
    model_runs = [e for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"][SKIPPED_CALLS:]
    if not model_runs:
        return {"error": "no timed model_run events in the profile"}
    first = model_runs[0]["ts"]
    durations: dict[str, list[float]] = collections.defaultdict(list)
    op_of: dict[str, str] = {}
    for event in trace:
        name = str(event.get("name", ""))
        if event.get("cat") == "Node" and event.get("ts", 0) >= first and name.endswith("_kernel_time"):
            durations[name].append(event["dur"])
            op_of[name] = event.get("args", {}).get("op_name", "?")
    by_op: dict[str, float] = collections.defaultdict(float)
    counts: collections.Counter[str] = collections.Counter()
    for name, values in durations.items():
        by_op[op_of[name]] += float(np.median(values))
        counts[op_of[name]] += 1
    total = float(np.median([e["dur"] for e in model_runs]))
    compute = sum(v for op, v in by_op.items() if op in COMPUTE_OPS)
    other = sum(v for op, v in by_op.items() if op not in COMPUTE_OPS)
    ops = sorted(by_op.items(), key=lambda item: -item[1])
    by_kind: dict[str, float] = collections.defaultdict(float)
    for name, values in durations.items():
        kind = (kinds or {}).get(name.removesuffix("_kernel_time"))
        if kind:
            by_kind[kind] += float(np.median(values))
    return {"runs": len(model_runs), "model_run_us": round(total, 1), "compute_nodes_us": round(compute, 1),
            "other_nodes_us": round(other, 1), "outside_nodes_us": round(total - compute - other, 1),
            "compute_share": round(compute / total, 3) if total else None, "nodes_per_run": len(durations),
            "by_op": [{"op": op, "us_per_run": round(us, 1), "nodes": counts[op], "compute": op in COMPUTE_OPS}
                      for op, us in ops],
            "conv_us_by_kind": {kind: round(us, 1) for kind, us in sorted(by_kind.items(), key=lambda item: -item[1])}}
