"""A failed check never reads as a pass: the TensorRT engine is checked on the device, the fp16
artifact's parity is checked in fp16, CoreML off macOS is "not verified", and a parity failure
fails the row for every artifact status — in the harness and in the device runner alike.

TensorRT cannot be installed here; a stand-in trtexec (tests/support/fake_trtexec.py, running the
ONNX with onnxruntime) plays the device, and a corrupting one must make parity fail. The kits are
written for one TensorRT release (8.5 / 8.6 / 10.3) and checked against its onnx-tensorrt operator
table; the stand-in parses with the same table, so a device whose TensorRT would refuse a kit
refuses it here too, and that failure reaches the report with trtexec's error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from edgeclip.bench.harness import bench_artifacts
from edgeclip.config import BenchConfig
from edgeclip.errors import UserError
from edgeclip.exporters import towers
from edgeclip.exporters.export import export_model
from edgeclip.exporters.tensorrt_rewrites import decompose_layer_norm
from edgeclip.exporters.tensorrt_support import check_model, normalize_version, tensor_types
from edgeclip.exporters.testing import structured_images, tiny_clip, tiny_cnn_spec, tiny_tokens, trained_tiny_cnn
from edgeclip.paths import runner_path

FAST = BenchConfig(warmup=1, iterations=3, max_seconds=1.0, throughput_batch=0, memory=False)


pytestmark = pytest.mark.usefixtures("private_cache")


def _export_trt(cnn, directory, precision="fp32"):
    model, spec = cnn
    images, _ = structured_images(24, seed=5)
    return export_model(model, spec, "tensorrt", precision, directory, calibration=images, parity_inputs=images)


def _build(artifact, env_extra=None, trtexec=True):
    env = {**os.environ, **(env_extra or {})}
    if not trtexec:  # a device without TensorRT: no trtexec anywhere on PATH
        env["PATH"] = "/usr/bin:/bin"
    return subprocess.run(["bash", str(artifact / "build_engine.sh"), str(artifact)], capture_output=True, text=True,
                          timeout=180, env=env)


def test_engine_parity_is_checked_on_the_device_and_written_to_the_manifest(cnn, tmp_path, fake_trtexec):
    artifact = _export_trt(cnn, tmp_path / "tensorrt-fp32").path
    before = json.loads((artifact / "manifest.json").read_text())
    assert before["status"] == "needs_target_build" and before["parity"]["passed"] is True
    assert "onnxruntime" in before["parity"]["scope"]  # only the ONNX could be checked here
    result = _build(artifact)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "engine parity passed" in result.stdout
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["status"] == "ready" and manifest["parity"]["passed"] is True
    assert manifest["parity"]["num_inputs"] == 24 and "TensorRT engine" in manifest["parity"]["scope"]
    assert manifest["export_parity"] == before["parity"]


def test_a_wrong_engine_fails_its_parity_and_its_row(cnn, tmp_path, fake_trtexec):
    artifact = _export_trt(cnn, tmp_path / "tensorrt-fp32").path
    result = _build(artifact, {"FAKE_TRTEXEC_CORRUPT": "1"})
    assert result.returncode == 1 and "engine parity FAILED" in result.stdout
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["parity"]["passed"] is False
    # The device runner and the local harness both refuse it as a deployable artifact.
    runner = subprocess.run([sys.executable, str(runner_path()), str(artifact), "--warmup", "1", "--iterations", "2", "--no-roof"],
                            capture_output=True, text=True, timeout=120)
    row = json.loads(runner.stdout.splitlines()[-1])
    assert row["status"].startswith("failed: parity against PyTorch failed (TensorRT engine")
    [harness_row] = [r for r in bench_artifacts([artifact], FAST) if r.role == "student"]
    assert harness_row.status.startswith("failed: parity")


def test_a_device_without_tensorrt_is_a_clear_error(cnn, tmp_path):
    artifact = _export_trt(cnn, tmp_path / "tensorrt-fp32").path
    result = _build(artifact, trtexec=False)
    assert result.returncode == 2 and "trtexec not found" in result.stderr
    assert json.loads((artifact / "manifest.json").read_text())["status"] == "needs_target_build"


def test_runner_times_and_evaluates_an_engine_through_trtexec(cnn, tmp_path, fake_trtexec):
    artifact = _export_trt(cnn, tmp_path / "tensorrt-int8", "int8").path
    assert _build(artifact).returncode == 0
    images, labels = structured_images(20, seed=9)
    np.savez(tmp_path / "eval.npz", images=images, labels=labels)
    runner = subprocess.run([sys.executable, str(runner_path()), str(artifact), "--data", str(tmp_path / "eval.npz"),
                             "--warmup", "1", "--iterations", "4", "--throughput-batch", "4", "--no-roof"],
                            capture_output=True, text=True, timeout=180)
    row = json.loads(runner.stdout.splitlines()[-1])
    assert row["status"] == "ok", row
    assert row["latency_ms"]["iterations"] == 4 and row["throughput"] > 0 and row["peak_mem_mb"] > 0
    assert row["accuracy"] > 0.9 and "trtexec" in row["notes"]


class _Overflow(torch.nn.Module):
    """Outputs ~1e5: fine in fp32, infinite in fp16 (max 65504)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        total = image.flatten(1).abs().sum(dim=1, keepdim=True)  # ~800 for these images
        return total.repeat(1, 4) * 100.0  # the constant fits fp16; the products (~8e4) do not


