"""Compression inside `edgeclip build`: pruned and QAT candidates, and the verdict's int8 rules."""

from __future__ import annotations

import json


from edgeclip.bench.report import Report, ReportRow
from edgeclip.bench.verdict import compute_verdict
from edgeclip.cli import main
from edgeclip.compress.ship_rule import int8_problems

from test_build import TARGET, _tiny_speed_reference, tiny_build_inputs  # noqa: F401 - fixtures shared with the build tests


def _row(name, backend, precision, p50, agreement=None):
    return ReportRow(name=name, role="student", backend=backend, precision=precision,
                     latency_ms={"p50": p50, "p90": p50, "p99": p50}, agreement_reference=agreement)


def test_verdict_keeps_fp32_where_int8_is_slower_or_changes_decisions():
    rows = [
        _row("s", "onnx", "fp32", 1.0),
        _row("s", "onnx", "int8", 1.2, agreement=1.0),  # not faster than fp32 in onnx
        _row("s", "openvino", "fp32", 0.9),
        _row("s", "openvino", "int8", 0.5, agreement=0.95),  # fastest, but flips 5% of decisions
        _row("s+qat", "openvino", "int8", 0.6, agreement=0.995),  # QAT copy: compared with the base fp32
    ]
    problems = int8_problems(rows)
    assert "not at least 5% faster than fp32 in onnx" in problems[id(rows[1])] and "fp32 kept" in problems[id(rows[1])]
    assert "agreement with its fp32 model 0.9500 < 0.99" in problems[id(rows[3])]
    assert id(rows[4]) not in problems
    verdict = compute_verdict(Report(rows=rows, environment={}, run_id="t"))
    assert verdict["recommended"] == "s+qat [openvino-int8]"
    why = {other["row"]: other["why"] for other in verdict["others"]}
    assert why["s [onnx-int8]"].startswith("int8 is not at least 5% faster")
    assert why["s [openvino-int8]"].startswith("int8 changes decisions")
    assert why["s [openvino-fp32]"].startswith("slower than s+qat [openvino-int8]")


def test_build_adds_pruned_and_qat_candidates(tiny_build_inputs, capsys):  # noqa: F811
    tmp_path, recipe = tiny_build_inputs
    target = tmp_path / "tiny-cpu.yaml"
    target.write_text(TARGET.format(latency=250))
    out = tmp_path / "run"
    code = main(["build", "--recipe", str(recipe), "--target", str(target), "--out", str(out), "--quiet",
                 "--set", "export.backends=[onnx]", "--set", "prune.ratio=0.5", "--set", "prune.recover_epochs=1",
                 "--set", "int8.qat_epochs=1", "--set", "int8.max_float_fraction=0.5"])
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    # 250 ms / 4 GB hold for these tiny models: every budget is measured and met, so the exit code is
    # 1 exactly when a row failed (e.g. an int8 variant's parity), as `edgeclip build` documents.
    assert report["budget_results"] and all(b["passed"] is True for b in report["budget_results"]), report["budget_results"]
    failed = [r["status"] for r in report["rows"] if r["role"] == "student" and r["status"] != "ok"]
    assert code == (1 if failed else 0), (code, failed, printed[-2000:])
    assert (out / "student-pruned50" / "model.pt").is_file() and (out / "student-qat" / "model.pt").is_file()
    names = sorted(p.name for p in (out / "artifacts").iterdir())
    assert names == ["onnx-fp32", "onnx-fp32-pruned50", "onnx-int8", "onnx-int8-pruned50", "onnx-int8-qat"]
    int8 = json.loads((out / "artifacts" / "onnx-int8" / "manifest.json").read_text())["quantization"]
    assert int8["method"].startswith("ort_static_qdq_") and int8["validation"]["count"] > 0
    assert int8["speed_check"]["measured"] and int8["options"]["mode"] == "auto"
    qat = json.loads((out / "artifacts" / "onnx-int8-qat" / "manifest.json").read_text())
    assert qat["name"].endswith("+qat") and qat["quantization"]["qat"]["method"] == "qat_kd"
    report = json.loads((out / "report.json").read_text())
    students = {f"{r['name']} [{r['backend']}-{r['precision']}]": r for r in report["rows"] if r["role"] == "student"}
    assert len(students) == 5 and any("+pruned50" in label for label in students)
    verdict = report["verdict"]
    losers = {o["row"] for o in verdict["others"]}
    assert (verdict["recommended"] in students) or verdict["recommended"] is None
    assert losers | ({verdict["recommended"]} if verdict["recommended"] else set()) == set(students)


def test_bad_prune_section_fails_before_anything_is_written(tiny_build_inputs, capsys):  # noqa: F811
    tmp_path, recipe = tiny_build_inputs
    out = tmp_path / "bad"
    assert main(["build", "--recipe", str(recipe), "--target", "cpu", "--out", str(out), "--quiet",
                 "--set", "prune.ratio=1.2"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert not out.exists()
