"""Device numbers that are the device's (issue 19): rows timed on the build host for a target this
machine is not are marked so and decide nothing; the Pi's int8 format is chosen for arm64; the
int8-vs-fp32 choice on a CPU target is decided from interleaved rounds with a margin."""

from __future__ import annotations

import json
import platform

import numpy as np
import onnx
import pytest
import torch

from edgeclip.bench.latency import TIMING_ROUNDS, benchmark_interleaved, round_p50s
from edgeclip.bench.report import BUILD_HOST, ON_TARGET, Report, ReportRow
from edgeclip.bench.report_html import render_html
from edgeclip.bench.report_schema import report_problems
from edgeclip.bench.report_text import console_table, render_markdown
from edgeclip.bench.verdict import compute_verdict, verdict_sentence
from edgeclip.compress import cpu
from edgeclip.compress.int8_inputs import int8_options
from edgeclip.compress.ship_rule import INT8_MIN_GAIN, int8_problems, median_latency_ratio
from edgeclip.config import Int8Config
from edgeclip.targets import Target, load_target


def _row(name: str, backend: str, precision: str, p50: float, rounds: list[float] | None = None,
         role: str = "student", agreement: float | None = 1.0) -> ReportRow:
    latency = {"p50": p50, "p90": p50 * 1.1, "p99": p50 * 1.2}
    if rounds is not None:
        latency["round_p50"] = rounds
    return ReportRow(name=name, role=role, backend=backend, precision=precision, latency_ms=latency,
                     agreement_reference=agreement if role == "student" else None, accuracy=0.9, kind="classifier")


def _target(name: str, here: bool, arch: tuple[str, ...] = ()) -> Target:
    """A profile whose measurable_here is `here` whatever machine runs the test (no budgets: only
    the timing rule can then stop a recommendation)."""
    class Fixed(Target):
        @property
        def measurable_here(self) -> bool:  # type: ignore[override]
            return here
    return Fixed(name=name, backends=("onnx",), precisions=("fp32", "int8"), arch=arch)


# ---- rows timed on the build host ---------------------------------------------------------------

def _report_for(target: Target, measured_on_target: bool) -> Report:
    rows = [_row("teacher", "torch", "fp32", 50.0, role="teacher"),
            _row("s", "onnx", "fp32", 1.0, [1.0] * 5), _row("s", "onnx", "int8", 0.5, [0.5] * 5),
            _row("ViT-B-32", "onnx", "fp32", 100.0, role="speed_reference")]
    report = Report(rows=rows, environment={"cpu": "Test x86 CPU"}, run_id="t")
    report.apply_target(target, measured_on_target=measured_on_target)
    report.fill_speedups()
    report.verdict = compute_verdict(report)
    return report


def test_rows_timed_on_the_build_host_are_marked_and_recommend_nothing():
    report = _report_for(_target("raspberry-pi-5", here=False, arch=("aarch64",)), measured_on_target=False)
    students = [r for r in report.rows if r.role == "student"]
    assert {r.measured_on for r in report.rows} == {BUILD_HOST}  # the teacher ran here too, not on the Pi
    # The int8 row is 2x faster here, but an x86 timing says nothing of the Pi: no speed verdict on it.
    assert int8_problems(report.rows) == {}
    assert report.verdict["recommended"] is None and report.verdict["timed_on"] == "build host"
    assert "choice_rule" not in report.verdict
    why = {o["row"]: o["why"] for o in report.verdict["others"]}
    assert all("timed on the build host, not on raspberry-pi-5" in why[r.label] for r in students)
    sentence = verdict_sentence(report.verdict)
    assert "measured on the build host, not on raspberry-pi-5" in sentence and "Ship" not in sentence
    # Visible in every view: the row's own cell and the sentence under the table.
    markdown, page, console = render_markdown(report), render_html(report), console_table(report)
    assert "| build host, not the target |" in markdown and "measured on Test x86 CPU, not on raspberry-pi-5" in markdown
    assert "<td>build host, not the target</td>" in page and "class='caveat'" in page
    assert "build host, not the target" in console and "100.0x (build host)" in console
    data = json.loads(json.dumps(report.to_dict()))
    assert report_problems(data) == [] and data["rows"][1]["measured_on"] == BUILD_HOST


