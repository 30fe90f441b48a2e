"""Runtimes: load an artifact, run it, apply its preprocessing; clear errors for broken artifacts."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeclip.errors import UserError
from edgeclip.exporters.export import export_model
from edgeclip.exporters.testing import structured_images, tiny_cnn_spec, trained_tiny_cnn
from edgeclip.runtimes import load_runtime
from edgeclip.runtimes.torch_runtime import TorchRuntime

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cnn():
    return trained_tiny_cnn(steps=20), tiny_cnn_spec()


@pytest.fixture(scope="module")
def artifacts(cnn, tmp_path_factory):
    model, spec = cnn
    root = tmp_path_factory.mktemp("run") / "artifacts"
    x, _ = structured_images(8, seed=3)
    onnx_art = export_model(model, spec, "onnx", "fp32", root / "onnx-fp32", parity_inputs=x)
    ov_art = export_model(model, spec, "openvino", "fp32", root / "openvino-fp32", parity_inputs=x)
    return {"onnx": onnx_art.path, "openvino": ov_art.path}


def _pil_images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(5)
    return [Image.fromarray(rng.integers(0, 255, size=(40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(n)]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_runtime_interface_matches_torch(artifacts, cnn, backend):
    model, spec = cnn
    runtime = load_runtime(artifacts[backend], threads=1)
    reference = TorchRuntime(model, spec)
    assert runtime.manifest["backend"] == backend and runtime.input_name == "image"
    assert runtime.preprocess == spec.preprocess  # preprocessing comes back from the manifest
    images = _pil_images(3)
    predicted = runtime.predict_images(images)
    assert predicted.shape == (3, 4) and predicted.dtype == np.float32
    np.testing.assert_allclose(predicted, reference.predict_images(images), atol=1e-4)
    # predict_images == run(preprocess(...)): the manifest's preprocessing is what gets applied.
    batch = np.stack([spec.preprocess(image) for image in images])
    np.testing.assert_allclose(runtime.run(batch), predicted, atol=1e-6)
    np.testing.assert_allclose(runtime.run(batch[:1]), predicted[:1], atol=1e-5)


def test_onnxruntime_threads_are_applied(artifacts):
    runtime = load_runtime(artifacts["onnx"], threads=1)
    assert runtime.model.session.get_session_options().intra_op_num_threads == 1


def test_torch_runtime_manifest(cnn):
    model, spec = cnn
    reference = TorchRuntime(model, spec)
    assert reference.manifest["outputs"][0]["shape"] == ["batch", 4]
    assert reference.run(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 4)


def test_wrong_input_shape_is_a_user_error(artifacts):
    runtime = load_runtime(artifacts["onnx"])
    with pytest.raises(UserError, match=r"does not fit image \['batch', 3, 32, 32\]"):
        runtime.run(np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(UserError, match="no images"):
        runtime.predict_images([])


def test_missing_artifact_dir(tmp_path):
    with pytest.raises(UserError, match=f"{tmp_path / 'nope'} does not exist"):
        load_runtime(tmp_path / "nope")


def test_missing_manifest(artifacts, tmp_path):
    broken = _copy(artifacts["onnx"], tmp_path / "a")
    (broken / "manifest.json").unlink()
    with pytest.raises(UserError, match="manifest.json is missing.*re-run `edgeclip export`"):
        load_runtime(broken)


def test_corrupt_manifest(artifacts, tmp_path):
    broken = _copy(artifacts["onnx"], tmp_path / "a")
    (broken / "manifest.json").write_text('{"backend": "onnx", ')
    with pytest.raises(UserError, match="manifest.json is corrupt"):
        load_runtime(broken)
    (broken / "manifest.json").write_text(json.dumps({"backend": "onnx"}))
    with pytest.raises(UserError, match="lacks schema_version"):
        load_runtime(broken)


def test_missing_model_file(artifacts, tmp_path):
    broken = _copy(artifacts["openvino"], tmp_path / "a")
    (broken / "model.xml").unlink()
    with pytest.raises(UserError, match="model.xml .* is missing"):
        load_runtime(broken)


@pytest.mark.parametrize(("backend", "model_file"), [("onnx", "model.onnx"), ("openvino", "model.xml"),
                                                    ("openvino", "model.bin")])
def test_corrupt_model_file(artifacts, tmp_path, backend, model_file):
    broken = _copy(artifacts[backend], tmp_path / "a")
    (broken / model_file).write_bytes(b"\x00garbage, not a model" * 3)
    with pytest.raises(UserError, match="corrupt"):
        load_runtime(broken).run(np.zeros((1, 3, 32, 32), np.float32))


def test_unknown_backend_in_manifest(artifacts, tmp_path):
    broken = _copy(artifacts["onnx"], tmp_path / "a")
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["backend"] = "tflite"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="unknown backend 'tflite'"):
        load_runtime(broken)


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS the CoreML runtime really runs")
def test_coreml_runtime_needs_macos(artifacts, tmp_path):
    fake = _copy(artifacts["onnx"], tmp_path / "coreml-fp16")
    manifest = json.loads((fake / "manifest.json").read_text())
    manifest.update(backend="coreml", model_file="model.onnx")
    (fake / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="only run on macOS"):
        load_runtime(fake)


def test_tensorrt_runtime_says_where_to_run(artifacts, tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed: the engine path is exercised on the target")
    fake = _copy(artifacts["onnx"], tmp_path / "tensorrt-fp16")
    manifest = json.loads((fake / "manifest.json").read_text())
    manifest["backend"] = "tensorrt"
    (fake / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="target device"):
        load_runtime(fake)


def test_onnx_and_openvino_runtimes_need_no_torch(artifacts):
    """The device-side path must import and run with torch unavailable."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        from edgeclip.runtimes import load_runtime
        from edgeclip.runtimes.base import ArtifactRuntime
        x = np.zeros((2, 3, 32, 32), np.float32)
        a = load_runtime({str(artifacts["onnx"])!r}, threads=1)
        b = load_runtime({str(artifacts["openvino"])!r}, threads=1)
        assert isinstance(a, ArtifactRuntime) and isinstance(b, ArtifactRuntime)
        assert np.abs(a.run(x) - b.run(x)).max() < 1e-4
        assert not any(name == "torch" or name.startswith("torch.") for name, mod in sys.modules.items() if mod)
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_openvino_int8_gives_the_same_outputs_one_image_at_a_time_as_batched(tmp_path):
    """Compiled with a dynamic batch, OpenVINO 2026.4 gave this NNCF int8 MobileNetV3-small ~15%
    different outputs at batch 1 than batched (a trained one: benchmarks/results/int8_pitfalls.md).
    The runtime, the device runner and the accident demo compile one static shape per batch size,
    all through the one device layer (devices/runner/runtime_openvino.py)."""
    import importlib.util

    import torch

    from edgeclip.bench.memory import RUNNER_PATH
    from edgeclip.compress.int8 import Int8Options
    from edgeclip.runtimes.base import device_layer
    from edgeclip.students import create_student
    from edgeclip.video.accident_demo.models import Model

    torch.manual_seed(0)
    model, spec = create_student("mobilenetv3_small", class_names=[str(i) for i in range(10)], image_size=32)
    images = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    artifact = export_model(model.eval(), spec, "openvino", "int8", tmp_path / "a", calibration=images,
                            parity_inputs=images[:8], int8=Int8Options(mixed=False, speed_check=False))
    assert artifact.manifest["parity"]["batch"] == 1  # parity ran the way devices run
    batched = load_runtime(artifact.path).run(images[:8])
    tolerance = {"rtol": 1e-4, "atol": 1e-4 * float(np.abs(batched).max())}

    def one_at_a_time(run):
        return np.concatenate([run(images[i:i + 1]) for i in range(8)])

    np.testing.assert_allclose(one_at_a_time(load_runtime(artifact.path).run), batched, **tolerance)
    loader = importlib.util.spec_from_file_location("edgeclip_runner_under_test", RUNNER_PATH)
    runner = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(runner)
    assert runner.runtime_layer is device_layer()  # one layer: the runner's is the one edgeclip loads
    device_model = runner.open_model(str(artifact.model_path), artifact.manifest,
                                     argparse.Namespace(threads=1, openvino_device="CPU"))
    assert type(device_model).__module__ == "edgeclip_device_runtime_openvino"
    np.testing.assert_allclose(one_at_a_time(device_model.run), batched, **tolerance)
    demo = Model(str(artifact.path), threads=1)
    assert type(demo.run.__self__) is type(device_model)  # the accident demo runs the same class
    np.testing.assert_allclose(one_at_a_time(demo.run), batched, **tolerance)
