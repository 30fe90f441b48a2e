"""The report's verdict: which artifact to ship on the target, what it saves, and every failed check.

Candidates are deployable student rows — the student and its compressed variants (pruned, QAT;
build/compression.py). One is recommended when its status is ok, its parity held, every
budget of the target was measured on the target and held for it, its timings are the target's
(a row timed on the build host for a device this machine is not decides nothing: the latency,
× teacher and int8-vs-fp32 question are left for --remote), and, for int8, it keeps the fp32
decisions (≥ 99% top-1 agreement) and is clearly faster than fp32 in its backend (the margin and
rounds rule of compress/ship_rule.py); among those the fastest (p50 at batch 1) wins,
and candidates within TIE_MARGIN of it (median over the interleaved rounds) tie: the more accurate,
then the smaller wins, so machine load does not flip the choice between runs. Every other candidate
gets the reason it lost, so the report explains the choice (a faster artifact that failed parity, a
budget it broke, ...).
The verdict also carries `quality_warnings`: the flags of the chosen row's accuracy (near the chance or
majority baseline, degenerate predictions, retention that means nothing — bench/qualify.py), so a
fast artifact of a model that learned little is never recommended without saying so.
"""

from __future__ import annotations

from typing import Any

from edgeclip.bench.report import Report, ReportRow
from edgeclip.compress.ship_rule import INT8_MIN_GAIN, choice_rule, int8_problems, median_latency_ratio
from edgeclip.targets import EMBEDDING_KINDS, row_label

TIE_MARGIN = INT8_MIN_GAIN  # the same noise floor as the int8-vs-fp32 rule


def _p50(row: ReportRow) -> float | None:
    return (row.latency_ms or {}).get("p50")


def failed_checks(report: Report) -> list[str]:
    """Every check that did not pass: failed rows, unverified rows, failed and unmeasured budgets."""
    checks = [f"{row.label}: {row.status}" for row in report.rows if not row.ok]
    for budget in report.budget_results:
        if budget.get("passed") is False:
            checks.append(f"budget {budget['name']} failed for {budget['row']}: measured {budget['measured']:.4g}, "
                          f"limit {budget['limit']:g}")
        elif budget.get("passed") is None:
            checks.append(f"budget {budget['name']}{' for ' + budget['row'] if budget['row'] else ''}: not measured on the target")
    return checks


def _budget_problems(report: Report, label: str) -> list[str]:
    problems = []
    for budget in report.budget_results:
        if budget.get("row") not in (label, ""):
            continue
        if budget.get("passed") is False:
            problems.append(f"{budget['name']} {budget['measured']:.4g} breaks the limit {budget['limit']:g}")
        elif budget.get("passed") is None:
            problems.append(f"{budget['name']} not measured on the target")
    return problems


def _ratio_to(row: ReportRow, other: ReportRow) -> float:
    measured = median_latency_ratio(row.latency_ms, other.latency_ms)
    return measured[0] if measured else float("inf")


def _pick(passing: list[ReportRow]) -> tuple[ReportRow | None, list[ReportRow]]:
    """(the pick, the candidates tied with the fastest): those within TIE_MARGIN of the fastest (median
    over the interleaved rounds) tie, won by the more accurate, then the smaller, so run-to-run noise
    does not flip the pick."""
    if not passing:
        return None, []
    fastest = min(passing, key=_p50)
    tied = [r for r in passing if _ratio_to(r, fastest) <= 1.0 + TIE_MARGIN]
    best = min(tied, key=lambda r: (-(r.accuracy if r.accuracy is not None else -1.0),
                                    r.size_mb if r.size_mb is not None else float("inf"), _p50(r)))
    return best, tied


def _why_not(row: ReportRow, best: ReportRow, tied: bool) -> str:
    if tied:
        return (f"ties with {row_label(best)} on speed (p50 ratio {_ratio_to(row, best):.3f}; within {TIE_MARGIN:.0%} "
                f"of the fastest), and that one is more accurate or smaller")
    return f"slower than {row_label(best)} ({_p50(row):.3g} ms vs {_p50(best):.3g} ms p50)"


