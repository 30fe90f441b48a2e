"""onnxruntime static int8 with a choice of calibration, and "float islands" for mixed precision.

`quantize_static_qdq` is onnxruntime's QDQ quantizer with the calibration method, weight type and
per-channel choice exposed. `revert_to_float` takes a quantized QDQ graph and makes chosen nodes
run in float: their activation inputs are rewired to the float tensors the Q/DQ pairs were made
from and their weights to float copies. That matters: onnxruntime's `nodes_to_exclude` only skips
a node's own quantization — its input is still the dequantized output of a quantized producer,
and measured on a digits MobileNetV3-small that rounding (not the weights) is what flips
decisions. Reverting a node in an already-quantized graph also needs no new calibration, so a
sensitivity search can try one layer at a time cheaply (quantize once, revert per candidate).

Three details make a reverted node really float (found on a digits MobileNetV3-small, where
reverting every node used to leave decisions flipped; the test
`test_reverting_every_layer_gives_back_the_float_model` checks all three):
- its weights come from the float model, not from dequantizing the int8 ones;
- onnxruntime drops a Relu/Clip that a quantization range already clamps; it is kept in the graph
  (`QDQKeepRemovableActivations`, fused again by onnxruntime at load time) so a float island does
  not read the pre-activation;
- the exporter's decomposed activations (HardSwish → HardSigmoid·Mul) come without node names, so
  nodes are named before quantization and every quantized node is addressable.
Graph outputs stay float: rounding logits to uint8 only adds error (benchmarks/results/int8_pitfalls.md
measures both).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeclip.compress import quantize as q
from edgeclip.config import INT8_CALIBRATION_METHODS
from edgeclip.errors import UserError

CALIBRATION_METHODS = INT8_CALIBRATION_METHODS
AUTO_METHOD = "minmax"  # what "auto" means for onnxruntime: its own default estimator
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def _calibration_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    mapping = {"auto": CalibrationMethod.MinMax, "minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if name not in mapping:
        raise UserError(f"unknown calibration method '{name}'; use one of {', '.join(CALIBRATION_METHODS)}")
    return mapping[name]


def weighted_node_names(model: Any) -> list[str]:
    return [n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]


def quantize_static_qdq(
    src: str | Path,
    dst: str | Path,
    calibration: np.ndarray,
    input_name: str,
    *,
    method: str = "minmax",
    percentile: float = 99.999,
    per_channel: bool = True,
    weights: str = "int8",
    activations: str = "uint8",
    exclude: Sequence[str] = (),
    op_types: Sequence[str] | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Static QDQ int8 of `src` (already pre-processed) into `dst`; returns what was done."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if calibration is None or len(calibration) == 0:
        raise UserError("static int8 needs a non-empty calibration set of real images; pass --calibration DATA")
    weight_type = QuantType.QInt8 if weights == "int8" else QuantType.QUInt8
    extra: dict[str, Any] = {"WeightSymmetric": weights == "int8", "QDQKeepRemovableActivations": True}
    if method == "percentile":
        extra["CalibPercentile"] = float(percentile)
    with q._quiet_root_logger():
        quantize_static(
            str(src), str(dst), q._ArrayReader(input_name, calibration, batch_size),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=list(op_types) if op_types else None,
            nodes_to_exclude=list(exclude), per_channel=per_channel,
            activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8, weight_type=weight_type,
            calibrate_method=_calibration_method(method), extra_options=extra,
        )
    float_graph_outputs(dst)
    return {
        "format": "QDQ",
        "per_channel": per_channel,
        "weights": weights,
        "activations": f"{activations} asymmetric, per tensor",
        "calibration_method": method + (f" ({percentile:g}th)" if method == "percentile" else
                                        f" (onnxruntime default: {AUTO_METHOD})" if method == "auto" else ""),
        "calibration_count": int(len(calibration)),
        "op_types": list(op_types) if op_types else "all",
        "excluded_nodes": list(exclude),
        "graph_outputs": "float",
    }


def float_graph_outputs(path: str | Path) -> int:
    """Drop the Q/DQ pair in front of each graph output, so outputs are not rounded to 8 bits."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    initializers = {init.name for init in graph.initializer}
    changed = 0
    for output in graph.output:
        dq = producers.get(output.name)
        quant = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if quant is None or quant.op_type != "QuantizeLinear" or quant.input[0] in initializers:
            continue
        source = quant.input[0]
        graph.node.remove(dq)
        for node in graph.node:  # the float tensor takes the output's name everywhere
            node.output[:] = [output.name if name == source else name for name in node.output]
            node.input[:] = [output.name if name == source else name for name in node.input]
        changed += 1
    if changed:
        q.drop_dead_qdq(graph)
        onnx.save(model, str(path))
    return changed


def name_nodes(model: Any) -> int:
    """Give every unnamed node a stable name (`<op>:<first output>`); returns how many were named."""
    named = 0
    for node in model.graph.node:
        if not node.name:
            node.name = f"{node.op_type}:{node.output[0]}"
            named += 1
    return named


