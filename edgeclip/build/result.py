"""What `edgeclip build` returns (both pipelines: `build.build` and `build.accident.build_accident`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class BuildResult:
    run_dir: Path
    report: Any
    report_paths: dict[str, Path]
    artifacts: list[Path] = field(default_factory=list)

    @property
    def failed_budgets(self) -> list[dict[str, Any]]:
        return self.report.failed_budgets

    @property
    def unmeasured_budgets(self) -> list[dict[str, Any]]:
        return [b for b in self.report.budget_results if b.get("passed") is None]

    @property
    def failed_rows(self) -> list[Any]:
        return [row for row in self.report.rows if row.status.startswith("failed")]

    @property
    def unverified_rows(self) -> list[Any]:
        return [row for row in self.report.rows if row.status.startswith(("needs_target", "skipped"))]
