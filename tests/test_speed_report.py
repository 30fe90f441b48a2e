"""Speed columns of the report: the machine's GEMM roof (cached), achieved GFLOP/s and % of roof per row,
and the student timed at the teacher's input size (equal-resolution × teacher)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgeclip.bench.report import Report, ReportRow
from edgeclip.bench.report_schema import report_problems
from edgeclip.bench.report_text import TABLE_HEADER, render_markdown, table_cells
from edgeclip.bench.roof import apply_roof, machine_roof, measure_roof, roof_cache_key


def test_roof_is_measured_once_then_read_from_the_cache(tmp_path):
    calls: list[int] = []

    def fake_measure(threads: int) -> dict:
        calls.append(threads)
        return {"fp32": 100.0 * threads, "int8": 700.0, "by_library": {}, "errors": {}}

    first = machine_roof(1, measure=fake_measure, cache=tmp_path)
    again = machine_roof(1, measure=fake_measure, cache=tmp_path)
    assert calls == [1] and first["cached"] is False and again["cached"] is True
    assert again["fp32"] == 100.0 and again["key"] == first["key"] == roof_cache_key(1)
    other = machine_roof(2, measure=fake_measure, cache=tmp_path)  # another thread count: another roof
    assert calls == [1, 2] and other["fp32"] == 200.0 and other["key"] != first["key"]
    (tmp_path / f"{roof_cache_key(1)}.json").write_text("{torn")  # a corrupt cache file is measured again
    assert machine_roof(1, measure=fake_measure, cache=tmp_path)["cached"] is False and calls == [1, 2, 1]


def test_measured_roof_has_both_precisions_and_int8_beats_nothing_by_accident():
    roof = measure_roof(1, size=128, repeats=1)
    assert set(roof["by_library"]["fp32"]) == {"torch", "onnxruntime", "openvino"}, roof["errors"]
    assert roof["fp32"] == max(roof["by_library"]["fp32"].values()) > 0
    assert roof["int8"] == max(roof["by_library"]["int8"].values()) > 0


def test_percent_of_roof_on_a_fake_row():
    roof = {"fp32": 400.0, "int8": 1600.0}
    fp32 = ReportRow("a", precision="fp32", flops=2_000_000_000, latency_ms={"p50": 10.0, "p90": 11.0, "p99": 12.0})
    int8 = ReportRow("b", precision="int8", flops=2_000_000_000, latency_ms={"p50": 2.5, "p90": 3.0, "p99": 3.0})
    fp16 = ReportRow("c", precision="fp16", flops=1_000_000_000, latency_ms={"p50": 10.0, "p90": 10.0, "p99": 10.0})
    untimed = ReportRow("d", precision="fp32", flops=1_000_000_000)
    gpu = ReportRow("e", backend="tensorrt", precision="fp32", flops=2_000_000_000, latency_ms={"p50": 1.0, "p90": 1.0, "p99": 1.0})
    apply_roof([fp32, int8, fp16, untimed, gpu], roof)
    assert fp32.achieved_gflops == pytest.approx(200.0) and fp32.roof_percent == pytest.approx(50.0)
    assert fp32.roof_source == "this machine, square GEMM" and fp32.roof_why_not is None
    assert int8.achieved_gflops == pytest.approx(800.0) and int8.roof_percent == pytest.approx(50.0)  # int8 roof, not fp32
    assert fp16.achieved_gflops == pytest.approx(100.0) and fp16.roof_percent is None  # no fp16 roof measured
    assert fp16.roof_why_not == "no fp16 GEMM roof measured on this machine"
    assert untimed.achieved_gflops is None and untimed.roof_percent is None and untimed.roof_why_not is None
    # A GPU backend's row is not compared with the CPU's roof, whatever its precision: it says why.
    assert gpu.achieved_gflops == pytest.approx(2000.0) and gpu.roof_percent is None and gpu.roof_source is None
    assert gpu.roof_why_not == "not measured for GPU (tensorrt) rows"
    assert dict(zip(TABLE_HEADER, table_cells(gpu)))["GFLOP/s (% roof)"] == "2e+03 (n/a)"
    assert "e [tensorrt-fp32] — roof: not measured for GPU (tensorrt) rows" in render_markdown(Report([gpu]))
    both = ReportRow("f", roof_percent=10.0, roof_why_not="not measured for GPU (tensorrt) rows")
    assert any("both roof_percent and roof_why_not" in p for p in report_problems(Report([both]).to_dict()))
    report = Report([fp32, int8])
    assert report_problems(report.to_dict()) == []
    cells = dict(zip(TABLE_HEADER, table_cells(fp32)))
    assert cells["GFLOP/s (% roof)"] == "200 (50%)"
    assert "fp32 400, int8 1600 GFLOP/s" in render_markdown(report)


def _onnx_artifact(directory: Path, size: int, *, fixed_size: bool, role: str = "student", backend: str = "onnx") -> Path:
    """A tiny classifier: conv + global pool (runs at any size) or flatten + linear (one size only)."""
    torch.manual_seed(0)
    if fixed_size:
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * size * size, 3))
    else:
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                    torch.nn.Flatten(), torch.nn.Linear(4, 3))
    directory.mkdir(parents=True)
    torch.onnx.export(model.eval(), (torch.zeros(1, 3, size, size),), str(directory / "model.onnx"), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    manifest = {"schema_version": 1, "name": directory.name, "kind": "classifier", "backend": backend, "precision": "fp32",
                "role": role, "status": "ready", "model_file": "model.onnx", "flops": 2 * 3 * size * size * 3,
                "inputs": [{"name": "image", "shape": ["batch", 3, size, size], "dtype": "float32"}],
                "outputs": [{"name": "logits", "shape": ["batch", 3], "dtype": "float32"}],
                "preprocessing": {"size": size}, "class_names": ["a", "b", "c"], "parity": {"passed": True}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_a_convnet_runs_at_the_teacher_size_a_fixed_size_graph_says_why_not(tmp_path, backend):
    from edgeclip.bench.equal_resolution import example_input, resized_runner

    conv = _onnx_artifact(tmp_path / "conv", 8, fixed_size=False, backend=backend)
    run, why_not = resized_runner(json.loads((conv / "manifest.json").read_text()), conv, 32, threads=1)
    assert why_not is None and run(example_input(32)).shape[-1] == 3
    flat = _onnx_artifact(tmp_path / "flat", 8, fixed_size=True, backend=backend)
    run, why_not = resized_runner(json.loads((flat / "manifest.json").read_text()), flat, 32, threads=1)
    assert run is None and why_not.startswith("fixed-size model: runs only at 8x8")


def test_bench_times_the_student_at_the_teacher_size_in_the_same_run(tmp_path):
    from edgeclip.bench.harness import bench_artifacts
    from edgeclip.config import BenchConfig

    teacher = _onnx_artifact(tmp_path / "vit", 32, fixed_size=True, role="speed_reference")
    convnet = _onnx_artifact(tmp_path / "convnet", 8, fixed_size=False)
    flat = _onnx_artifact(tmp_path / "flat", 8, fixed_size=True)
    same = _onnx_artifact(tmp_path / "same", 32, fixed_size=False)
    config = BenchConfig(warmup=1, iterations=4, max_seconds=2, throughput_batch=0, threads=1, memory=False)
    report = Report(bench_artifacts([teacher, convnet, flat, same], config))
    report.fill_speedups()
    rows = {row.name: row for row in report.rows}
    reference_p50 = rows["vit"].latency_ms["p50"]
    equal = rows["convnet"].equal_resolution
    assert equal["input_size"] == 32 and equal["latency_ms"]["iterations"] == 4  # timed interleaved with the others
    assert equal["speedup"] == pytest.approx(reference_p50 / equal["latency_ms"]["p50"])
    assert rows["convnet"].speedup == pytest.approx(reference_p50 / rows["convnet"].latency_ms["p50"])
    assert rows["flat"].equal_resolution["latency_ms"] is None and "fixed-size" in rows["flat"].equal_resolution["why_not"]
    assert rows["same"].equal_resolution["speedup"] == pytest.approx(rows["same"].speedup)  # native size is the teacher's
    assert rows["vit"].equal_resolution is None
    flops, p50 = rows["flat"].flops, rows["flat"].latency_ms["p50"]
    assert rows["flat"].achieved_gflops == pytest.approx(flops / (p50 / 1000) / 1e9)
    assert all(row.roof_percent and row.roof_percent > 0 for row in report.rows)  # the machine's cached roof
    assert report_problems(report.to_dict()) == []
    markdown = render_markdown(report)
    assert "× teacher (at teacher size)" in markdown and f"{equal['speedup']:.1f}x @32)" in markdown
    assert "(n/a @32)" in markdown and "flat [onnx-fp32] was not timed at 32x32: fixed-size model" in markdown
    from edgeclip.bench.report_html import render_html

    page = render_html(report)
    assert "× teacher (at teacher size)" in page and "was not timed at 32x32: fixed-size model" in page and "% roof" in page


def test_equal_resolution_must_give_a_time_or_a_reason():
    row = ReportRow("s", equal_resolution={"input_size": 224, "latency_ms": None, "speedup": None, "why_not": None})
    assert any("neither latency_ms nor why_not" in p for p in report_problems(Report([row]).to_dict()))
    old = Report([ReportRow("s")]).to_dict()
    for key in ("achieved_gflops", "roof_gflops", "roof_percent", "roof_source", "roof_why_not", "equal_resolution"):
        del old["rows"][0][key]  # a report written before these fields still validates
    assert report_problems(old) == []


def test_cpu_time_medians_per_round_and_a_failing_runner_is_a_row():
    from edgeclip.bench.cpu_timing import interleaved_cpu_medians

    def busy(_batch):
        sum(range(20000))  # CPU work: counted in process time

    def broken(_batch):
        raise RuntimeError("no kernel")

    seen: list[str] = []
    results = interleaved_cpu_medians({"busy": busy, "idle": lambda b: seen.append("idle"), "broken": broken},
                                      {"busy": 0, "idle": 0, "broken": 0}, rounds=2, iterations=6, warmup=1)
    assert len(results["busy"]["cpu_ms_rounds"]) == 2 and results["busy"]["cpu_ms"] > results["idle"]["cpu_ms"]
    assert results["busy"]["iterations_per_round"] == 6 and len(seen) == 2 * (1 + 6)
    assert results["broken"] == {"error": "RuntimeError: no kernel"}


def test_ort_profile_splits_a_call_into_compute_other_and_outside_nodes():
    from edgeclip.bench.ort_profile import SKIPPED_CALLS, summarize_trace

    def call(ts: int) -> list[dict]:
        return [{"cat": "Session", "name": "model_run", "ts": ts, "dur": 100},
                {"cat": "Node", "name": "conv_kernel_time", "ts": ts + 1, "dur": 60, "args": {"op_name": "Conv"}},
                {"cat": "Node", "name": "act_kernel_time", "ts": ts + 70, "dur": 25, "args": {"op_name": "HardSigmoid"}},
                {"cat": "Node", "name": "act_fence_before", "ts": ts + 70, "dur": 9, "args": {"op_name": "HardSigmoid"}}]

    warm = [{"cat": "Session", "name": "model_run", "ts": i * 1000, "dur": 999} for i in range(SKIPPED_CALLS)]
    trace = warm + call(10_000) + call(20_000)
    summary = summarize_trace(trace)
    assert summary["runs"] == 2 and summary["model_run_us"] == 100
    assert (summary["compute_nodes_us"], summary["other_nodes_us"], summary["outside_nodes_us"]) == (60, 25, 15)
    assert summary["compute_share"] == 0.6 and summary["nodes_per_run"] == 2
    assert summary["by_op"][0] == {"op": "Conv", "us_per_run": 60, "nodes": 1, "compute": True}


def test_convolutions_are_counted_and_named_by_kind_alike_in_torch_and_in_an_onnx_graph(tmp_path):
    import onnx

    from edgeclip.bench.flops import conv_flops_by_kind
    from edgeclip.bench.ort_profile import conv_kinds

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),
                                torch.nn.Conv2d(8, 4, 1))
    flops = conv_flops_by_kind(model, torch.zeros(1, 3, 10, 10))
    assert flops == {"3x3 conv": 2 * 100 * 8 * 3 * 9, "depthwise conv": 2 * 100 * 8 * 9, "1x1 conv": 2 * 100 * 4 * 8}
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 10, 10),), str(path), dynamo=False)
    names = [node.name for node in onnx.load(str(path)).graph.node]
    assert sorted(conv_kinds(path).values()) == sorted(flops) and set(conv_kinds(path)) == set(names)


def test_bench_no_roof_leaves_the_roof_columns_empty(tmp_path):
    import argparse

    from edgeclip.commands import bench_cmd

    artifact = _onnx_artifact(tmp_path / "convnet", 8, fixed_size=False)
    parser = argparse.ArgumentParser()
    bench_cmd.register(parser.add_subparsers())
    fast = ["--warmup", "1", "--iterations", "3", "--max-seconds", "1", "--throughput-batch", "0", "--no-memory"]
    for flag, out in (["--no-roof"], "off"), ([], "on"):
        args = parser.parse_args(["bench", *fast, *flag, "--artifact", str(artifact), "--out", str(tmp_path / out)])
        assert args.func(args) == 0
    rows = {out: json.loads((tmp_path / out / "report.json").read_text())["rows"][0] for out in ("off", "on")}
    assert rows["off"]["roof_percent"] is None and rows["off"]["achieved_gflops"] is None
    assert rows["on"]["roof_percent"] > 0 and rows["on"]["roof_gflops"] > 0


def test_the_verdict_leads_with_the_speedup_at_the_teacher_input_size():
    from edgeclip.bench.verdict import verdict_sentence

    base = {"recommended": "s [onnx-fp32]", "latency_p50_ms": 0.25, "speedup": 130.9}
    at_224 = {**base, "equal_resolution_size": 224, "speedup_equal_resolution": 14.2, "input_size_differs": True}
    assert "14.2x faster than the teacher architecture at the same 224x224 input in the same backend (130.9x at its own " \
           "input size)" in verdict_sentence(at_224)
    cannot = {**at_224, "speedup_equal_resolution": None, "equal_resolution_why_not": "fixed-size model"}
    assert "130.9x faster than the teacher architecture in the same backend at its own input size (not timed at the " \
           "teacher's 224x224: fixed-size model)" in verdict_sentence(cannot)
    same = {**at_224, "input_size_differs": False}  # already at the teacher's size: one figure
    assert verdict_sentence(same).endswith("130.9x faster than the teacher architecture in the same backend.")
