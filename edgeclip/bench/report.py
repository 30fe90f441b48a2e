"""The benchmark report: one schema-versioned JSON, plus Markdown and HTML views of it.

`report.json` is the contract (DESIGN §3 Report); `validate_report` checks it by hand (no
jsonschema offline). A backend that fails is a row whose status says why, never a crash.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from edgeclip.bench.metrics import retention as retention_of
from edgeclip.io_utils import atomic_path, write_json

SCHEMA_VERSION = 1
ROLES = ("teacher", "student", "reference")
STATUS_PATTERN = re.compile(r"^(ok|(failed|skipped|needs_target): \S.*)$", re.S)
LATENCY_KEYS = ("p50", "p90", "p99")


class ReportSchemaError(ValueError):
    """report.json does not match the schema; the message lists every problem."""


@dataclass
class ReportRow:
    """One model x backend x precision. Unmeasured values stay None (shown as "-")."""

    name: str
    role: str = "student"
    backend: str = "torch"
    precision: str = "fp32"
    params: int | None = None
    flops: int | None = None
    flops_per_tower: dict[str, int] | None = None
    size_mb: float | None = None
    latency_ms: dict[str, float] | None = None  # p50/p90/p99 at batch 1 (+ mean, iterations)
    throughput: float | None = None  # images/s at the throughput batch
    peak_mem_mb: float | None = None
    accuracy: float | None = None
    retention: float | None = None  # accuracy / teacher accuracy on the same data
    agreement_teacher: float | None = None
    agreement_reference: float | None = None  # vs the unexported PyTorch model
    status: str = "ok"  # ok | failed: <reason> | skipped: <reason> | needs_target: <where>
    notes: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        return f"{self.name} [{self.backend}-{self.precision}]"

    def to_dict(self) -> dict[str, Any]:
        # NaN (e.g. accuracy on zero images) means "no value": JSON null, not the non-standard NaN.
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReportRow":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def failed(cls, name: str, reason: str, **fields: Any) -> "ReportRow":
        """A row for a backend that could not be measured; `reason` becomes `failed: <reason>`."""
        return cls(name=name, status=f"failed: {one_line(reason)}", **fields)


def one_line(text: str, limit: int = 300) -> str:
    """Statuses are one line: first line of an error message, truncated."""
    line = (str(text).strip().splitlines() or ["unknown error"])[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


@dataclass
class Report:
    rows: list[ReportRow]
    environment: dict[str, Any] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    target: dict[str, Any] | None = None
    budgets: dict[str, Any] | None = None
    budget_results: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def fill_retention(self) -> None:
        """retention = row accuracy / teacher-row accuracy, for rows that lack it."""
        teacher = next((r for r in self.rows if r.role == "teacher" and r.accuracy is not None), None)
        if teacher is None:
            return
        for row in self.rows:
            if row.retention is None and row.accuracy is not None:
                row.retention = retention_of(row.accuracy, teacher.accuracy)

    def apply_target(self, target: Any, *, measured_on_target: bool = True) -> None:
        """Record the target profile and its budget results. Measurements taken elsewhere than on
        the target check nothing: every budget is then "not measured"."""
        from edgeclip.targets import check_budgets

        self.fill_retention()  # the retention budget needs it
        self.target = target.to_dict()
        self.budgets = dataclasses.asdict(target.budgets)
        rows = self.rows if measured_on_target else []
        self.budget_results = [r.to_dict() for r in check_budgets(target, rows)]

    @property
    def failed_budgets(self) -> list[dict[str, Any]]:
        return [b for b in self.budget_results if b.get("passed") is False]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version, "run_id": self.run_id, "created": self.created,
            "environment": self.environment, "target": self.target, "budgets": self.budgets,
            "budget_results": self.budget_results, "rows": [r.to_dict() for r in self.rows], "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        validate_report(data)
        return cls(rows=[ReportRow.from_dict(r) for r in data["rows"]], environment=data["environment"],
                   run_id=data["run_id"], created=data["created"], target=data["target"], budgets=data["budgets"],
                   budget_results=data["budget_results"], notes=data["notes"], schema_version=data["schema_version"])


# ---- schema -----------------------------------------------------------------------------------

def _is_number(value: Any) -> bool:
    """A finite int/float (JSON has no NaN: an unmeasurable value is null)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TOP_FIELDS: dict[str, tuple[Any, bool]] = {  # name -> (check, nullable)
    "schema_version": (_is_int, False), "run_id": (str, False), "created": (str, False), "environment": (dict, False),
    "target": (dict, True), "budgets": (dict, True), "budget_results": (list, False), "rows": (list, False),
    "notes": (list, False),
}
_ROW_FIELDS: dict[str, tuple[Any, bool]] = {
    "name": (str, False), "role": (str, False), "backend": (str, False), "precision": (str, False),
    "params": (_is_int, True), "flops": (_is_int, True), "flops_per_tower": (dict, True), "size_mb": (_is_number, True),
    "latency_ms": (dict, True), "throughput": (_is_number, True), "peak_mem_mb": (_is_number, True),
    "accuracy": (_is_number, True), "retention": (_is_number, True), "agreement_teacher": (_is_number, True),
    "agreement_reference": (_is_number, True), "status": (str, False), "notes": (str, False),
}
_BUDGET_FIELDS: dict[str, tuple[Any, bool]] = {
    "name": (str, False), "row": (str, False), "limit": (_is_number, False), "measured": (_is_number, True),
    "passed": (bool, True), "status": (str, False),
}


