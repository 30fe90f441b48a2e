"""Reports that qualify their numbers (issue 21): baselines, prediction spread, flags in the verdict."""

from __future__ import annotations

import numpy as np

from edgeclip.bench.harness import row_quality
from edgeclip.bench.qualify import qualify_predictions, retention_flags
from edgeclip.bench.report import Report, ReportRow
from edgeclip.bench.report_html import render_html
from edgeclip.bench.report_schema import validate_report
from edgeclip.bench.report_text import render_markdown
from edgeclip.bench.verdict import compute_verdict, verdict_sentence

NAMES = ["bolt", "nut", "washer"]


def _logits(predicted: np.ndarray) -> np.ndarray:
    return np.eye(len(NAMES), dtype=np.float32)[predicted]


def _report(predicted: np.ndarray, labels: np.ndarray, teacher_accuracy: float = 0.9) -> Report:
    row = ReportRow(name="student", role="student", kind="classifier", backend="onnx", precision="fp32",
                    latency_ms={"p50": 1.0, "p90": 1.1, "p99": 1.2}, accuracy=float((predicted == labels).mean()))
    row.quality = row_quality(labels, _logits(predicted), NAMES, None)
    row.retention = row.accuracy / teacher_accuracy
    row.quality["flags"] += retention_flags(teacher_accuracy, row.retention, row.quality["baselines"])
    teacher = ReportRow(name="teacher", role="teacher", accuracy=teacher_accuracy)
    report = Report(rows=[teacher, row])
    report.verdict = compute_verdict(report)
    return report


def test_degenerate_student_verdict_says_so() -> None:
    labels = np.repeat([0, 1, 2], [200, 100, 100])  # imbalanced: bolt is half the images
    predicted = np.zeros(400, dtype=np.int64)
    predicted[:11] = 1  # one class for 389 of 400 images (issue 21)
    report = _report(predicted, labels)
    sentence = verdict_sentence(report.verdict)
    assert report.verdict["recommended"] == "student [onnx-fp32]"
    assert "accuracy says little" in sentence and "degenerate predictions" in sentence
    assert "majority-class baseline 50.0%" in sentence and "learned little more than the baseline" in sentence
    markdown = render_markdown(report)
    assert "## What the accuracy means" in markdown and "majority class 'bolt' 50.0%" in markdown
    assert "| bolt | 189 | 11 | 0 | 200 | 94.5% |" in markdown  # per-class accuracy + confusion row
    page = render_html(report)
    assert "confusion matrix heatmap" in page and "<th>true \\ predicted</th>" in page
    validate_report(report.to_dict())


def test_near_chance_teacher_makes_retention_meaningless() -> None:
    labels = np.tile([0, 1, 2], 100)
    rng = np.random.default_rng(0)
    predicted = rng.integers(0, 3, 300)
    report = _report(predicted, labels, teacher_accuracy=0.35)
    warnings = " ".join(report.verdict["quality_warnings"])
    assert "not clear of the chance baseline 33.3%" in warnings
    assert "relative to a near-baseline teacher and means nothing" in warnings


def test_a_good_student_gets_no_warning() -> None:
    labels = np.tile([0, 1, 2], 100)
    predicted = labels.copy()
    predicted[:10] = (predicted[:10] + 1) % 3
    report = _report(predicted, labels, teacher_accuracy=0.97)
    assert report.verdict["quality_warnings"] == []
    assert "says little" not in verdict_sentence(report.verdict)


def test_retention_above_one_by_more_than_noise_is_flagged() -> None:
    labels = np.tile([0, 1], 500)
    block = qualify_predictions(labels, labels, ["a", "b"], teacher_predicted=np.zeros(1000, dtype=np.int64) | (labels & (np.arange(1000) % 3 == 0)),
                                retention=1.0 / 0.6)
    assert any("exceeds 1 by more than sampling noise" in f for f in block["flags"])
    # Above 1 within the noise (the quickstart's 1.003 on 359 digits) is a student that kept everything: no warning.
    assert retention_flags(0.9, 1.01, {"images": 100, "chance": 0.5, "majority": 0.5}) == []


def test_agreement_with_a_constant_reference_is_flagged() -> None:
    labels = np.tile([0, 1, 2], 50)
    constant = _logits(np.zeros(150, dtype=np.int64))
    quality = row_quality(labels, constant, NAMES, constant)
    assert any("agreement with the PyTorch model is trivially high" in f for f in quality["flags"])
    assert quality["predictions"]["entropy_bits"] == 0.0 and quality["predictions"]["top_class_share"] == 1.0


def test_a_rejected_int8_row_says_so_in_the_table_and_loses_the_verdict() -> None:
    from edgeclip.bench.report_text import table_cells
    from edgeclip.compress.int8_rule import REJECTED_NOTE

    fp32 = ReportRow(name="s", role="student", backend="onnx", precision="fp32", latency_ms={"p50": 2.0, "p90": 2.0, "p99": 2.0})
    int8 = ReportRow(name="s", role="student", backend="onnx", precision="int8", latency_ms={"p50": 1.0, "p90": 1.0, "p99": 1.0},
                     agreement_reference=1.0, notes=REJECTED_NOTE + "int8 changes decisions: 0.9688 < 0.99")
    verdict = compute_verdict(Report(rows=[fp32, int8]))
    assert verdict["recommended"] == "s [onnx-fp32]"
    assert {o["row"]: o["why"] for o in verdict["others"]}["s [onnx-int8]"].startswith("rejected at export: int8 changes")
    assert table_cells(int8)[-1] == "ok (rejected at export: never shipped)" and table_cells(fp32)[-1] == "ok"
