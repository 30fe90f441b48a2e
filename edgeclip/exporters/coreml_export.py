"""CoreML mlprogram (.mlpackage) via `torch.export` (coremltools 9; `jit.trace` breaks on ViTs).

Conversion runs on Linux; prediction needs macOS, so off macOS the manifest's parity is
"skipped: CoreML prediction needs macOS" and export/coreml/README.md says how to verify on a Mac.
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeclip.exporters.common import ExportResult, example_input
from edgeclip.utils import disable_mha_fastpath
from edgeclip.students.spec import ModelSpec

MODEL_FILE = "model.mlpackage"
MAX_BATCH = 64
# MIL ops kept in fp32 inside an fp16 mlprogram, for the reason of onnx_export.FP16_KEEP_FP32_OPS:
# normalizations, softmax and reductions sum squares or exponentials and overflow fp16 (65504).
FP16_KEEP_FP32_MIL_OPS = ("layer_norm", "softmax", "batch_norm", "instance_norm", "reduce_mean", "reduce_sum",
                          "reduce_sum_square", "reduce_l2_norm", "reduce_log_sum_exp", "reduce_max", "reduce_min",
                          "pow", "sqrt", "rsqrt", "inverse")


def fp16_op_selector(op) -> bool:  # noqa: ANN001 - a coremltools MIL Operation
    """True where an op may run in fp16 (coremltools' FP16ComputePrecision op_selector)."""
    return op.op_type not in FP16_KEEP_FP32_MIL_OPS


def convert(model: nn.Module, spec: ModelSpec, precision: str):  # -> coremltools.models.MLModel
    """Convert to an in-memory MLModel with named input/output and a flexible batch (1..MAX_BATCH)."""
    import coremltools as ct

    disable_mha_fastpath()
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(model, (example_input(spec),), dynamic_shapes=({0: batch},))
    program = program.run_decompositions({})
    dims = spec.input_shape()[1:]
    shape = ct.Shape((ct.RangeDim(1, MAX_BATCH, default=1), *dims))
    # CoreML has no int64 inputs: tokens come in as int32 and are widened inside the model.
    dtype = np.int32 if spec.is_text else np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ct.convert(
            program,
            inputs=[ct.TensorType(name=spec.input_names[0], shape=shape, dtype=dtype)],
            outputs=[ct.TensorType(name=spec.output_names[0])],
            convert_to="mlprogram",
            compute_precision=(ct.transform.FP16ComputePrecision(op_selector=fp16_op_selector) if precision == "fp16"
                               else ct.precision.FLOAT32),
            minimum_deployment_target=ct.target.iOS16,
        )


def export(
    model: nn.Module, spec: ModelSpec, precision: str, out_dir: Path, *, calibration: np.ndarray | None, opset: int
) -> ExportResult:
    mlmodel = convert(model, spec, precision)
    mlmodel.short_description = f"edgeclip {spec.kind} '{spec.name}' ({precision})"
    mlmodel.save(str(out_dir / MODEL_FILE))
    on_mac = platform.system() == "Darwin"
    return ExportResult(
        model_file=MODEL_FILE,
        exporter="coremltools.convert(torch.export) mlprogram, iOS16+/macOS13+",
        parity_mode="runtime" if on_mac else "skipped:CoreML prediction needs macOS",
        next_step="" if on_mac else "verify on a Mac: see export/coreml/README.md",
        extra={"max_batch": MAX_BATCH, **({"fp16": {"kept_fp32_ops": list(FP16_KEEP_FP32_MIL_OPS)}} if precision == "fp16" else {})},
    )
