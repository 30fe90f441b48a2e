"""Text views of a report: the results table shared by every view, report.md, and the console table."""

from __future__ import annotations

import math
from typing import Any, Iterable

from edgeclip.bench.pareto import pareto_markdown
from edgeclip.bench.report import Report, ReportRow
from edgeclip.bench.report_quality import quality_markdown
from edgeclip.bench.roof import ROOF_SIZE

ROOF_GEMM = f"{ROOF_SIZE}x{ROOF_SIZE}x{ROOF_SIZE}"
from edgeclip.bench.verdict import verdict_sentence
from edgeclip.compress.int8_rule import REJECTED_NOTE


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


# Mean and iteration counts stay in report.json; the HTML view wraps headers and statuses so the
# table fits a 1280-px window.
TABLE_HEADER = ["Model", "Role", "Format", "Params", "FLOPs", "Size MB", "p50 ms", "p90 ms", "p99 ms", "× teacher (at teacher size)",
                "GFLOP/s (% roof)", "img/s", "Mem MB", "Accuracy", "Retention", "Agree teacher", "Agree ref", "Timed on", "Status"]


def _speedup_cell(row: ReportRow) -> str:
    """"12.3x"; a build-host ratio says so in the cell itself (the headline number people quote)."""
    if not row.speedup:
        return "-"
    return f"{row.speedup:.1f}x" + (" (build host)" if row.on_build_host else "")


def _speedup_cells(row: ReportRow) -> str:
    """"130.9x (14.2x @224)": × teacher at the row's own input size, and with the student timed at the
    teacher's input size beside it, so a speed-up that is only a smaller input shows as such."""
    native = _speedup_cell(row)
    equal = row.equal_resolution
    if not equal:
        return native
    size = equal.get("input_size")
    if equal.get("speedup"):
        return f"{native} ({equal['speedup']:.1f}x @{size})"
    return f"{native} (n/a @{size})"


def equal_resolution_notes(report: Report) -> list[str]:
    """Why a student could not be timed at the teacher's input size, one line per row."""
    return [f"{row.label} was not timed at {row.equal_resolution.get('input_size')}x{row.equal_resolution.get('input_size')}: "
            f"{row.equal_resolution['why_not']}" for row in report.rows
            if row.equal_resolution and row.equal_resolution.get("why_not")]


def _roof_cell(row: ReportRow) -> str:
    """"47 (28%)": achieved GFLOP/s and the share of the timing machine's roof for the row's precision;
    "47 (n/a)" when a roof does not apply (roof_notes says why)."""
    if row.achieved_gflops is None:
        return "-"
    if row.roof_percent is not None:
        return fmt(row.achieved_gflops, ".3g") + f" ({row.roof_percent:.0f}%)"
    return fmt(row.achieved_gflops, ".3g") + (" (n/a)" if row.roof_why_not else "")


def roof_notes(report: Report) -> list[str]:
    """Why a timed row has no % of roof (a GPU row, no roof of its precision), one line per row."""
    return [f"{row.label} — roof: {row.roof_why_not}" for row in report.rows if row.roof_why_not]


def table_cells(row: ReportRow) -> list[str]:
    """One row of the results table, shared by the Markdown, HTML and console views."""
    latency = row.latency_ms or {}
    return [row.name, row.role.replace("_", " "), f"{row.backend}-{row.precision}", fmt_count(row.params), fmt_flops(row),
            fmt(row.size_mb, ".2f"), fmt(latency.get("p50"), ".2f"), fmt(latency.get("p90"), ".2f"),
            fmt(latency.get("p99"), ".2f"), _speedup_cells(row), _roof_cell(row),
            fmt(row.throughput, ".1f"), fmt(row.peak_mem_mb, ".1f"),
            fmt(row.accuracy, ".4f"), fmt(row.retention, ".3f"), fmt(row.agreement_teacher, ".3f"),
            fmt(row.agreement_reference, ".3f"), row.measured_on or "-", _status_text(row)]


