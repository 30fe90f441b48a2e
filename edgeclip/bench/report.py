"""The benchmark report's data: rows, target budgets, the verdict. `report.json` is its JSON form.

`report.json` is the contract (DESIGN §3 Report): `bench/report_schema.py` validates it,
`bench/report_text.py` and `bench/report_html.py` render it, `bench/report_files.py` writes all
three. A backend that fails is a row whose status says why, never a crash.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from edgeclip.bench.metrics import retention as retention_of
from edgeclip.bench.report_schema import (  # noqa: F401 - re-exported: the row vocabulary
    BUILD_HOST,
    LATENCY_KEYS,
    ON_TARGET,
    ROLES,
    SCHEMA_VERSION,
    STATUS_PATTERN,
    validate_report,
)
from edgeclip.targets import check_budgets


@dataclass
class ReportRow:
    """One model x backend x precision. Unmeasured values stay None (shown as "-")."""

    name: str
    role: str = "student"
    # What the row's model outputs (manifest kind): classifier / zero_shot_classifier rows carry
    # accuracy; image_encoder / text_encoder rows (towers) carry none by design. None = unknown.
    kind: str | None = None
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
    speedup: float | None = None  # speed-reference (teacher architecture) p50 / this row's p50, same backend+precision
    status: str = "ok"  # ok | failed: <reason> | skipped: <reason> | needs_target: <where>
    notes: str = ""
    measured_on: str | None = None  # ON_TARGET | BUILD_HOST (set by Report.apply_target); None = no target

    @property
    def on_build_host(self) -> bool:
        """Its timings are the build host's, not the target's (so no device decision may rest on them)."""
        return self.measured_on == BUILD_HOST
    # Classifier rows evaluated on labelled data: baselines, prediction spread, per-class accuracy,
    # confusion matrix and flags (bench/qualify.py, harness.row_quality). Absent in older reports.
    quality: dict[str, Any] | None = None
    # How close the row runs to the GEMM roof of the machine that timed it (bench/roof.py; on a device,
    # the runner's devices/runner/gemm_roof.py): FLOPs / p50, and that as a percentage of the roof of its
    # precision (fp32 or int8). `roof_source`: which machine's roof ("this machine: ..." or "device
    # HOST: ..."); `roof_why_not`: why a timed row has no % (a GPU row, no roof of its precision).
    # Absent in older reports.
    achieved_gflops: float | None = None
    roof_gflops: float | None = None
    roof_percent: float | None = None
    roof_source: str | None = None
    roof_why_not: str | None = None
    # A student timed at the speed reference's (teacher's) input size, so × teacher is never only a
    # resolution trick (bench/equal_resolution.py): {"input_size", "latency_ms", "speedup", "why_not"}.
    equal_resolution: dict[str, Any] | None = None

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
    verdict: dict[str, Any] | None = None  # what to ship and every failed check (bench/verdict.py)
    notes: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    # `edgeclip build --latency-budget`: every timed candidate, latency vs retention (bench/pareto.py)
    student_search: dict[str, Any] | None = None

    def fill_retention(self) -> None:
        """retention = row accuracy / teacher-row accuracy, for rows that lack it."""
        teacher = next((r for r in self.rows if r.role == "teacher" and r.accuracy is not None), None)
        if teacher is None:
            return
        for row in self.rows:
            if row.retention is None and row.accuracy is not None:
                row.retention = retention_of(row.accuracy, teacher.accuracy)

    def fill_speedups(self) -> None:
        """speedup = p50 of the speed-reference row with the same backend and precision / the row's p50;
        the same at the reference's input size for the student's equal-resolution timing."""
        references = {(r.backend, r.precision): r.latency_ms["p50"] for r in self.rows
                      if r.role == "speed_reference" and r.ok and r.latency_ms}
        for row in self.rows:
            reference = references.get((row.backend, row.precision))
            if row.role == "student" and reference and row.latency_ms and row.latency_ms.get("p50"):
                row.speedup = float(reference / row.latency_ms["p50"])
            equal = row.equal_resolution
            if row.role == "student" and reference and equal and (equal.get("latency_ms") or {}).get("p50"):
                equal["speedup"] = float(reference / equal["latency_ms"]["p50"])

    def apply_target(self, target: Any, *, measured_on_target: bool = True) -> None:
        """Record the target profile and its budget results, and mark where each timed row was
        measured. Measurements taken elsewhere than on the target check nothing: every budget is then
        "not measured", and the rows say "build host, not the target".

        `measured_on_target` covers the deployable rows (students, speed references: --remote measures
        those on the device); teacher and reference rows always run here, so they are the target's only
        when this machine is one."""
        self.fill_retention()  # the retention budget needs it
        self.target = target.to_dict()
        self.budgets = dataclasses.asdict(target.budgets)
        here_is_target = bool(getattr(target, "measurable_here", False))
        for row in self.rows:
            if row.latency_ms is None and row.throughput is None and row.peak_mem_mb is None:
                continue  # nothing timed: nothing to attribute
            on_target = measured_on_target if row.role in ("student", "speed_reference") else here_is_target
            row.measured_on = ON_TARGET if on_target else BUILD_HOST
        rows = self.rows if measured_on_target else []
        self.budget_results = [r.to_dict() for r in check_budgets(target, rows)]

    @property
    def timed_on_build_host(self) -> bool:
        """Some deployable row's timings are the build host's, not the target's."""
        return any(r.on_build_host for r in self.rows if r.role in ("student", "speed_reference"))

    @property
    def failed_budgets(self) -> list[dict[str, Any]]:
        return [b for b in self.budget_results if b.get("passed") is False]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version, "run_id": self.run_id, "created": self.created,
            "environment": self.environment, "target": self.target, "budgets": self.budgets,
            "budget_results": self.budget_results, "verdict": self.verdict, "rows": [r.to_dict() for r in self.rows],
            "notes": self.notes,
            **({"student_search": self.student_search} if self.student_search is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        validate_report(data)
        return cls(rows=[ReportRow.from_dict(r) for r in data["rows"]], environment=data["environment"],
                   run_id=data["run_id"], created=data["created"], target=data["target"], budgets=data["budgets"],
                   budget_results=data["budget_results"], verdict=data["verdict"], notes=data["notes"],
                   schema_version=data["schema_version"], student_search=data.get("student_search"))
