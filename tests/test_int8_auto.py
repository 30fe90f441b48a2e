"""int8 that holds: sensitivity search, float islands, ignored scope, calibration choice, speed check, QAT, fp16."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgeclip.compress import cpu
from edgeclip.compress.int8 import Int8Options
from edgeclip.compress.qat import ActivationFakeQuant, QatConfig, WeightFakeQuant, attach_fake_quant, detach_fake_quant, kd_target, quantization_aware_finetune
from edgeclip.compress.sensitivity import divergence, fidelity, search_float_layers
from edgeclip.errors import UserError
from edgeclip.exporters.export import export_model
from edgeclip.exporters.testing import structured_images, tiny_cnn_spec
from edgeclip.runtimes import load_runtime


@pytest.fixture(scope="module")
def data():
    calibration, _ = structured_images(64, seed=21)
    validation, _ = structured_images(64, seed=22)
    test_images, test_labels = structured_images(64, seed=23)
    return calibration, validation, test_images, test_labels


# ---- sensitivity maths and search (a fake backend whose answers are known) ---------------------

def test_divergence_and_fidelity_by_hand():
    reference = np.array([[2.0, 0.0], [0.0, 1.0]])
    outputs = np.array([[0.0, 0.0], [0.0, 1.0]])
    p = np.exp(2) / (np.exp(2) + 1)  # softmax([2, 0])[0]
    expected_kl = (p * np.log(p / 0.5) + (1 - p) * np.log((1 - p) / 0.5)) / 2  # second row identical
    assert divergence(outputs, reference, logits=True) == pytest.approx(expected_kl)
    assert fidelity(outputs, reference, logits=True) == 1.0  # a tie resolves to the first class, like the reference
    assert fidelity(np.array([[0.0, 1.0], [0.0, 1.0]]), reference, logits=True) == 0.5
    emb = np.array([[1.0, 0.0]])
    assert divergence(np.array([[1.0, 1.0]]), emb, logits=False) == pytest.approx(1 - 1 / np.sqrt(2))


class FakeBackend:
    """Layer i adds noise e_i to one sample's winning logit; reverting it removes that noise."""

    backend = "fake"

    def __init__(self, flips: dict[str, int]) -> None:
        self.flips = flips  # layer → index of the validation sample it flips

    def layers(self):
        return list(self.flips) + ["harmless_a", "harmless_b"]

    def build(self, float_layers):
        def run(batch):
            out = np.tile(np.array([[1.0, 0.0]]), (len(batch), 1))
            for layer, index in self.flips.items():
                if layer not in float_layers:
                    out[index] = [0.0, 1.0 + index]
            return out
        return run


def test_search_reverts_exactly_the_breaking_layers():
    backend = FakeBackend({"conv_a": 0, "conv_b": 1, "conv_c": 2})
    images = np.zeros((20, 1), np.float32)
    reference = np.tile(np.array([[1.0, 0.0]]), (20, 1))
    result = search_float_layers(backend, images, reference, logits=True, target=1.0, max_float=5)
    assert result.all_int8_fidelity == pytest.approx(17 / 20)
    assert result.target_met and sorted(result.float_layers) == ["conv_a", "conv_b", "conv_c"]
    assert [s.name for s in result.ranking[3:]] == ["harmless_a", "harmless_b"]  # zero gain ranks last
    partial = search_float_layers(backend, images, reference, logits=True, target=0.95, max_float=5)
    assert len(partial.float_layers) == 2 and partial.fidelity == pytest.approx(0.95)  # fewest that reach the target
    capped = search_float_layers(backend, images, reference, logits=True, target=1.0, max_float=1)
    assert not capped.target_met and len(capped.float_layers) == 1


# ---- ORT / OpenVINO auto mode on a real (tiny, trained) CNN ------------------------------------

