"""int8 post-training quantization for exported models (onnxruntime and OpenVINO/NNCF).

Which method a model gets (`choose_int8_method`) follows what was measured on this machine
(DESIGN §5): CNNs → static QDQ calibrated on real images; transformers → dynamic int8 on
MatMul/Gemm (dynamic Conv quantization is what makes CNNs slow, and static activation scales
hurt attention); a text encoder is statically quantized only on MatMul/Gemm, otherwise accuracy
collapses. TensorRT wants explicit, symmetric QDQ. The returned dicts go into the manifest.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgeclip.backends import get_backend
from edgeclip.errors import UserError

MATMUL_OPS = ("MatMul", "Gemm")

# method name → human description (recorded in manifests).
METHODS = {
    "ort_static_qdq": "onnxruntime static QDQ int8, per-channel weights, MinMax calibration",
    "ort_static_qdq_matmul": "onnxruntime static QDQ int8 on MatMul/Gemm only (text encoder)",
    "ort_dynamic": "onnxruntime dynamic int8 (weights int8, activations quantized at run time) on MatMul/Gemm",
    "trt_static_qdq": "explicit symmetric QDQ int8 for TensorRT (per-channel weights, calibrated)",
    "nncf_ptq": "NNCF post-training quantization (OpenVINO), calibrated",
    "nncf_ptq_transformer": "NNCF post-training quantization, transformer model type, calibrated",
    "nncf_weight_int8": "NNCF int8 weight compression (no calibration; activations stay float)",
    # mode "auto" (compress/int8.py): this CPU's weight type, chosen calibration, sensitivity search
    "ort_static_qdq_auto": "onnxruntime static QDQ int8, per-channel weights for this CPU (U8S8 with VNNI, U8U8 without), chosen calibration",
    "ort_static_qdq_mixed": "onnxruntime static QDQ int8 with the most sensitive layers in float (per-layer sensitivity search)",
    "nncf_ptq_mixed": "NNCF post-training quantization with the most sensitive layers in its ignored_scope (sensitivity search)",
}


def onnx_int8_method(*, kind: str, transformer: bool, has_calibration: bool) -> str:
    """onnxruntime: static QDQ for CNNs, dynamic for transformers, MatMul-only static for text encoders."""
    if kind == "text_encoder":
        return "ort_static_qdq_matmul" if has_calibration else "ort_dynamic"
    return "ort_dynamic" if transformer else "ort_static_qdq"


def openvino_int8_method(*, kind: str, transformer: bool, has_calibration: bool) -> str:
    """OpenVINO/NNCF: post-training quantization; weight-only for an uncalibrated text encoder."""
    if kind == "text_encoder" and not has_calibration:
        return "nncf_weight_int8"
    return "nncf_ptq_transformer" if transformer else "nncf_ptq"


def tensorrt_int8_method(*, kind: str, transformer: bool, has_calibration: bool) -> str:
    """TensorRT: explicit symmetric QDQ (the engine builder reads the scales from the ONNX)."""
    return "trt_static_qdq"


def choose_int8_method(*, backend: str, kind: str, transformer: bool, has_calibration: bool) -> str:
    """The int8 recipe the backend table's row picks for this model kind and architecture."""
    return get_backend(backend).choose_int8_method(kind=kind, transformer=transformer, has_calibration=has_calibration)


def method_needs_calibration(method: str) -> bool:
    return method not in ("ort_dynamic", "nncf_weight_int8")


class _ArrayReader:
    """onnxruntime CalibrationDataReader over an in-memory array, in small batches."""

    def __init__(self, input_name: str, data: np.ndarray, batch_size: int) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            {input_name: np.ascontiguousarray(data[i:i + batch_size])} for i in range(0, len(data), batch_size)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _preprocess_for_static(src: Path, work: Path) -> Path:
    """Shape inference + graph optimization before static quantization (onnxruntime recommends it)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst = work / "preprocessed.onnx"
    # Symbolic shape inference fails on some transformer graphs (dynamic Reshape): retry without it.
    for skip_symbolic in (False, True):
        try:
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=skip_symbolic)
            return dst
        except Exception:  # noqa: BLE001 - pre-processing is an optimization; quantize the raw graph if it fails
            continue
    return src


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs advice on the root logger for every node; keep the CLI readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_onnx_static(
    src: str | Path,
    dst: str | Path,
    calibration: np.ndarray,
    input_name: str,
    *,
    op_types: tuple[str, ...] | None = None,
    symmetric: bool = False,
    per_channel: bool = True,
    keep_float_edges: bool | None = None,
    batch_size: int = 16,
    float_bias: bool = False,
) -> dict[str, Any]:
    """Static QDQ int8 with activation ranges calibrated on `calibration` (real, preprocessed inputs).

    CNNs (no `op_types`) get uint8 weights and activations (U8U8): onnxruntime's U8S8 kernels
    saturate on x86 CPUs without VNNI (AVX2/AVX-512), which measured here cut a digits
    MobileNetV3-small from 96.4% to 60% accuracy; U8U8 kept 96.4% (98.6% agreement with fp32).
    Their first and last weighted layers stay float (`keep_float_edges`), the usual practice:
    both are small and the most sensitive to rounding.
    `float_bias` leaves biases float (no INT32 DequantizeLinear): TensorRT's explicit int8 wants Q/DQ
    on weights and activations only, and 8.x refuses a DequantizeLinear of anything but INT8.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if calibration is None or len(calibration) == 0:
        raise UserError("static int8 needs a non-empty calibration set of real images; pass --calibration DATA")
    cnn = not op_types
    keep_float_edges = cnn if keep_float_edges is None else keep_float_edges
    weight_type = QuantType.QUInt8 if cnn and not symmetric else QuantType.QInt8
    with tempfile.TemporaryDirectory() as work, _quiet_root_logger():
        model_in = _preprocess_for_static(Path(src), Path(work))
        weighted = [n.name for n in onnx.load(str(model_in), load_external_data=False).graph.node
                    if n.op_type in ("Conv", "Gemm", "MatMul")]
        excluded = [weighted[0], weighted[-1]] if keep_float_edges and len(weighted) > 2 else []
        quantize_static(
            str(model_in), str(dst), _ArrayReader(input_name, calibration, batch_size),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types) if op_types else None,
            nodes_to_exclude=excluded,
            per_channel=per_channel,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=weight_type,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": weight_type == QuantType.QInt8,
                           "QuantizeBias": not float_bias},
        )
    if op_types:
        restrict_qdq_to(dst, op_types)
    return {
        "format": "QDQ",
        "per_channel": per_channel,
        "weights": "uint8" if weight_type == QuantType.QUInt8 else "int8",
        "symmetric_activations": symmetric,
        "bias": "float" if float_bias else "int32",
        "op_types": list(op_types) if op_types else "all",
        "float_nodes": excluded,
        "calibration_count": int(len(calibration)),
        "calibration_method": "MinMax",
    }


