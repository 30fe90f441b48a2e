"""`edgeclip build` with a dashcam accident recipe: encoder + head artifacts per target, timed, with budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeclip.cli import main
from edgeclip.video.synthetic import write_clip


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("accident-build")
    lines = []
    for i in range(2):
        write_clip(root / f"crash{i}.mp4", frames=30, accident_frame=18)
        write_clip(root / f"normal{i}.mp4", frames=30)
        lines += [f"crash{i}.mp4 1 19", f"normal{i}.mp4 0"]
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    path = root / "accident-tiny.yaml"
    path.write_text(f"""
description: tiny accident build for tests
video:
  clips: [{root / 'list.txt'}]
  encoder: test_distillclip
  frames: 4
  stride: 2
  gap_s: 0.5
  epochs: 2
  folds: 2
  bench_frames: 24
  min_fps: 0.5
  min_fps_every_frame: 0.5
""")
    return path


def profile(tmp_path: Path, name: str, backends: str, precisions: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nbackends: [{backends}]\nprecisions: [{precisions}]\n"
                    "budgets:\n  max_latency_ms: 100000\n  min_retention: 0.0\n")
    return path


def test_accident_build_on_this_cpu_times_every_variant(recipe, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["build", "--recipe", str(recipe), "--target", str(profile(tmp_path, "cpu-test", "onnx, openvino", "fp32")),
                 "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads((out / "report.json").read_text())
    students = [r for r in report["rows"] if r["role"] == "student"]
    assert sorted((r["backend"], r["precision"]) for r in students) == [("onnx", "fp32"), ("openvino", "fp32")]
    for row in students:
        assert row["status"] == "ok" and row["latency_ms"]["p50"] > 0 and row["throughput"] > 0
        assert 0 <= row["accuracy"] <= 1 and row["retention"] is not None
        assert "clip latency" in row["notes"] and "head p50" in row["notes"]
    names = {b["name"] for b in report["budget_results"]}
    assert {"max_latency_ms", "min_retention", "min_fps", "min_fps_every_frame"} <= names
    assert all(b["passed"] is True for b in report["budget_results"])
    assert report["verdict"] and (out / "accident_model.json").is_file() and (out / "report.html").is_file()
    assert any("labelled protocol" in note for note in report["notes"])


def test_accident_build_for_a_tensorrt_device_says_how_to_finish(recipe, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["build", "--recipe", str(recipe), "--target", str(profile(tmp_path, "jetson-test", "tensorrt", "fp16")),
                 "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 1  # built, but nothing could be verified here
    report = json.loads((out / "report.json").read_text())
    (row,) = [r for r in report["rows"] if r["role"] == "student"]
    assert row["backend"] == "tensorrt" and row["status"].startswith("needs_target:") and "--remote" in row["status"]
    assert report["budget_results"] and all(b["passed"] is None for b in report["budget_results"])
    assert "not verified" in printed
    for part in ("encoder-tensorrt-fp16", "head-tensorrt-fp32"):  # the head stays fp32 (it costs ~1 ms)
        assert (out / "artifacts" / part / "build_engine.sh").is_file()


def test_failing_fps_budget_fails_the_row():
    from types import SimpleNamespace

    from edgeclip.bench.report import ReportRow
    from edgeclip.build.accident import fps_budgets

    row = ReportRow(name="enc+head", backend="onnx", precision="fp32", throughput=12.0)
    recipe = SimpleNamespace(video=SimpleNamespace(min_fps=30.0, min_fps_every_frame=10.0))
    results = {b["name"]: b for b in fps_budgets([row], recipe, {"enc+head [onnx-fp32]": 11.0}, measured=True)}
    assert results["min_fps"]["passed"] is False and results["min_fps"]["status"] == "fail"
    assert results["min_fps_every_frame"]["passed"] is True
    off_target = fps_budgets([row], recipe, {"enc+head [onnx-fp32]": 11.0}, measured=False)
    assert all(b["passed"] is None and b["measured"] is None for b in off_target)
