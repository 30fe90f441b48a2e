"""Capacity-gap analysis (paper 000 §3.3, §4.2–4.5): one row per teacher for a fixed student.

Columns: teacher params, parameter gap (teacher / student params), teacher top-1, the teacher's
over-confidence probability p (among its test mistakes, the fraction whose wrong top class has
softmax > γ), the student's top-1 after KD from it, retention, agreement — plus the same student
trained from scratch under the same budget ("none"). Rows come from distill runs: either run
here (`run_capacity_gap`) or read from existing run directories (`rows_from_runs`).
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from edgeclip.bench.metrics import overconfidence_probability
from edgeclip.config import Recipe
from edgeclip.distill.classifier_kd import distill_classifier
from edgeclip.distill.data_setup import open_distill_data
from edgeclip.distill.results import RESULT_JSON, fmt, machine_info
from edgeclip.distill.teachers import open_teacher
from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_path, read_json, write_json

CAPACITY_JSON = "capacity_gap.json"
CAPACITY_MD = "capacity_gap.md"


@dataclass
class CapacityGapRow:
    teacher: str
    teacher_kind: str
    teacher_params: int | None
    param_gap: float | None
    teacher_accuracy: float | None
    overconfidence_p: float | None
    student: str
    student_params: int
    student_accuracy: float
    retention: float | None
    agreement: float | None
    shots: int
    run_dir: str = ""


def overconfidence_p(teacher_logits: Any, labels: Sequence[int], gamma: float = 0.5) -> float:
    """p = N_err&oc / N_err from logits (softmax applied here); see bench.metrics."""
    import torch

    logits = torch.as_tensor(teacher_logits, dtype=torch.float32)
    return overconfidence_probability(logits.softmax(dim=1), list(labels), gamma)


def row_from_result(result: dict[str, Any], run_dir: str = "") -> CapacityGapRow:
    m, t, s = result["metrics"], result["teacher"], result["student"]
    return CapacityGapRow(
        teacher=t["name"], teacher_kind=t["kind"], teacher_params=t["params"], param_gap=result["param_gap"],
        teacher_accuracy=m["teacher_accuracy"], overconfidence_p=m["teacher_overconfidence_p"], student=s["name"],
        student_params=s["params"], student_accuracy=m["student_accuracy"], retention=m["retention"],
        agreement=m["agreement"], shots=result["data"]["shots"], run_dir=run_dir,
    )


def scratch_row(result: dict[str, Any], run_dir: str = "") -> CapacityGapRow | None:
    """The 'Scratch/None' row from a run that trained the from-scratch baseline."""
    m, s = result["metrics"], result["student"]
    if m.get("scratch_accuracy") is None:
        return None
    return CapacityGapRow(teacher="none (scratch)", teacher_kind="none", teacher_params=None, param_gap=None, teacher_accuracy=None,
                          overconfidence_p=None, student=s["name"], student_params=s["params"], student_accuracy=m["scratch_accuracy"],
                          retention=None, agreement=None, shots=result["data"]["shots"], run_dir=run_dir)


def rows_from_runs(run_dirs: Sequence[str | Path]) -> tuple[list[CapacityGapRow], float]:
    """Rows (and γ) from finished `edgeclip distill` run directories; they must share student and data."""
    rows: list[CapacityGapRow] = []
    scratch: CapacityGapRow | None = None
    gammas, setups = set(), set()
    for run_dir in run_dirs:
        path = Path(run_dir) / RESULT_JSON
        if not path.is_file():
            raise UserError(f"{run_dir} has no {RESULT_JSON} (not a finished `edgeclip distill` run); finish or re-run it, or drop it from --runs")
        result = read_json(path)
        rows.append(row_from_result(result, str(run_dir)))
        scratch = scratch or scratch_row(result, str(run_dir))
        gammas.add(result["metrics"]["overconfidence_gamma"])
        setups.add((result["student"]["name"], result["data"]["test"], result["data"]["shots"]))
    if len(setups) > 1:
        raise UserError(f"--runs mix students or data ({sorted(setups)}); compare teachers for one student on one data setting")
    if len(gammas) > 1:
        raise UserError(f"--runs used different over-confidence thresholds {sorted(gammas)}; re-run with one distill.overconfidence_gamma")
    return rows + ([scratch] if scratch else []), gammas.pop() if gammas else 0.5


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "teacher"


def run_capacity_gap(recipe: Recipe, teachers: Sequence[str], *, out_dir: str | Path, progress: bool = True,
                     resume: bool = False) -> tuple[list[CapacityGapRow], dict[str, Any]]:
    """Distill `recipe.student` from each teacher (same data, seed, budget) and build the table.

    The from-scratch baseline is trained once, in the first teacher's run.
    """
    if len(teachers) < 1:
        raise UserError("capacity-gap analysis needs at least one --teacher (ideally a CLIP and CE-trained CNNs of different sizes)")
    out = Path(out_dir)
    data = open_distill_data(recipe.data, recipe.seed)
    opened = [open_teacher(t, recipe.distill.teacher_head) for t in teachers]  # every spec checked before any training
    rows: list[CapacityGapRow] = []
    scratch: CapacityGapRow | None = None
    for index, (spec, teacher) in enumerate(zip(teachers, opened)):
        run_recipe = copy.deepcopy(recipe)
        run_recipe.distill.scratch_baseline = index == 0
        run_dir = out / f"{index}-{slug(spec)}"
        result = distill_classifier(run_recipe, teacher=teacher, out_dir=run_dir, progress=progress, resume=resume, data=data).result
        rows.append(row_from_result(result, str(run_dir)))
        scratch = scratch or scratch_row(result, str(run_dir))
    if scratch:
        rows.append(scratch)
    meta = {"recipe": recipe.name, "student": recipe.student.name, "data": data.describe(), "teachers": list(teachers),
            "gamma": recipe.distill.overconfidence_gamma, "epochs": recipe.distill.epochs}
    write_capacity_gap(out, rows, meta)
    return rows, meta


def render_markdown(rows: Sequence[CapacityGapRow], gamma: float, title: str = "Capacity-gap analysis") -> str:
    lines = [
        f"# {title}",
        "",
        f"p = over-confidence probability of the teacher on the test split (γ = {gamma}): among its mistakes, the fraction whose "
        "wrong top class has softmax > γ. Param gap = teacher params / student params.",
        "",
        "| teacher | kind | teacher params | param gap | teacher top-1 (%) | p | student | student params | student top-1 (%) | retention | agreement (%) |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        params = f"{r.teacher_params / 1e6:.2f}M" if r.teacher_params else "-"
        gap = f"{r.param_gap:.1f}x" if r.param_gap else "-"
        lines.append(f"| {r.teacher} | {r.teacher_kind} | {params} | {gap} | {fmt(r.teacher_accuracy, True)} | {fmt(r.overconfidence_p)} | "
                     f"{r.student} | {r.student_params / 1e6:.3f}M | {fmt(r.student_accuracy, True)} | {fmt(r.retention)} | "
                     f"{fmt(r.agreement, True)} |")
    return "\n".join(lines) + "\n"


def write_capacity_gap(out_dir: str | Path, rows: Sequence[CapacityGapRow], meta: dict[str, Any]) -> Path:
    """capacity_gap.md then capacity_gap.json (atomic), in `out_dir`; returns the JSON path."""
    out = Path(out_dir)
    gamma = float(meta.get("gamma", 0.5))
    with atomic_path(out / CAPACITY_MD) as tmp:
        tmp.write_text(render_markdown(rows, gamma))
    write_json(out / CAPACITY_JSON, {"schema": "edgeclip.capacity_gap/1", **meta, "machine": machine_info(),
                                     "rows": [asdict(r) for r in rows]})
    return out / CAPACITY_JSON
