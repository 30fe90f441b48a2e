"""Graph rewrites that make an exported ONNX parse on an older TensorRT, with the same numbers.

- `decompose_layer_norm`: TensorRT 8.5 has no LayerNormalization importer (onnx-tensorrt 8.5-GA
  table: N), so each LayerNormalization becomes ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add.
- `int32_token_input`: TensorRT 8.x runs integer tensors as INT32 and casts an INT64 network input
  down; a text tower that declares INT32 token ids says what the engine really takes.
- `float_argmax` (in onnx_export, applied to every ONNX export) keeps ArgMax off integers.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _layer_norm_axes(node: onnx.NodeProto, rank: int | None) -> list[int]:
    axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
    if axis < 0:
        return list(range(axis, 0))
    if rank is None:
        raise ValueError(f"LayerNormalization {node.name} normalizes from axis {axis} of an input of unknown rank")
    return list(range(axis - rank, 0))


def decompose_layer_norm(model: onnx.ModelProto) -> int:
    """Replace every LayerNormalization by its elementary ops (in place); returns how many were replaced.

    y = (x - mean(x)) / sqrt(mean((x - mean(x))²) + eps) * scale + bias, the mean over the
    normalized axes: the definition of the op (stash_type fp32; edgeclip graphs are fp32 here).
    """
    graph = model.graph
    if not any(n.op_type == "LayerNormalization" for n in graph.node):
        return 0
    opset = _opset(model)
    ranks: dict[str, int] = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        for info in list(inferred.graph.value_info) + list(inferred.graph.input):
            if info.type.tensor_type.HasField("shape"):
                ranks[info.name] = len(info.type.tensor_type.shape.dim)
    except Exception:  # noqa: BLE001 - ranks are needed only for a positive axis
        pass
    used = {node.output[i] for node in graph.node for i in range(1, len(node.output)) if node.op_type == "LayerNormalization"}
    consumed = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    if used & consumed:
        raise ValueError("a LayerNormalization's Mean/InvStdDev output is used; it cannot be decomposed")
    new_nodes: list[onnx.NodeProto] = []
    replaced = 0
    for node in graph.node:
        if node.op_type != "LayerNormalization":
            new_nodes.append(node)
            continue
        replaced += 1
        prefix = node.name or f"LayerNormalization_{replaced}"
        x, scale = node.input[0], node.input[1]
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        axes = _layer_norm_axes(node, ranks.get(x))
        two, epsilon = f"{prefix}/two", f"{prefix}/epsilon"
        graph.initializer.extend([numpy_helper.from_array(np.array(2.0, np.float32), two),
                                  numpy_helper.from_array(np.array(eps, np.float32), epsilon)])

        def reduce_mean(source: str, out: str) -> onnx.NodeProto:
            if opset >= 18:  # axes became an input in opset 18
                axes_name = f"{prefix}/axes"
                if not any(i.name == axes_name for i in graph.initializer):
                    graph.initializer.append(numpy_helper.from_array(np.array(axes, np.int64), axes_name))
                return helper.make_node("ReduceMean", [source, axes_name], [out], name=out, keepdims=1)
            return helper.make_node("ReduceMean", [source], [out], name=out, axes=axes, keepdims=1)

        normalized = f"{prefix}/normalized"
        steps = [
            reduce_mean(x, f"{prefix}/mean"),
            helper.make_node("Sub", [x, f"{prefix}/mean"], [f"{prefix}/centered"], name=f"{prefix}/centered"),
            helper.make_node("Pow", [f"{prefix}/centered", two], [f"{prefix}/squared"], name=f"{prefix}/squared"),
            reduce_mean(f"{prefix}/squared", f"{prefix}/variance"),
            helper.make_node("Add", [f"{prefix}/variance", epsilon], [f"{prefix}/variance_eps"], name=f"{prefix}/variance_eps"),
            helper.make_node("Sqrt", [f"{prefix}/variance_eps"], [f"{prefix}/std"], name=f"{prefix}/std"),
            helper.make_node("Div", [f"{prefix}/centered", f"{prefix}/std"], [normalized], name=normalized),
        ]
        scaled = node.output[0] if bias is None else f"{prefix}/scaled"
        steps.append(helper.make_node("Mul", [normalized, scale], [scaled], name=f"{prefix}/scaled"))
        if bias is not None:
            steps.append(helper.make_node("Add", [scaled, bias], [node.output[0]], name=f"{prefix}/shifted"))
        new_nodes.extend(steps)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return replaced


def int32_token_input(model: onnx.ModelProto) -> list[str]:
    """Make INT64 graph inputs INT32 (a Cast to INT64 inside keeps the graph as it was); returns their names."""
    graph = model.graph
    changed = []
    for graph_input in graph.input:
        tensor_type = graph_input.type.tensor_type
        if tensor_type.elem_type != onnx.TensorProto.INT64:
            continue
        name, wide = graph_input.name, f"{graph_input.name}_int64"
        for node in graph.node:
            for i, source in enumerate(node.input):
                if source == name:
                    node.input[i] = wide
        tensor_type.elem_type = onnx.TensorProto.INT32
        graph.node.insert(0, helper.make_node("Cast", [name], [wide], name=f"{name}/to_int64", to=onnx.TensorProto.INT64))
        changed.append(name)
    return changed