def roof_sentence(report: Report) -> str | None:
    """What GFLOP/s and % roof mean, with the roofs used per machine (bench/roof.py here, the runner's
    gemm_roof.py on a device); None when no row has one."""
    by_source: dict[str, dict[str, float]] = {}
    for row in report.rows:
        if row.roof_gflops:
            by_source.setdefault(row.roof_source or f"this machine, {ROOF_GEMM} GEMM", {})[row.precision] = row.roof_gflops
    if not by_source:
        return None
    listed = "; ".join(f"{source}: " + ", ".join(f"{p} {v:.0f}" for p, v in sorted(roofs.items())) + " GFLOP/s"
                       for source, roofs in sorted(by_source.items()))
    return (f"GFLOP/s = the row's FLOPs / its p50; % roof = that / the best square GEMM of the row's precision with the "
            f"same threads on the machine that timed the row ({listed}; int8 in GOP/s). Far below the roof, per-op "
            "overhead, not arithmetic, sets the latency.")


def build_host_caveat(report: Report) -> str | None:
    """The sentence under the results table when deployable rows were timed on the build host."""
    if not report.timed_on_build_host:
        return None
    target = (report.target or {}).get("name") or "the target"
    cpu = (report.environment or {}).get("cpu") or "this machine"
    return (f"Rows timed on \"build host, not the target\" were measured on {cpu}, not on {target}: their "
            f"latency, img/s, memory and × teacher are that machine's (fp16 there is emulated on a CPU) and "
            f"decide nothing for {target}; measure on the device with --remote.")


def _status_text(row: ReportRow) -> str:
    """The row's status; a measured artifact that export rejected (compress/int8_rule.py) says so."""
    return f"{row.status} (rejected at export: never shipped)" if REJECTED_NOTE in row.notes else row.status


def describe_roof(roof: dict[str, Any]) -> str:
    """A device's GEMM roof as one line: per precision the best figure and every library's."""
    parts = [f"{roof.get('gemm')} GEMM, {roof.get('threads')} thread(s), {roof.get('clock')} clock"]
    for precision, rates in (roof.get("by_library") or {}).items():
        if rates:
            parts.append(f"{precision} {roof.get(precision)} (" + ", ".join(f"{k} {v}" for k, v in rates.items()) + ")")
    parts += [f"{key}: {error}" for key, error in (roof.get("errors") or {}).items()]
    return "; ".join(parts)


def describe_environment(env: dict[str, Any]) -> list[str]:
    lines = [f"{key}: {describe_roof(value) if key == 'roof' and isinstance(value, dict) else value}"
             for key, value in env.items() if key != "versions"]
    versions = env.get("versions") or {}
    if versions:
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return lines


def render_markdown(report: Report, inputs_image: str | None = None) -> str:
    def md_row(cells: Iterable[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    lines = [f"# edgeclip benchmark report `{report.run_id}`", "", f"Created {report.created}."]
    if report.environment.get("load_warning"):
        lines += ["", f"> **Warning:** {report.environment['load_warning']}"]
    if report.target:
        lines.append(f"Target: **{report.target.get('name')}** — {report.target.get('description', '')}")
    if report.verdict is not None:
        lines += ["", "## Verdict", "", verdict_sentence(report.verdict)]
        for other in report.verdict.get("others") or []:
            lines.append(f"- {other['row']}: not chosen — {other['why']}")
    lines += ["", "## Results", "", md_row(TABLE_HEADER), md_row(["---"] * len(TABLE_HEADER))]
    lines += [md_row(table_cells(row)) for row in report.rows]
    caveat = build_host_caveat(report)
    if caveat:
        lines += ["", f"**{caveat}**"]
    if roof_sentence(report):
        lines += ["", roof_sentence(report)]
    lines += [f"- {note}" for note in roof_notes(report) + equal_resolution_notes(report)]
    lines += quality_markdown(report)
    if report.student_search:
        lines += [""] + pareto_markdown(report.student_search, figure=report.student_search.get("figure"))
    if inputs_image:
        lines += ["", "## Inputs as the model sees them", "", f"![a few evaluation images after the model's preprocessing]({inputs_image})"]
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


def console_table(report: Report) -> str:
    """A short fixed-width table for the terminal: the columns people read first."""
    header = ["Model", "Format", "p50 ms", "p90 ms", "× teacher (at teacher size)", "GFLOP/s (% roof)", "Mem MB", "Accuracy", "Retention", "Timed on", "Status"]
    picks = [TABLE_HEADER.index(h) for h in header]
    body = [[table_cells(row)[i] for i in picks] for row in report.rows]
    widths = [max(len(str(r[i])) for r in [header] + body) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + body)
