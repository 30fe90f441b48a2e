"""torch → ONNX (opset ≥ 16, dynamic batch), plus fp16 and int8 variants.

Exporter choice: the TorchScript exporter (`dynamo=False`) with `dynamic_axes` first. With the MHA
fast path off it exports open_clip towers (including the EOT-token gather) exactly, honours the
dynamic batch directly and writes one self-contained file. The dynamo exporter is the fallback
for modules TorchScript cannot trace; it needs explicit `dynamic_shapes` or it fixes the batch
to the example's size (DESIGN §5), and it may write an external `.onnx.data` file.

Every export leaves ArgMax off integer tensors (`float_argmax`): open_clip pools a text tower at the
end-of-text token with argmax over the int64 token ids, which onnxruntime 1.19 (the newest for
Python 3.8, i.e. JetPack 5) has no kernel for and TensorRT 8.5 does not parse.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from edgeclip.compress import quantize as q
from edgeclip.compress.int8 import quantize_onnx_auto
from edgeclip.errors import UserError
from edgeclip.exporters.common import ExportResult, example_input, is_transformer, require_calibration
from edgeclip.exporters.tensorrt_support import tensor_types
from edgeclip.utils import disable_mha_fastpath
from edgeclip.students.spec import ModelSpec

# 16 writes LayerNorm as elementary ops (no LayerNormalization before 17), which fp16 conversion
# handles (variance_chain_nodes) and TensorRT < 8.6 needs; 17 is the newest TensorRT 8.x parses.
MIN_OPSET = 16
MODEL_FILE = "model.onnx"


def torch_to_onnx(model: nn.Module, spec: ModelSpec, path: str | Path, opset: int = 18) -> str:
    """Write an fp32 ONNX with a dynamic batch; returns which exporter produced it."""
    if opset < MIN_OPSET:
        raise UserError(f"opset {opset} is too old; use --opset {MIN_OPSET} or newer")
    disable_mha_fastpath()
    model = model.eval()
    example = example_input(spec)
    dynamic_axes = {name: dict(axes) for name, axes in spec.dynamic_axes.items()}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy-exporter deprecation notice is expected
            torch.onnx.export(
                model, (example,), str(path), input_names=spec.input_names, output_names=spec.output_names,
                dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True, dynamo=False,
            )
        _rewrite_in_place(path, float_argmax)
        return "torchscript"
    except Exception as torchscript_error:  # noqa: BLE001 - fall back to the dynamo exporter, keep the cause
        batch = torch.export.Dim("batch", min=1, max=4096)
        dynamic_shapes = ({0: batch},)
        try:
            program = torch.onnx.export(
                model, (example,), input_names=spec.input_names, output_names=spec.output_names,
                dynamic_shapes=dynamic_shapes, opset_version=opset, dynamo=True, external_data=True,
            )
            program.save(str(path), external_data=True)
        except Exception as dynamo_error:
            raise RuntimeError(
                f"ONNX export failed with both exporters: torchscript: {torchscript_error}; dynamo: {dynamo_error}"
            ) from dynamo_error
        _rewrite_in_place(path, float_argmax)
        return "dynamo"


def _rewrite_in_place(path: str | Path, rewrite: Any) -> None:
    """Apply `rewrite(model) -> changed count` to the file at `path`; external weights stay where they are."""
    model = onnx.load(str(path), load_external_data=False)
    if rewrite(model):
        onnx.save(model, str(path))


def float_argmax(model: onnx.ModelProto) -> int:
    """Cast the input of every ArgMax/ArgMin over integers to float; returns how many were changed.

    The indices are the same: token ids (< 49408) are exact in float32 (< 2^24), and ties still
    resolve to the first index (select_last_index stays as it was).
    """
    types = tensor_types(model)
    integer = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.INT16, onnx.TensorProto.INT8,
               onnx.TensorProto.UINT8}
    nodes, changed = [], 0
    for node in model.graph.node:
        if node.op_type in ("ArgMax", "ArgMin") and types.get(node.input[0]) in integer:
            as_float = f"{node.input[0]}_as_float_for_{node.name or changed}"
            nodes.append(onnx.helper.make_node("Cast", [node.input[0]], [as_float], name=f"{as_float}/cast",
                                               to=onnx.TensorProto.FLOAT))
            node.input[0] = as_float
            changed += 1
        nodes.append(node)
    if changed:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return changed


def topological_sort(graph: onnx.GraphProto) -> None:
    """Re-order nodes so every input is produced before use (the fp16 converter appends casts out of order)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        blocked = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                blocked.append(node)
        if len(blocked) == len(pending):
            # Inputs produced by nothing (e.g. outer-scope names in subgraphs): keep their order.
            ordered.extend(blocked)
            break
        pending = blocked
    del graph.node[:]
    graph.node.extend(ordered)