def _check_fields(obj: Any, spec: dict[str, tuple[Any, bool]], where: str, problems: list[str]) -> bool:
    if not isinstance(obj, dict):
        problems.append(f"{where}: expected an object, got {type(obj).__name__}")
        return False
    for key, (check, nullable) in spec.items():
        if key not in obj:
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
    if not _check_fields(row, _ROW_FIELDS, where, problems):
        return
    if isinstance(row.get("role"), str) and row["role"] not in ROLES:
        problems.append(f"{where}.role: '{row['role']}' is not one of {list(ROLES)}")
    if isinstance(row.get("status"), str) and not STATUS_PATTERN.match(row["status"]):
        problems.append(f"{where}.status: '{row['status']:.60}' is not ok | failed: <reason> | skipped: <reason> | needs_target: <where>")
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
    for key in ("accuracy", "agreement_teacher", "agreement_reference"):
        value = row.get(key)
        if _is_number(value) and not 0.0 <= value <= 1.0:
            problems.append(f"{where}.{key}: {value} is not a fraction in [0, 1]")


def report_problems(data: Any) -> list[str]:
    """Every way `data` (parsed report.json) breaks the schema; empty when valid."""
    problems: list[str] = []
    if not _check_fields(data, _TOP_FIELDS, "report", problems):
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


# ---- writers ----------------------------------------------------------------------------------

def fmt(value: Any, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def fmt_count(value: int | None) -> str:
    """1234567 -> 1.23M; FLOPs and parameters read better with a unit."""
    if value is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return str(value)


def fmt_flops(row: ReportRow) -> str:
    if row.flops_per_tower:
        return " + ".join(f"{tower} {fmt_count(v)}" for tower, v in row.flops_per_tower.items())
    return fmt_count(row.flops)


TABLE_HEADER = ["Model", "Role", "Format", "Params", "FLOPs", "Size MB", "p50 ms", "p90 ms", "p99 ms", "img/s",
                "Mem MB", "Accuracy", "Retention", "Agree teacher", "Agree ref", "Status"]


def table_cells(row: ReportRow) -> list[str]:
    """One row of the results table, shared by the Markdown, HTML and console views."""
    latency = row.latency_ms or {}
    return [row.name, row.role, f"{row.backend}-{row.precision}", fmt_count(row.params), fmt_flops(row),
            fmt(row.size_mb, ".2f"), fmt(latency.get("p50"), ".2f"), fmt(latency.get("p90"), ".2f"),
            fmt(latency.get("p99"), ".2f"), fmt(row.throughput, ".1f"), fmt(row.peak_mem_mb, ".1f"),
            fmt(row.accuracy, ".4f"), fmt(row.retention, ".3f"), fmt(row.agreement_teacher, ".3f"),
            fmt(row.agreement_reference, ".3f"), row.status]


def describe_environment(env: dict[str, Any]) -> list[str]:
    lines = [f"{key}: {value}" for key, value in env.items() if key != "versions"]
    versions = env.get("versions") or {}
    if versions:
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return lines


def render_markdown(report: Report) -> str:
    def md_row(cells: Iterable[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    lines = [f"# edgeclip benchmark report `{report.run_id}`", "", f"Created {report.created}."]
    if report.target:
        lines.append(f"Target: **{report.target.get('name')}** — {report.target.get('description', '')}")
    lines += ["", "## Results", "", md_row(TABLE_HEADER), md_row(["---"] * len(TABLE_HEADER))]
    lines += [md_row(table_cells(row)) for row in report.rows]
    if report.target is not None:
        lines += ["", f"## Budgets ({report.target.get('name')})", ""]
        if report.budget_results:
            lines += [md_row(["Budget", "Row", "Limit", "Measured", "Result"]), md_row(["---"] * 5)]
            lines += [md_row([b["name"], b["row"] or "-", fmt(b["limit"], "g"), fmt(b["measured"], ".4g"), b["status"]])
                      for b in report.budget_results]
        else:
            lines.append("The target profile sets no budgets.")
    lines += ["", "## Environment", ""] + [f"- {line}" for line in describe_environment(report.environment)]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def write_report(report: Report, out_dir: str | Path, *, html: bool = True) -> dict[str, Path]:
    """Validate, then write report.json, report.md and report.html atomically into `out_dir`."""
    report.fill_retention()
    data = report.to_dict()
    validate_report(data)  # a bug in a producer must not leave an invalid report.json behind
    out = Path(out_dir)
    paths = {"json": out / "report.json", "md": out / "report.md"}
    write_json(paths["json"], data)
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(render_markdown(report), encoding="utf-8")
    if html:
        from edgeclip.bench.report_html import render_html

        paths["html"] = out / "report.html"
        with atomic_path(paths["html"]) as tmp:
            tmp.write_text(render_html(report), encoding="utf-8")
    return paths


def console_table(report: Report) -> str:
    """A short fixed-width table for the terminal: the columns people read first."""
    header = ["Model", "Format", "p50 ms", "p90 ms", "Mem MB", "Accuracy", "Retention", "Status"]
    picks = [0, 2, 6, 7, 10, 11, 12, 15]
    body = [[table_cells(row)[i] for i in picks] for row in report.rows]
    widths = [max(len(str(r[i])) for r in [header] + body) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + body)
