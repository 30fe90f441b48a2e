"""The one int8 rule (compress/int8_rule.py): below the agreement bar int8 is rejected — never
`status: ready` — and `compress int8` exits 1 naming the fp32 fallback (issue 21)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from edgeclip.compress import int8_rule
from edgeclip.compress.int8_rule import agreement_problem, agreement_upper_bound, judge_artifact
from edgeclip.exporters.export import export_model
from edgeclip.exporters.testing import structured_images, tiny_cnn_spec


def test_rule_rejects_below_the_bar_beyond_sampling_noise() -> None:
    assert agreement_problem(116 / 128, 128) is not None  # issue 21's 90.6% on 128 images
    assert agreement_upper_bound(116 / 128, 128) == pytest.approx(0.946, abs=0.001)
    assert agreement_problem(0.891, 128) is not None  # the OpenVINO case
    assert agreement_problem(63 / 64, 64) is None  # one miss in 64 is noise
    assert agreement_problem(0.986, 1000) is None and agreement_problem(0.98, 1000) is not None
    assert agreement_problem(0.95, None).startswith("int8 changes decisions: top-1 agreement with its fp32 model 0.9500 < 0.99")
    assert agreement_problem(None, 10) is None


def test_judge_artifact_on_manifests() -> None:
    ran = {"status": "ran", "passed": True, "num_inputs": 128, "top1_agreement": 0.906}
    assert "0.9060 < 0.99" in judge_artifact({"precision": "int8", "parity": ran})
    assert judge_artifact({"precision": "fp16", "parity": ran}) is None  # the rule is int8's
    assert judge_artifact({"precision": "int8", "parity": {**ran, "top1_agreement": 1.0}}) is None
    failed = {"status": "ran", "passed": False, "reason": "output shape [1] != PyTorch [2]"}
    assert "parity against PyTorch failed (output shape" in judge_artifact({"precision": "fp32", "parity": failed})
    assert judge_artifact({"precision": "int8", "parity": {"status": "skipped", "passed": None}}) is None


class _NearTies(nn.Module):
    """Logits that differ by ~1e-4: int8 noise flips most decisions (parity fails)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3)
        self.head = nn.Linear(8, 4)
        with torch.no_grad():
            self.head.weight.copy_(self.head.weight[:1].repeat(4, 1) + 1e-4 * torch.randn(4, 8))
            self.head.bias.zero_()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(image)).mean(dim=(2, 3)))


def test_int8_that_fails_parity_is_written_rejected_never_ready(tmp_path) -> None:
    images, _ = structured_images(64, seed=3)
    artifact = export_model(_NearTies(), tiny_cnn_spec(), "onnx", "int8", tmp_path / "int8", calibration=images[:32],
                            parity_inputs=images[32:])
    manifest = json.loads((tmp_path / "int8" / "manifest.json").read_text())
    assert manifest["parity"]["passed"] is False and manifest["status"] == "rejected"
    assert "parity against PyTorch failed" in manifest["next_step"] and "--precision fp32" in manifest["next_step"]
    assert not artifact.ok and "status rejected" in artifact.summary()


def test_compress_int8_below_the_bar_exits_1_and_leaves_no_ready_artifact(tmp_path, monkeypatch, capsys) -> None:
    from edgeclip.cli import main
    from edgeclip.data import DIGIT_WORDS
    from edgeclip.students.checkpoint import save_checkpoint
    from edgeclip.students.registry import create_student

    torch.manual_seed(0)
    model, spec = create_student("test_resnet", class_names=list(DIGIT_WORDS), image_size=16)
    save_checkpoint(tmp_path / "run" / "student", model, spec, student_name="test_resnet")
    # A bar no agreement can meet makes this student "below the bar" whatever int8 does to it.
    monkeypatch.setattr(int8_rule, "INT8_AGREEMENT_BAR", 1.01)
    code = main(["compress", "int8", "--model", str(tmp_path / "run" / "student"), "--backend", "onnx", "--no-mixed",
                 "--data", "digits", "--calibration-count", "16", "--validation-count", "8", "--parity-count", "32"])
    out = capsys.readouterr().out
    manifest = json.loads((tmp_path / "run" / "artifacts" / "onnx-int8-auto" / "manifest.json").read_text())
    assert code == 1 and manifest["status"] == "rejected"
    assert "int8 rejected" in out and "< 1.01" in out and "--precision fp32" in out


def test_ship_rule_decides_from_rejection_agreement_and_the_median_of_rounds():
    from edgeclip.compress.ship_rule import INT8_MIN_GAIN, int8_decision

    fp32 = {"p50": 1.0, "round_p50": [1.0] * 5}
    faster = {"p50": 0.8, "round_p50": [0.8] * 5}
    close = {"p50": 1.0 - INT8_MIN_GAIN / 2, "round_p50": [1.0 - INT8_MIN_GAIN / 2] * 5}
    ships = int8_decision(agreement=1.0, images=359, latency=faster, fp32_latency=fp32, backend="onnx")
    assert ships.ships and ships.speed_compared and ships.latency_ratio == pytest.approx(0.8) and ships.rounds == 5
    slow = int8_decision(agreement=1.0, images=359, latency=close, fp32_latency=fp32, backend="onnx")
    assert not slow.ships and "not at least 5% faster than fp32 in onnx" in slow.reason
    flips = int8_decision(agreement=0.95, images=359, latency=faster, fp32_latency=fp32)
    assert not flips.ships and flips.reason.startswith("int8 changes decisions")
    assert not int8_decision(agreement=1.0, images=359, latency=faster, fp32_latency=fp32, rejected="rejected at export: x").ships
    # Timings that are not the target's decide nothing about speed: the device does.
    off_target = int8_decision(agreement=1.0, images=359, latency=close, fp32_latency=fp32, timed_on_target=False)
    assert off_target.ships and not off_target.speed_compared
