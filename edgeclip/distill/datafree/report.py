"""`result.md` for a data-free run (result.json keeps everything; this is for people)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeclip.distill.results import RESULT_JSON, RESULT_MD, fmt, machine_info
from edgeclip.io_utils import atomic_path, write_json


def render_datafree_markdown(result: dict[str, Any]) -> str:
    m, syn, s, t = result["metrics"], result["synthesis"], result["student"], result["teacher"]
    cfg = result["recipe"]["datafree"]
    lines = [
        f"# Data-free distillation: {result['recipe']['name']}",
        "",
        f"Classes ({len(result['classes'])}): {', '.join(result['classes'][:12])}{', ...' if len(result['classes']) > 12 else ''}. "
        f"Prompt method: **{syn['method']}**. Generator: {cfg['generator']} {cfg['generator_params'] or ''}. "
        f"{syn['images_total']} synthetic images ({cfg['images_per_class']} per class, {cfg['steps']} Adam steps at lr {cfg['lr']}, "
        f"{cfg['views']} augmented views), {syn['seconds_per_image']:.3f} s per image. Loss: {result['loss']}.",
        "",
        f"Teacher on its own synthetic images: {fmt(m['teacher_accuracy_on_synthetic'], True)}% classified as the prompted class "
        f"(mean cosine to the prompt {fmt(syn.get('mean_target_similarity'))}).",
        "",
    ]
    if m.get("student_accuracy") is not None:
        lines += [
            f"Real test data `{result['data']['test']}` ({result['data']['test_images']} images, never used for training):",
            "",
            "| model | params | top-1 (%) | retention | agreement w/ teacher (%) |",
            "|---|---:|---:|---:|---:|",
            f"| teacher zero-shot ({t['name']}) | {t['params']:,} | {fmt(m['teacher_accuracy'], True)} | 1.000 | - |",
            f"| student, KD on synthetic ({s['name']}) | {s['params']:,} | {fmt(m['student_accuracy'], True)} | {fmt(m['retention'])} | "
            f"{fmt(m['agreement'], True)} |",
        ]
        if m.get("scratch_accuracy") is not None:
            lines.append(f"| student, CE on synthetic labels (no KD) | {s['params']:,} | {fmt(m['scratch_accuracy'], True)} | "
                         f"{fmt(m['scratch_retention'])} | - |")
        if m.get("shifts"):
            lines += ["", "Under distribution shifts of the test images (top-1 %, teacher / student"
                      + (" / no-KD student" if m.get("scratch_accuracy") is not None else "") + "):", ""]
            for name, row in m["shifts"].items():
                cells = [fmt(row["teacher_accuracy"], True), fmt(row["student_accuracy"], True)]
                if row.get("scratch_accuracy") is not None:
                    cells.append(fmt(row["scratch_accuracy"], True))
                lines.append(f"- {name}: {' / '.join(cells)}")
    else:
        lines.append("No test data (data.test is empty): the student was not measured.")
    fewshot = result.get("fewshot")
    if fewshot:
        lines += ["", f"Few-shot fine-tuning ({fewshot['seeds']} seeds, {fewshot['steps']} steps, lr {fewshot['lr']}), "
                  "top-1 % mean ± std:", "", "| k per class | from the data-free student | from random init |", "|---:|---:|---:|"]
        by = {(r["k"], r["start"]): r for r in fewshot["rows"]}
        for k in fewshot["shots"]:
            d, r = by[(k, "distilled")], by[(k, "scratch")]
            lines.append(f"| {k} | {100 * d['mean']:.1f} ± {100 * d['std']:.1f} | {100 * r['mean']:.1f} ± {100 * r['std']:.1f} |")
    lines += ["", f"Synthetic set: `{result['data']['train']}` (synthetic.json, contact_sheet.png). "
              f"Student checkpoint: `{s['checkpoint']}`."]
    return "\n".join(lines) + "\n"


def write_datafree_result(run_dir: Path, result: dict[str, Any]) -> None:
    """result.md first, then result.json (the completion marker)."""
    result.setdefault("machine", machine_info())
    with atomic_path(Path(run_dir) / RESULT_MD) as tmp:
        tmp.write_text(render_datafree_markdown(result))
    write_json(Path(run_dir) / RESULT_JSON, result)
