"""The report's "what the accuracy means" section: baselines, prediction spread, flags, per-class
accuracy and the confusion matrix of one classifier row (Markdown lines and an HTML table + plot).

The row shown is the verdict's recommended artifact, else the first student row evaluated on
labelled data, else the unexported PyTorch reference (`shown_row`).
"""

from __future__ import annotations

import html
from typing import Any

from edgeclip.bench.figures import png_figure
from edgeclip.bench.qualify import confusion_markdown
from edgeclip.bench.report import Report, ReportRow
from edgeclip.targets import row_label


def shown_row(report: Report) -> ReportRow | None:
    rows = [r for r in report.rows if r.quality]
    recommended = (report.verdict or {}).get("recommended")
    for row in rows:
        if recommended and row_label(row) == recommended:
            return row
    return next((r for r in rows if r.role == "student"), None) or next(iter(rows), None)


def summary_lines(quality: dict[str, Any]) -> list[str]:
    base, spread = quality["baselines"], quality["predictions"]
    return [f"Baselines on these {base['images']} images: majority class '{base['majority_class']}' "
            f"{base['majority']:.1%}, chance {base['chance']:.1%} ({len(quality['class_names'])} classes).",
            f"Predictions: {spread['classes_predicted']} of {len(quality['class_names'])} classes predicted, entropy "
            f"{spread['entropy_bits']:.2f} of {spread['max_entropy_bits']:.2f} bits, most predicted '{spread['top_class']}' "
            f"({spread['top_class_share']:.0%})."]


def quality_markdown(report: Report) -> list[str]:
    row = shown_row(report)
    if row is None:
        return []
    q = row.quality
    lines = ["", f"## What the accuracy means ({row.label})", ""] + summary_lines(q)
    lines += [f"- ⚠ {flag}" for flag in q["flags"]] or ["- accuracy clear of both baselines; predictions spread over the classes"]
    lines += ["", "Per-class accuracy and confusion matrix (rows: true class, columns: predicted):", ""]
    lines += confusion_markdown(q["confusion"], q["class_names"], q["per_class_accuracy"])
    return lines


def confusion_png(matrix: list[list[int]], class_names: list[str], dpi: int = 100) -> bytes:
    """The confusion matrix as a heatmap (rows normalised per true class, counts printed)."""
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.45 * len(class_names)
    with png_figure(figsize=(size + 1, size), dpi=dpi) as (fig, ax, buffer):
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
        for i in range(len(class_names)):
            for j in range(len(class_names)):
                if counts[i, j]:
                    ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if shares[i, j] > 0.5 else "black")
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    return buffer.getvalue()


def quality_html(report: Report) -> list[str]:
    import base64

    row = shown_row(report)
    if row is None:
        return []
    esc, q = html.escape, row.quality
    names = q["class_names"]
    parts = [f"<h2>What the accuracy means ({esc(row.label)})</h2>"]
    parts += [f"<p>{esc(line)}</p>" for line in summary_lines(q)]
    flags = "".join(f"<li class='fail'>{esc(flag)}</li>" for flag in q["flags"])
    parts.append(f"<ul>{flags}</ul>" if flags else "<p>Accuracy clear of both baselines; predictions spread over the classes.</p>")
    parts.append("<table><thead><tr><th>true \\ predicted</th>" + "".join(f"<th>{esc(n)}</th>" for n in names)
                 + "<th>images</th><th>accuracy</th></tr></thead><tbody>")
    for name, counts in zip(names, q["confusion"]):
        accuracy = q["per_class_accuracy"].get(name)
        parts.append(f"<tr><td>{esc(name)}</td>" + "".join(f"<td>{v}</td>" for v in counts)
                     + f"<td>{sum(counts)}</td><td>{'-' if accuracy is None else f'{accuracy * 100:.1f}%'}</td></tr>")
    parts.append("</tbody></table>")
    encoded = base64.b64encode(confusion_png(q["confusion"], names)).decode("ascii")
    parts.append(f"<figure><img alt='confusion matrix heatmap' src='data:image/png;base64,{encoded}'>"
                 "<figcaption>Confusion matrix: each row is a true class, shaded by the share of its images "
                 "predicted as each class; counts printed.</figcaption></figure>")
    return parts
