"""ONNX model bytes read and written without the `onnx` package (Python 3.8+, standard library + numpy).

A device has onnxruntime but rarely `onnx` (JetPack, Raspberry Pi OS), yet two device measurements
need ONNX bytes edgeclip did not export: the student with its image input resized to the teacher's
size (equal-resolution timing, `resize_image_input`) and the square GEMMs of the roof (`gemm_model`).
Both are a few fields of ONNX's protobuf messages (onnx/onnx.proto, proto2), so this file speaks the
protobuf wire format directly: every field it does not touch (nodes, initializers, opsets,
metadata) is copied byte for byte. tests/test_device_roof.py checks both against the `onnx` package.

Field numbers used (onnx.proto): ModelProto 1 ir_version, 7 graph, 8 opset_import;
OperatorSetIdProto 1 domain, 2 version; GraphProto 1 node, 2 name, 5 initializer, 11 input, 12 output,
13 value_info; NodeProto 1 input, 2 output, 4 op_type; TensorProto 1 dims, 2 data_type, 8 name,
9 raw_data, 14 data_location; ValueInfoProto 1 name, 2 type; TypeProto 1 tensor_type;
TypeProto.Tensor 1 elem_type, 2 shape; TensorShapeProto 1 dim; Dimension 1 dim_value, 3 denotation.
"""

from __future__ import annotations

from typing import Iterator, Sequence, Tuple

import numpy as np

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5  # protobuf wire types (3/4, groups, do not occur in ONNX)
ELEMENT_TYPES = {np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.int32): 6}
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL: the weights live in a file beside the model
IR_VERSION, OPSET = 8, 13  # what bench/roof.py's onnx-built roof models declared: any onnxruntime >= 1.10 runs them


# ---- the wire format ---------------------------------------------------------------------------------

