"""Would this TensorRT version's ONNX parser take this graph? Checked here, before a kit goes to a device.

Every node of an ONNX graph is checked against onnx-tensorrt's operator table for the target's
TensorRT release (export/tensorrt/onnx_support.json, encoded by `tensorrt_support_table`): the
opset range, whether the op is supported, the data type it runs on (8.x casts INT64 down to
INT32, so an INT64 tensor is checked as INT32), and the restrictions the parser enforces that a
graph from edgeclip can break (Q/DQ zero points must be zero; `axes` of Slice/Squeeze/Unsqueeze
must be constants). Only numpy + onnx are needed, so tests' stand-in trtexec uses it too.

    python -m edgeclip.exporters.tensorrt_support model.onnx --tensorrt 8.5   # exit 1 and the nodes when refused
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edgeclip.errors import UserError
from edgeclip.paths import kit_dir

SUPPORT_FILE = "onnx_support.json"
DEFAULT_TENSORRT = "8.6"  # JetPack 6.0, the Jetson profiles' default
_ONNX_DOMAINS = ("", "ai.onnx")
_TABLE_TYPES = {
    onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.FLOAT16: "FP16", onnx.TensorProto.BFLOAT16: "BF16",
    onnx.TensorProto.DOUBLE: "FP32",  # "TensorRT will attempt to cast DOUBLE down to FLOAT"
    onnx.TensorProto.INT32: "INT32", onnx.TensorProto.INT64: "INT64", onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.UINT8: "UINT8", onnx.TensorProto.BOOL: "BOOL",
}
# Which input carries the type the table's "Supported Types" column means (default: input 0).
_TYPED_INPUT = {"Where": 1}
# Inputs the parser needs as constants (initializer or Constant node): op → input index.
_CONSTANT_INPUTS = {"Slice": 3, "Squeeze": 1, "Unsqueeze": 1}


def support_file() -> Path:
    return kit_dir("tensorrt") / SUPPORT_FILE


@functools.lru_cache(maxsize=None)
def _load_table(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def known_versions() -> list[str]:
    return sorted(_load_table(str(support_file()))["versions"], key=lambda v: tuple(int(p) for p in v.split(".")))


def normalize_version(version: Any) -> str:
    """'8.6', '8.6.2' (JetPack's patch release) → '8.6'; anything unknown → one-line UserError."""
    text = str(version).strip()
    parts = text.split(".")
    key = ".".join(parts[:2])
    known = known_versions()
    if key not in known or not all(p.isdigit() for p in parts):
        raise UserError(f"unknown TensorRT version '{text}'; use one of {', '.join(known)} "
                        "(JetPack 5.1.x: 8.5, JetPack 6.0: 8.6, JetPack 6.1/6.2: 10.3), e.g. --set target.tensorrt=8.6")
    return key


def support_table(version: Any) -> dict[str, Any]:
    """The operator table of one TensorRT version (with its `source` and `commit`)."""
    return _load_table(str(support_file()))["versions"][normalize_version(version)]


def max_opset(version: Any) -> int:
    return int(support_table(version)["opset_max"])


def parses_layer_norm(version: Any) -> bool:
    """TensorRT 8.5 has no LayerNormalization importer: the graph must carry it decomposed."""
    return bool(support_table(version)["operators"].get("LayerNormalization", {}).get("supported"))


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every named tensor, from the graph and onnx shape inference."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - inference is best effort; declared types still count
        inferred = model
    graph = inferred.graph
    types: dict[str, int] = {}
    for info in list(graph.input) + list(graph.output) + list(graph.value_info):
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    types[node.output[0]] = attr.t.data_type
    return types


def _constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    values = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    values[node.output[0]] = attr.t
    return values


def _type_name(elem_type: int) -> str:
    return _TABLE_TYPES.get(elem_type, onnx.TensorProto.DataType.Name(elem_type))


def _node_problem(node: onnx.NodeProto, table: dict[str, Any], types: dict[str, int],
                  constants: dict[str, onnx.TensorProto]) -> str | None:
    """Why this TensorRT's parser refuses `node`, or None."""
    if node.domain not in _ONNX_DOMAINS:
        return f"operator of domain '{node.domain}' is not an ONNX operator TensorRT's parser imports"
    row = table["operators"].get(node.op_type)
    if row is None:
        return "not in onnx-tensorrt's operator table for this release"
    if not row["supported"]:
        return "not supported by this release's ONNX parser (operator table: N)"
    allowed = set(row["types"])
    typed = [node.input[_TYPED_INPUT.get(node.op_type, 0)]] if node.input else []
    if node.op_type == "Cast":
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        typed_types = [types.get(typed[0]) if typed else None, to]
    elif node.op_type in ("Constant", "ConstantOfShape") or not typed:
        typed_types = [types.get(node.output[0])] if node.output else []
    else:
        typed_types = [types.get(name) for name in typed if name]
    for elem_type in typed_types:
        if elem_type is None or not allowed:
            continue  # unknown type, or the table lists none (then any type the op takes)
        name = _type_name(elem_type)
        checked = "INT32" if name == "INT64" and table.get("int64_cast_to_int32") else name
        if checked not in allowed:
            cast = " (INT64 is cast down to INT32)" if checked != name else ""
            return f"{name}{cast} input not supported: {node.op_type} takes {', '.join(row['types'])} in this release"
    if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 and node.input[2]:
        zero = constants.get(node.input[2])
        if zero is None or np.any(numpy_helper.to_array(zero) != 0):
            return "zero point must be a constant zero (symmetric quantization)"
    index = _CONSTANT_INPUTS.get(node.op_type)
    if index is not None and len(node.input) > index and node.input[index] and node.input[index] not in constants:
        return f"input {index} (axes) must be a constant"
    return None


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in _ONNX_DOMAINS), 0)


