"""benchmarks/compression_cifar10.py: evaluation in chunks over every test photo, the product's one ship
rule applied to each int8 row (never a rule of the benchmark's own), and the report's target lines."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("compression_cifar10_bench", ROOT / "benchmarks" / "compression_cifar10.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclass looks its module up while being defined
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("compression_cifar10_bench", None)
        sys.path.remove(str(ROOT / "benchmarks"))


def test_predictions_cover_every_image_in_chunks(bench) -> None:
    calls = []

    def run(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        logits = np.zeros((len(batch), 3), np.float32)
        logits[np.arange(len(batch)), batch[:, 0].astype(int) % 3] = 1.0
        return logits

    images = np.arange(1234, dtype=np.float32).reshape(-1, 1)
    predicted = bench.predictions(run, images)
    assert calls == [500, 500, 234]
    assert np.array_equal(predicted, np.arange(1234) % 3)
    assert bench.agreement(predicted, np.arange(1234) % 3) == 1.0
    with pytest.raises(ValueError, match="shape"):
        bench.agreement(predicted, predicted[:10])


def _row(variant: str, fmt: str, precision: str, backend: str, p50: float, agreement: float = 1.0,
         own: float = 1.0, status: str = "ready") -> dict:
    return {"model": "resnet18_w8", "variant": variant, "format": fmt, "precision": precision, "backend": backend,
            "status_at_export": status, "next_step": "ship fp32", "test_images": 10000, "agreement_fp32": agreement,
            "agreement_own_float": own, "latency_ms": {"p50": p50, "round_p50": [p50] * 5}}


def test_each_int8_row_is_judged_by_the_product_rule(bench) -> None:
    rows = [_row("base", "fp32", "fp32", "onnx", 1.0),
            _row("base", "int8 PTQ", "int8", "onnx", 0.6, agreement=0.9392),  # changes decisions
            _row("base", "int8 auto", "int8", "onnx", 0.7, agreement=0.9950),  # holds and 30% faster: ships
            _row("qat", "int8 QAT", "int8", "onnx", 0.5, agreement=0.99, status="rejected"),  # rejected at export
            _row("base", "fp32", "fp32", "openvino", 1.0),
            _row("base", "int8 auto", "int8", "openvino", 0.98, agreement=0.999),  # holds, not 5% faster
            _row("pruned50", "fp32", "fp32", "onnx", 0.5, agreement=0.80),
            _row("pruned50", "int8 auto", "int8", "onnx", 0.4, agreement=0.79, own=0.995)]
    bench.judge_rows(rows)
    assert "fp32" not in {r["format"] for r in rows if "ship_rule" in r}
    assert [r["ship_rule"]["ships"] for r in rows if "ship_rule" in r] == [False, True, False, False, True]
    assert "agreement" in rows[1]["ship_rule"]["reason"] and "rejected" in rows[3]["ship_rule"]["reason"]
    assert "not at least 5% faster" in rows[5]["ship_rule"]["reason"]
    # a pruned int8 is judged against its own pruned fp32, with agreement to that pruned float model
    assert rows[7]["ship_rule"]["against"] == "pruned50 fp32" and rows[7]["ship_rule"]["int8_over_fp32"] == pytest.approx(0.8)

    verdicts = {v["backend"]: v for v in bench.verdicts(rows)}
    assert verdicts["onnx"]["ships"] == "int8" and verdicts["onnx"]["format"] == "int8 auto" and verdicts["onnx"]["target_met"]
    assert verdicts["openvino"]["ships"] == "fp32" and not verdicts["openvino"]["target_met"]
    assert verdicts["openvino"]["int8_over_fp32"] == pytest.approx(0.98)


def test_report_states_the_target_per_model_and_marks_unverified_figures(bench) -> None:
    import compression_cifar10_report as report

    verdicts = [{"model": "m", "backend": "onnx", "ships": "int8", "format": "int8 auto", "agreement_fp32": 0.995,
                 "int8_p50_ms": 0.7, "fp32_p50_ms": 1.0, "int8_over_fp32": 0.7, "target_met": True, "why": "x"},
                {"model": "m", "backend": "openvino", "ships": "fp32", "format": "int8 PTQ", "agreement_fp32": 0.9392,
                 "int8_p50_ms": 0.6, "fp32_p50_ms": 1.0, "int8_over_fp32": None, "target_met": False, "why": "y"}]
    lines = report.target_summary(verdicts)
    assert lines == ["- **m**: met on onnx only (onnx: agreement 0.9950, int8/fp32 p50 0.700; "
                     "openvino: agreement 0.9392, int8/fp32 p50 -)."]
    table = "\n".join(report.published_table())
    assert table.count("\n") == len(report.PUBLISHED) + 1
    assert "not re-verified" in table and "arXiv:1806.08342" in table and "arXiv:1608.08710" in table
