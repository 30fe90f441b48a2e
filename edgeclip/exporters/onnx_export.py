"""torch → ONNX (opset ≥ 17, dynamic batch), plus fp16 and int8 variants.

Exporter choice: the TorchScript exporter (`dynamo=False`) with `dynamic_axes` first. With the MHA
fast path off it exports open_clip towers (including the EOT-token gather) exactly, honours the
dynamic batch directly and writes one self-contained file. The dynamo exporter is the fallback
for modules TorchScript cannot trace; it needs explicit `dynamic_shapes` or it fixes the batch
to the example's size (DESIGN §5), and it may write an external `.onnx.data` file.
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
from edgeclip.errors import UserError
from edgeclip.exporters.common import ExportResult, example_input, is_transformer, require_calibration
from edgeclip.utils import disable_mha_fastpath
from edgeclip.students.spec import ModelSpec

MIN_OPSET = 17  # LayerNormalization is a single op from 17 on (TensorRT and fp16 rely on it)
MODEL_FILE = "model.onnx"


def torch_to_onnx(model: nn.Module, spec: ModelSpec, path: str | Path, opset: int = 18) -> str:
    """Write an fp32 ONNX with a dynamic batch; returns which exporter produced it."""
    if opset < MIN_OPSET:
        raise UserError(f"opset {opset} is too old; use --opset {MIN_OPSET} or newer (single-op LayerNormalization)")
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
        return "dynamo"


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


def convert_to_fp16(src: Path, dst: Path) -> None:
    """fp16 weights/compute with fp32 inputs/outputs, via the converter that ships inside onnxruntime."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    model16 = convert_float_to_float16(model, keep_io_types=True)
    topological_sort(model16.graph)
    onnx.checker.check_model(model16)
    onnx.save(model16, str(dst))


def quantize_int8(
    fp32_path: Path, dst: Path, model: nn.Module, spec: ModelSpec, calibration: np.ndarray | None, backend: str = "onnx"
) -> dict[str, Any]:
    """int8 ONNX at `dst` with the method chosen for this model; returns the manifest's quantization record."""
    transformer = is_transformer(model)
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
        details = q.quantize_onnx_static(fp32_path, dst, calibration, input_name, op_types=op_types, symmetric=True)
    else:  # pragma: no cover - table and dispatch are kept in sync
        raise ValueError(f"no ONNX implementation for int8 method {method}")
    return {
        "method": method,
        "description": q.METHODS[method],
        "architecture": "transformer" if transformer else "cnn",
        **details,
    }


def export(
    model: nn.Module, spec: ModelSpec, precision: str, out_dir: Path, *, calibration: np.ndarray | None, opset: int
) -> ExportResult:
    out_path = out_dir / MODEL_FILE
    hints: dict[str, Any] = {}
    quantization = None
    if precision == "fp32":
        exporter = torch_to_onnx(model, spec, out_path, opset)
    else:
        with tempfile.TemporaryDirectory() as work:
            fp32_path = Path(work) / MODEL_FILE
            exporter = torch_to_onnx(model, spec, fp32_path, opset)
            if precision == "fp16":
                convert_to_fp16(fp32_path, out_path)
                # ORT's layout optimizations (level "all") crash on fp16 CPU graphs (ORT 1.32, measured).
                hints["ort_graph_optimization"] = "extended"
            else:
                quantization = quantize_int8(fp32_path, out_path, model, spec, calibration)
    return ExportResult(
        model_file=MODEL_FILE, exporter=f"torch.onnx ({exporter}), opset {opset}",
        quantization=quantization, runtime_hints=hints,
    )