def check_model(model: onnx.ModelProto | str | Path, version: Any) -> dict[str, Any]:
    """The manifest's `tensorrt_compatibility` block: version, source, passed, and every refused node."""
    version = normalize_version(version)
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)  # structure and types only
    table = support_table(version)
    types, constants = tensor_types(model), _constants(model)
    unsupported: list[dict[str, str]] = []
    opset = _opset(model)
    if not table["opset_min"] <= opset <= table["opset_max"]:
        span = f"{table['opset_min']} to {table['opset_max']}" if table["opset_min"] > 1 else f"up to {table['opset_max']}"
        unsupported.append({"node": "(model)", "op": f"opset {opset}", "reason": f"TensorRT {version} parses ONNX opset {span}"})
    for index, node in enumerate(model.graph.node):
        problem = _node_problem(node, table, types, constants)
        if problem:
            unsupported.append({"node": node.name or f"#{index}", "op": node.op_type, "reason": problem})
    return {"tensorrt": version, "source": f"{table['source']} @ {table['commit'][:12]}", "opset": opset,
            "nodes_checked": len(model.graph.node), "passed": not unsupported, "unsupported": unsupported}


def describe(record: dict[str, Any], limit: int = 3) -> str:
    """One line for a status: 'TensorRT 8.5 would refuse 2 node(s): /ln (LayerNormalization: ...); ...'."""
    if record.get("passed"):
        return f"TensorRT {record['tensorrt']} compatibility: passed ({record['nodes_checked']} nodes, {record['source']})"
    bad = record.get("unsupported", [])
    shown = "; ".join(f"{u['node']} ({u['op']}: {u['reason']})" for u in bad[:limit])
    more = f"; and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"TensorRT {record['tensorrt']} would refuse {len(bad)} node(s): {shown}{more}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="check an ONNX file against a TensorRT release's ONNX parser table")
    parser.add_argument("onnx", help="ONNX model file")
    parser.add_argument("--tensorrt", default=DEFAULT_TENSORRT, help=f"TensorRT version (default {DEFAULT_TENSORRT})")
    parser.add_argument("--json", action="store_true", help="print the full record as JSON")
    args = parser.parse_args(argv)
    try:
        record = check_model(args.onnx, args.tensorrt)
    except UserError as exc:
        print(f"edgeclip: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(record) if args.json else describe(record, limit=1000))
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
