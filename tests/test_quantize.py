"""int8: the method chosen per architecture, and that quantized models still agree with PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from edgeclip.compress.quantize import choose_int8_method, method_needs_calibration
from edgeclip.errors import UserError
from edgeclip.exporters import towers
from edgeclip.exporters.export import export_model
from edgeclip.exporters.testing import structured_images, tiny_clip, tiny_tokens
from edgeclip.runtimes import load_runtime


@pytest.fixture(scope="module")
def data():
    calibration, _ = structured_images(64, seed=11)
    test_images, test_labels = structured_images(100, seed=12)
    return calibration, test_images, test_labels


def _top1(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).argmax(1).numpy()


def _op_types(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize(
    ("backend", "kind", "transformer", "calibrated", "expected"),
    [
        ("onnx", "classifier", False, True, "ort_static_qdq"),
        ("onnx", "classifier", True, True, "ort_dynamic"),
        ("onnx", "image_encoder", True, False, "ort_dynamic"),
        ("onnx", "text_encoder", True, False, "ort_dynamic"),
        ("onnx", "text_encoder", True, True, "ort_static_qdq_matmul"),
        ("openvino", "classifier", False, True, "nncf_ptq"),
        ("openvino", "image_encoder", True, True, "nncf_ptq_transformer"),
        ("openvino", "text_encoder", True, False, "nncf_weight_int8"),
        ("tensorrt", "classifier", False, True, "trt_static_qdq"),
    ],
)
def test_int8_method_table(backend, kind, transformer, calibrated, expected):
    assert choose_int8_method(backend=backend, kind=kind, transformer=transformer, has_calibration=calibrated) == expected
    assert method_needs_calibration(expected) == (expected not in ("ort_dynamic", "nncf_weight_int8"))


def test_onnx_static_qdq_cnn_keeps_top1(cnn, data, tmp_path):
    model, spec = cnn
    calibration, test_images, test_labels = data
    artifact = export_model(model, spec, "onnx", "int8", tmp_path / "onnx-int8",
                            calibration=calibration, parity_inputs=test_images)
    quant = artifact.manifest["quantization"]
    assert quant["method"] == "ort_static_qdq" and quant["architecture"] == "cnn"
    assert quant["format"] == "QDQ" and quant["per_channel"] and quant["calibration_count"] == 64
    ops = _op_types(artifact.model_path)
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "ConvInteger" not in ops
    predicted = load_runtime(artifact.path).run(test_images).argmax(1)
    agreement = (predicted == _top1(model, test_images)).mean()
    assert agreement >= 0.9, agreement
    assert (predicted == test_labels).mean() >= 0.9  # still right on the task, not just self-consistent
    assert artifact.parity["passed"] and artifact.parity["thresholds"]["min_top1_agreement"] == 0.9


def test_openvino_nncf_int8_cnn_keeps_top1(cnn, data, tmp_path):
    pytest.importorskip("nncf")
    model, spec = cnn
    calibration, test_images, _ = data
    artifact = export_model(model, spec, "openvino", "int8", tmp_path / "openvino-int8",
                            calibration=calibration, parity_inputs=test_images)
    assert artifact.manifest["quantization"]["method"] == "nncf_ptq"
    assert "FakeQuantize" in (artifact.path / "model.xml").read_text()
    predicted = load_runtime(artifact.path).run(test_images).argmax(1)
    assert (predicted == _top1(model, test_images)).mean() >= 0.9
    assert artifact.parity["passed"] is True


def test_transformer_gets_dynamic_int8_on_matmul_only(tmp_path):
    clip = tiny_clip()
    spec = towers.image_tower_spec(clip, "tiny-vit")
    images = np.random.default_rng(0).normal(size=(8, 3, 32, 32)).astype(np.float32)
    artifact = export_model(towers.ImageTower(clip), spec, "onnx", "int8", tmp_path / "vit-int8", parity_inputs=images)
    quant = artifact.manifest["quantization"]
    assert quant["method"] == "ort_dynamic" and quant["architecture"] == "transformer"
    assert quant["calibration_count"] == 0  # no calibration was needed
    ops = _op_types(artifact.model_path)
    assert "DynamicQuantizeLinear" in ops and ({"MatMulInteger", "DynamicQuantizeMatMul"} & ops)
    assert "ConvInteger" not in ops  # the patch-embedding conv stays float (dynamic conv is slow)
    assert artifact.parity["mean_cosine"] > 0.98 and artifact.parity["passed"]


def test_text_encoder_static_int8_only_touches_matmul(tmp_path):
    clip = tiny_clip()
    spec = towers.text_tower_spec(clip, "tiny-text")
    calibration = tiny_tokens([3, 5, 8, 12, 16, 4, 9, 11], seed=1)
    artifact = export_model(towers.TextTower(clip), spec, "onnx", "int8", tmp_path / "text-int8",
                            calibration=calibration, parity_inputs=tiny_tokens([4, 7, 16], seed=2))
    assert artifact.manifest["quantization"]["method"] == "ort_static_qdq_matmul"
    graph = onnx.load(str(artifact.model_path)).graph
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    dequant_users = {op for node in graph.node if node.op_type == "DequantizeLinear"
                     for op in consumers.get(node.output[0], [])}
    assert dequant_users and dequant_users <= {"MatMul", "Gemm"}, dequant_users
    assert artifact.parity["mean_cosine"] > 0.95


def test_tensorrt_int8_is_symmetric_qdq(cnn, data, tmp_path):
    model, spec = cnn
    calibration, test_images, _ = data
    artifact = export_model(model, spec, "tensorrt", "int8", tmp_path / "trt-int8",
                            calibration=calibration, parity_inputs=test_images)
    assert artifact.manifest["quantization"]["method"] == "trt_static_qdq"
    graph = onnx.load(str(artifact.path / "model.onnx")).graph
    initializers = {init.name: init for init in graph.initializer}
    zero_points = [onnx.numpy_helper.to_array(initializers[node.input[2]])
                   for node in graph.node if node.op_type == "QuantizeLinear" and len(node.input) > 2]
    assert zero_points and all(zp.dtype == np.int8 and not zp.any() for zp in zero_points)  # symmetric int8
    assert "--int8" in artifact.manifest["trtexec"] and artifact.parity["passed"]


def test_static_int8_without_calibration_is_a_user_error(cnn, tmp_path):
    model, spec = cnn
    with pytest.raises(UserError, match="calibration"):
        export_model(model, spec, "openvino", "int8", tmp_path / "a")
    with pytest.raises(UserError, match="empty"):
        export_model(model, spec, "tensorrt", "int8", tmp_path / "a", calibration=np.zeros((0, 3, 32, 32), np.float32))
    assert not (tmp_path / "a").exists()
