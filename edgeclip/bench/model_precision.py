"""What precision an artifact's model file really holds, checked against its manifest.

A report row's precision label comes from the manifest; a manifest copied or edited beside another
model (an int8 model under a manifest that says fp32) would put the wrong label on the measured
numbers. Reading the graph is cheap next to benchmarking, so `edgeclip bench` checks first.

Evidence, per backend:
- ONNX: quantization operators (QuantizeLinear/DequantizeLinear, QLinear*, *Integer,
  DynamicQuantizeLinear) mean int8; float16 initializers mean fp16.
- OpenVINO IR: FakeQuantize layers or i8/u8 constants mean int8. (f16 constants are not evidence:
  OpenVINO stores fp32 models' weights compressed to fp16 by default.)
Other backends (TensorRT engines, CoreML packages) are not read here: `None`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgeclip.backends import BACKENDS
from edgeclip.errors import UserError

ONNX_INT8_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
                 "QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QGemm", "DynamicQuantizeMatMul"}
_OV_INT8 = re.compile(r'type="FakeQuantize"|element_type="(?:i8|u8)"')


def onnx_evidence(model_path: Path) -> dict[str, bool] | None:
    """{'int8': .., 'fp16': ..} for an ONNX file; None when it cannot be parsed (the runtime reports that)."""
    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception:  # noqa: BLE001 - a corrupt file is reported by the runtime with its own message
        return None
    graphs, ops, fp16 = [model.graph], set(), False
    while graphs:  # subgraphs (If/Loop bodies) count too
        graph = graphs.pop()
        fp16 = fp16 or any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer)
        for node in graph.node:
            ops.add(node.op_type)
            graphs += [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
    return {"int8": bool(ops & ONNX_INT8_OPS), "fp16": fp16}


def openvino_evidence(model_path: Path) -> dict[str, bool] | None:
    try:
        text = model_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return {"int8": bool(_OV_INT8.search(text))}


def model_precision_problem(artifact_dir: Path, manifest: dict[str, Any]) -> str | None:
    """A sentence when the model file contradicts the manifest's precision, else None."""
    claimed = str(manifest.get("precision"))
    model_path = Path(artifact_dir) / str(manifest.get("model_file", ""))
    if not model_path.is_file():
        return None  # a missing model is reported when it is loaded
    backend = str(manifest.get("backend"))
    # The backend row names the reader for its model files (None: no reader, nothing to contradict).
    evidence = BACKENDS.get(backend).precision_evidence_of(model_path) if backend in BACKENDS else None
    if evidence is None:
        return None
    if evidence["int8"] and claimed != "int8":
        return f"its model holds int8 quantization operators but the manifest says {claimed}"
    if claimed == "int8" and not evidence["int8"]:
        return "the manifest says int8 but its model holds no quantization operators"
    if "fp16" in evidence and claimed == "fp32" and evidence["fp16"]:
        return "its model holds float16 weights but the manifest says fp32"
    if "fp16" in evidence and claimed == "fp16" and not evidence["fp16"]:
        return "the manifest says fp16 but its model holds no float16 weights"
    return None


def check_model_precision(artifact_dir: Path, manifest: dict[str, Any]) -> None:
    """UserError (exit 2) when the model file contradicts the manifest's precision label."""
    problem = model_precision_problem(artifact_dir, manifest)
    if problem:
        raise UserError(f"artifact {artifact_dir}: {problem}, so its report row would carry the wrong label; "
                        "re-export it with `edgeclip export` (do not copy manifests between artifacts)")
