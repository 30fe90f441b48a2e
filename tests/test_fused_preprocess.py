"""Fused preprocessing: the exported graph takes raw uint8 frames and does resize + normalize itself."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from edgeclip.data.preprocess import Preprocess, frame_geometry
from edgeclip.errors import UserError
from edgeclip.exporters.fused_preprocess import FusedPreprocess, fuse_preprocessing
from edgeclip.exporters.testing import tiny_cnn_spec, trained_tiny_cnn


def smooth_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A camera-like frame: low-frequency colour structure (bicubic upsampled 6×8 noise), uint8 RGB."""
    low = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return np.array(Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC))


@pytest.mark.parametrize("mode", ["letterbox", "center_crop", "stretch"])
@pytest.mark.parametrize("frame", [(90, 160), (97, 203)])
def test_in_graph_preprocessing_matches_the_host_path_with_bilinear(mode, frame):
    """The wrapper's tensor ≈ Preprocess(bilinear) on the same frame: same geometry, same normalization.
    A one-pixel shift of the wrapper's output is 4-30× further from the host's than the wrapper is."""
    preprocess = Preprocess(size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), resize_mode=mode,
                            interpolation="bilinear", pad_value=(10, 200, 30))
    pixels = smooth_frame(*frame)
    host = preprocess(Image.fromarray(pixels))
    graph = FusedPreprocess(torch.nn.Identity(), preprocess, frame).preprocess(torch.from_numpy(pixels[None]))[0].numpy()
    assert graph.shape == host.shape == (3, 32, 32)
    assert np.abs(graph - host).mean() < 0.08
    assert np.abs(graph - host).mean() < 0.5 * np.abs(np.roll(graph, 1, axis=2) - host).mean()
    if mode == "letterbox":  # the padded border is exactly PIL's pad pixel, normalized
        top = frame_geometry(preprocess, frame).pad[0]
        assert top > 0
        np.testing.assert_allclose(graph[:, :top], host[:, :top], atol=1e-5)


def test_frame_geometry_is_pils_arithmetic_with_static_offsets():
    g = frame_geometry(Preprocess(size=224, resize_mode="center_crop"), (720, 1280))
    # 3 divides 720; 1280 → 398: a 2× box (640 wide, bilinear 1.6×) rather than a 3× box after a trimmed edge
    assert g.resized == (224, 398) and g.crop == (0, 87) and g.pool == (3, 2) and g.trim == (0, 0, 720, 1280)
    g = frame_geometry(Preprocess(size=32, resize_mode="stretch"), (97, 203))  # no divisor fits: trimmed evenly
    assert g.pool == (3, 6) and g.trim == (0, 2, 96, 198)
    g = frame_geometry(Preprocess(size=224, resize_mode="letterbox"), (720, 1280))
    assert g.resized == (126, 224) and g.pad == (49, 49, 0, 0) and g.pool == (5, 5)
    with pytest.raises(ValueError, match="only shrinks frames"):
        frame_geometry(Preprocess(size=224, resize_mode="stretch"), (720, 200))


def test_text_encoders_and_refused_frames_are_user_errors():
    from edgeclip.students.spec import ModelSpec

    text = ModelSpec(name="t", kind="text_encoder", context_length=16, input_names=["text"])
    with pytest.raises(UserError, match="text encoder"):
        fuse_preprocessing(torch.nn.Identity(), text, "64x64")
    with pytest.raises(UserError, match="HEIGHTxWIDTH"):
        fuse_preprocessing(torch.nn.Identity(), tiny_cnn_spec(), "64*64")


@pytest.fixture(scope="module")
def fused_setup(tmp_path_factory):
    """A trained tiny CNN (letterbox 32²), six 72×128 frames, and its fused artifacts exported on first use."""
    from edgeclip.exporters.export import export_model

    model, spec = trained_tiny_cnn(), tiny_cnn_spec()
    spec.preprocess = Preprocess(size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), resize_mode="letterbox")
    frames = np.stack([smooth_frame(72, 128, seed) for seed in range(6)])
    out, artifacts = tmp_path_factory.mktemp("fused"), {}

    def artifact(backend: str):
        if backend not in artifacts:
            artifacts[backend] = export_model(model, spec, backend, "fp32", out / backend, parity_inputs=frames,
                                              fused_preprocess="72x128")
        return artifacts[backend]

    return model, spec, frames, artifact


