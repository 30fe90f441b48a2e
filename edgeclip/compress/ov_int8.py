"""OpenVINO int8 with NNCF: calibration choice, ignored scope, and revertible layers for mixed precision.

NNCF quantizes activations with FakeQuantize nodes in front of the layers that consume them.
`OvRevertible.build(names)` clones the quantized model and bypasses the activation FakeQuantize
inputs of the named layers (quantize once, revert per candidate: no new calibration per try).
The shipped mixed-precision model is re-quantized by NNCF with those layers in its
`ignored_scope`, so what ships is NNCF's own output; its validation agreement is measured again.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Sequence

import numpy as np

from edgeclip.errors import UserError
from edgeclip.runtimes.base import device_runtime

WEIGHTED_OV_OPS = ("Convolution", "GroupConvolution", "MatMul")
# edgeclip's calibration names → NNCF range estimators (NNCF has no entropy calibration; its
# histogram estimator is the closest, and the manifest records which one ran).
# "auto" keeps NNCF's own per-tensor-type defaults, which measured best on the digits
# MobileNetV3-small (top-1 agreement with fp32 99.4% vs 91.9% with global min-max:
# benchmarks/results/int8_pitfalls.md).
NNCF_RANGES = {"auto": None, "minmax": "MINMAX", "percentile": "MEAN_QUANTILE", "entropy": "HISTOGRAM"}


def weighted_op_names(ov_model: Any) -> list[str]:
    return [op.get_friendly_name() for op in ov_model.get_ops() if op.get_type_name() in WEIGHTED_OV_OPS]


def resolve_ignored_scope(ov_model: Any, names: Sequence[str]) -> list[str]:
    """OpenVINO op names for `names`; an ONNX node name also selects the ops OpenVINO made from it.

    OpenVINO names the ops it converts from an ONNX node after that node (``/conv/Conv`` becomes
    ``/conv/Conv/WithoutBiases`` + ``/conv/Conv``), so the same ignored-scope list works on both
    backends. A name that matches nothing is a UserError listing the layer names that exist.
    """
    ops = [op.get_friendly_name() for op in ov_model.get_ops()]
    weighted = set(weighted_op_names(ov_model))
    resolved, missing = [], []
    for name in names:
        if name in ops:
            resolved.append(name)
            continue
        pattern = re.compile("^" + re.escape(name) + "(/.*)?$")
        matches = [op for op in ops if pattern.match(op) and op in weighted]
        if matches:
            resolved.extend(matches)
        else:
            missing.append(name)
    if missing:
        listed = weighted_op_names(ov_model)
        shown = ", ".join(listed[:10]) + (f", ... ({len(listed)} weighted layers)" if len(listed) > 10 else "")
        raise UserError(f"ignored-scope name(s) {', '.join(repr(m) for m in missing)} match no layer of the OpenVINO model; "
                        f"layer names look like: {shown}")
    return sorted(set(resolved))


def nncf_quantize(ov_model: Any, calibration: np.ndarray, *, method: str = "minmax", transformer: bool = False,
                  ignored: Sequence[str] = (), smooth_quant_alpha: float | None = None) -> tuple[Any, dict[str, Any]]:
    """NNCF post-training int8 with the given range estimator and ignored scope."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    if calibration is None or len(calibration) == 0:
        raise UserError("OpenVINO int8 needs a non-empty calibration set of real images; pass --calibration DATA")
    if method not in NNCF_RANGES:
        raise UserError(f"unknown calibration method '{method}'; use one of {', '.join(NNCF_RANGES)}")
    advanced: dict[str, Any] = {}
    if NNCF_RANGES[method] is not None:
        advanced["activations_range_estimator_params"] = getattr(RangeEstimatorParametersSet, NNCF_RANGES[method])
    if smooth_quant_alpha is not None:
        advanced["smooth_quant_alphas"] = AdvancedSmoothQuantParameters(matmul=float(smooth_quant_alpha))
    dataset = nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))])
    nncf.set_log_level(logging.ERROR)  # NNCF logs every ignored node at INFO
    quantized = nncf.quantize(
        ov_model, dataset, subset_size=len(calibration),
        preset=nncf.QuantizationPreset.MIXED if transformer else nncf.QuantizationPreset.PERFORMANCE,
        model_type=nncf.ModelType.TRANSFORMER if transformer else None,
        ignored_scope=nncf.IgnoredScope(names=list(ignored)) if ignored else None,
        advanced_parameters=AdvancedQuantizationParameters(**advanced),
    )
    return quantized, {
        "preset": "mixed" if transformer else "performance",
        "model_type": "transformer" if transformer else "default",
        "calibration_method": f"{method} (NNCF {NNCF_RANGES[method] or 'default range estimators'})",
        "calibration_count": int(len(calibration)),
        "ignored_scope": list(ignored),
        "smooth_quant_alpha": smooth_quant_alpha,
    }


def compiled_runner(ov_model: Any, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """fp32-precision CPU inference of an in-memory model, compiled per input shape (static shapes:
    see devices/runner/runtime_openvino.py for the dynamic-batch int8 discrepancy measured here)."""
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    return device_runtime("openvino").StaticShapeCompiler(ov_model, "CPU", config)


def _activation_fake_quants(op: Any) -> list[tuple[int, Any]]:
    """(input index, FakeQuantize op) for the inputs of `op` fed by an activation FakeQuantize."""
    found = []
    for index, value in enumerate(op.input_values()):
        producer = value.get_node()
        if producer.get_type_name() != "FakeQuantize":
            continue
        source = producer.input_value(0).get_node()
        if source.get_type_name() == "Constant":
            continue  # a weight quantizer: kept (weights alone never flipped a decision here)
        found.append((index, producer))
    return found


class OvRevertible:
    """An NNCF-quantized OpenVINO model whose layers can be put back to float activations one by one."""

    backend = "openvino"

    def __init__(self, quantized: Any, threads: int = 1) -> None:
        self.model = quantized
        self.threads = threads

    def layers(self) -> list[str]:
        # Weighted layers only: each compile costs ~0.1-0.5 s, and reverting an elementwise op's
        # input alone rarely matters once its producer and consumer layers can be reverted.
        return [op.get_friendly_name() for op in self.model.get_ordered_ops()
                if op.get_type_name() in WEIGHTED_OV_OPS and _activation_fake_quants(op)]

    def build(self, float_layers: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
        model = self.model.clone() if float_layers else self.model
        wanted = set(float_layers)
        for op in model.get_ordered_ops():
            if op.get_friendly_name() in wanted:
                for index, fake_quant in _activation_fake_quants(op):
                    op.input(index).replace_source_output(fake_quant.input_value(0))
        return compiled_runner(model, self.threads)