def restrict_qdq_to(path: str | Path, op_types: tuple[str, ...]) -> int:
    """Keep quantized activations only where `op_types` consume them; everything else reads the float tensor.

    onnxruntime replaces a quantized tensor for *all* its consumers, so with MatMul/Gemm-only
    quantization a residual Add or LayerNorm that shares an input with a MatMul would still see
    int8-rounded values (and MatMul outputs get Q/DQ pairs). That is what collapses text
    encoders; this rewires the other consumers to the float source and drops dead Q/DQ nodes.
    Returns the number of rewired inputs.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    initializers = {init.name for init in graph.initializer}
    float_source: dict[str, str] = {}  # DQ output of an activation → the float tensor it was quantized from
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            q_node = producers.get(node.input[0])
            if q_node is not None and q_node.op_type == "QuantizeLinear" and q_node.input[0] not in initializers:
                float_source[node.output[0]] = q_node.input[0]
    rewired = 0
    for node in graph.node:
        if node.op_type in op_types or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for i, name in enumerate(node.input):
            if name in float_source:
                node.input[i] = float_source[name]
                rewired += 1
            elif name in producers and producers[name].op_type == "DequantizeLinear" and producers[name].input[0] in initializers:
                # A quantized initializer shared with a non-target op (the exporter merges identical
                # constants, e.g. zero LayerNorm biases and a Gemm bias): give that op a float copy.
                node.input[i] = _float_copy(graph, producers[name])
                rewired += 1
    drop_dead_qdq(graph)
    onnx.save(model, str(path))
    return rewired


def drop_dead_qdq(graph: Any) -> None:
    """Remove Q/DQ nodes nobody reads any more (repeated: removing a DQ can orphan its Q), then the
    scales and zero points they leave orphaned (onnxruntime warns about each one)."""
    outputs = {out.name for out in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | outputs
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def _float_copy(graph: Any, dq_node: Any) -> str:
    """Add (once) a float initializer equal to what `dq_node` dequantizes; returns its name."""
    from onnx import numpy_helper

    name = dq_node.output[0] + "_float"
    if any(init.name == name for init in graph.initializer):
        return name
    inits = {init.name: init for init in graph.initializer}
    q = numpy_helper.to_array(inits[dq_node.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(inits[dq_node.input[1]]).astype(np.float32)
    zero = numpy_helper.to_array(inits[dq_node.input[2]]).astype(np.float32) if len(dq_node.input) > 2 and dq_node.input[2] else 0.0
    if np.ndim(scale) == 1 and scale.size > 1:  # per-axis: broadcast along the node's axis
        axis = next((a.i for a in dq_node.attribute if a.name == "axis"), 1) % q.ndim
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale = scale.reshape(shape)
        zero = np.reshape(zero, shape) if np.ndim(zero) else zero
    graph.initializer.append(numpy_helper.from_array(((q - zero) * scale).astype(np.float32), name))
    return name


def quantize_onnx_dynamic(src: str | Path, dst: str | Path, *, op_types: tuple[str, ...] = MATMUL_OPS) -> dict[str, Any]:
    """Dynamic int8: int8 weights, activation scales computed per batch at run time. No calibration."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=list(op_types), weight_type=QuantType.QInt8)
    return {"format": "dynamic (QOperator)", "op_types": list(op_types), "calibration_count": 0}


def quantize_openvino(ov_model: Any, calibration: np.ndarray | None, *, method: str) -> tuple[Any, dict[str, Any]]:
    """NNCF int8 on an OpenVINO model: post-training quantization, or weight-only when uncalibrated."""
    import nncf

    if method == "nncf_weight_int8":
        compressed = nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        return compressed, {"mode": "INT8_ASYM weights", "calibration_count": 0}
    if calibration is None or len(calibration) == 0:
        raise UserError("OpenVINO int8 needs a non-empty calibration set of real images; pass --calibration DATA")
    # One sample per item: NNCF collects statistics per item, so batch 1 gives it the full count.
    dataset = nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))])
    transformer = method == "nncf_ptq_transformer"
    quantized = nncf.quantize(
        ov_model,
        dataset,
        subset_size=len(calibration),
        preset=nncf.QuantizationPreset.MIXED if transformer else nncf.QuantizationPreset.PERFORMANCE,
        model_type=nncf.ModelType.TRANSFORMER if transformer else None,
    )
    return quantized, {
        "preset": "mixed" if transformer else "performance",
        "model_type": "transformer" if transformer else "default",
        "calibration_count": int(len(calibration)),
    }
