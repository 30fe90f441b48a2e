"""Write report.json (validated), report.md and report.html, each atomically."""

from __future__ import annotations

from pathlib import Path

from edgeclip.bench.report import Report
from edgeclip.bench.report_html import render_html
from edgeclip.bench.report_inputs import PREVIEW_NAME
from edgeclip.bench.report_schema import validate_report
from edgeclip.bench.report_text import render_markdown
from edgeclip.io_utils import atomic_path, write_json


def write_report(report: Report, out_dir: str | Path, *, html: bool = True, inputs_png: bytes | None = None) -> dict[str, Path]:
    """Validate, then write report.json, report.md and report.html atomically into `out_dir`;
    `inputs_png` (bench/report_inputs.py: a few inputs as the model sees them) becomes inputs.png,
    linked from report.md and embedded in report.html."""
    report.fill_retention()
    report.fill_speedups()
    data = report.to_dict()
    validate_report(data)  # a bug in a producer must not leave an invalid report.json behind
    out = Path(out_dir)
    paths = {"json": out / "report.json", "md": out / "report.md"}
    write_json(paths["json"], data)
    if inputs_png:
        paths["inputs"] = out / PREVIEW_NAME
        with atomic_path(paths["inputs"]) as tmp:
            tmp.write_bytes(inputs_png)
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(render_markdown(report, inputs_image=PREVIEW_NAME if inputs_png else None), encoding="utf-8")
    if html:
        paths["html"] = out / "report.html"
        with atomic_path(paths["html"]) as tmp:
            tmp.write_text(render_html(report, inputs_png=inputs_png), encoding="utf-8")
    return paths
