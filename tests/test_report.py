"""report.json schema, Markdown/HTML writers, failing rows."""

from __future__ import annotations

import base64
import copy
import json
import re

import pytest

from edgeclip.bench.report import Report, ReportRow
from edgeclip.bench.report_files import write_report
from edgeclip.bench.report_schema import ReportSchemaError, report_problems, validate_report
from edgeclip.bench.report_text import console_table, render_markdown
from edgeclip.bench.report_html import render_html
from edgeclip.targets import load_target


pytestmark = pytest.mark.usefixtures("private_cache")


def sample_report() -> Report:
    rows = [
        ReportRow("ViT-B-32", role="teacher", backend="torch", params=151_277_313,
                  flops_per_tower={"image": 8_817_623_040, "text": 5_959_540_736},
                  latency_ms={"p50": 95.0, "p90": 110.0, "p99": 130.0}, accuracy=0.9),
        ReportRow("resnet18_w8", role="reference", backend="torch", params=177_362, flops=37_000_000,
                  latency_ms={"p50": 5.0, "p90": 6.0, "p99": 9.0}, accuracy=0.8),
        ReportRow("resnet18_w8", backend="onnx", precision="int8", params=177_362, flops=37_000_000, size_mb=0.25,
                  latency_ms={"p50": 0.8, "p90": 1.0, "p99": 1.6, "mean": 0.9, "iterations": 100}, throughput=1300.0,
                  peak_mem_mb=15.0, accuracy=0.72, agreement_teacher=0.75, agreement_reference=0.95),
        ReportRow.failed("resnet18_w8", "RuntimeError: engine | build failed\nsecond line", backend="tensorrt",
                         precision="fp16"),
        ReportRow("resnet18_w8", backend="coreml", precision="fp16", status="needs_target: coreml runs on apple"),
    ]
    return Report(rows, environment={"cpu": "test cpu", "threads": 2, "versions": {"numpy": "2"}},
                  notes=["memory: fresh process per artifact"])


def test_good_report_validates_and_round_trips():
    report = sample_report()
    report.apply_target(load_target("cpu"))
    data = json.loads(json.dumps(report.to_dict()))
    assert report_problems(data) == []
    again = Report.from_dict(data)
    assert again.to_dict() == data
    # retention filled from the teacher row before the budgets were checked
    assert data["rows"][2]["retention"] == pytest.approx(0.8)


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: d.pop("environment"), r"report\.environment: missing"),
    (lambda d: d["rows"][2].pop("status"), r"rows\[2\]\.status: missing"),
    (lambda d: d["rows"][2].update(params="177k"), r"rows\[2\]\.params: expected int"),
    (lambda d: d["rows"][2].update(accuracy=True), r"rows\[2\]\.accuracy: expected number"),
    (lambda d: d["rows"][2].update(accuracy=72.0), r"not a fraction"),
    (lambda d: d["rows"][2].update(status="broken"), r"rows\[2\]\.status"),
    (lambda d: d["rows"][2].update(role="student2"), r"rows\[2\]\.role"),
    (lambda d: d["rows"][2]["latency_ms"].pop("p90"), r"latency_ms\.p90"),
    (lambda d: d["rows"][2]["latency_ms"].update(p50=5.0), r"percentiles out of order"),
    (lambda d: d["rows"][2].update(latncy_ms=1), r"latncy_ms: unknown field"),
    (lambda d: d.update(schema_version=99), r"schema_version"),
    (lambda d: d.update(rows={}), r"report\.rows: expected list"),
])
def test_bad_report_fails_validation(mutate, problem):
    data = sample_report().to_dict()
    broken = copy.deepcopy(data)
    mutate(broken)
    with pytest.raises(ReportSchemaError, match=problem):
        validate_report(broken)
    validate_report(data)  # the original stays valid


def test_nan_becomes_null():
    row = ReportRow("m", accuracy=float("nan"))
    assert row.to_dict()["accuracy"] is None
    assert report_problems(Report([row]).to_dict()) == []


def test_markdown_has_table_status_budgets_and_environment():
    report = sample_report()
    report.apply_target(load_target("cpu"))
    text = render_markdown(report)
    header = next(line for line in text.splitlines() if line.startswith("| Model"))
    assert "Status" in header and "p99 ms" in header and "Retention" in header
    table = [line for line in text.splitlines() if line.startswith("| resnet18_w8")]
    assert len(table) == 4
    cells = lambda line: len(re.findall(r"(?<!\\)\|", line))  # noqa: E731 - unescaped pipes = column borders
    assert all(cells(line) == cells(header) for line in table)
    assert "failed: RuntimeError: engine \\| build failed |" in text  # one line, pipe escaped
    assert "second line" not in text
    assert "image 8.82G + text 5.96G" in text
    assert "## Budgets (cpu)" in text and "max_latency_ms" in text
    assert "- cpu: test cpu" in text