def test_rows_measured_on_the_target_decide():
    report = _report_for(_target("cpu", here=True), measured_on_target=True)
    assert {r.measured_on for r in report.rows} == {ON_TARGET}
    assert report.verdict["recommended"] == "s [onnx-int8]" and report.verdict["timed_on"] == "target"
    assert f"{INT8_MIN_GAIN:.0%} below fp32" in report.verdict["choice_rule"] and f"{TIMING_ROUNDS} interleaved" in report.verdict["choice_rule"]
    assert "Choice rule:" in verdict_sentence(report.verdict)
    assert "build host" not in render_markdown(report)


def test_remote_rows_are_the_targets_but_local_teacher_rows_are_not():
    # --remote: students and speed references come from the device, the teacher was timed here.
    report = _report_for(_target("jetson-orin-nano", here=False, arch=("aarch64",)), measured_on_target=True)
    on = {r.role: r.measured_on for r in report.rows}
    assert on == {"teacher": BUILD_HOST, "student": ON_TARGET, "speed_reference": ON_TARGET}
    assert report.verdict["recommended"] == "s [onnx-int8]" and not report.timed_on_build_host


def test_reports_written_before_measured_on_still_validate_and_bad_values_are_named():
    row = _row("s", "onnx", "fp32", 1.0).to_dict()
    data = Report(rows=[], environment={}, run_id="t").to_dict()
    del row["measured_on"]
    assert report_problems({**data, "rows": [row]}) == []
    problems = report_problems({**data, "rows": [{**row, "measured_on": "the moon"}]})
    assert problems and "measured_on" in problems[0]


# ---- int8 vs fp32 on a CPU target: rounds and a margin --------------------------------------------

def test_int8_ships_only_when_faster_by_the_margin_in_the_median_of_rounds():
    fp32 = _row("s", "onnx", "fp32", 1.0, [1.0, 1.0, 1.0, 1.0, 1.0])
    # Overall p50 says int8 is 4% faster: within the 5% margin, so fp32 (more accurate) ships.
    close = _row("s", "onnx", "int8", 0.96, [0.96, 0.97, 0.96, 0.95, 0.97])
    # One loaded round made int8 look slow, and the overall p50s disagree; the median of rounds holds.
    clear = _row("s", "openvino", "int8", 1.05, [0.8, 0.8, 2.5, 0.8, 0.8])
    fp32_ov = _row("s", "openvino", "fp32", 1.0, [1.0, 1.0, 1.0, 1.0, 1.0])
    rows = [fp32, close, fp32_ov, clear]
    problems = int8_problems(rows)
    assert "not at least 5% faster" in problems[id(close)] and "median of 5 interleaved rounds" in problems[id(close)]
    assert "fp32 kept, it is the more accurate" in problems[id(close)]
    assert id(clear) not in problems
    assert median_latency_ratio(clear.latency_ms, fp32_ov.latency_ms) == (pytest.approx(0.8), 5)
    # Rows without rounds (the device runner's) fall back to one round of overall p50s.
    assert median_latency_ratio({"p50": 0.9}, {"p50": 1.0}) == (pytest.approx(0.9), 1)
    assert median_latency_ratio({"p50": 0.9}, None) is None


def test_the_choice_is_stable_under_load_that_flips_the_overall_p50():
    """Ten simulated runs where a noisy neighbour lands on random rounds: the overall p50 comparison
    flips, the rounds rule gives the same answer every run."""
    rng = np.random.default_rng(0)
    overall, rounds_rule = set(), set()
    for _ in range(10):
        fp32_rounds, int8_rounds = [], []
        for _ in range(5):
            load = 1.0 + (2.0 if rng.random() < 0.3 else 0.0) * rng.random()  # same load for both in a round
            fp32_rounds.append(1.0 * load)
            int8_rounds.append(0.85 * load)  # int8 is truly 15% faster
        # An overall p50 from one sequential timing each: int8 ran in a loaded moment, fp32 did not.
        fp32_p50, int8_p50 = min(fp32_rounds), max(int8_rounds)
        overall.add(int8_p50 < fp32_p50)
        rows = [_row("s", "onnx", "fp32", fp32_p50, fp32_rounds), _row("s", "onnx", "int8", int8_p50, int8_rounds)]
        rounds_rule.add(id(rows[1]) not in int8_problems(rows))
    assert rounds_rule == {True}
    assert len(overall) == 2  # the single-p50 comparison did flip in these runs