# Ops kept in fp32 inside an fp16 graph. Normalizations and reductions sum squares or exponentials:
# x² of an activation of 256 already exceeds fp16's 65504, which is the known TensorRT fp16
# LayerNorm overflow (and the same for a LayerNorm decomposed into ReduceMean/Pow/Sqrt). Softmax
# and the reductions accumulate many terms. Everything else (MatMul, Conv, GELU, Add) runs in fp16.
FP16_KEEP_FP32_OPS = ("LayerNormalization", "Softmax", "LogSoftmax", "ReduceMean", "ReduceSum", "ReduceSumSquare",
                      "ReduceL2", "ReduceLogSumExp", "ReduceMax", "ReduceMin", "Pow", "Sqrt", "Reciprocal",
                      "InstanceNormalization", "GroupNormalization", "BatchNormalization")


def variance_chain_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that carry a decomposed LayerNorm's variance: Pow(x, 2) → ReduceMean → Add(eps) → Sqrt.

    The Add of epsilon is an ordinary Add, so an op-type block list leaves it in fp16 — and a
    variance of 10^5 turns into inf right there. These nodes are kept in fp32 by name.
    """
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    chain_ops = ("ReduceMean", "ReduceSum", "Add", "Mul", "Sqrt", "Reciprocal")
    names: set[str] = set()
    for start in (n for n in model.graph.node if n.op_type in ("Pow", "ReduceSumSquare")):
        frontier = [start]
        while frontier:
            node = frontier.pop()
            if node.name:
                names.add(node.name)
            if node.op_type in ("Sqrt", "Reciprocal"):
                continue  # the standard deviation fits fp16 again
            frontier += [c for out in node.output for c in consumers.get(out, []) if c.op_type in chain_ops and c.name not in names]
    return sorted(names)


def drop_fp16_round_trips(graph: onnx.GraphProto) -> int:
    """Bypass Cast(fp32→fp16) → Cast(fp16→fp32) pairs; returns how many consumers now read the fp32 tensor.

    onnxruntime's converter wraps *each* blocked node in casts, so two fp32 nodes in a row still
    pass their tensor through fp16 between them — which is exactly where a variance of 10^5
    becomes inf. Reading the fp32 tensor directly keeps the chain in fp32.
    """
    producers = {out: node for node in graph.node for out in node.output}

    def cast_to(node: onnx.NodeProto) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    replace: dict[str, str] = {}
    for node in graph.node:
        # Only the converter's own casts (it names them *_cast_to_fp16_node / *_cast_to_fp32_node):
        # the model's Casts may convert integers (shape arithmetic) and must stay.
        if cast_to(node) != onnx.TensorProto.FLOAT or not node.name.endswith("_cast_to_fp32_node"):
            continue
        down = producers.get(node.input[0])
        if down is not None and cast_to(down) == onnx.TensorProto.FLOAT16 and down.name.endswith("_cast_to_fp16_node"):
            source = producers.get(down.input[0])
            if source is not None and source.op_type != "Cast":  # an fp32 node's own output
                replace[node.output[0]] = down.input[0]
    rewired = 0
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in replace:
                node.input[i] = replace[name]
                rewired += 1
    outputs = {o.name for o in graph.output}
    used = {name for node in graph.node for name in node.input} | outputs
    for node in [n for n in graph.node if n.op_type == "Cast" and not any(o in used for o in n.output)]:
        graph.node.remove(node)
    return rewired


def convert_to_fp16(src: Path, dst: Path, keep_fp32_ops: tuple[str, ...] = FP16_KEEP_FP32_OPS) -> dict[str, Any]:
    """fp16 weights/compute with fp32 inputs/outputs, via the converter that ships inside onnxruntime.

    `keep_fp32_ops` run in fp32 (casts around them; see FP16_KEEP_FP32_OPS), and so do the nodes
    of a decomposed LayerNorm's variance path (`variance_chain_nodes`) unless `keep_fp32_ops` is
    empty. Returns what was kept, for the manifest.
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    chain = variance_chain_nodes(model) if keep_fp32_ops else []
    present = sorted({node.op_type for node in model.graph.node} & set(keep_fp32_ops))
    kept = sum(node.op_type in keep_fp32_ops or node.name in chain for node in model.graph.node)
    model16 = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(keep_fp32_ops),
                                       node_block_list=chain)
    drop_fp16_round_trips(model16.graph)
    topological_sort(model16.graph)
    onnx.checker.check_model(model16)
    onnx.save(model16, str(dst))
    counted = [n for n in model.graph.node if n.op_type not in ("Constant",)]
    return {"kept_fp32_ops": present, "kept_fp32_nodes": kept, "variance_chain_nodes": chain, "fp16_nodes": len(counted) - kept,
            "why": "normalizations, softmax and reductions overflow or lose precision in fp16 (TensorRT fp16 LayerNorm overflow)"}