def test_html_is_self_contained_with_embedded_plot(tmp_path):
    html_text = render_html(sample_report())
    assert "<table>" in html_text and "needs_target: coreml runs on apple" in html_text
    assert "class='teacher'" in html_text  # teacher row highlighted
    assert "<script" not in html_text and "http" not in html_text  # nothing fetched from elsewhere
    match = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html_text)
    assert match, "plot must be embedded"
    png = base64.b64decode(match.group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "Not plotted" in html_text and "tensorrt-fp16" in html_text  # rows without values are named


def test_html_without_plottable_rows_says_so():
    html_text = render_html(Report([ReportRow("m", latency_ms={"p50": 1.0, "p90": 1.0, "p99": 1.0})]))
    assert "data:image/png" not in html_text and "--data" in html_text


def test_write_report_writes_all_three_atomically(tmp_path):
    paths = write_report(sample_report(), tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["report.html", "report.json", "report.md"]
    data = json.loads(paths["json"].read_text())
    assert data["schema_version"] == 2 and len(data["rows"]) == 5
    assert data["rows"][3]["status"].startswith("failed: RuntimeError")


def test_invalid_report_is_not_written(tmp_path):
    report = sample_report()
    report.rows[2].status = "great"
    with pytest.raises(ReportSchemaError):
        write_report(report, tmp_path / "run")
    assert not (tmp_path / "run" / "report.json").exists()


def test_console_table_lists_every_row():
    lines = console_table(sample_report()).splitlines()
    assert lines[0].split()[:3] == ["Model", "Format", "p50"]
    assert len(lines) == 6 and "failed: RuntimeError" in lines[4]


@pytest.mark.parametrize("on_target", [True, False])  # False: every row says "build host, not the target"
def test_html_table_fits_a_1280_px_window(tmp_path, on_target):
    """Rendered in a real browser (Debian's chromium) at 1280 px: nothing scrolls sideways."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium here (CI installs Debian's chromium in .ci/run)")
    report = sample_report()
    report.rows += [ReportRow("ViT-B-32 image tower (speed reference)", role="speed_reference", backend="openvino",
                              precision="int8", params=87_849_216, flops=8_820_000_000, size_mb=89.4,
                              latency_ms={"p50": 17.3, "p90": 19.0, "p99": 25.0}, throughput=55.0, peak_mem_mb=300.0)]
    student = report.rows[2]  # the speed columns filled as a real bench fills them
    student.achieved_gflops, student.roof_gflops, student.roof_percent = 46.25, 850.0, 5.4
    student.equal_resolution = {"input_size": 224, "latency_ms": {"p50": 4.1, "p90": 4.5, "p99": 5.0}, "speedup": None,
                                "why_not": None}
    report.apply_target(load_target("cpu") if on_target else load_target("jetson-orin-nano"), measured_on_target=on_target)
    report.fill_speedups()
    from edgeclip.bench.verdict import compute_verdict

    report.verdict = compute_verdict(report, "finish on the device with `edgeclip build ... --remote user@host`")
    page = tmp_path / "report.html"
    page.write_text(render_html(report).replace(
        "</body>", "<script>document.title = 'width=' + document.documentElement.scrollWidth;</script></body>"))
    dom = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    width = int(re.search(r"<title>width=(\d+)</title>", dom).group(1))
    assert width <= 1280


def test_towers_do_not_block_the_retention_budget_and_the_verdict_ships_a_classifier():
    """A dual encoder's image/text towers output embeddings: the retention budget is its fused
    zero-shot classifier's, and what the verdict recommends is a model that answers."""
    from edgeclip.bench.verdict import compute_verdict

    latency = {"p50": 1.0, "p90": 1.2, "p99": 1.5}
    rows = [ReportRow("teacher", role="teacher", accuracy=0.95),
            ReportRow("dc-image", kind="image_encoder", backend="onnx", latency_ms=latency, peak_mem_mb=10.0),
            ReportRow("dc-text", kind="text_encoder", backend="onnx", latency_ms=latency, peak_mem_mb=10.0),
            ReportRow("dc-zeroshot", kind="zero_shot_classifier", backend="onnx", latency_ms={"p50": 1.1, "p90": 1.3, "p99": 1.6},
                      peak_mem_mb=12.0, accuracy=0.93)]
    report = Report(rows)
    report.apply_target(load_target("cpu"))
    retention = [b for b in report.budget_results if b["name"] == "min_retention"]
    assert [b["row"] for b in retention] == ["dc-zeroshot [onnx-fp32]"] and retention[0]["status"] == "pass"
    assert compute_verdict(report)["recommended"] == "dc-zeroshot [onnx-fp32]"
