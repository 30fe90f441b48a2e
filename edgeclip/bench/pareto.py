"""Latency vs retention: the Pareto front of measured student candidates, as a table and a plot.

A search record (build/student_search.py `SearchOutcome.record()`, also written by
benchmarks/cifar10_pareto.py) is a dict with `budget_ms` (or None), `backend`, `precision`,
`threads` and `candidates`: one dict per candidate with at least `label`, `latency_ms` (p50, batch 1)
and `retention` (None when it was not trained: over the budget). Lower latency and higher
retention are better; a candidate is on the front when no other is at least as good in both and
better in one.
"""

from __future__ import annotations

from typing import Any, Sequence

from edgeclip.bench.figures import png_figure

PLOT_NAME = "pareto.png"


def pareto_front(points: Sequence[tuple[float, float | None]]) -> list[bool]:
    """For (latency, retention) points: True where no other point is as fast and as accurate and
    strictly better in one of them. Points without a retention are never on the front."""
    flags = []
    for i, (latency, retention) in enumerate(points):
        if retention is None:
            flags.append(False)
            continue
        dominated = any(
            j != i and other_retention is not None and other_latency <= latency and other_retention >= retention
            and (other_latency < latency or other_retention > retention)
            for j, (other_latency, other_retention) in enumerate(points)
        )
        flags.append(not dominated)
    return flags


def threads_text(threads: Any) -> str:
    """"1 thread", "4 threads", or the runtime's default (threads 0 / unset)."""
    if not threads:
        return "runtime-default threads"
    return f"{threads} thread" + ("s" if int(threads) != 1 else "")


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def pareto_markdown(record: dict[str, Any], *, figure: str | None = None, heading: str = "##",
                    title: str = "Student search: latency vs retention") -> list[str]:
    """Markdown lines: the candidates sorted by latency, which meet the budget, which are on the front,
    which was chosen."""
    budget = record.get("budget_ms")
    where = f"{record.get('backend')} {record.get('precision')}, {threads_text(record.get('threads'))}, batch 1, p50"
    lines = [f"{heading} {title}", ""]
    lines.append(f"Budget: **{budget:g} ms** ({where})." if budget else f"Latency: {where}.")
    extra = list(record.get("extra_columns") or [])
    choosing = budget is not None or any(row.get("chosen") for row in record["candidates"])  # else: a plain table
    header = ["candidate", "params", "latency ms", *[c["title"] for c in extra], "retention", "Pareto"]
    header += ["meets budget", "chosen"] if choosing else []
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in sorted(record["candidates"], key=lambda r: r["latency_ms"]):
        cells = [row["label"], _fmt(row.get("params"), ",d"), _fmt(row["latency_ms"], ".3f"),
                 *[_fmt(row.get(c["key"]), ".3f") for c in extra],
                 _fmt(row.get("retention"), ".3f") if row.get("retention") is not None else (row.get("retention_note") or "-"),
                 "yes" if row.get("pareto") else ""]
        if choosing:
            cells += ["-" if budget is None else ("yes" if row.get("meets_budget") else "no"), "**yes**" if row.get("chosen") else ""]
        lines.append("| " + " | ".join(cells) + " |")
    if record.get("choice"):
        lines += ["", record["choice"]]
    if figure:
        lines += ["", f"![latency vs retention of the measured candidates]({figure})"]
    return lines


def pareto_png(record: dict[str, Any], *, latency_key: str = "latency_ms", xlabel: str | None = None) -> bytes:
    """Scatter of latency (log x) vs retention, the front as a step line, the budget as a vertical
    line and the chosen candidate circled."""
    rows = [r for r in record["candidates"] if r.get("retention") is not None and r.get(latency_key) is not None]
    with png_figure(figsize=(7, 4.5)) as (fig, ax, buffer):
        for row in rows:
            ax.scatter(row[latency_key], row["retention"], color="tab:blue" if row.get("pareto") else "tab:gray", zorder=3)
            ax.annotate(row["label"], (row[latency_key], row["retention"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
            if row.get("chosen"):
                ax.scatter(row[latency_key], row["retention"], s=160, facecolors="none", edgecolors="tab:red", zorder=4,
                           label="chosen")
        front = sorted((r[latency_key], r["retention"]) for r in rows if r.get("pareto"))
        if len(front) > 1:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:blue", alpha=0.5, label="Pareto front")
        if record.get("budget_ms") and latency_key == "latency_ms":
            ax.axvline(record["budget_ms"], color="tab:red", linestyle="--", label=f"budget {record['budget_ms']:g} ms")
        if rows:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel or f"latency p50, ms ({record.get('backend')} {record.get('precision')}, "
                                f"{threads_text(record.get('threads'))}, batch 1)")
        ax.set_ylabel("retention (student / teacher accuracy)")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    return buffer.getvalue()
