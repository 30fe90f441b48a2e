"""The device side of the speed columns, against the workstation's: ONNX bytes written without the `onnx`
package (devices/runner/onnx_proto.py) equal what `onnx` writes, and the roof method is one definition."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgeclip.paths import runner_module

PROTO = runner_module("onnx_proto.py")


def _helper_gemm(op: str, weights: np.ndarray) -> onnx.ModelProto:
    """The roof model as bench/roof.py built it with onnx.helper before the device needed it without onnx."""
    n = weights.shape[0]
    zeros = [numpy_helper.from_array(np.array(128, np.uint8), "a_zero"), numpy_helper.from_array(np.array(0, np.int8), "b_zero")]
    if op == "MatMul":
        nodes, inits, a_type, c_type = [helper.make_node("MatMul", ["A", "B"], ["C"])], [], TensorProto.FLOAT, TensorProto.FLOAT
    elif op == "MatMulInteger":
        nodes, inits = [helper.make_node(op, ["A", "B", "a_zero", "b_zero"], ["C"])], zeros
        a_type, c_type = TensorProto.UINT8, TensorProto.INT32
    else:
        scales = [numpy_helper.from_array(np.array(0.01, np.float32), s) for s in ("a_scale", "b_scale", "c_scale")]
        nodes = [helper.make_node(op, ["A", "a_scale", "a_zero", "B", "b_scale", "b_zero", "c_scale", "c_zero"], ["C"])]
        inits = [*zeros, *scales, numpy_helper.from_array(np.array(128, np.uint8), "c_zero")]
        a_type, c_type = TensorProto.UINT8, TensorProto.UINT8
    graph = helper.make_graph(nodes, "roof", [helper.make_tensor_value_info("A", a_type, [n, n])],
                              [helper.make_tensor_value_info("C", c_type, [n, n])], [numpy_helper.from_array(weights, "B"), *inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("op", ["MatMul", "MatMulInteger", "QLinearMatMul"])
def test_roof_gemm_models_are_the_onnx_packages_byte_for_byte_and_compute_the_product(op):
    rng = np.random.default_rng(1)
    weights = rng.standard_normal((16, 16), dtype=np.float32) if op == "MatMul" else rng.integers(-128, 128, (16, 16), dtype=np.int8)
    written = PROTO.gemm_model(op, weights)
    assert written == _helper_gemm(op, weights).SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(written))
    a = rng.standard_normal((16, 16), dtype=np.float32) if op == "MatMul" else rng.integers(0, 256, (16, 16), dtype=np.uint8)
    out = ort.InferenceSession(written, providers=["CPUExecutionProvider"]).run(None, {"A": a})[0]
    if op == "MatMul":
        np.testing.assert_allclose(out, a @ weights, rtol=1e-4, atol=1e-4)
    elif op == "MatMulInteger":
        np.testing.assert_array_equal(out, (a.astype(np.int32) - 128) @ weights.astype(np.int32))


def _convnet_onnx(size: int) -> bytes:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    buffer = io.BytesIO()
    torch.onnx.export(model, (torch.zeros(1, 3, size, size),), buffer, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    return buffer.getvalue()


def test_resized_input_is_what_the_onnx_package_rewrite_gave():
    """What runtime_onnxruntime.open_resized did with `onnx` before: H, W of the first input set, inferred
    intermediate shapes dropped, output shapes cleared; every other field kept byte for byte."""
    original = _convnet_onnx(8)
    resized, external = PROTO.resize_image_input(original, 32)
    expected = onnx.load_from_string(original)
    dims = expected.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = 32, 32
    del expected.graph.value_info[:]
    for output in expected.graph.output:
        output.type.tensor_type.ClearField("shape")
    assert onnx.load_from_string(resized) == expected and external is False
    assert [d.dim_param or d.dim_value for d in onnx.load_from_string(resized).graph.input[0].type.tensor_type.shape.dim] == \
        ["batch", 3, 32, 32]
    with pytest.raises(ValueError, match="truncated"):
        PROTO.resize_image_input(original[:-7], 32)


def test_open_resized_reads_weights_kept_beside_the_model(tmp_path):
    """An ONNX with external weights (the dynamo exporter's) is resized and runs, its weights found beside it."""
    model = onnx.load_from_string(_convnet_onnx(8))
    onnx.save_model(model, str(tmp_path / "model.onnx"), save_as_external_data=True, location="model.onnx.data",
                    size_threshold=0)
    assert (tmp_path / "model.onnx.data").is_file()
    code = runner_module("artifact_runtime.py").runtime("onnxruntime")
    run = code.open_resized(str(tmp_path / "model.onnx"), 32, 1, {})
    image = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    inline = ort.InferenceSession(PROTO.resize_image_input(_convnet_onnx(8), 32)[0], providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(run(image), inline.run(None, {"image": image})[0], rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.data"]  # nothing left behind


def test_the_roof_method_is_the_runners():
    """bench/roof.py measures with the runner's gemm_roof.py: one size, repeats, clock and method number."""
    from edgeclip.bench import roof

    device = runner_module("gemm_roof.py")
    assert (roof.ROOF_SIZE, roof.ROOF_REPEATS, roof.ROOF_METHOD) == (device.ROOF_SIZE, device.ROOF_REPEATS, device.ROOF_METHOD) \
        == (1024, 5, 3)
    measured = roof.measure_roof(1, size=32, repeats=1)
    assert measured["gemm"] == "32x32x32" and measured["method"] == device.ROOF_METHOD and "numpy" not in measured["by_library"]["fp32"]
