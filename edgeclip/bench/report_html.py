"""report.html: one self-contained file (inline CSS, plot embedded as base64 PNG, no scripts)."""

from __future__ import annotations

import base64
import html
import math

from edgeclip.bench.figures import png_figure
from edgeclip.bench.report import Report, ReportRow
from edgeclip.bench.report_quality import quality_html
from edgeclip.bench.report_text import (
    TABLE_HEADER, build_host_caveat, describe_environment, equal_resolution_notes, fmt, roof_notes, roof_sentence, table_cells,
)
from edgeclip.bench.verdict import verdict_sentence

STATUS_CLASSES = {"ok": "ok", "failed": "failed", "skipped": "skipped", "needs_target": "needs"}
# The results table must fit a 1280-px window: compact cells, wrapped headers and statuses.
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5rem;color:#222;max-width:1240px}
table{border-collapse:collapse;margin:1rem 0;font-size:.74rem}
th,td{border:1px solid #ccc;padding:.22rem .25rem;text-align:right;white-space:nowrap}
th{background:#f3f3f3;white-space:normal}td:first-child,td:nth-child(2),td:nth-child(3),td:last-child{text-align:left}
td:first-child{white-space:normal;max-width:11rem;overflow-wrap:anywhere}
td:last-child{white-space:normal;max-width:15rem;overflow-wrap:anywhere}
table:not(.budgets) td:nth-last-child(2){white-space:normal;max-width:5.5rem;text-align:left}
table:not(.budgets) td:nth-child(10){white-space:normal;max-width:6rem}
.verdict{border-left:4px solid #11772d;background:#f2faf4;padding:.6rem .9rem;margin:1rem 0}
.caveat{border-left:4px solid #b36b00;background:#fff8ec;padding:.5rem .9rem}
.verdict.none{border-color:#b3261e;background:#fdf3f2}
.load-warning{border-left:4px solid #b36b00;background:#fff7e6;padding:.6rem .9rem;margin:1rem 0}
tr.teacher td{background:#fff6e0}
.ok{color:#11772d;font-weight:600}.failed,.fail{color:#b3261e;font-weight:600}
.skipped,.needs,.not-measured{color:#8a6d00;font-weight:600}.pass{color:#11772d;font-weight:600}
figure{margin:1rem 0}figcaption{color:#555;font-size:.85rem}
"""


def _status_class(status: str) -> str:
    return STATUS_CLASSES.get(status.split(":", 1)[0], "failed")


def accuracy_latency_png(rows: list[ReportRow], dpi: int = 110) -> tuple[bytes | None, list[str]]:
    """Scatter of accuracy vs p50 latency, one labelled point per row, the teacher as a red star.

    Returns (PNG bytes or None when no row has both values, labels of rows left out).
    """
    plotted = [r for r in rows if r.accuracy is not None and not math.isnan(r.accuracy)
               and r.latency_ms and r.latency_ms.get("p50") is not None]
    left_out = [r.label for r in rows if r not in plotted]
    if not plotted:
        return None, left_out

    # Neighbours along x get labels above/below in turn, so close points do not print over each other.
    offsets = [(7, 6), (7, -20), (7, 18), (7, -32)]
    with png_figure(figsize=(8, 5), dpi=dpi) as (fig, ax, buffer):
        for rank, row in enumerate(sorted(plotted, key=lambda r: r.latency_ms["p50"])):
            x, y = row.latency_ms["p50"], row.accuracy * 100
            teacher = row.role == "teacher"
            ax.scatter([x], [y], s=220 if teacher else 70, marker="*" if teacher else "o",
                       color="#d62728" if teacher else ("#1f77b4" if row.role == "student" else "#7f7f7f"),
                       edgecolors="black", linewidths=0.6, zorder=3,
                       label="teacher" if teacher else row.role)
            ax.annotate(f"{row.name}\n{row.backend}-{row.precision}", (x, y), textcoords="offset points",
                        xytext=offsets[rank % len(offsets)], fontsize=8, fontweight="bold" if teacher else "normal")
        # A teacher measured for accuracy only (no latency here) still sets the bar: a dashed line.
        for row in rows:
            if row.role == "teacher" and row not in plotted and row.accuracy is not None:
                ax.axhline(row.accuracy * 100, color="#d62728", linestyle="--", linewidth=1.2,
                           label=f"teacher accuracy ({row.name})")
        latencies = [r.latency_ms["p50"] for r in plotted]
        if min(latencies) > 0 and max(latencies) / min(latencies) > 20:
            ax.set_xscale("log")  # teacher vs int8 student can differ by orders of magnitude
        ax.margins(x=0.25, y=0.15)
        ax.set_xlabel("latency p50, batch 1 (ms)  — lower is better")
        ax.set_ylabel("top-1 accuracy (%)  — higher is better")
        ax.set_title("Accuracy vs latency")
        ax.grid(True, alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), loc="best", fontsize=8)
    return buffer.getvalue(), left_out


def render_html(report: Report, inputs_png: bytes | None = None) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             f"<title>edgeclip report {esc(report.run_id)}</title><style>{CSS}</style></head><body>",
             f"<h1>edgeclip benchmark report <code>{esc(report.run_id)}</code></h1>",
             f"<p>Created {esc(report.created)}.</p>"]
    if report.environment.get("load_warning"):  # above the verdict: it may have decided the verdict
        parts.append(f"<p class='load-warning'><b>Warning:</b> {esc(str(report.environment['load_warning']))}</p>")
    if report.target:
        parts.append(f"<p>Target: <b>{esc(str(report.target.get('name')))}</b> — "
                     f"{esc(str(report.target.get('description', '')))}</p>")
    if report.verdict is not None:
        css = "verdict" if report.verdict.get("recommended") else "verdict none"
        others = "".join(f"<li>{esc(o['row'])}: not chosen — {esc(o['why'])}</li>" for o in report.verdict.get("others") or [])
        parts.append(f"<h2>Verdict</h2><div class='{css}'><p>{esc(verdict_sentence(report.verdict))}</p>"
                     + (f"<ul>{others}</ul>" if others else "") + "</div>")
    parts.append("<h2>Results</h2><table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in TABLE_HEADER)
                 + "</tr></thead><tbody>")
    for row in report.rows:
        cells = table_cells(row)
        body = "".join(f"<td>{esc(c)}</td>" for c in cells[:-1])
        body += f"<td class='{_status_class(row.status)}'>{esc(cells[-1])}</td>"
        parts.append(f"<tr class='{esc(row.role)}'>{body}</tr>")
    parts.append("</tbody></table>")
    caveat = build_host_caveat(report)
    if caveat:
        parts.append(f"<p class='caveat'><b>{esc(caveat)}</b></p>")
    if roof_sentence(report):
        parts.append(f"<p>{esc(roof_sentence(report))}</p>")
    speed_notes = roof_notes(report) + equal_resolution_notes(report)
    if speed_notes:
        parts.append("<ul>" + "".join(f"<li>{esc(note)}</li>" for note in speed_notes) + "</ul>")

    png, left_out = accuracy_latency_png(report.rows)
    parts.append("<h2>Accuracy vs latency</h2>")
    if png is None:
        parts.append("<p>No row has both an accuracy and a latency; run the benchmark with --data to plot.</p>")
    else:
        encoded = base64.b64encode(png).decode("ascii")
        caption = "One point per row; the teacher is the red star (a dashed line when only its accuracy is known)."
        if left_out:
            caption += " Not plotted (no accuracy or latency): " + ", ".join(left_out) + "."
        parts.append(f"<figure><img alt='accuracy vs latency scatter plot' src='data:image/png;base64,{encoded}'>"
                     f"<figcaption>{esc(caption)}</figcaption></figure>")

    parts += quality_html(report)
    if inputs_png:
        encoded = base64.b64encode(inputs_png).decode("ascii")
        parts.append("<h2>Inputs as the model sees them</h2><figure><img alt='a few evaluation images after the model&#39;s "
                     f"preprocessing' src='data:image/png;base64,{encoded}'><figcaption>A few evaluation images after the "
                     "model's resize and normalization, each titled with the class it counts as: check polarity, size and "
                     "class names here.</figcaption></figure>")
    if report.target is not None:
        parts.append(f"<h2>Budgets ({esc(str(report.target.get('name')))})</h2>")
        if report.budget_results:
            parts.append("<table class='budgets'><thead><tr><th>Budget</th><th>Row</th><th>Limit</th><th>Measured</th><th>Result</th>"
                         "</tr></thead><tbody>")
            for b in report.budget_results:
                css = b["status"].replace(" ", "-")
                parts.append(f"<tr><td>{esc(b['name'])}</td><td>{esc(b['row'] or '-')}</td><td>{fmt(b['limit'], 'g')}</td>"
                             f"<td>{fmt(b['measured'], '.4g')}</td><td class='{css}'>{esc(b['status'])}</td></tr>")
            parts.append("</tbody></table>")
        else:
            parts.append("<p>The target profile sets no budgets.</p>")
    parts.append("<h2>Environment</h2><ul>" + "".join(f"<li>{esc(line)}</li>" for line in describe_environment(report.environment)) + "</ul>")
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in report.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