def test_fp16_tensorrt_parity_is_checked_in_fp16(tmp_path):
    """The hole: the fp16 TensorRT ONNX is fp32, so comparing it as is can never fail."""
    spec = tiny_cnn_spec()
    images, _ = structured_images(8, seed=1)
    fp32 = export_model(_Overflow(), spec, "tensorrt", "fp32", tmp_path / "fp32", parity_inputs=images)
    fp16 = export_model(_Overflow(), spec, "tensorrt", "fp16", tmp_path / "fp16", parity_inputs=images)
    assert fp32.parity["passed"] is True
    assert fp16.parity["passed"] is False and fp16.parity["finite"] is False
    assert "in fp16" in fp16.parity["scope"]
    # Still waiting for its engine, yet not deployable: parity failure wins over needs_target.
    [row] = [r for r in bench_artifacts([fp16.path], FAST) if r.role == "student"]
    assert fp16.manifest["status"] == "needs_target_build" and row.status.startswith("failed: parity")


def test_coreml_off_macos_is_not_verified_never_passed(tmp_path):
    pytest.importorskip("coremltools")
    if sys.platform == "darwin":
        pytest.skip("on macOS CoreML parity runs for real")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 4)).eval()
    images, _ = structured_images(4)
    artifact = export_model(model, tiny_cnn_spec(), "coreml", "fp32", tmp_path / "coreml-fp32", parity_inputs=images)
    assert artifact.parity["status"] == "skipped" and artifact.parity["passed"] is None
    assert "NOT VERIFIED" in artifact.summary() and "passed" not in artifact.summary()
    [row] = [r for r in bench_artifacts([artifact.path], FAST) if r.role == "student"]
    assert not row.ok and row.status.startswith("needs_target")


def test_an_artifact_without_parity_is_skipped_not_ok(tmp_path):
    model, spec = trained_tiny_cnn(steps=2), tiny_cnn_spec()
    artifact = export_model(model, spec, "onnx", "fp32", tmp_path / "onnx-fp32")  # no parity inputs given
    [row] = [r for r in bench_artifacts([artifact.path], FAST) if r.role == "student"]
    assert row.status.startswith("skipped: parity not verified") and row.latency_ms is not None


# --- TensorRT versions: the kit is written for the device's TensorRT and checked against its parser ---

VERSIONS = ("8.5", "8.6", "10.3")