def test_interleaved_timing_records_one_p50_per_round():
    assert round_p50s([1, 1, 9, 2, 2, 2, 3, 3, 3, 4], rounds=5) == [1.0, 5.5, 2.0, 3.0, 3.5]
    assert round_p50s([4.0, 2.0], rounds=5) == [4.0, 2.0]  # fewer samples than rounds
    stats = benchmark_interleaved({"a": lambda b: None, "b": lambda b: None}, None, warmup=0, iterations=20, max_seconds=60)
    assert all(len(stats[n]["round_p50"]) == TIMING_ROUNDS for n in "ab")


# ---- the int8 format and speed check follow the target ---------------------------------------------

def test_int8_format_is_chosen_for_the_targets_cpu():
    activations, weights, why = cpu.ort_int8_format("aarch64")
    assert (activations, weights) == ("int8", "int8") and "S8S8" in why
    here = cpu.ort_int8_format(None)
    assert here[0] == "uint8" and here[1:] == cpu.ort_int8_weights()

    pi = load_target("raspberry-pi-5")
    options = int8_options(Int8Config(), None, pi)
    if pi.measurable_here:  # this machine is an arm64 Linux box: it is a Pi for the build
        assert options.speed_check and options.arch is None
    else:
        assert options.arch == "aarch64" and not options.speed_check and options.target == "raspberry-pi-5"
    local = int8_options(Int8Config(), None, _target("cpu", here=True))
    assert local.speed_check and local.arch is None