def quantized_compute_nodes(model: Any) -> list[str]:
    """Nodes (not Q/DQ) that read at least one dequantized activation: the units mixed precision can revert."""
    initializers = {init.name for init in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    names = []
    for node in model.graph.node:
        if node.op_type in QDQ_OPS or not node.name:
            continue
        for name in node.input:
            producer = producers.get(name)
            if producer is not None and producer.op_type == "DequantizeLinear" and producer.input[0] not in initializers:
                names.append(node.name)
                break
    return names


def revert_to_float(model: Any, names: Sequence[str], float_model: Any | None = None) -> Any:
    """A copy of quantized `model` where the nodes `names` read float inputs and float weights.

    Weights are the float model's originals when `float_model` (the graph that was quantized) is
    given, else the dequantized int8 values.
    """
    model = copy.deepcopy(model)
    graph = model.graph
    wanted = set(names)
    initializers = {init.name for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    originals = _original_weights(float_model)
    for node in graph.node:
        if node.name not in wanted:
            continue
        for i, name in enumerate(node.input):
            dq = producers.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            if dq.input[0] in initializers:  # a quantized weight: use its float value
                original = originals.get((node.name, i))
                node.input[i] = _add_original(graph, original, initializers) if original is not None else q._float_copy(graph, dq)
                continue
            quant = producers.get(dq.input[0])
            if quant is not None and quant.op_type == "QuantizeLinear":
                node.input[i] = quant.input[0]
    q.drop_dead_qdq(graph)
    return model


def _original_weights(float_model: Any | None) -> dict[tuple[str, int], Any]:
    """(node name, input index) → the float initializer that node read before quantization."""
    if float_model is None:
        return {}
    initializers = {init.name: init for init in float_model.graph.initializer}
    return {(node.name, i): initializers[name] for node in float_model.graph.node if node.name
            for i, name in enumerate(node.input) if name in initializers}


def _add_original(graph: Any, original: Any, initializers: set[str]) -> str:
    # A new name: onnxruntime gives a dequantized bias its original name, so that name is taken.
    name = original.name + "_float_original"
    if name not in initializers:
        copied = copy.deepcopy(original)
        copied.name = name
        graph.initializer.append(copied)
        initializers.add(name)
    return name


def session_runner(model_or_path: Any, threads: int = 1, optimization: str = "all") -> Callable[[np.ndarray], np.ndarray]:
    """A batch → first output function over an in-memory ModelProto or a path (CPU, no spinning)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{optimization.upper()}")
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    source = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else str(model_or_path)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: batch})[0]

    return run


class OrtRevertible:
    """A fully quantized QDQ model whose layers can be put back into float one by one (sensitivity)."""

    backend = "onnx"

    def __init__(self, quantized_path: str | Path, float_path: str | Path | None = None, threads: int = 1) -> None:
        import onnx

        self.model = onnx.load(str(quantized_path))
        self.float_model = onnx.load(str(float_path)) if float_path is not None else None
        self.threads = threads

    def layers(self) -> list[str]:
        # Every node that reads a rounded activation, weighted or not: on a MobileNetV3 the
        # HardSwish halves (HardSigmoid, Mul) flip as many decisions as the convolutions.
        return quantized_compute_nodes(self.model)

    def _reverted(self, float_layers: Sequence[str]) -> Any:
        return revert_to_float(self.model, float_layers, self.float_model) if float_layers else self.model

    def build(self, float_layers: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
        return session_runner(self._reverted(float_layers), self.threads)

    def save(self, float_layers: Sequence[str], dst: str | Path) -> None:
        import onnx

        onnx.save(self._reverted(float_layers), str(dst))


def preprocessed(src: Path, work: Path) -> Path:
    """Shape inference + graph optimisation before quantization (falls back to the raw graph), every node named."""
    import onnx

    pre = q._preprocess_for_static(src, work)
    model = onnx.load(str(pre))
    if not name_nodes(model):
        return pre
    named = work / "preprocessed-named.onnx"
    onnx.save(model, str(named))
    return named


def check_node_names(model_path: str | Path, names: Sequence[str], what: str = "ignored-scope") -> None:
    """Every name must be a node of the graph; otherwise one line listing the names that exist."""
    import onnx

    if not names:
        return
    model = onnx.load(str(model_path), load_external_data=False)
    known = [n.name for n in model.graph.node if n.name]
    missing = [name for name in names if name not in set(known)]
    if missing:
        weighted = weighted_node_names(model) or known
        shown = ", ".join(weighted[:10]) + (f", ... ({len(weighted)} weighted layers)" if len(weighted) > 10 else "")
        raise UserError(f"{what} name(s) {', '.join(repr(m) for m in missing)} match no layer of the ONNX graph; "
                        f"layer names look like: {shown}")