def compute_verdict(report: Report, next_step: str = "") -> dict[str, Any]:
    """The verdict block of report.json (see the module doc). `next_step` says how to finish
    unverified checks (e.g. the --remote command for a device this machine is not)."""
    students = [r for r in report.rows if r.role == "student"]
    # What one ships is a model that answers: towers are parts of a fused classifier's pipeline.
    candidates = [r for r in students if r.kind not in EMBEDDING_KINDS] or students
    int8_lost = int8_problems(report.rows)
    passing: list[ReportRow] = []
    why: dict[str, str] = {}
    for row in candidates:
        label = row_label(row)
        if not row.ok:
            why[label] = row.status
            continue
        problems = _budget_problems(report, label) if report.target is not None else []
        if row.on_build_host:
            problems.append(f"timed on the build host, not on {(report.target or {}).get('name') or 'the target'}: "
                            f"its latency, × teacher and int8 choice are the device's to measure (--remote)")
        if id(row) in int8_lost:
            problems.append(int8_lost[id(row)])
        if problems:
            why[label] = "; ".join(problems)
        elif _p50(row) is None:
            why[label] = "latency not measured"
        else:
            passing.append(row)
    best, tied = _pick(passing)
    for row in passing:
        if row is not best:
            why[row_label(row)] = _why_not(row, best, any(row is t for t in tied))
    verdict: dict[str, Any] = {
        "target": (report.target or {}).get("name"),
        "recommended": row_label(best) if best else None,
        "failed_checks": failed_checks(report),
        "others": [{"row": label, "why": reason} for label, reason in why.items()],
        "next_step": next_step,
        "timed_on": "build host" if report.timed_on_build_host else "target" if report.target is not None else "this machine",
    }
    if len(candidates) > 1 and not report.timed_on_build_host:
        verdict["choice_rule"] = choice_rule()
    if best is not None:
        verdict.update(backend=best.backend, precision=best.precision, latency_p50_ms=_p50(best), speedup=best.speedup,
                       size_mb=best.size_mb, accuracy=best.accuracy, retention=best.retention)
        equal = best.equal_resolution or {}
        if equal:  # the same ratio with the student at the teacher's input size (bench/equal_resolution.py)
            verdict.update(equal_resolution_size=equal.get("input_size"), speedup_equal_resolution=equal.get("speedup"),
                           equal_resolution_why_not=equal.get("why_not"),
                           input_size_differs=equal.get("note") is None)  # a note: its own size is the teacher's
    # What the accuracy means: a fast artifact of a model that learned nothing must say so.
    judged = best or next((r for r in candidates if r.quality), None)
    verdict["quality_warnings"] = list((judged.quality or {}).get("flags", [])) if judged is not None else []
    return verdict


def _speedup_phrase(verdict: dict[str, Any]) -> str:
    """× teacher, led by the figure at the teacher's input size when the student was timed there, so a
    speed-up that comes from a smaller input alone is never the headline."""
    native = f"{verdict['speedup']:.1f}x faster than the teacher architecture in the same backend"
    size = verdict.get("equal_resolution_size")
    if not size or not verdict.get("input_size_differs"):
        return native  # no equal-size timing, or the student already runs at the teacher's size
    if verdict.get("speedup_equal_resolution"):
        return (f"{verdict['speedup_equal_resolution']:.1f}x faster than the teacher architecture at the same "
                f"{size}x{size} input in the same backend ({verdict['speedup']:.1f}x at its own input size)")
    return f"{native} at its own input size (not timed at the teacher's {size}x{size}: {verdict.get('equal_resolution_why_not')})"


def verdict_sentence(verdict: dict[str, Any] | None) -> str:
    """One human paragraph for the top of report.md / report.html and the console."""
    if not verdict:
        return "No verdict: no target was given."
    target = verdict.get("target") or "this machine"
    if verdict.get("recommended"):
        parts = [f"p50 {verdict['latency_p50_ms']:.3g} ms"]
        if verdict.get("speedup"):
            parts.append(_speedup_phrase(verdict))
        if verdict.get("size_mb"):
            parts.append(f"{verdict['size_mb']:.2f} MB")
        if verdict.get("retention") is not None:
            parts.append(f"retention {verdict['retention']:.3f}")
        text = f"Ship {verdict['recommended']} on {target}: " + ", ".join(parts) + "."
    else:
        text = f"Nothing to ship on {target} yet: no artifact passed every check."
    warnings = verdict.get("quality_warnings") or []
    if warnings:
        text += (" But its accuracy says little: " + "; ".join(warnings) + ". Check the data (classes, balance, "
                 "input size/polarity) and the training before shipping it.")
    checks = verdict.get("failed_checks") or []
    if checks:
        text += f" {len(checks)} check(s) did not pass: " + "; ".join(checks) + "."
    if verdict.get("timed_on") == "build host":
        text += (f" Latency, throughput, memory and × teacher below were measured on the build host, not on {target}: "
                 f"they are not the device's figures.")
    if verdict.get("choice_rule"):
        text += f" Choice rule: {verdict['choice_rule']}."
    if verdict.get("next_step"):
        text += f" Next: {verdict['next_step']}"
    return text
