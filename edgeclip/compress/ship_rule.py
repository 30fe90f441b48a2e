"""Does int8 ship? The one rule, used by `edgeclip build`'s verdict, its report and every benchmark.

An int8 artifact ships instead of the fp32 artifact of the same model in the same backend only when
1. it was not rejected at export (compress/int8_rule.py `judge_artifact`: parity, agreement);
2. its top-1 agreement with its fp32 model holds on held-out images (compress/int8_rule.py
   `agreement_problem`: at least `INT8_AGREEMENT_BAR`, unless below it only within sampling noise);
3. it is clearly faster, timed on the target: the median over the interleaved timing rounds
   (bench/latency.py TIMING_ROUNDS) of int8 p50 / fp32 p50 is at most 1 - `INT8_MIN_GAIN`. Within that
   margin fp32 — the more accurate artifact — ships, so the choice does not flip between runs with
   machine load, and on a CPU where int8 is slower (onnxruntime on x86 without VNNI) fp32 ships and
   the reason says so. Timings that are not the target's (rows timed on the build host for another
   device) or a missing fp32 twin decide nothing about speed: `Int8Decision.speed_compared` is then
   False and the device decides (--remote).

`int8_decision` applies the rule to plain numbers (benchmarks call it on their own rows);
`int8_problems` applies it to a build's report rows (bench/verdict.py).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from edgeclip.bench.latency import TIMING_ROUNDS
from edgeclip.compress.int8_rule import INT8_AGREEMENT_BAR, REJECTED_NOTE, agreement_problem

# int8 must beat fp32 by at least this fraction of fp32's p50 (median over the interleaved rounds):
# run-to-run noise of one p50 on a shared CPU is a few percent, so a smaller gain is not a finding.
INT8_MIN_GAIN = 0.05

__all__ = ["INT8_AGREEMENT_BAR", "INT8_MIN_GAIN", "Int8Decision", "choice_rule", "int8_decision", "int8_problems",
           "median_latency_ratio"]


@dataclass(frozen=True)
class Int8Decision:
    """The rule's answer for one int8 artifact against its fp32 twin."""

    ships: bool  # True: int8 may ship instead of fp32 (it is then one more candidate of the verdict)
    reason: str  # why it ships, or why fp32 is kept
    latency_ratio: float | None = None  # int8 p50 / fp32 p50, median over the shared interleaved rounds
    rounds: int = 0  # how many rounds that median is over (1: overall p50s only)
    speed_compared: bool = False  # False: no fp32 twin timed on the target, so speed decided nothing


def median_latency_ratio(latency: dict[str, Any] | None, baseline: dict[str, Any] | None) -> tuple[float, int] | None:
    """(median of latency/baseline p50 over the interleaved timing rounds both rows share, rounds); one
    round (the overall p50s) when they lack rounds (rows from the device runner); None if unmeasured."""
    if not latency or not baseline or not latency.get("p50") or not baseline.get("p50"):
        return None
    mine, theirs = latency.get("round_p50") or [], baseline.get("round_p50") or []
    if mine and len(mine) == len(theirs) and all(t > 0 for t in theirs):
        return float(statistics.median(m / t for m, t in zip(mine, theirs))), len(mine)
    return float(latency["p50"] / baseline["p50"]), 1


def int8_decision(*, agreement: float | None, images: int | None, latency: dict[str, Any] | None,
                  fp32_latency: dict[str, Any] | None, backend: str = "", rejected: str | None = None,
                  timed_on_target: bool = True) -> Int8Decision:
    """Does this int8 artifact ship instead of its fp32 twin (see the module doc)?

    agreement/images: top-1 agreement with the fp32 model and the number of held-out images it was
    measured on (None: not measured, e.g. an embedding tower). latency/fp32_latency: the two rows'
    latency dicts ({"p50": ms, "round_p50": [...]}) from one interleaved run. rejected: the reason the
    export rejected the artifact, if it did. timed_on_target: False for timings made on the build host
    for another device."""
    if rejected:
        return Int8Decision(False, rejected)
    problem = agreement_problem(agreement, images)
    if problem:
        return Int8Decision(False, problem)
    measured = median_latency_ratio(latency, fp32_latency) if timed_on_target else None
    held = "agreement holds" if agreement is None else f"top-1 agreement with fp32 {agreement:.4f} holds"
    if measured is None:
        return Int8Decision(True, f"{held}; speed not compared with fp32 on the target (the device decides)")
    ratio, rounds = measured
    where = f" in {backend}" if backend else ""
    plural = "s" if rounds != 1 else ""
    if ratio > 1.0 - INT8_MIN_GAIN:
        return Int8Decision(False, (f"int8 is not at least {INT8_MIN_GAIN:.0%} faster than fp32{where} here: int8/fp32 p50 "
                                    f"{ratio:.3f} (median of {rounds} interleaved round{plural}; {_p50(latency):.3g} ms vs "
                                    f"{_p50(fp32_latency):.3g} ms overall): fp32 kept, it is the more accurate"),
                            ratio, rounds, True)
    return Int8Decision(True, f"{held} and int8/fp32 p50 is {ratio:.3f} (median of {rounds} interleaved round{plural})",
                        ratio, rounds, True)


def choice_rule() -> str:
    """The rule as the report states it."""
    return (f"int8 ships only when its p50 is at least {INT8_MIN_GAIN:.0%} below fp32's (same model, same backend) "
            f"in the median of {TIMING_ROUNDS} interleaved timing rounds; within that margin fp32, the more "
            f"accurate artifact, ships; candidates within {INT8_MIN_GAIN:.0%} of the fastest are a tie, won by the "
            f"more accurate, then the smaller")


def _base_name(name: str) -> str:
    return name.split("+", 1)[0]


def int8_problems(rows: list[Any]) -> dict[int, str]:
    """{id(row): why it loses} for a build's int8 student rows (bench/report.py ReportRow) that
    `int8_decision` does not let ship. A compressed copy (`<student>+qat`) is compared with the fp32
    row of its own name, else of its base student."""
    fp32 = {(r.name, r.backend): r for r in rows if r.role == "student" and r.precision == "fp32" and r.ok}
    problems: dict[int, str] = {}
    for row in rows:
        if row.role != "student" or row.precision != "int8" or not row.ok:
            continue
        rejected = next((part for part in row.notes.split("; ") if part.startswith(REJECTED_NOTE)), None)
        reference = fp32.get((row.name, row.backend)) or fp32.get((_base_name(row.name), row.backend))
        on_target = reference is not None and not getattr(row, "on_build_host", False) \
            and not getattr(reference, "on_build_host", False)
        decision = int8_decision(agreement=row.agreement_reference, images=(row.quality or {}).get("baselines", {}).get("images"),
                                 latency=row.latency_ms, fp32_latency=reference.latency_ms if reference else None,
                                 backend=row.backend, rejected=rejected, timed_on_target=on_target)
        if not decision.ships:
            problems[id(row)] = decision.reason
    return problems


def _p50(latency: dict[str, Any] | None) -> float:
    return float((latency or {}).get("p50") or float("nan"))
