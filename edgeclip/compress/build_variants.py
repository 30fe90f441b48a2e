"""Compression inside `edgeclip build`: extra deployables (pruned, QAT) and the int8 rules of the verdict.

The build exports every deployable for every planned (backend, precision) and its verdict picks
the fastest row that passed; compression plugs into exactly that:
- `compressed_deployables`: with `prune.ratio > 0` the student is pruned and recovered with KD
  (`<run>/student-pruned<R>`); with `int8.qat_epochs > 0` a QAT + KD copy is made
  (`<run>/student-qat`, exported as int8 only). Each is one more candidate, named
  `<student>+pruned50` / `<student>+qat` in the report.
- `int8_options`: how int8 artifacts are made (recipe `int8:`), with validation images for the
  sensitivity search taken from the train split and disjoint from the calibration sample.
- `int8_problems` (used by the verdict): an int8 row loses when it was rejected at export or its
  top-1 agreement with its fp32 PyTorch model fails the int8 rule (compress/int8_rule.py: below
  `INT8_AGREEMENT_BAR` beyond sampling noise), or when it is not clearly faster than the fp32 row
  of the same model in the same backend: int8 ships only when the median over the interleaved
  timing rounds (bench/latency.py TIMING_ROUNDS) of int8 p50 / fp32 p50 is at most
  1 - `INT8_MIN_GAIN`. Within that margin fp32 — the more accurate artifact — ships, so the choice
  does not flip between runs with machine load, and on a CPU where int8 is slower (onnxruntime on
  x86 without VNNI) the build keeps fp32 and says why. Rows timed on the build host instead of the
  target decide nothing: the int8-vs-fp32 question is the device's (--remote).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeclip.compress.int8_rule import INT8_AGREEMENT_BAR, REJECTED_NOTE, agreement_problem  # noqa: F401 - re-exported

# int8 must beat fp32 by at least this fraction of fp32's p50 (median over the interleaved rounds):
# run-to-run noise of one p50 on a shared CPU is a few percent, so a smaller gain is not a finding.
INT8_MIN_GAIN = 0.05


def int8_options(recipe: Any, validation: np.ndarray | None, target: Any = None) -> Any:
    """The recipe's int8 options for `target`: the int8 format is chosen for the target's CPU
    architecture, and the export-time int8-vs-fp32 speed check runs only where this machine is the
    target (an x86 timing says nothing about an arm64 board)."""
    from edgeclip.compress.int8 import Int8Options

    cfg = recipe.int8
    here = target is None or target.measurable_here
    options = Int8Options(mode=cfg.mode, calibration_method=cfg.calibration_method, percentile=cfg.percentile,
                          weights=cfg.weights, ignored_scope=list(cfg.ignored_scope), mixed=cfg.mixed,
                          target_agreement=cfg.target_agreement, max_float_fraction=cfg.max_float_fraction,
                          smoothquant_alpha=cfg.smoothquant_alpha, validation=validation if cfg.mixed else None,
                          speed_check=here, arch=None if here else target_arch(target),
                          target=None if target is None else target.name)
    options.check()
    return options


def target_arch(target: Any) -> str | None:
    """The CPU architecture int8 kernels will run on for `target` (its profile's first arch), or None
    when the profile names none (any CPU: this machine's then decides)."""
    return target.arch[0] if target is not None and target.arch else None


def options_for(options: Any, deployable: Any) -> Any:
    """The int8 options for one deployable: a QAT copy's record goes into its manifest."""
    import dataclasses
    import json

    from edgeclip.compress.qat import COMPRESS_JSON

    record = Path(deployable.checkpoint) / COMPRESS_JSON
    qat = json.loads(record.read_text()).get("qat") if record.is_file() else None
    return dataclasses.replace(options, qat=qat) if qat else options


def validation_images(recipe: Any, train: Any, preprocess: Any) -> np.ndarray | None:
    """Train images for the int8 sensitivity search, disjoint from the calibration sample."""
    from edgeclip.data import Subset
    from edgeclip.data.sampling import sample_images, sample_indices

    if recipe.int8.mode == "classic" or not recipe.int8.mixed or recipe.int8.validation_count <= 0:
        return None
    used = set() if recipe.data.calibration else set(sample_indices(len(train), recipe.data.calibration_count, recipe.seed).tolist())
    rest = [i for i in range(len(train)) if i not in used]
    if not rest:
        return None
    keep = sample_indices(len(rest), recipe.int8.validation_count, recipe.seed + 1)
    return sample_images(Subset(train, [rest[int(i)] for i in keep]), preprocess, 0)


def _base_name(name: str) -> str:
    return name.split("+", 1)[0]


def median_latency_ratio(latency: dict[str, Any] | None, baseline: dict[str, Any] | None) -> tuple[float, int] | None:
    """(median of latency/baseline p50 over the interleaved timing rounds both rows share, rounds); one
    round (the overall p50s) when they lack rounds (rows from the device runner); None if unmeasured."""
    import statistics

    if not latency or not baseline or not latency.get("p50") or not baseline.get("p50"):
        return None
    mine, theirs = latency.get("round_p50") or [], baseline.get("round_p50") or []
    if mine and len(mine) == len(theirs) and all(t > 0 for t in theirs):
        return float(statistics.median(m / t for m, t in zip(mine, theirs))), len(mine)
    return float(latency["p50"] / baseline["p50"]), 1


def choice_rule() -> str:
    """The rule as the report states it."""
    from edgeclip.bench.latency import TIMING_ROUNDS

    return (f"int8 ships only when its p50 is at least {INT8_MIN_GAIN:.0%} below fp32's (same model, same backend) "
            f"in the median of {TIMING_ROUNDS} interleaved timing rounds; within that margin fp32, the more "
            f"accurate artifact, ships; candidates within {INT8_MIN_GAIN:.0%} of the fastest are a tie, won by the "
            f"more accurate, then the smaller")


def int8_problems(rows: list[Any]) -> dict[int, str]:
    """{id(row): why it loses} for int8 student rows that break decisions or are not clearly faster than
    fp32 (see the module doc). Speed is judged only on rows timed on the target."""
    fp32 = {(r.name, r.backend): r for r in rows if r.role == "student" and r.precision == "fp32" and r.ok}
    problems: dict[int, str] = {}
    for row in rows:
        if row.role != "student" or row.precision != "int8" or not row.ok:
            continue
        # The one int8 rule (compress/int8_rule.py): rejected at export, or below the bar on the test images.
        rejected_at_export = next((part for part in row.notes.split("; ") if part.startswith(REJECTED_NOTE)), None)
        count = (row.quality or {}).get("baselines", {}).get("images")
        problem = rejected_at_export or agreement_problem(row.agreement_reference, count)
        if problem:
            problems[id(row)] = problem
            continue
        reference = fp32.get((row.name, row.backend)) or fp32.get((_base_name(row.name), row.backend))
        if reference is None or getattr(row, "on_build_host", False) or getattr(reference, "on_build_host", False):
            continue  # nothing to compare with, or timings that are not the target's: the device decides
        measured = median_latency_ratio(row.latency_ms, reference.latency_ms)
        if measured is None:
            continue
        ratio, rounds = measured
        if ratio > 1.0 - INT8_MIN_GAIN:
            problems[id(row)] = (f"int8 is not at least {INT8_MIN_GAIN:.0%} faster than fp32 in {row.backend} here: "
                                 f"int8/fp32 p50 {ratio:.3f} (median of {rounds} interleaved round{'s' if rounds != 1 else ''}"
                                 f"; {_p50(row):.3g} ms vs {_p50(reference):.3g} ms overall): fp32 kept, it is the more accurate")
    return problems


def _p50(row: Any) -> float:
    return float((row.latency_ms or {}).get("p50") or float("nan"))
