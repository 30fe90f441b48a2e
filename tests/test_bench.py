"""FLOPs, latency, interleaving, evaluation, memory, environment and the `edgeclip bench` command."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeclip.bench.environment import collect_environment
from edgeclip.bench.flops import count_flops, count_tower_flops
from edgeclip.bench.harness import benchmark_interleaved, evaluate_runtime
from edgeclip.bench.latency import measure_latency, measure_throughput
from edgeclip.bench.memory import measure_peak_memory
from edgeclip.bench.report_schema import report_problems
from edgeclip.errors import UserError


pytestmark = pytest.mark.usefixtures("private_cache")


# ---- FLOPs ----

def test_count_flops_matches_hand_count():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    # conv: 2 * (4*6*6 outputs) * (3*3*3 MACs each); linear: 2 * 144 * 5. Bias adds are not counted.
    expected = 2 * (4 * 6 * 6) * 27 + 2 * 144 * 5
    assert count_flops(model, torch.zeros(1, 3, 8, 8)) == expected


@pytest.mark.parametrize("initial", [True, False])
def test_count_flops_restores_mha_fastpath(initial):
    torch.backends.mha.set_fastpath_enabled(initial)
    try:
        count_flops(torch.nn.Linear(4, 4), torch.zeros(1, 4))
        assert torch.backends.mha.get_fastpath_enabled() is initial
    finally:
        torch.backends.mha.set_fastpath_enabled(True)


def test_vit_b32_tower_flops_match_published_count():
    open_clip = pytest.importorskip("open_clip")
    model = open_clip.create_model("ViT-B-32")  # random init: FLOPs do not depend on weights
    model.train()
    towers = count_tower_flops(model)
    assert towers["image"] == pytest.approx(8.8e9, rel=0.02)
    assert 0 < towers["text"] < towers["image"]
    assert model.training  # counting ran in eval mode and put the mode back
    # The trap this guards against: the fused attention fast path hides attention from the counter.
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as naive:
        model.encode_image(torch.zeros(1, 3, 224, 224))
    assert naive.get_total_flops() < 0.8 * towers["image"]


# ---- latency ----

def _sleeper(pattern_ms, calls):
    def run(_batch):
        calls.append(time.perf_counter())
        time.sleep(pattern_ms[(len(calls) - 1) % len(pattern_ms)] / 1000)
    return run


def test_measure_latency_orders_percentiles_and_respects_iterations():
    calls: list[float] = []
    stats = measure_latency(_sleeper([1] * 8 + [12] * 2, calls), None, warmup=3, iterations=20, max_seconds=30)
    assert stats["iterations"] == 20 and len(calls) == 23
    assert stats["p50"] <= stats["p90"] <= stats["p99"]
    assert stats["p99"] >= 11.0  # the slow calls land in the tail
    assert stats["p50"] < stats["p99"]


def test_measure_latency_stops_at_max_seconds():
    calls: list[float] = []
    stats = measure_latency(_sleeper([20], calls), None, warmup=0, iterations=1000, max_seconds=0.1)
    assert 1 <= stats["iterations"] < 50


def test_measure_throughput_counts_images():
    calls: list[float] = []
    rate = measure_throughput(_sleeper([10], calls), np.zeros((8, 3)), warmup=1, iterations=5, max_seconds=10)
    assert 100 < rate <= 800  # 8 images per >= 10 ms call


# ---- interleaving ----

def test_interleaved_round_robin_order():
    order: list[str] = []
    runners = {name: (lambda _b, n=name: order.append(n)) for name in "abcd"}
    stats = benchmark_interleaved(runners, None, warmup=2, iterations=12, max_seconds=60)
    assert order[:8] == list("abcdabcd")  # warm-up
    timed = order[8:]
    assert len(timed) == 48
    blocks = [timed[cycle * 4:(cycle + 1) * 4] for cycle in range(12)]
    assert all(sorted(block) == list("abcd") for block in blocks)  # every backend once per cycle
    # No backend always follows the same one (a cache-evicting neighbour would slow it every cycle).
    predecessors = {name: {block[block.index(name) - 1] for block in blocks if block.index(name) > 0} for name in "abcd"}
    assert all(len(before) >= 2 for before in predecessors.values()), predecessors
    assert all(stats[n]["iterations"] == 12 for n in "abcd")


def test_interleaved_failing_runner_is_reported_not_raised():
    calls = {"n": 0}

    def flaky(_batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("device lost")

    stats = benchmark_interleaved({"ok": lambda b: None, "flaky": flaky}, {"ok": 1, "flaky": 2}, warmup=1,
                                  iterations=5, max_seconds=60)
    assert "device lost" in stats["flaky"]["error"]
    assert stats["ok"]["iterations"] == 5


def test_evaluate_runtime_accuracy_and_agreements():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((10, 3, 4, 4)).astype(np.float32)
    labels = np.array([0, 1] * 5)

    def run(batch):  # predicts class 1 when the mean is positive
        mean = batch.mean(axis=(1, 2, 3))
        return np.stack([-mean, mean], axis=1)

    predicted = (images.mean(axis=(1, 2, 3)) > 0).astype(int)
    teacher = np.eye(2)[labels]
    reference = np.eye(2)[predicted]
    result = evaluate_runtime(run, images, labels, reference_logits=reference, teacher_logits=teacher, batch_size=3)
    assert result["accuracy"] == pytest.approx((predicted == labels).mean())
    assert result["agreement_teacher"] == pytest.approx((predicted == labels).mean())
    assert result["agreement_reference"] == 1.0
    assert result["logits"].shape == (10, 2)
    with pytest.raises(ValueError):
        evaluate_runtime(run, images, labels[:3])


# ---- artifacts, memory, environment, command ----

def make_artifact(directory: Path, hidden: int = 8, seed: int = 0, parity_passed: bool = True) -> Path:
    """A tiny ONNX classifier artifact with a manifest in the exporters' format."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, 3)).eval()
    directory.mkdir(parents=True)
    torch.onnx.export(model, (torch.zeros(2, 3, 8, 8),), str(directory / "model.onnx"), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    manifest = {
        "schema_version": 1, "name": "tiny", "kind": "classifier", "backend": "onnx", "precision": "fp32",
        "runtime_module": "onnxruntime",
        "status": "ready", "model_file": "model.onnx", "size_bytes": (directory / "model.onnx").stat().st_size,
        "inputs": [{"name": "image", "shape": ["batch", 3, 8, 8], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": ["batch", 3], "dtype": "float32"}],
        "preprocessing": {"size": 8}, "class_names": ["a", "b", "c"],
        "parity": {"status": "ran", "passed": parity_passed},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_peak_memory_grows_with_the_model(tmp_path):
    small = measure_peak_memory(make_artifact(tmp_path / "small", hidden=4))
    big = measure_peak_memory(make_artifact(tmp_path / "big", hidden=32768))  # 192 x 32768 fp32 = 25 MB weights
    assert small is not None and big is not None
    assert big >= 20.0 and big > small


def test_environment_block():
    env = collect_environment(threads=3)
    assert env["threads"] == 3 and env["cores_logical"] >= 1
    assert "numpy" in env["versions"] and env["python"].count(".") == 2
    assert env["cpu"] and env["os"]
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").is_file() else None
    if flags is not None:  # int8 speed depends on VNNI: the block says whether this CPU has it
        assert env["cpu_int8_features"]["vnni"] == any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
        assert env["cpu_int8_features"]["avx2"] == ("avx2" in flags)


def test_a_loaded_machine_is_flagged_in_the_environment_and_both_reports(monkeypatch):
    import os

    from edgeclip.bench.report import Report
    from edgeclip.bench.report_html import render_html
    from edgeclip.bench.report_text import render_markdown

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 2.5, 1.0, 1.0))
    env = collect_environment(threads=1)
    assert env["load_average_1m"] == cores + 2.5 and "loaded while timing" in env["load_warning"]
    report = Report([], environment=env, notes=[])
    assert f"> **Warning:** the machine was loaded while timing: 1-min load average {cores + 2.5:g}" in render_markdown(report)
    assert "class='load-warning'" in render_html(report)
    monkeypatch.setattr(os, "getloadavg", lambda: (cores - 0.5 if cores > 1 else 0.2, 1.0, 1.0))
    quiet = collect_environment(threads=1)
    assert "load_warning" not in quiet and "Warning" not in render_markdown(Report([], environment=quiet, notes=[]))


def bench(argv: list[str]) -> int:
    from edgeclip.commands import bench_cmd

    parser = argparse.ArgumentParser()
    bench_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["bench", *argv])
    return args.func(args)


FAST = ["--warmup", "1", "--iterations", "5", "--max-seconds", "2", "--throughput-batch", "4"]


def _eval_npz(path: Path, n: int = 12) -> Path:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, n)
    np.savez(path, images=rng.standard_normal((n, 3, 8, 8)).astype(np.float32), labels=labels,
             teacher_logits=np.eye(3)[labels] * 5.0)  # a perfect teacher: accuracy 1.0
    return path


