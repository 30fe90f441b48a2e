"""Run-directory result files: `result.json` (machine-readable) and `result.md` (for people).

`result.json` is written last and atomically, so its presence means the run finished; a re-run
into the same directory deletes it first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgeclip.bench.environment import collect_environment
from edgeclip.io_utils import atomic_path, write_json
from edgeclip.utils import fmt

RESULT_JSON = "result.json"
RESULT_MD = "result.md"


def machine_info() -> dict[str, Any]:
    """Where numbers were measured (goes into every result): bench's environment block + torch threads."""
    return {**collect_environment(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def clear_result(run_dir: Path) -> None:
    for name in (RESULT_JSON, RESULT_MD):
        (run_dir / name).unlink(missing_ok=True)


def render_result_markdown(result: dict[str, Any]) -> str:
    m = result["metrics"]
    t, s = result["teacher"], result["student"]
    rows = [
        ("teacher", t["name"], f"{t['params']:,}", fmt(m["teacher_accuracy"], True), "1.000", "-"),
        ("student (KD)", s["name"], f"{s['params']:,}", fmt(m["student_accuracy"], True), fmt(m["retention"]), fmt(m["agreement"], True)),
    ]
    if m.get("scratch_accuracy") is not None:
        rows.append(("student (scratch)", s["name"], f"{s['params']:,}", fmt(m["scratch_accuracy"], True), fmt(m.get("scratch_retention")), "-"))
    lines = [
        f"# Distillation result: {result['recipe']['name']}",
        "",
        f"Data: train `{result['data']['train']}` ({result['data']['train_images']} images, shots {result['data']['shots'] or 'all'}), "
        f"test `{result['data']['test']}` ({result['data']['test_images']} images). Loss: {result['loss']}.",
        "",
        "| role | model | params | top-1 (%) | retention | agreement w/ teacher (%) |",
        "|---|---|---:|---:|---:|---:|",
        *[f"| {' | '.join(r)} |" for r in rows],
        "",
        f"Parameter gap (teacher/student): {result['param_gap']:.1f}x. Teacher over-confidence p (gamma={m['overconfidence_gamma']}): "
        f"{fmt(m['teacher_overconfidence_p'])}.",
    ]
    if m.get("teacher_zero_shot_accuracy") is not None:
        lines.append(f"CLIP zero-shot (before fine-tuning the head): {fmt(m['teacher_zero_shot_accuracy'], True)}%.")
    lines += ["", f"Student checkpoint: `{s['checkpoint']}` ({result['training']['epochs']} epochs, {result['training']['seconds']:.1f}s)."]
    return "\n".join(lines) + "\n"


def write_run_result(run_dir: Path, result: dict[str, Any]) -> None:
    """result.md first, then result.json (the completion marker)."""
    result.setdefault("machine", machine_info())
    with atomic_path(run_dir / RESULT_MD) as tmp:
        tmp.write_text(render_result_markdown(result))
    write_json(run_dir / RESULT_JSON, result)
