"""OpenVINO IR (.xml + .bin): fp32, fp16 (compressed weights) and int8 (NNCF).

Converted from our fp32 ONNX rather than tracing the PyTorch module a second time: the ONNX path
is the one already validated for open_clip towers and keeps the batch dimension dynamic.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgeclip.compress import quantize as q
from edgeclip.compress.int8 import quantize_openvino_auto
from edgeclip.exporters.common import ExportResult, is_transformer, require_calibration
from edgeclip.exporters.onnx_export import MODEL_FILE as ONNX_FILE
from edgeclip.exporters.onnx_export import torch_to_onnx
from edgeclip.students.spec import ModelSpec

MODEL_FILE = "model.xml"


def export(
    model: nn.Module, spec: ModelSpec, precision: str, out_dir: Path, *, calibration: np.ndarray | None, opset: int,
    int8: Any = None,
) -> ExportResult:
    import openvino as ov

    quantization = None
    with tempfile.TemporaryDirectory() as work:
        onnx_path = Path(work) / ONNX_FILE
        exporter = torch_to_onnx(model, spec, onnx_path, opset)
        ov_model = ov.convert_model(str(onnx_path))
        if precision == "int8" and int8 is not None and int8.mode != "classic":
            transformer = is_transformer(model)
            ov_model, record = quantize_openvino_auto(ov_model, spec, calibration, int8, transformer=transformer)
            quantization = {"architecture": "transformer" if transformer else "cnn", **record}
        elif precision == "int8":
            transformer = is_transformer(model)
            method = q.choose_int8_method(
                backend="openvino", kind=spec.kind, transformer=transformer, has_calibration=calibration is not None
            )
            if q.method_needs_calibration(method):
                require_calibration(spec, calibration, "openvino", method)
            ov_model, details = q.quantize_openvino(ov_model, calibration, method=method)
            quantization = {
                "method": method, "description": q.METHODS[method],
                "architecture": "transformer" if transformer else "cnn", **details,
            }
        # save_model compresses weights to fp16 by default: only do that when fp16 was asked for.
        ov.save_model(ov_model, str(out_dir / MODEL_FILE), compress_to_fp16=precision == "fp16")
    return ExportResult(
        model_file=MODEL_FILE,
        exporter=f"openvino.convert_model from torch.onnx ({exporter}) opset {opset}",
        quantization=quantization,
        # Pin f32 inference so CPUs with bf16/AMX do not silently run fp32 artifacts in bf16.
        runtime_hints={"openvino_inference_precision": "f32"},
    )