@pytest.mark.parametrize("backend", ["onnx", pytest.param("openvino", marks=pytest.mark.slow)])
def test_export_writes_the_fused_contract_and_runtimes_take_frames(backend, fused_setup):
    from edgeclip.runtimes import load_runtime

    model, spec, frames, export = fused_setup
    artifact = export(backend)
    manifest = json.loads((artifact.path / "manifest.json").read_text())
    assert manifest["inputs"][0] == {"name": "image", "shape": ["batch", 72, 128, 3], "dtype": "uint8"}
    assert manifest["preprocessing"]["fused_frame"] == [72, 128]
    assert manifest["parity"]["passed"] and manifest["parity"]["max_abs_diff"] < 1e-4
    fused = manifest["fused_preprocessing"]
    assert fused["geometry"]["pad"] == [7, 7, 0, 0] and "bilinear" in fused["resize"]
    classic = fused["classic_agreement"]
    assert classic["num_frames"] == 6 and 0.0 <= classic["top1_agreement"] <= 1.0 and classic["mean_cosine"] > 0.9

    runtime = load_runtime(artifact.path, threads=1)
    wrapper = FusedPreprocess(model, spec.preprocess, (72, 128)).eval()
    with torch.no_grad():
        expected = wrapper(torch.from_numpy(frames)).numpy()
    got = runtime.predict_images([Image.fromarray(f) for f in frames])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    with pytest.raises(UserError, match="does not fit"):  # a preprocessed float tensor is not a frame
        runtime.run(np.zeros((1, 3, 32, 32), np.float32))
    with warnings.catch_warnings(record=True) as caught:  # another size: stretched on the host, said once
        warnings.simplefilter("always")
        other = runtime.predict_images([Image.fromarray(smooth_frame(36, 64)), Image.fromarray(smooth_frame(36, 64))])
    assert other.shape == (2, 4) and len(caught) == 1 and "stretched" in str(caught[0].message)


def test_device_runner_times_frames_and_says_why_float_data_gives_no_accuracy(fused_setup, tmp_path):
    from edgeclip.paths import runner_module
    from edgeclip.runtimes import load_runtime

    runner = runner_module("edgeclip_runner.py")
    _, _, frames, export = fused_setup
    path = str(export("onnx").path)
    np.savez(tmp_path / "floats.npz", images=np.zeros((2, 3, 32, 32), np.float32), labels=np.zeros(2, np.int64))
    row = runner.benchmark_artifact(path, runner.parse_args([path, "--data", str(tmp_path / "floats.npz"), "--warmup", "1",
                                                             "--iterations", "2", "--throughput-batch", "2"]), 0.0)
    assert row["status"] == "ok" and row["latency_ms"]["p50"] > 0 and row["accuracy"] is None
    assert "accuracy not measured: this artifact takes uint8 72x128 frames" in row["notes"]
    labels = load_runtime(path).run(frames).argmax(axis=1)  # what this machine predicts: the runner must agree
    np.savez(tmp_path / "frames.npz", frames=frames, images=np.zeros((6, 3, 32, 32), np.float32), labels=labels)
    row = runner.benchmark_artifact(path, runner.parse_args([path, "--data", str(tmp_path / "frames.npz"), "--warmup", "1",
                                                             "--iterations", "2", "--throughput-batch", "0"]), 0.0)
    assert row["status"] == "ok" and row["accuracy"] == 1.0
    # Equal-resolution timing re-opens a model at the teacher's size: not a frame-taking graph, and it says why.
    run, why_not = runner_module("equal_size.py").resized_runner(export("onnx").manifest, path, 224, 1, None)
    assert run is None and why_not.startswith("fused preprocessing: takes 72x128 camera frames")


def test_cli_export_of_test_resnet_takes_720p_frames(tmp_path, capsys):
    from edgeclip.cli import main
    from edgeclip.students import create_student
    from edgeclip.students.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model, spec = create_student("test_resnet", class_names=[str(i) for i in range(10)])
    save_checkpoint(tmp_path / "student", model, spec, student_name="test_resnet")
    code = main(["export", "--model", str(tmp_path / "student"), "--backend", "onnx", "--fused-preprocess", "720x1280",
                 "--parity-count", "3", "--out", str(tmp_path / "art")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "fused preprocessing: takes uint8 720x1280 RGB frames" in out and "top-1 agreement" in out
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["inputs"][0]["shape"] == ["batch", 720, 1280, 3] and manifest["parity"]["num_inputs"] == 3
    # 720x1280 → 32x57 (center crop): a 20×20 box (20 divides both sides: no trim), then bilinear 36x64 → 32x57
    assert manifest["fused_preprocessing"]["geometry"]["pool"] == [20, 20]
    assert manifest["fused_preprocessing"]["geometry"]["trim"] == [0, 0, 720, 1280]