def quantize_int8(
    fp32_path: Path, dst: Path, model: nn.Module, spec: ModelSpec, calibration: np.ndarray | None, backend: str = "onnx",
    options: Any = None,
) -> dict[str, Any]:
    """int8 ONNX at `dst` with the method chosen for this model; returns the manifest's quantization record.

    `options` (compress.int8.Int8Options) with mode "auto" selects the sensitivity-driven path;
    None or mode "classic" keeps the original method table below.
    """
    transformer = is_transformer(model)
    if options is not None and options.mode != "classic":
        record = quantize_onnx_auto(fp32_path, dst, spec, calibration, options, transformer=transformer, backend=backend)
        return {"architecture": "transformer" if transformer else "cnn", **record}
    method = q.choose_int8_method(
        backend=backend, kind=spec.kind, transformer=transformer, has_calibration=calibration is not None
    )
    if q.method_needs_calibration(method):
        require_calibration(spec, calibration, backend, method)
    input_name = spec.input_names[0]
    if method == "ort_dynamic":
        details = q.quantize_onnx_dynamic(fp32_path, dst)
    elif method == "ort_static_qdq":
        details = q.quantize_onnx_static(fp32_path, dst, calibration, input_name)
    elif method == "ort_static_qdq_matmul":
        details = q.quantize_onnx_static(fp32_path, dst, calibration, input_name, op_types=q.MATMUL_OPS)
    elif method == "trt_static_qdq":
        # TensorRT needs symmetric QDQ. Transformers: only the matmul-heavy ops (a text encoder
        # collapses otherwise; LayerNorm/Softmax stay float), CNNs: every op ORT can quantize.
        if spec.kind == "text_encoder":
            op_types = q.MATMUL_OPS
        else:
            op_types = q.MATMUL_OPS + ("Conv",) if transformer else None
        # Float biases: TensorRT's explicit int8 wants Q/DQ on weights and activations (8.x refuses INT32 DequantizeLinear).
        details = q.quantize_onnx_static(fp32_path, dst, calibration, input_name, op_types=op_types, symmetric=True,
                                         float_bias=True)
    else:  # pragma: no cover - table and dispatch are kept in sync
        raise ValueError(f"no ONNX implementation for int8 method {method}")
    return {
        "method": method,
        "description": q.METHODS[method],
        "architecture": "transformer" if transformer else "cnn",
        **details,
    }


def export(
    model: nn.Module, spec: ModelSpec, precision: str, out_dir: Path, *, calibration: np.ndarray | None, opset: int,
    int8: Any = None,
) -> ExportResult:
    out_path = out_dir / MODEL_FILE
    hints: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    quantization = None
    if precision == "fp32":
        exporter = torch_to_onnx(model, spec, out_path, opset)
    else:
        with tempfile.TemporaryDirectory() as work:
            fp32_path = Path(work) / MODEL_FILE
            exporter = torch_to_onnx(model, spec, fp32_path, opset)
            if precision == "fp16":
                extra["fp16"] = convert_to_fp16(fp32_path, out_path)
                # ORT's layout optimizations (level "all") crash on fp16 CPU graphs (ORT 1.32, measured).
                hints["ort_graph_optimization"] = "extended"
            else:
                quantization = quantize_int8(fp32_path, out_path, model, spec, calibration, options=int8)
    return ExportResult(
        model_file=MODEL_FILE, exporter=f"torch.onnx ({exporter}), opset {opset}",
        quantization=quantization, runtime_hints=hints, extra=extra,
    )