def test_bench_command_writes_report_and_passes_budgets(tmp_path, capsys):
    run = tmp_path / "run"
    fp32 = make_artifact(run / "artifacts" / "onnx-fp32")
    other = make_artifact(run / "artifacts" / "onnx-wide", hidden=16, seed=1)
    profile = tmp_path / "lab.yaml"
    profile.write_text("name: lab\nbackends: [onnx]\nbudgets: {max_latency_ms: 10000, max_memory_mb: 4096, min_retention: 0.1}\n")
    rc = bench([*FAST, "--artifact", str(fp32), "--artifact", str(other), "--data", str(_eval_npz(tmp_path / "d.npz")),
                "--target", str(profile)])
    assert rc == 0
    data = json.loads((run / "report.json").read_text())  # default out dir: the run dir
    assert report_problems(data) == []
    rows = {(r["role"], r["name"], r["notes"].split(";")[0]): r for r in data["rows"]}
    teacher = next(r for r in data["rows"] if r["role"] == "teacher")
    assert teacher["accuracy"] == 1.0
    students = [r for r in data["rows"] if r["role"] == "student"]
    assert len(students) == 2 and len(rows) == 3
    for row in students:
        assert row["status"] == "ok" and row["latency_ms"]["iterations"] == 5
        assert row["retention"] == pytest.approx(row["accuracy"])  # teacher accuracy is 1.0
        assert row["agreement_teacher"] == pytest.approx(row["accuracy"])
        assert row["peak_mem_mb"] is not None and row["throughput"] > 0
    assert [b["status"] for b in data["budget_results"]] == ["pass"] * 6  # 3 budgets x 2 students
    assert (run / "report.md").is_file() and (run / "report.html").is_file()
    # A few inputs as the model sees them: a PNG beside the report, linked and embedded.
    assert (run / "inputs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](inputs.png)" in (run / "report.md").read_text()
    assert "Inputs as the model sees them" in (run / "report.html").read_text()
    assert "onnx-fp32" in capsys.readouterr().out


def test_bench_command_exits_1_on_failed_budget_and_failed_row(tmp_path):
    profile = tmp_path / "strict.yaml"
    profile.write_text("name: strict\nbackends: [onnx]\nbudgets:\n  max_latency_ms: 0.000001\n")
    good = make_artifact(tmp_path / "artifacts" / "onnx-fp32")
    rc = bench([*FAST, "--no-memory", "--artifact", str(good), "--target", str(profile), "--out", str(tmp_path / "out")])
    assert rc == 1
    results = json.loads((tmp_path / "out" / "report.json").read_text())["budget_results"]
    assert results[0]["status"] == "fail"

    bad_parity = make_artifact(tmp_path / "artifacts2" / "onnx-int8", parity_passed=False)
    rc = bench([*FAST, "--no-memory", "--artifact", str(bad_parity), "--out", str(tmp_path / "out2")])
    assert rc == 1
    row = json.loads((tmp_path / "out2" / "report.json").read_text())["rows"][0]
    assert row["status"].startswith("failed: parity") and row["latency_ms"] is not None


def test_bench_command_user_errors(tmp_path):
    artifact = make_artifact(tmp_path / "artifacts" / "onnx-fp32")
    with pytest.raises(UserError, match="unknown target 'jetsn'.*jetson"):
        bench(["--artifact", str(artifact), "--target", "jetsn"])
    with pytest.raises(UserError, match="does not exist"):
        bench(["--artifact", str(tmp_path / "nope")])
    (artifact / "model.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(UserError, match="corrupt"):
        bench([*FAST, "--artifact", str(artifact)])
    assert not (tmp_path / "report.json").exists()  # nothing half-written


def test_bench_for_a_target_this_machine_is_not_leaves_budgets_unmeasured(tmp_path):
    profile = tmp_path / "board.yaml"
    profile.write_text("name: board\narch: [riscv64]\nbackends: [onnx]\nbudgets: {max_latency_ms: 10000}\n")
    artifact = make_artifact(tmp_path / "artifacts" / "onnx-fp32")
    assert bench([*FAST, "--no-memory", "--artifact", str(artifact), "--target", str(profile)]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["rows"][0]["latency_ms"] is not None  # measured here ...
    assert [b["status"] for b in data["budget_results"]] == ["not measured"]  # ... but not on the board
    assert any("not on board" in note for note in data["notes"])


def test_input_preview_spreads_over_classes_and_undoes_the_normalization():
    from edgeclip.bench.report_inputs import denormalize, preview_png, spread_indices

    labels = np.array([0, 0, 0, 1, 1, 2])
    assert spread_indices(labels, 4) == [0, 3, 5, 1]  # one per class first, then the second of each
    pixels = np.full((1, 3, 2, 2), 0.5, np.float32)
    restored = denormalize((pixels - 0.25) / 0.5, mean=(0.25,) * 3, std=(0.5,) * 3)
    np.testing.assert_allclose(restored, 0.5, atol=1e-6)
    png = preview_png(np.zeros((6, 3, 8, 8), np.float32), labels, ["a", "b", "c"], (0.5,) * 3, (0.5,) * 3)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_reference_rows_are_timed_with_the_benchmarks_thread_count():
    """`bench --threads 1`: the unexported PyTorch reference must not take every core while the others are timed."""
    from edgeclip.bench.harness import _reference_item
    from edgeclip.students.registry import create_student

    model, spec = create_student("resnet18_w8", class_names=["a", "b"], image_size=32)
    before = torch.get_num_threads()
    try:
        item = _reference_item("in-memory", {"in-memory": (model, spec)}, threads=1)
        assert item.runtime.threads == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
