"""A failed check never reads as a pass: the TensorRT engine is checked on the device, the fp16
artifact's parity is checked in fp16, CoreML off macOS is "not verified", and a parity failure
fails the row for every artifact status — in the harness and in the device runner alike.

TensorRT cannot be installed here; a stand-in trtexec (tests/support/fake_trtexec.py, running the
ONNX with onnxruntime) plays the device, and a corrupting one must make parity fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgeclip.bench.harness import bench_artifacts
from edgeclip.config import BenchConfig
from edgeclip.exporters.export import export_model
from edgeclip.exporters.testing import structured_images, tiny_cnn_spec, trained_tiny_cnn
from edgeclip.paths import runner_path

FAST = BenchConfig(warmup=1, iterations=3, max_seconds=1.0, throughput_batch=0, memory=False)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECLIP_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def cnn():
    return trained_tiny_cnn(), tiny_cnn_spec()


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
    runner = subprocess.run([sys.executable, str(runner_path()), str(artifact), "--warmup", "1", "--iterations", "2"],
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
                             "--warmup", "1", "--iterations", "4", "--throughput-batch", "4"],
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