def _graph(nodes, inputs, outputs, opset, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _refused(record):
    return {(u["op"], u["reason"].split(":")[0]) for u in record["unsupported"]}


def test_the_old_graphs_fail_the_check_for_tensorrt_8():
    """What the kits used to ship, one trait at a time, against the release tables (onnx-tensorrt docs/operators.md)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    opset18 = _graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], [x], [y], 18)
    assert [not check_model(opset18, v)["passed"] for v in VERSIONS] == [True, True, False]  # 8.x parse opset <= 17
    assert check_model(opset18, "8.6")["unsupported"][0]["node"] == "(model)"

    # The int8 bias onnxruntime quantizes by default: DequantizeLinear of an INT32 tensor.
    bias = onnx.numpy_helper.from_array(np.arange(4, dtype=np.int32), "bias_q")
    scale = onnx.numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    dq = _graph([helper.make_node("DequantizeLinear", ["bias_q", "scale"], ["b"], name="bias_dq"),
                 helper.make_node("Add", ["x", "b"], ["y"], name="add")], [x], [y], 17, [bias, scale])
    for version in ("8.5", "8.6"):
        record = check_model(dq, version)
        assert not record["passed"] and record["unsupported"][0]["node"] == "bias_dq"
        assert "INT32 input not supported" in record["unsupported"][0]["reason"]

    # open_clip's EOT pooling: ArgMax over int64 token ids (8.x casts INT64 down to INT32).
    tokens = helper.make_tensor_value_info("text", TensorProto.INT64, [1, 8])
    eot = helper.make_tensor_value_info("eot", TensorProto.INT64, [1, 1])
    argmax = _graph([helper.make_node("ArgMax", ["text"], ["eot"], name="eot_argmax", axis=-1)], [tokens], [eot], 17)
    record = check_model(argmax, "8.5")
    assert _refused(record) == {("ArgMax", "INT64 (INT64 is cast down to INT32) input not supported")}
    # 8.6-GA's table lists INT32 for ArgMax: the table, not folklore, decides.
    assert check_model(argmax, "8.6")["passed"] and check_model(argmax, "10.3")["passed"]

    scale_w = onnx.numpy_helper.from_array(np.ones(4, np.float32), "gamma")
    layer_norm = _graph([helper.make_node("LayerNormalization", ["x", "gamma"], ["y"], name="ln", axis=-1)], [x], [y], 17,
                        [scale_w])
    assert _refused(check_model(layer_norm, "8.5")) == {("LayerNormalization", "not supported by this release's ONNX parser (operator table")}
    assert check_model(layer_norm, "8.6")["passed"]
    assert "8.5-GA" in check_model(layer_norm, "8.5")["source"]


def test_layer_norm_decomposition_computes_the_same():
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 5, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5, 8])
    weights = [onnx.numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "gamma"),
               onnx.numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "beta")]
    inputs = (rng.standard_normal((3, 5, 8)) * 4 + 2).astype(np.float32)
    for opset in (17, 18):  # ReduceMean's axes: an attribute up to 17, an input from 18
        model = _graph([helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["y"], name="ln", axis=-1, epsilon=1e-5)],
                       [x], [y], opset, weights)
        expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": inputs})[0]
        assert decompose_layer_norm(model) == 1
        onnx.checker.check_model(model)
        assert "LayerNormalization" not in {n.op_type for n in model.graph.node}
        got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": inputs})[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert check_model(model, "8.5")["opset"] == 18  # (the exporter also caps 8.x kits at opset 17)


def test_onnxruntimes_default_int32_bias_fails_and_float_bias_passes(tmp_path):
    """The quantizer itself: QuantizeBias on (the old kits) gives INT32 DequantizeLinear; float_bias does not."""
    from edgeclip.compress.quantize import MATMUL_OPS, quantize_onnx_static
    from edgeclip.exporters.onnx_export import torch_to_onnx

    clip = tiny_clip()
    spec = towers.image_tower_spec(clip, "tiny-image")
    torch_to_onnx(towers.ImageTower(clip), spec, tmp_path / "fp32.onnx", 17)
    images = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    ops = MATMUL_OPS + ("Conv",)
    quantize_onnx_static(tmp_path / "fp32.onnx", tmp_path / "old.onnx", images, "image", op_types=ops, symmetric=True)
    old = check_model(tmp_path / "old.onnx", "8.6")
    assert not old["passed"] and {u["op"] for u in old["unsupported"]} == {"DequantizeLinear"}
    record = quantize_onnx_static(tmp_path / "fp32.onnx", tmp_path / "new.onnx", images, "image", op_types=ops,
                                  symmetric=True, float_bias=True)
    assert record["bias"] == "float" and check_model(tmp_path / "new.onnx", "8.6")["passed"]


@pytest.mark.parametrize("version", VERSIONS)
def test_new_tensorrt_exports_pass_for_every_version(version, tmp_path):
    clip = tiny_clip()
    images, _ = structured_images(12, size=32, seed=2)
    tokens = tiny_tokens([4, 9, 16, 2])
    text_spec, image_spec = towers.text_tower_spec(clip, "tiny-text"), towers.image_tower_spec(clip, "tiny-image")
    text = export_model(towers.TextTower(clip), text_spec, "tensorrt", "int8", tmp_path / "text", calibration=tokens,
                        parity_inputs=tokens, tensorrt=version)
    image = export_model(towers.ImageTower(clip), image_spec, "tensorrt", "int8", tmp_path / "image", calibration=images,
                         parity_inputs=images, tensorrt=version)
    for artifact in (text, image):
        manifest = artifact.manifest
        assert manifest["tensorrt_version"] == version and manifest["status"] == "needs_target_build", manifest["next_step"]
        assert manifest["tensorrt_compatibility"]["passed"] is True and manifest["tensorrt_compatibility"]["tensorrt"] == version
        assert manifest["opset"] == (17 if version.startswith("8.") else 18) and manifest["opset_requested"] == 18
        assert artifact.parity["passed"] is True, artifact.parity
        graph = onnx.load(str(artifact.path / "model.onnx"))
        ops = {n.op_type for n in graph.graph.node}
        assert ("LayerNormalization" in ops) == (version != "8.5")
        assert "QuantizeLinear" in ops and "DequantizeLinear" in ops  # explicit int8
        dq_inputs = {n.input[0] for n in graph.graph.node if n.op_type == "DequantizeLinear"}
        int8 = {i.name for i in graph.graph.initializer if i.data_type == TensorProto.INT8}
        produced = {o for n in graph.graph.node if n.op_type == "QuantizeLinear" for o in n.output}
        assert dq_inputs <= int8 | produced  # weights (int8 initializers) and activations, never an INT32 bias
    text_graph = onnx.load(str(text.path / "model.onnx"))
    assert text_graph.graph.input[0].type.tensor_type.elem_type == TensorProto.INT32
    assert text.manifest["inputs"][0]["dtype"] == "int32"
    types = tensor_types(text_graph)
    assert [types[n.input[0]] for n in text_graph.graph.node if n.op_type == "ArgMax"] == [TensorProto.FLOAT]


def test_every_onnx_text_tower_pools_without_integer_argmax(tmp_path):
    """onnxruntime 1.19 (Python 3.8 / JetPack 5) has no int64 ArgMax kernel; no export may need one."""
    clip = tiny_clip()
    tokens = tiny_tokens([3, 16, 7])
    artifact = export_model(towers.TextTower(clip), towers.text_tower_spec(clip, "tiny-text"), "onnx", "fp32",
                            tmp_path / "onnx-fp32", parity_inputs=tokens)
    graph = onnx.load(str(artifact.path / "model.onnx"))
    types = tensor_types(graph)
    assert [types[n.input[0]] for n in graph.graph.node if n.op_type == "ArgMax"] == [TensorProto.FLOAT]
    assert artifact.parity["passed"] is True  # same EOT rows as PyTorch's int64 argmax


def test_unknown_tensorrt_version_is_one_line():
    assert normalize_version("8.6.2") == "8.6"
    with pytest.raises(UserError, match=r"unknown TensorRT version '9.1'; use one of 8.5, 8.6, 10.3"):
        normalize_version("9.1")


def test_jetpack5_device_refuses_a_jetpack6_kit_with_trtexecs_error(tmp_path, fake_trtexec):
    """The stand-in trtexec parses as the device's TensorRT does: an 8.6 kit (LayerNormalization) on 8.5."""
    clip = tiny_clip()
    images, _ = structured_images(6, size=32, seed=3)
    artifact = export_model(towers.ImageTower(clip), towers.image_tower_spec(clip, "tiny-image"), "tensorrt", "fp16",
                            tmp_path / "tensorrt-fp16", parity_inputs=images, tensorrt="8.6").path
    result = _build(artifact, {"FAKE_TRTEXEC_TENSORRT": "8.5"})
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    assert "LayerNormalization" in result.stderr and "&&&& FAILED TensorRT.trtexec [TensorRT v8502]" in result.stderr
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["engine_build"]["exit_code"] == 1
    assert any("LayerNormalization" in line for line in manifest["engine_build"]["error_lines"])
    assert not (artifact / "model.engine").exists() and "build.log" in manifest["files"]
    # The same kit on the TensorRT it was written for (the stand-in's default, 8.6) builds and passes.
    assert _build(artifact).returncode == 0
    assert json.loads((artifact / "manifest.json").read_text())["status"] == "ready"


def _local_device(monkeypatch):
    from edgeclip.bench.remote import SshTransport

    transport = SshTransport(host="nvidia@orin", ssh=("bash", "-c"), copy=("cp", "-r"), dest_prefix="")
    monkeypatch.setattr(SshTransport, "for_host", classmethod(lambda cls, host, **kw: transport))


def test_bench_remote_failed_engine_build_is_a_failed_row_with_trtexecs_error(cnn, tmp_path, fake_trtexec, monkeypatch, capsys):
    """A JetPack 5 device (TensorRT 8.5) given a JetPack 6 kit: that row fails with trtexec's error, exit 3;
    the kit it can parse is still built and measured there."""
    from edgeclip.cli import main

    _local_device(monkeypatch)
    run = tmp_path / "run" / "artifacts"
    good = _export_trt(cnn, run / "tensorrt-fp32").path
    clip = tiny_clip()
    images, _ = structured_images(6, size=32, seed=3)
    bad = export_model(towers.ImageTower(clip), towers.image_tower_spec(clip, "tiny-image"), "tensorrt", "fp16",
                       run / "tensorrt-fp16", parity_inputs=images, tensorrt="8.6").path
    monkeypatch.setenv("FAKE_TRTEXEC_TENSORRT", "8.5")
    code = main(["bench", "--artifact", str(good), "--artifact", str(bad), "--remote", "nvidia@orin", "--remote-python",
                 sys.executable, "--warmup", "1", "--iterations", "2", "--throughput-batch", "0", "--no-memory",
                 "--no-roof"])
    assert code == 3, capsys.readouterr().out[-2000:]  # not parity's 1
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    ok_row, failed_row = [r for r in report["rows"] if r["role"] == "student"]
    assert ok_row["precision"] == "fp32" and ok_row["status"] == "ok" and ok_row["latency_ms"]["p50"] > 0
    assert "TensorRT 8.6 compatibility: passed" in ok_row["notes"]
    assert failed_row["status"].startswith("failed: engine build on nvidia@orin failed (trtexec): "), failed_row["status"]
    assert "LayerNormalization" in failed_row["status"] and "&&&& FAILED TensorRT.trtexec [TensorRT v8502]" in failed_row["notes"]
    manifest = json.loads((bad / "manifest.json").read_text())  # fetched back from the device
    assert manifest["status"] == "failed" and manifest["engine_build"]["status"] == "failed"
    assert any("LayerNormalization" in line for line in manifest["engine_build"]["error_lines"]) and (bad / "build.log").is_file()


def test_jetson_profiles_name_their_tensorrt_and_set_overrides_it(tmp_path, capsys):
    from edgeclip.cli import main
    from edgeclip.config import load_recipe
    from edgeclip.targets import load_target, with_overrides

    assert load_target("jetson-orin-nano").tensorrt == "8.6" and load_target("agx").tensorrt == "8.6"  # JetPack 6.0
    for version in VERSIONS:
        recipe = load_recipe("quickstart", [f"target.tensorrt={version}"])  # YAML reads 8.5 as a number: still "8.5"
        assert with_overrides(load_target("jetson"), recipe.target).tensorrt == version
    assert with_overrides(load_target("jetson"), load_recipe("quickstart").target).tensorrt == "8.6"
    with pytest.raises(UserError, match="target cpu has no tensorrt backend"):
        with_overrides(load_target("cpu"), load_recipe("quickstart", ["target.tensorrt=8.5"]).target)
    code = main(["build", "--recipe", "quickstart", "--target", "jetson", "--set", "target.tensorrt=9.0",
                 "--out", str(tmp_path / "never")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["edgeclip: error: unknown TensorRT version '9.0'; use one of 8.5, 8.6, 10.3 (JetPack 5.1.x: 8.5, "
                                 "JetPack 6.0: 8.6, JetPack 6.1/6.2: 10.3), e.g. --set target.tensorrt=8.6"]
    assert not (tmp_path / "never").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nbackends: [tensorrt]\ntensorrt: '7.1'\n")
    with pytest.raises(UserError, match="bad.yaml': unknown TensorRT version '7.1'"):
        load_target(str(bad))