def test_onnx_auto_records_cpu_weights_validation_and_speed(cnn, data, tmp_path):
    model, spec = cnn
    calibration, validation, test_images, _ = data
    options = Int8Options(validation=validation, speed_seconds=0.5)
    artifact = export_model(model, spec, "onnx", "int8", tmp_path / "a", calibration=calibration,
                            parity_inputs=test_images, int8=options)
    quant = artifact.manifest["quantization"]
    assert quant["method"] in ("ort_static_qdq_auto", "ort_static_qdq_mixed")
    assert quant["weights"] == cpu.ort_int8_weights()[0] and quant["weights_why"]
    assert quant["validation"]["count"] == 64 and quant["validation"]["metric"] == "top1_agreement"
    assert quant["speed_check"]["measured"] and quant["speed_check"]["fp32_p50_ms"] > 0
    assert quant["options"]["validation_count"] == 64
    assert artifact.parity["passed"]


def test_reverted_layers_read_float_inputs(cnn, data, tmp_path):
    from edgeclip.compress.ort_int8 import OrtRevertible, quantize_static_qdq, revert_to_float
    from edgeclip.exporters.onnx_export import torch_to_onnx

    model, spec = cnn
    calibration = data[0]
    torch_to_onnx(model, spec, tmp_path / "fp32.onnx")
    quantize_static_qdq(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", calibration, "image")
    revertible = OrtRevertible(tmp_path / "int8.onnx")
    target = next(name for name in revertible.layers() if "Conv" in name)
    graph = revert_to_float(revertible.model, [target]).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    node = next(n for n in graph.node if n.name == target)
    assert all(producers.get(name) != "DequantizeLinear" for name in node.input)  # float activations and weights
    outputs = revertible.build([target])(data[2])
    assert outputs.shape == (64, 4)


class ReluHardswishNet(nn.Module):
    """Conv→ReLU (onnxruntime folds that ReLU into the quantization range) and a HardSwish (which the
    exporter decomposes into unnamed HardSigmoid·Mul nodes): the two cases that kept a reverted
    graph from being float."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu(self.conv1(image))
        x = nn.functional.hardswish(self.conv2(x))
        return self.head(x.mean((2, 3)))


def test_reverting_every_layer_gives_back_the_float_model(data, tmp_path):
    from edgeclip.compress import ort_int8
    from edgeclip.exporters.onnx_export import torch_to_onnx

    torch.manual_seed(0)
    model, spec = ReluHardswishNet().eval(), tiny_cnn_spec()
    calibration, _, test_images, _ = data
    torch_to_onnx(model, spec, tmp_path / "fp32.onnx")
    pre = ort_int8.preprocessed(tmp_path / "fp32.onnx", tmp_path)
    float_graph = onnx.load(str(pre)).graph
    assert all(node.name for node in float_graph.node)  # every node addressable by the search
    details = ort_int8.quantize_static_qdq(pre, tmp_path / "int8.onnx", calibration, "image", weights="uint8")
    assert details["graph_outputs"] == "float"
    quantized = onnx.load(str(tmp_path / "int8.onnx")).graph
    producers = {out: node.op_type for node in quantized.node for out in node.output}
    assert producers[quantized.output[0].name] == "Gemm"  # logits are not rounded to 8 bits
    assert sum(n.op_type == "Relu" for n in quantized.node) == sum(n.op_type == "Relu" for n in float_graph.node) == 1
    reference = ort_int8.session_runner(pre)(test_images)
    revertible = ort_int8.OrtRevertible(tmp_path / "int8.onnx", pre)
    def error(outputs: np.ndarray) -> float:
        return float(np.abs(outputs - reference).max() / np.abs(reference).max())

    reverted = error(revertible.build(revertible.layers())(test_images))
    # With every quantized node reverted it is the float model again (original weights, the ReLU
    # kept, the HardSwish halves reverted too), to float rounding; the int8 graph really is rounded.
    assert reverted < 1e-5
    assert error(revertible.build([])(test_images)) > 1e-3
    # Without the float model, weights fall back to their dequantized int8 values: not the float model.
    assert error(ort_int8.OrtRevertible(tmp_path / "int8.onnx").build(revertible.layers())(test_images)) > 100 * max(reverted, 1e-7)


def test_ignored_scope_is_kept_float_and_unknown_names_are_listed(cnn, data, tmp_path):
    model, spec = cnn
    calibration, _, test_images, _ = data
    options = Int8Options(ignored_scope=["/head/Gemm"], mixed=False, speed_check=False)
    artifact = export_model(model, spec, "onnx", "int8", tmp_path / "a", calibration=calibration,
                            parity_inputs=test_images, int8=options)
    graph = onnx.load(str(artifact.model_path)).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    gemm = next(n for n in graph.node if n.name == "/head/Gemm")
    assert producers.get(gemm.input[1]) != "DequantizeLinear"  # its weight stayed float
    bad = Int8Options(ignored_scope=["/head/Gemmm"], mixed=False, speed_check=False)
    with pytest.raises(UserError, match=r"'/head/Gemmm' match no layer.*/features/features.0/Conv"):
        export_model(model, spec, "onnx", "int8", tmp_path / "b", calibration=calibration, int8=bad)
    assert not (tmp_path / "b").exists()


def test_openvino_ignored_scope_accepts_onnx_names_and_lists_unknown(cnn, data, tmp_path):
    pytest.importorskip("nncf")
    model, spec = cnn
    calibration, _, test_images, _ = data
    options = Int8Options(ignored_scope=["/head/Gemm"], mixed=False, speed_check=False, calibration_method="percentile")
    artifact = export_model(model, spec, "openvino", "int8", tmp_path / "ov", calibration=calibration,
                            parity_inputs=test_images, int8=options)
    quant = artifact.manifest["quantization"]
    assert quant["ignored_scope"] and all(name.startswith("/head/Gemm") for name in quant["ignored_scope"])
    assert "MEAN_QUANTILE" in quant["calibration_method"]
    with pytest.raises(UserError, match="match no layer of the OpenVINO model"):
        export_model(model, spec, "openvino", "int8", tmp_path / "b", calibration=calibration,
                     int8=Int8Options(ignored_scope=["nope"], mixed=False, speed_check=False))


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_calibration_methods_are_recorded(cnn, data, tmp_path, method):
    model, spec = cnn
    calibration, _, test_images, test_labels = data
    options = Int8Options(calibration_method=method, mixed=False, speed_check=False)
    artifact = export_model(model, spec, "onnx", "int8", tmp_path / method, calibration=calibration,
                            parity_inputs=test_images, int8=options)
    assert artifact.manifest["quantization"]["calibration_method"].startswith(method)
    predicted = load_runtime(artifact.path).run(test_images).argmax(1)
    assert (predicted == test_labels).mean() >= 0.9


def test_bad_int8_options_are_user_errors():
    for options, message in ((Int8Options(mode="fast"), "unknown int8 mode"),
                             (Int8Options(calibration_method="kl"), "unknown calibration method"),
                             (Int8Options(target_agreement=1.5), "target agreement")):
        with pytest.raises(UserError, match=message):
            options.check()


def test_classic_mode_keeps_the_original_method(cnn, data, tmp_path):
    model, spec = cnn
    artifact = export_model(model, spec, "onnx", "int8", tmp_path / "c", calibration=data[0],
                            int8=Int8Options(mode="classic"))
    assert artifact.manifest["quantization"]["method"] == "ort_static_qdq"


def test_ort_weight_type_follows_vnni(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_features", lambda: {"arch": "x86_64", "vnni": False, "model": "x"})
    assert cpu.ort_int8_weights()[0] == "uint8"
    monkeypatch.setattr(cpu, "cpu_features", lambda: {"arch": "x86_64", "vnni": True, "model": "x"})
    assert cpu.ort_int8_weights()[0] == "int8"
    monkeypatch.setattr(cpu, "cpu_features", lambda: {"arch": "aarch64", "vnni": None, "model": "x"})
    assert cpu.ort_int8_weights()[0] == "int8"


# ---- QAT ---------------------------------------------------------------------------------------

def test_weight_fake_quant_is_per_channel_symmetric_int8():
    weight = torch.tensor([[1.0, -0.5, 0.26], [0.02, 0.01, -0.04]])
    out = WeightFakeQuant(symmetric=True)(weight)
    scale0, scale1 = 1.0 / 127, 0.04 / 127
    expected = torch.tensor([[127 * scale0, -64 * scale0, 33 * scale0], [64 * scale1, 32 * scale1, -127 * scale1]])
    assert torch.allclose(out, expected, atol=1e-7)  # round-half-even: -63.5 → -64, 31.75 → 32


def test_activation_fake_quant_uint8_range_contains_zero():
    fq = ActivationFakeQuant()
    x = torch.tensor([0.5, 1.0, 2.55])
    out = fq(x)  # observes [0.5, 2.55] → range [0, 2.55], scale 0.01, zero point 0
    assert torch.allclose(out, torch.tensor([0.5, 1.0, 2.55]), atol=1e-6)
    fq.observing = False
    assert torch.allclose(fq(torch.tensor([3.0, -1.0, 0.004])), torch.tensor([2.55, 0.0, 0.0]), atol=1e-6)


def test_kd_target_mixes_probabilities():
    teacher, fp32 = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    mixed = kd_target(teacher, fp32, 0.25).softmax(1)
    expected = 0.75 * teacher.softmax(1) + 0.25 * fp32.softmax(1)
    assert torch.allclose(mixed, expected, atol=1e-6)
    assert torch.equal(kd_target(None, fp32, 0.5), fp32)


def test_fake_quant_detaches_cleanly(cnn):
    model, _ = cnn
    import copy

    clone = copy.deepcopy(model)
    handle = attach_fake_quant(clone, float_modules=("head",))
    assert "head" not in handle.weights and "features.0" in handle.weights
    detach_fake_quant(clone, handle)
    assert not any(hasattr(m, "parametrizations") for m in clone.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(clone(x), model(x))


def test_qat_keeps_decisions_and_needs_data(cnn, data):
    model, _ = cnn
    calibration, _, test_images, _ = data
    images, labels = structured_images(128, seed=31)
    tuned, record = quantization_aware_finetune(model, torch.from_numpy(images), torch.from_numpy(labels), teacher_logits=None,
                                                config=QatConfig(epochs=1, batch_size=32, lr=0.005), progress=False)
    with torch.no_grad():
        x = torch.from_numpy(test_images)
        assert (tuned(x).argmax(1) == model(x).argmax(1)).float().mean() >= 0.95
    assert record["kd_target"] == "fp32 student" and record["images"] == 128 and len(record["history"]) == 1
    with pytest.raises(UserError, match="QAT needs"):
        quantization_aware_finetune(model, torch.zeros(0, 3, 32, 32), torch.zeros(0, dtype=torch.long), teacher_logits=None,
                                    config=QatConfig(epochs=1), progress=False)


def test_compress_qat_cli_without_images_exits_2_and_writes_nothing(tmp_path, capsys):
    from edgeclip.cli import main
    from edgeclip.students import create_student
    from edgeclip.students.checkpoint import save_checkpoint

    empty = tmp_path / "empty"
    (empty / "train" / "a").mkdir(parents=True)
    (empty / "train" / "b").mkdir(parents=True)
    (empty / "test" / "a").mkdir(parents=True)
    (empty / "test" / "b").mkdir(parents=True)
    model, spec = create_student("test_resnet", class_names=["a", "b"])
    save_checkpoint(tmp_path / "s", model, spec, student_name="test_resnet")
    code = main(["compress", "qat", "--model", str(tmp_path / "s"), "--data", str(empty), "--out", str(tmp_path / "q"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("no images" in err or "needs real" in err), err
    assert not (tmp_path / "q").exists()


# ---- fp16 and SmoothQuant ------------------------------------------------------------------------

class DecomposedLayerNorm(nn.Module):
    """LayerNorm written out (ReduceMean/Pow/Sqrt in ONNX), fed large activations."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 64)
        self.out = nn.Linear(64, 4)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.fc(image.flatten(1)[:, :16]) * 300.0
        centered = x - x.mean(-1, keepdim=True)
        x = centered / torch.sqrt(centered.pow(2).mean(-1, keepdim=True) + 1e-5)
        return self.out(x)


def _input_dtypes(path, op_type):
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    types = {v.name: v.type.tensor_type.elem_type for v in list(model.graph.value_info) + list(model.graph.input)}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    return {types.get(node.input[0]) for node in model.graph.node if node.op_type == op_type}


def test_fp16_keeps_normalization_in_fp32(tmp_path):
    from edgeclip.compress.ort_int8 import session_runner
    from edgeclip.exporters.onnx_export import convert_to_fp16, torch_to_onnx

    torch.manual_seed(0)
    model, spec = DecomposedLayerNorm().eval(), tiny_cnn_spec()
    torch_to_onnx(model, spec, tmp_path / "fp32.onnx")
    # Why: the centred activations reach ~700 here; 700² is past fp16's largest value (65504).
    with np.errstate(over="ignore"):
        assert np.isinf(np.float16(700.0) * np.float16(700.0))
    convert_to_fp16(tmp_path / "fp32.onnx", tmp_path / "naive.onnx", keep_fp32_ops=())
    assert _input_dtypes(tmp_path / "naive.onnx", "Pow") == {onnx.TensorProto.FLOAT16}
    record = convert_to_fp16(tmp_path / "fp32.onnx", tmp_path / "safe.onnx")
    for op in ("Pow", "ReduceMean", "Add", "Sqrt"):  # Add: the epsilon on the variance
        assert _input_dtypes(tmp_path / "safe.onnx", op) == {onnx.TensorProto.FLOAT}, op
    assert _input_dtypes(tmp_path / "safe.onnx", "Gemm") == {onnx.TensorProto.FLOAT16}  # the matmuls do run in fp16
    assert {"ReduceMean", "Pow", "Sqrt"} <= set(record["kept_fp32_ops"]) and "/Add" in record["variance_chain_nodes"]
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        reference = model(x).numpy()
    safe = session_runner(tmp_path / "safe.onnx")(x.numpy())
    assert np.isfinite(safe).all() and np.abs(safe - reference).max() < 0.05


def test_fp16_artifact_records_what_stayed_fp32(tmp_path):
    from edgeclip.exporters import towers
    from edgeclip.exporters.testing import tiny_clip

    clip = tiny_clip()
    spec = towers.image_tower_spec(clip, "tiny-vit")
    images = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    artifact = export_model(towers.ImageTower(clip), spec, "onnx", "fp16", tmp_path / "fp16", parity_inputs=images)
    assert "LayerNormalization" in artifact.manifest["fp16"]["kept_fp32_ops"]
    assert artifact.parity["passed"] and artifact.parity["thresholds"]["min_mean_cosine"] == 0.999


def test_smoothquant_preserves_the_function_and_flattens_outliers():
    from edgeclip.compress.smoothquant import smooth_quant, smoothing_pairs
    from edgeclip.exporters import towers
    from edgeclip.exporters.testing import tiny_clip

    clip = tiny_clip()
    tower = towers.ImageTower(clip).eval()
    block = clip.visual.transformer.resblocks[0]
    with torch.no_grad():
        block.ln_1.weight[3] = 40.0  # an outlier channel, as trained transformers have
    images = np.random.default_rng(0).normal(size=(16, 3, 32, 32)).astype(np.float32)
    x = torch.from_numpy(images)
    with torch.no_grad():
        before = tower(x)
        peak_before = block.ln_1(clip.visual.ln_pre(torch.randn(2, 17, 64))).abs().amax((0, 1))
    record = smooth_quant(tower, images, alpha=0.5)
    assert record["applied"] and record["pairs"] == 4  # 2 visual blocks × (ln_1 → qkv, ln_2 → c_fc)
    assert len(smoothing_pairs(tower)) == 8  # the text tower's blocks are found but never see an image
    with torch.no_grad():
        assert torch.allclose(tower(x), before, atol=1e-4)
        peak_after = block.ln_1(clip.visual.ln_pre(torch.randn(2, 17, 64))).abs().amax((0, 1))
    assert peak_after.max() / peak_after.median() < peak_before.max() / peak_before.median()


# ---- `edgeclip compress int8|qat` end to end on a tiny digits student --------------------------

@pytest.fixture(scope="module")
def digits_student(tmp_path_factory):
    from edgeclip.data import open_image_dataset
    from edgeclip.students import create_student
    from edgeclip.students.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model, spec = create_student("test_resnet", class_names=open_image_dataset("digits", "train").class_names)
    directory = tmp_path_factory.mktemp("digits") / "student"
    save_checkpoint(directory, model, spec, student_name="test_resnet", extra={"data": "digits"})
    return directory


def test_compress_int8_cli_end_to_end_and_unknown_scope(digits_student, tmp_path, capsys):
    from edgeclip.cli import main

    out = tmp_path / "int8"
    code = main(["compress", "int8", "--model", str(digits_student), "--backend", "onnx", "--calibration-count", "32",
                 "--validation-count", "32", "--parity-count", "32", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "speed on this CPU" in printed and "validation (32 train images)" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    quant = manifest["quantization"]
    # exit 1 exactly when parity failed or int8 is not faster than fp32 here (the command's contract)
    assert code == (0 if manifest["parity"].get("passed") is not False and quant["speed_check"]["int8_faster"] else 1)
    assert quant["options"]["validation_count"] == 32 and quant["speed_check"]["measured"]
    bad = tmp_path / "bad"
    assert main(["compress", "int8", "--model", str(digits_student), "--ignored-scope", "/nope/Conv", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "'/nope/Conv' match no layer" in err and "/stem/stem.0/Conv" in err and len(err.splitlines()) == 1
    assert not bad.exists()


def test_compress_qat_cli_end_to_end(digits_student, tmp_path, capsys):
    from edgeclip.cli import main
    from edgeclip.students.checkpoint import load_checkpoint

    out = tmp_path / "qat"
    assert main(["compress", "qat", "--model", str(digits_student), "--epochs", "1", "--batch-size", "128",
                 "--teacher", "self", "--out", str(out), "--quiet"]) == 0
    assert "next: edgeclip export" in capsys.readouterr().out
    _, _, info = load_checkpoint(out)
    assert info["extra"]["qat"]["kd_target"] == "fp32 student" and info["extra"]["qat"]["after"]["test_images"] == 359


def test_smoothquant_runs_inside_int8_export_and_is_recorded(tmp_path):
    from edgeclip.exporters import towers
    from edgeclip.exporters.testing import tiny_clip

    clip = tiny_clip()
    spec = towers.image_tower_spec(clip, "tiny-vit")
    images = np.random.default_rng(0).normal(size=(16, 3, 32, 32)).astype(np.float32)
    options = Int8Options(smoothquant_alpha=0.5, speed_check=False, mixed=False)
    artifact = export_model(towers.ImageTower(clip), spec, "onnx", "int8", tmp_path / "sq", calibration=images,
                            parity_inputs=images, int8=options)
    quant = artifact.manifest["quantization"]
    assert quant["method"] == "ort_dynamic" and quant["options"]["smoothquant"]["pairs"] == 4
    assert artifact.parity["passed"]  # the smoothed model is the same function: parity against the original holds