def _read_varint(data: memoryview, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values are ten bytes of two's complement
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def fields(data: bytes) -> Iterator[Tuple[int, int, object, memoryview]]:
    """(field number, wire type, value, the field's bytes as written) for each field of one message;
    value is an int for varints, else the payload bytes (a memoryview: weights are not copied)."""
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        start = pos
        key, pos = _read_varint(view, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _read_varint(view, pos)
        elif wire == LENGTH:
            length, pos = _read_varint(view, pos)
            value, pos = view[pos:pos + length], pos + length
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            value, pos = view[pos:pos + width], pos + width
        else:
            raise ValueError(f"not an ONNX model: protobuf wire type {wire} at byte {start}")
        if pos > len(view):
            raise ValueError("not an ONNX model: a field runs past the end of the file (truncated?)")
        yield number, wire, value, view[start:pos]


def message(number: int, payload: bytes) -> bytes:
    """A length-delimited field (sub-message, string or bytes)."""
    return varint(number << 3 | LENGTH) + varint(len(payload)) + bytes(payload)


def integer(number: int, value: int) -> bytes:
    return varint(number << 3 | VARINT) + varint(int(value))


def text(number: int, value: str) -> bytes:
    return message(number, value.encode("utf-8"))


# ---- resizing a model's image input ---------------------------------------------------------------

def _image_shape(shape: bytes, size: int) -> bytes:
    """TensorShapeProto with dims 2 and 3 (H, W of NCHW) set to `size`, other dims as they were."""
    out, index = [], 0
    for number, _, value, raw in fields(shape):
        if number == 1:
            if index in (2, 3):  # a fixed dim_value or a symbolic dim_param both become `size`
                kept = b"".join(bytes(r) for n, _, _, r in fields(value) if n == 3)  # keep a denotation
                raw = message(1, integer(1, size) + kept)
            index += 1
        out.append(bytes(raw))
    if index != 4:
        raise ValueError(f"the first graph input has {index} dims, not 4 (N, C, H, W)")
    return b"".join(out)


def _value_info(info: bytes, shape_fn) -> bytes:
    """ValueInfoProto with its tensor shape replaced by shape_fn(shape) (None: shape dropped)."""
    def tensor(payload):
        parts = []
        for number, _, value, raw in fields(payload):
            if number == 2:
                new = shape_fn(bytes(value))
                parts.append(message(2, new) if new is not None else b"")
            else:
                parts.append(bytes(raw))
        return b"".join(parts)

    def type_proto(payload):
        return b"".join(message(1, tensor(value)) if number == 1 else bytes(raw) for number, _, value, raw in fields(payload))

    return b"".join(message(2, type_proto(value)) if number == 2 else bytes(raw) for number, _, value, raw in fields(info))


def _is_external(initializer: memoryview) -> bool:
    return any(number == 14 and value == EXTERNAL for number, _, value, _ in fields(initializer))


def resize_image_input(model: bytes, size: int) -> Tuple[bytes, bool]:
    """(the model with its first input's H and W set to `size`, whether its weights are external).

    As the onnx-package version did: the first graph input's dims 2 and 3 become `size`, the
    intermediate shapes inferred for the native size (value_info) are dropped and the graph outputs
    lose their shapes, so onnxruntime infers them again for the new size."""
    external = False

    def graph(payload: memoryview) -> bytes:
        nonlocal external
        parts, inputs = [], 0
        for number, _, value, raw in fields(payload):
            if number == 11 and inputs == 0:
                parts.append(message(11, _value_info(bytes(value), lambda shape: _image_shape(shape, size))))
                inputs += 1
            elif number == 12:
                parts.append(message(12, _value_info(bytes(value), lambda shape: None)))
            elif number == 13:
                continue
            else:
                inputs += number == 11
                external = external or (number == 5 and _is_external(value))
                parts.append(raw)
        if inputs == 0:
            raise ValueError("the model's graph has no input")
        return b"".join(bytes(p) for p in parts)

    parts, found = [], False
    for number, _, value, raw in fields(model):
        if number == 7:
            parts.append(message(7, graph(value)))
            found = True
        else:
            parts.append(bytes(raw))
    if not found:
        raise ValueError("not an ONNX model: no graph")
    return b"".join(parts), external


# ---- building the roof's GEMM models ----------------------------------------------------------------

def tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto with raw little-endian data (an empty dims list is a scalar)."""
    array = np.asarray(array)
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return (b"".join(integer(1, d) for d in array.shape) + integer(2, ELEMENT_TYPES[array.dtype])
            + text(8, name) + message(9, data))


def value_info(name: str, dtype: type, shape: Sequence[int]) -> bytes:
    dims = b"".join(message(1, integer(1, d)) for d in shape)
    tensor_type = integer(1, ELEMENT_TYPES[np.dtype(dtype)]) + message(2, dims)
    return text(1, name) + message(2, message(1, tensor_type))


def node(op_type: str, inputs: Sequence[str], outputs: Sequence[str]) -> bytes:
    return b"".join(text(1, i) for i in inputs) + b"".join(text(2, o) for o in outputs) + text(4, op_type)


def model(nodes: Sequence[bytes], initializers: Sequence[bytes], inputs: Sequence[bytes], outputs: Sequence[bytes],
          name: str = "roof") -> bytes:
    graph = (b"".join(message(1, n) for n in nodes) + text(2, name) + b"".join(message(5, t) for t in initializers)
             + b"".join(message(11, i) for i in inputs) + b"".join(message(12, o) for o in outputs))
    opset = text(1, "") + integer(2, OPSET)
    return integer(1, IR_VERSION) + message(7, graph) + message(8, opset)


def gemm_model(op: str, weights: np.ndarray) -> bytes:
    """A size x size GEMM with constant weights B (onnxruntime pre-packs them, as in a real model):
    `MatMul` fp32; `MatMulInteger` / `QLinearMatMul` with u8 activations (zero point 128) x s8 weights."""
    n = int(weights.shape[0])
    if op == "MatMul":
        return model([node("MatMul", ["A", "B"], ["C"])], [tensor("B", weights)],
                     [value_info("A", np.float32, [n, n])], [value_info("C", np.float32, [n, n])])
    zeros = [tensor("a_zero", np.array(128, np.uint8)), tensor("b_zero", np.array(0, np.int8))]
    if op == "MatMulInteger":
        return model([node(op, ["A", "B", "a_zero", "b_zero"], ["C"])], [tensor("B", weights), *zeros],
                     [value_info("A", np.uint8, [n, n])], [value_info("C", np.int32, [n, n])])
    if op == "QLinearMatMul":
        scales = [tensor(s, np.array(0.01, np.float32)) for s in ("a_scale", "b_scale", "c_scale")]
        return model([node(op, ["A", "a_scale", "a_zero", "B", "b_scale", "b_zero", "c_scale", "c_zero"], ["C"])],
                     [tensor("B", weights), *zeros, *scales, tensor("c_zero", np.array(128, np.uint8))],
                     [value_info("A", np.uint8, [n, n])], [value_info("C", np.uint8, [n, n])])
    raise ValueError(f"no roof GEMM '{op}' (MatMul, MatMulInteger, QLinearMatMul)")

