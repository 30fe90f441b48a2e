"""report.json validation, by hand (no jsonschema offline): every problem listed, one per line item."""

from __future__ import annotations

import math
import re
from typing import Any

SCHEMA_VERSION = 2
# teacher: the accuracy teacher (PyTorch); student: a deployable artifact; reference: the unexported
# PyTorch student; speed_reference: the teacher's architecture exported like the students, random
# weights, timed with them (latency only, no accuracy).
ROLES = ("teacher", "student", "reference", "speed_reference")
STATUS_PATTERN = re.compile(r"^(ok|(failed|skipped|needs_target): \S.*)$", re.S)
LATENCY_KEYS = ("p50", "p90", "p99")
# Where a row's latency (and so its throughput, memory and × teacher) was measured, once a target is
# given: on the target itself (this machine is one, or --remote), or on the build host — then the
# figures are this machine's, never the device's (an x86 CPU emulating fp16 says nothing of a Jetson).
ON_TARGET = "target"
BUILD_HOST = "build host, not the target"


class ReportSchemaError(ValueError):
    """report.json does not match the schema; the message lists every problem."""


def _is_number(value: Any) -> bool:
    """A finite int/float (JSON has no NaN: an unmeasurable value is null)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TOP_FIELDS: dict[str, tuple[Any, bool]] = {  # name -> (check, nullable)
    "schema_version": (_is_int, False), "run_id": (str, False), "created": (str, False), "environment": (dict, False),
    "target": (dict, True), "budgets": (dict, True), "budget_results": (list, False), "verdict": (dict, True),
    "rows": (list, False), "notes": (list, False), "student_search": (dict, True),
}
# Top-level fields only some reports have (the build's latency search).
_OPTIONAL_TOP_FIELDS = frozenset({"student_search"})
_ROW_FIELDS: dict[str, tuple[Any, bool]] = {
    "name": (str, False), "role": (str, False), "kind": (str, True), "backend": (str, False), "precision": (str, False),
    "params": (_is_int, True), "flops": (_is_int, True), "flops_per_tower": (dict, True), "size_mb": (_is_number, True),
    "latency_ms": (dict, True), "throughput": (_is_number, True), "peak_mem_mb": (_is_number, True),
    "accuracy": (_is_number, True), "retention": (_is_number, True), "agreement_teacher": (_is_number, True),
    "agreement_reference": (_is_number, True), "speedup": (_is_number, True), "status": (str, False), "notes": (str, False),
    "measured_on": (str, True),
    "quality": (dict, True),
    "achieved_gflops": (_is_number, True), "roof_gflops": (_is_number, True), "roof_percent": (_is_number, True),
    "roof_source": (str, True), "roof_why_not": (str, True),
    "equal_resolution": (dict, True),
}
# Fields added after schema version 2 was written: reports from before them still validate.
_OPTIONAL_ROW_FIELDS = frozenset({"measured_on", "quality", "achieved_gflops", "roof_gflops", "roof_percent",
                                  "roof_source", "roof_why_not", "equal_resolution"})
_BUDGET_FIELDS: dict[str, tuple[Any, bool]] = {
    "name": (str, False), "row": (str, False), "limit": (_is_number, False), "measured": (_is_number, True),
    "passed": (bool, True), "status": (str, False),
}


def _check_fields(obj: Any, spec: dict[str, tuple[Any, bool]], where: str, problems: list[str],
                  optional: frozenset[str] = frozenset()) -> bool:
    if not isinstance(obj, dict):
        problems.append(f"{where}: expected an object, got {type(obj).__name__}")
        return False
    for key, (check, nullable) in spec.items():
        if key not in obj:
            if key in optional:
                continue
            problems.append(f"{where}.{key}: missing")
            continue
        value = obj[key]
        if value is None:
            if not nullable:
                problems.append(f"{where}.{key}: must not be null")
            continue
        good = isinstance(value, check) if isinstance(check, type) else check(value)
        if isinstance(check, type) and check is not bool and isinstance(value, bool):
            good = False
        if not good:
            expected = check.__name__ if isinstance(check, type) else check.__name__.removeprefix("_is_")
            problems.append(f"{where}.{key}: expected {expected}, got {type(value).__name__} {value!r:.60}")
    for key in obj.keys() - spec.keys():
        problems.append(f"{where}.{key}: unknown field")
    return True


def _check_row(row: Any, where: str, problems: list[str]) -> None:
    if not _check_fields(row, _ROW_FIELDS, where, problems, _OPTIONAL_ROW_FIELDS):
        return
    if isinstance(row.get("role"), str) and row["role"] not in ROLES:
        problems.append(f"{where}.role: '{row['role']}' is not one of {list(ROLES)}")
    if isinstance(row.get("status"), str) and not STATUS_PATTERN.match(row["status"]):
        problems.append(f"{where}.status: '{row['status']:.60}' is not ok | failed: <reason> | skipped: <reason> | needs_target: <where>")
    if isinstance(row.get("measured_on"), str) and row["measured_on"] not in (ON_TARGET, BUILD_HOST):
        problems.append(f"{where}.measured_on: '{row['measured_on']:.60}' is not '{ON_TARGET}' | '{BUILD_HOST}'")
    latency = row.get("latency_ms")
    if isinstance(latency, dict):
        for key in LATENCY_KEYS:
            if not _is_number(latency.get(key)):
                problems.append(f"{where}.latency_ms.{key}: missing or not a number")
        if all(_is_number(latency.get(k)) for k in LATENCY_KEYS) and not latency["p50"] <= latency["p90"] <= latency["p99"]:
            problems.append(f"{where}.latency_ms: percentiles out of order (p50 <= p90 <= p99)")
    towers = row.get("flops_per_tower")
    if isinstance(towers, dict) and not all(isinstance(k, str) and _is_int(v) for k, v in towers.items()):
        problems.append(f"{where}.flops_per_tower: expected tower name -> integer FLOPs")
    if row.get("roof_percent") is not None and row.get("roof_why_not"):
        problems.append(f"{where}: both roof_percent and roof_why_not (a % of a roof that does not apply)")
    equal = row.get("equal_resolution")
    if isinstance(equal, dict):
        if not _is_int(equal.get("input_size")):
            problems.append(f"{where}.equal_resolution.input_size: missing or not an integer")
        if equal.get("latency_ms") is None and not isinstance(equal.get("why_not"), str):
            problems.append(f"{where}.equal_resolution: neither latency_ms nor why_not (say why it could not run)")
    for key in ("accuracy", "agreement_teacher", "agreement_reference"):
        value = row.get(key)
        if _is_number(value) and not 0.0 <= value <= 1.0:
            problems.append(f"{where}.{key}: {value} is not a fraction in [0, 1]")


def report_problems(data: Any) -> list[str]:
    """Every way `data` (parsed report.json) breaks the schema; empty when valid."""
    problems: list[str] = []
    if not _check_fields(data, _TOP_FIELDS, "report", problems, _OPTIONAL_TOP_FIELDS):
        return problems
    if _is_int(data.get("schema_version")) and data["schema_version"] != SCHEMA_VERSION:
        problems.append(f"report.schema_version: {data['schema_version']} (this edgeclip reads {SCHEMA_VERSION})")
    for i, row in enumerate(data.get("rows") or []):
        _check_row(row, f"rows[{i}]", problems)
    for i, result in enumerate(data.get("budget_results") or []):
        if _check_fields(result, _BUDGET_FIELDS, f"budget_results[{i}]", problems) and \
                result.get("status") not in ("pass", "fail", "not measured"):
            problems.append(f"budget_results[{i}].status: must be pass | fail | not measured")
    if isinstance(data.get("notes"), list) and not all(isinstance(n, str) for n in data["notes"]):
        problems.append("report.notes: expected a list of strings")
    return problems


def validate_report(data: Any) -> None:
    """Raise ReportSchemaError listing every problem when `data` is not a valid report."""
    problems = report_problems(data)
    if problems:
        raise ReportSchemaError(f"invalid report ({len(problems)} problem(s)): " + "; ".join(problems))


