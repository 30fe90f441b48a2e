"""`edgeclip build` with a data-free recipe: names in, synthetic images, KD, export, report."""

from __future__ import annotations

import json

import pytest
import torch

from edgeclip.cli import main
from edgeclip.data.preprocess import Preprocess
from edgeclip.teacher import ClipTeacher

RECIPE = """
teacher: {teacher}
data: {{train: "synthetic:4", test: "synthetic:6", templates: plain, calibration_count: 8}}
student: {{name: test_resnet, image_size: 16}}
distill: {{method: data-free, loss: [{{name: l1}}], epochs: 2, batch_size: 4, lr: 0.05, milestones: []}}
datafree:
  classes: [red circle, green square, blue triangle, yellow cross, magenta stripes]
  prompt: random
  template: "a {{}}"
  style_template: "{{}} in the style of {{}}"
  generator: pixel
  images_per_class: 2
  steps: 2
  batch_size: 2
  views: 1
  warmup_epochs: 0
export: {{parity_samples: 8}}
bench: {{warmup: 1, iterations: 3, max_seconds: 1.0, throughput_batch: 2, memory: false}}
"""

TARGET = """
name: tiny-cpu
backends: [onnx]
precisions: [fp32]
budgets: {max_latency_ms: 1000}
"""


def test_build_accepts_a_data_free_recipe(tmp_path, tiny_clip_config, monkeypatch, capsys) -> None:
    from test_build import tiny_tower

    monkeypatch.setenv("EDGECLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("edgeclip.build.speed_reference.image_tower", tiny_tower)
    torch.manual_seed(0)
    ClipTeacher.from_config("tiny-teacher", tiny_clip_config, Preprocess(size=16, resize_mode="stretch")).save(tmp_path / "t.pt")
    recipe = tmp_path / "datafree.yaml"
    recipe.write_text(RECIPE.format(teacher=tmp_path / "t.pt"))
    target = tmp_path / "tiny-cpu.yaml"
    target.write_text(TARGET)
    out = tmp_path / "run"
    code = main(["build", "--recipe", str(recipe), "--target", str(target), "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    assert (out / "synthetic" / "random" / "synthetic.json").is_file() and (out / "student" / "model.pt").is_file()
    report = json.loads((out / "report.json").read_text())
    student = next(row for row in report["rows"] if row["role"] == "student")
    teacher = next(row for row in report["rows"] if row["role"] == "teacher")
    assert student["status"] == "ok" and student["backend"] == "onnx" and "zero-shot" in teacher["name"]
    assert student["retention"] == pytest.approx(student["accuracy"] / teacher["accuracy"])