def test_an_int8_export_for_an_arm64_target_is_s8s8_and_says_why(tmp_path):
    from edgeclip.compress.int8 import Int8Options
    from edgeclip.exporters.export import export_model
    from edgeclip.exporters.testing import structured_images, tiny_cnn_spec, trained_tiny_cnn

    images, _ = structured_images(32, seed=5)
    options = Int8Options(mixed=False, speed_check=False, arch="aarch64", target="raspberry-pi-5")
    artifact = export_model(trained_tiny_cnn(), tiny_cnn_spec(), "onnx", "int8", tmp_path / "pi", calibration=images,
                            parity_inputs=images[:8], int8=options)
    quant = artifact.manifest["quantization"]
    assert quant["weights"] == "int8" and quant["activations"].startswith("int8") and "S8S8" in quant["weights_why"]
    assert quant["options"]["arch"] == "aarch64" and quant["speed_check"]["measured"] is False
    assert "not target raspberry-pi-5" in quant["speed_check"]["reason"]
    graph = onnx.load(str(artifact.model_path)).graph
    zero_points = {init.name: init.data_type for init in graph.initializer}
    activation_q = [n for n in graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert activation_q and all(zero_points[n.input[2]] == onnx.TensorProto.INT8 for n in activation_q)


# ---- end to end: a build for an arm64 board on this x86 machine ------------------------------------

ARM_TARGET = """
name: tiny-arm-board
arch: [aarch64, arm64]
os: [linux]
backends: [onnx]
precisions: [fp32, int8]
"""


@pytest.mark.skipif(platform.machine().lower() in ("aarch64", "arm64"), reason="this machine is an arm64 board itself")
def test_a_build_for_an_arm_board_marks_host_timings_and_makes_s8s8(tmp_path, monkeypatch, tiny_clip_config, capsys):
    from test_build import TINY_RECIPE, tiny_tower

    from edgeclip.cli import main
    from edgeclip.data.preprocess import Preprocess
    from edgeclip.teacher import ClipTeacher

    monkeypatch.setenv("EDGECLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("edgeclip.build.speed_reference.image_tower", tiny_tower)
    torch.manual_seed(0)
    ClipTeacher.from_config("tiny-teacher", tiny_clip_config, Preprocess(size=16, resize_mode="stretch")).save(tmp_path / "teacher.pt")
    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE.format(teacher=tmp_path / "teacher.pt"))
    (tmp_path / "board.yaml").write_text(ARM_TARGET)
    out = tmp_path / "run"
    assert main(["build", "--recipe", str(tmp_path / "tiny.yaml"), "--target", str(tmp_path / "board.yaml"),
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    timed = [r for r in report["rows"] if r["role"] in ("student", "speed_reference")]
    assert timed and all(r["measured_on"] == BUILD_HOST for r in timed)
    assert report["verdict"]["recommended"] is None and report["verdict"]["timed_on"] == "build host"
    assert "measured on the build host, not on tiny-arm-board" in printed
    assert "build host, not the target" in (out / "report.md").read_text()
    quant = json.loads((out / "artifacts" / "onnx-int8" / "manifest.json").read_text())["quantization"]
    assert (quant["weights"], quant["activations"].split()[0]) == ("int8", "int8") and "S8S8" in quant["weights_why"]
    assert quant["speed_check"] == {"measured": False, "reason": "this machine is not target tiny-arm-board: int8 vs "
                                    "fp32 speed is measured on the device (--remote), not on the build host"}


def test_the_export_time_speed_check_uses_the_same_rule(monkeypatch):
    from edgeclip.compress import int8 as int8_module

    def fake_interleaved(runners, example, **kwargs):  # overall p50s say int8 wins; the rounds say "within 5%"
        return {"fp32": {"p50": 1.0, "iterations": 50, "round_p50": [1.0] * 5},
                "int8": {"p50": 0.9, "iterations": 50, "round_p50": [0.97, 0.96, 0.98, 0.97, 0.9]}}

    monkeypatch.setattr(int8_module, "benchmark_interleaved", fake_interleaved)
    record = int8_module.speed_check(lambda b: None, lambda b: None, np.zeros((1, 3, 4, 4), np.float32), 1.0)
    assert record["int8_over_fp32"] == 0.97 and record["rounds"] == 5 and record["min_gain"] == INT8_MIN_GAIN
    assert record["int8_faster"] is False


def test_candidates_within_the_margin_tie_and_the_more_accurate_then_smaller_wins():
    def row(backend, p50, rounds, accuracy, size):
        r = _row("s", backend, "fp32", p50, rounds)
        r.accuracy, r.size_mb = accuracy, size
        return r

    fast = row("openvino", 0.97, [0.97] * 5, 0.90, 2.0)
    accurate = row("onnx", 1.0, [1.0] * 5, 0.92, 2.5)  # 3% slower: a tie, more accurate -> ships
    far = row("torchscript", 2.0, [2.0] * 5, 0.99, 1.0)  # most accurate but 2x slower: not a tie
    report = Report(rows=[fast, accurate, far], environment={}, run_id="t")
    verdict = compute_verdict(report)
    assert verdict["recommended"] == "s [onnx-fp32]"
    why = {o["row"]: o["why"] for o in verdict["others"]}
    assert why["s [openvino-fp32]"].startswith("ties with s [onnx-fp32] on speed")
    assert why["s [torchscript-fp32]"].startswith("slower than s [onnx-fp32]")
    assert "within 5% of the fastest are a tie" in verdict["choice_rule"]
    # Same accuracy: the smaller of the tied ones.
    accurate.accuracy = 0.90
    assert compute_verdict(Report(rows=[fast, accurate, far], environment={}, run_id="t"))["recommended"] == "s [openvino-fp32]"
    # The overall p50s say the two swapped places this run; the interleaved rounds still call it a tie.
    fast.latency_ms["p50"], accurate.latency_ms["p50"] = 1.02, 0.99
    assert compute_verdict(Report(rows=[fast, accurate, far], environment={}, run_id="t"))["recommended"] == "s [openvino-fp32]"


@pytest.mark.skipif(platform.machine().lower() in ("aarch64", "arm64"), reason="this machine is an arm64 board itself")
def test_bench_for_a_pi_on_this_machine_marks_every_timed_row(tmp_path, capsys):
    from edgeclip.cli import main
    from edgeclip.exporters.export import export_model
    from edgeclip.exporters.testing import structured_images, tiny_cnn_spec, trained_tiny_cnn

    images, labels = structured_images(16, seed=4)
    artifact = export_model(trained_tiny_cnn(), tiny_cnn_spec(), "onnx", "fp32", tmp_path / "run" / "artifacts" / "onnx-fp32",
                            parity_inputs=images[:4]).path
    np.savez(tmp_path / "eval.npz", images=images, labels=labels)
    code = main(["bench", "--artifact", str(artifact), "--target", "raspberry-pi-5", "--data", str(tmp_path / "eval.npz"),
                 "--warmup", "1", "--iterations", "5", "--max-seconds", "1", "--throughput-batch", "0", "--no-memory"])
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    timed = [r for r in report["rows"] if r["latency_ms"]]
    assert timed and all(r["measured_on"] == BUILD_HOST for r in timed)
    assert "build host, not the target" in printed and all(b["status"] == "not measured" for b in report["budget_results"])
    assert code == 0  # nothing failed; the budgets are simply not measured here
