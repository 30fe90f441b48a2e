"""`edgeclip build` end to end on tiny inputs: a tiny CLIP teacher checkpoint, synthetic images,
a tiny student, ONNX Runtime + OpenVINO in fp32 and int8, report and budgets."""

from __future__ import annotations

import json

import pytest
import torch

from edgeclip.cli import main
from edgeclip.data.preprocess import Preprocess
from edgeclip.teacher import ClipTeacher

TINY_RECIPE = """
teacher: {teacher}
data: {{train: "synthetic:24", test: "synthetic:12", templates: plain, calibration_count: 32}}
student: {{name: test_resnet, image_size: 16}}
distill: {{epochs: 8, batch_size: 16, lr: 0.05, milestones: [6], head_epochs: 40, head_lr: 0.01, head_input: features}}
export: {{parity_samples: 60}}
bench: {{warmup: 1, iterations: 5, max_seconds: 1.0, throughput_batch: 4}}
"""

TARGET = """
name: tiny-cpu
backends: [onnx, openvino]
precisions: [fp32, int8]
budgets: {{max_latency_ms: {latency}, max_memory_mb: 4096, min_retention: {retention}}}
"""


@pytest.fixture
def tiny_build_inputs(tmp_path, tiny_clip_config):
    torch.manual_seed(0)
    teacher = ClipTeacher.from_config("tiny-teacher", tiny_clip_config, Preprocess(size=16, resize_mode="stretch"))
    teacher.save(tmp_path / "teacher.pt")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE.format(teacher=tmp_path / "teacher.pt"))
    return tmp_path, recipe


def test_build_writes_artifacts_report_and_checks_budgets(tiny_build_inputs, capsys) -> None:
    tmp_path, recipe = tiny_build_inputs
    target = tmp_path / "tiny-cpu.yaml"
    target.write_text(TARGET.format(latency=10000, retention=0.0))
    out = tmp_path / "run"
    code = main(["build", "--recipe", str(recipe), "--target", str(target), "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    for name in ("onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-int8"):
        manifest = json.loads((out / "artifacts" / name / "manifest.json").read_text())
        assert manifest["parity"]["status"] != "not_run"
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1 and (out / "report.md").is_file() and (out / "report.html").is_file()
    roles = [row["role"] for row in report["rows"]]
    assert roles.count("teacher") == 1 and roles.count("student") == 4
    teacher = next(row for row in report["rows"] if row["role"] == "teacher")
    assert 0 <= teacher["accuracy"] <= 1 and teacher["flops"] > 0 and teacher["latency_ms"]["p50"] > 0
    for row in report["rows"]:
        if row["role"] == "student":
            assert row["status"] == "ok", row
            assert row["latency_ms"]["p50"] <= row["latency_ms"]["p90"] <= row["latency_ms"]["p99"]
            assert row["retention"] == pytest.approx(row["accuracy"] / teacher["accuracy"])
            assert row["agreement_teacher"] is not None and row["agreement_reference"] is not None
    assert all(b["passed"] for b in report["budget_results"])
    assert "<img" in (out / "report.html").read_text()


def test_build_exits_1_and_names_the_failing_budget(tiny_build_inputs, capsys) -> None:
    tmp_path, recipe = tiny_build_inputs
    target = tmp_path / "strict.yaml"
    target.write_text(TARGET.format(latency="0.001", retention=0.0))
    out = tmp_path / "strict-run"
    code = main(["build", "--recipe", str(recipe), "--target", str(target), "--out", str(out), "--quiet",
                 "--set", "export.backends=[onnx]"])
    assert code == 1
    printed = capsys.readouterr().out
    assert "budget max_latency_ms" in printed
    report = json.loads((out / "report.json").read_text())
    assert any(b["name"] == "max_latency_ms" and b["passed"] is False for b in report["budget_results"])
    assert not (out / "artifacts" / "openvino-fp32").exists()  # the recipe narrowed the plan to onnx


def test_build_refuses_to_overwrite_a_finished_run(tiny_build_inputs, tmp_path) -> None:
    _, recipe = tiny_build_inputs
    out = tmp_path / "done"
    out.mkdir()
    (out / "report.json").write_text("{}")
    from edgeclip.build import build
    from edgeclip.config import load_recipe
    from edgeclip.errors import UserError

    with pytest.raises(UserError, match="already holds a finished build"):
        build(load_recipe(str(recipe)), "cpu", out_dir=out, progress=False)
