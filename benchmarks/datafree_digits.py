"""Paper 002 on real digits: a student distilled from the ten class names alone.

Usage (the committed results came from exactly this, see "command" in the JSON):
    python benchmarks/datafree_digits.py --out benchmarks/results/datafree_digits --work runs/bench-datafree --jobs 2

Teacher: the proxy digits CLIP (trained here on the digits `pretrain` split only) with the class
names zero..nine. Every data-free student is an `edgeclip distill --method data-free` run of the
`digits-datafree` recipe that differs only in the prompt method (plain / mix / random /
contrastive); it never sees a real image (except the few-shot rows) and is measured on the 359
real `test` digits, clean and under the six shifts of edgeclip.data.shifts. Next to them:
- the teacher's zero-shot top-1;
- the real-data KD student: `edgeclip distill --recipe digits-kd` (classifier KD on the 719 real
  `train` digits) with the same student architecture, evaluated under the same shifts;
- the same student trained with cross-entropy on the synthetic labels (no KD), on the
  Contrastive-Prompt set;
- ablations of the recipe's method: the paper's offline targets (teacher once per image instead
  of once per augmented batch), and the weight-free Fourier generator at 32×32 RGB instead of the
  8×8 grayscale pixel parameterisation;
- few-shot fine-tuning from the Contrastive-Prompt student vs random init, k = 1..16, 5 seeds.
Runs go to --work as run directories and execute in --jobs processes with one torch thread each.
--reuse takes finished runs of the same recipes from --work; --reevaluate also takes runs whose
recipes differ only in evaluation fields (the shift list) and re-measures every reused run's shift
columns under today's edgeclip.data.shifts without training (clean top-1 must come out identical):
    python benchmarks/datafree_digits.py --out benchmarks/results/datafree_digits --work runs/bench-datafree --jobs 2 --reevaluate
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

PROMPTS = ["plain", "mix", "random", "contrastive"]
SHIFTS = ["noise", "blur", "rotation", "inversion", "jpeg", "resolution"]
# Recipe fields that change only what is measured after training: --reevaluate reuses a run that
# differs from today's recipe in these alone and measures them again.
EVALUATION_ONLY = {"datafree.shifts"}
STUDENT = "resnet18_w8"
FEWSHOT = [1, 2, 4, 8, 16]
TARGET_RATIO = 0.70


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """One task (a data-free run, optionally followed by a derived run, or the real-data KD run)."""
    import torch

    torch.set_num_threads(1)
    from edgeclip.config import load_recipe
    from edgeclip.distill.reuse import reusable_run
    from edgeclip.io_utils import read_json

    import resource

    results = {}
    for step in task["steps"]:
        out = Path(step["out"])
        recipe = load_recipe(step["recipe"], step["overrides"])
        kind = step.get("kind", "data-free")
        if kind == "real-matched":
            # The data-free recipe's loss/schedule on real train images (reuses its own finished run).
            from edgeclip.distill.datafree.real_reference import distill_on_real

            result = distill_on_real(recipe, step["per_class"], out, progress=bool(step.get("progress")))
            print(f"[{time.strftime('%H:%M:%S')}] {step['name']}: student {result['metrics']['student_accuracy']:.3f}", flush=True)
            results[step["name"]] = result
            continue
        if task["reuse"] or step.get("reuse_only"):
            # edgeclip's one reuse rule; --reevaluate also takes a run that differs in evaluation-only
            # fields (re-measured below).
            found = reusable_run(out, recipe, ignore=EVALUATION_ONLY if task["reevaluate"] else ())
            if found.reusable:
                earlier = _reevaluate(step, recipe, found.result, out) if task["reevaluate"] else found.result
                results[step["name"]] = {**earlier, "reused": True}
                continue
            if step.get("reuse_only"):
                raise SystemExit(f"error: {step['name']}: {found.reason}; it is only read here, so point the option at a "
                                 "run of this recipe or drop it to train one")
            print(f"{step['name']}: {found.reason}; running again", flush=True)
        started = time.perf_counter()
        # CPU time of this process: what the run costs on an idle core, whatever else shares the machine.
        cpu_started = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
        if step.get("copy_synthetic_from"):
            # Same synthetic set, different training: copy it and let --resume skip synthesis.
            source = Path(step["copy_synthetic_from"]) / "synthetic"
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(source, out / "synthetic")
        if step.get("reuse_only"):
            raise SystemExit(f"error: {step['name']}: no finished run in {out}; point the option at a finished run or drop it to train one")
        if kind == "real-kd":
            from edgeclip.distill.classifier_kd import distill_classifier

            result = distill_classifier(recipe, out_dir=out, progress=False).result
            if step.get("shifts", True):
                result["shifts"] = _shifted_accuracies(out / "student")
                from edgeclip.io_utils import write_json

                write_json(out / "shifts.json", result["shifts"])
        else:
            from edgeclip.distill.datafree.trainer import distill_datafree

            result = distill_datafree(recipe, out_dir=out, progress=bool(step.get("progress")), resume=bool(step.get("copy_synthetic_from") or step.get("resume"))).result
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result["cpu_seconds"] = usage.ru_utime + usage.ru_stime - cpu_started
        from edgeclip.io_utils import write_json

        write_json(out / "cpu_seconds.json", {"cpu_seconds": result["cpu_seconds"], "wall_seconds": time.perf_counter() - started})
        m = result["metrics"]
        print(f"[{time.strftime('%H:%M:%S')}] {step['name']}: student {m['student_accuracy']:.3f} "
              f"({time.perf_counter() - started:.0f}s wall, {result['cpu_seconds']:.0f}s CPU)", flush=True)
        results[step["name"]] = result
    if task["reuse"]:
        for step in task["steps"]:
            for name, key in (("shifts.json", "shifts"), ("cpu_seconds.json", "cpu_seconds")):
                path = Path(step["out"]) / name
                if path.is_file():
                    value = read_json(path)
                    results[step["name"]][key] = value["cpu_seconds"] if key == "cpu_seconds" else value
    return results


def _reevaluate(step: dict[str, Any], recipe: Any, earlier: dict[str, Any], out: Path) -> dict[str, Any]:
    """A reused run's shift columns measured again under today's edgeclip.data.shifts (no training);
    its clean figures are re-measured too and must equal the run's own. Saved beside the run."""
    from edgeclip.data.shifts import SHIFTS_VERSION
    from edgeclip.io_utils import write_json

    started = time.perf_counter()
    if step.get("kind") == "real-kd":
        clean, shifts = _shifted_accuracies(out / "student", with_clean=True)
        if clean != earlier["metrics"]["student_accuracy"]:
            raise SystemExit(f"error: {out}: re-measured clean top-1 {clean} differs from its result.json "
                             f"({earlier['metrics']['student_accuracy']}); re-run it without --reuse")
        write_json(out / "shifts.json", shifts)
        note = {"shifts_version": SHIFTS_VERSION, "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
                "clean": {"student_accuracy": clean}}
        earlier = {**earlier, "shifts": shifts}
    else:
        from edgeclip.distill.datafree.remeasure import remeasure_run

        measured = remeasure_run(out, recipe, list(recipe.datafree.shifts))
        note = {k: v for k, v in measured.items() if k != "shifts"}
        earlier = {**earlier, "metrics": {**earlier["metrics"], "shifts": measured["shifts"]}}
    note["seconds"] = round(time.perf_counter() - started, 1)
    write_json(out / "remeasured.json", note)
    print(f"[{time.strftime('%H:%M:%S')}] {step['name']}: shift columns re-measured (shifts {SHIFTS_VERSION}, "
          f"{note['seconds']:.0f}s, clean top-1 identical)", flush=True)
    return {**earlier, "remeasured": note}


def _shifted_accuracies(student_dir: Path, with_clean: bool = False) -> Any:
    """Top-1 of a saved student on the test split under each shift (with_clean: (clean top-1, that))."""
    from edgeclip.bench.metrics import top1_accuracy
    from edgeclip.data import open_image_dataset
    from edgeclip.data.shifts import ShiftedDataset
    from edgeclip.distill.augment import eval_view
    from edgeclip.distill.trainer import predict_logits
    from edgeclip.students.checkpoint import load_checkpoint

    from edgeclip.teacher.proxy import load_proxy_teacher

    model, spec, _ = load_checkpoint(student_dir)
    test = open_image_dataset("digits", "test")
    size = max(spec.preprocess.size, load_proxy_teacher(progress=False).preprocess.size)  # as the data-free runs shift
    shifted = {name: top1_accuracy(predict_logits(model, eval_view(ShiftedDataset(test, name, size), spec.preprocess)), test.labels)
               for name in SHIFTS}
    if with_clean:
        return top1_accuracy(predict_logits(model, eval_view(test, spec.preprocess)), test.labels), shifted
    return shifted


def build_tasks(args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(args.work)
    common = [f"student.name={STUDENT}", f"distill.epochs={args.epochs}",
              f"distill.milestones=[{int(args.epochs * 0.6)},{int(args.epochs * 0.9)}]",
              f"datafree.images_per_class={args.per_class}", f"datafree.batch_size={args.per_class}",
              f"datafree.steps={args.steps}"]

    def step(name: str, *overrides: str, recipe: str = "digits-datafree", **extra: Any) -> dict[str, Any]:
        return {"name": name, "recipe": recipe, "out": str(work / name), "overrides": [*common, *overrides], **extra}

    contrastive = step("contrastive", "datafree.prompt=contrastive", "distill.scratch_baseline=true",
                       f"datafree.fewshot_shots={FEWSHOT}", f"datafree.fewshot_seeds={args.fewshot_seeds}")
    tasks = [
        {"steps": [contrastive, step("contrastive-offline", "datafree.prompt=contrastive", "datafree.online_teacher=false",
                                     copy_synthetic_from=contrastive["out"])]},
        {"steps": [step("contrastive-fourier", "datafree.prompt=contrastive", "datafree.generator=fourier",
                        "datafree.generator_params={decay: 1.0, init_std: 0.05, init_mean: 0.95}")]},
        *({"steps": [step(p, f"datafree.prompt={p}")]} for p in ("plain", "mix", "random")),
        {"steps": [{"name": "real-kd", "kind": "real-kd", "recipe": "digits-kd", "out": str(work / "real-kd"),
                    "overrides": [f"student.name={STUDENT}"]}]},
    ]
    for task in tasks:
        task["reuse"], task["reevaluate"] = args.reuse or args.reevaluate, args.reevaluate
    return tasks


def pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    real = results["real-kd"]
    real_acc = real["metrics"]["student_accuracy"]
    teacher = results["contrastive"]["metrics"]
    rows = [{"row": "teacher zero-shot (proxy-digits, class names)", "kind": "teacher", "accuracy": teacher["teacher_accuracy"],
             "shifts": {s: teacher["shifts"][s]["teacher_accuracy"] for s in SHIFTS}, "images": None, "seconds_per_image": None},
            {"row": f"real-data KD student (digits-kd, {real['data']['train_images']} real train digits)", "kind": "real-kd",
             "accuracy": real_acc, "shifts": real.get("shifts", {}), "images": real["data"]["train_images"], "seconds_per_image": None}]
    for name in PROMPTS:
        r = results[name]
        rows.append({"row": f"data-free KD, {name} prompts", "kind": "data-free", "prompt": name, "accuracy": r["metrics"]["student_accuracy"],
                     "shifts": {s: r["metrics"]["shifts"][s]["student_accuracy"] for s in SHIFTS},
                     "images": r["synthesis"]["images_total"], "seconds_per_image": r["synthesis"]["seconds_per_image"],
                     "cpu_seconds_per_image": r["synthesis"].get("cpu_seconds_per_image"),
                     "teacher_on_synthetic": r["metrics"]["teacher_accuracy_on_synthetic"],
                     "target_cosine_within_class": r["synthesis"]["prompts"].get("target_cosine_within_class")})
    c = results["contrastive"]["metrics"]
    rows.append({"row": "no KD: CE on the synthetic labels (contrastive set)", "kind": "scratch", "accuracy": c["scratch_accuracy"],
                 "shifts": {s: c["shifts"][s]["scratch_accuracy"] for s in SHIFTS}, "images": results["contrastive"]["synthesis"]["images_total"],
                 "seconds_per_image": None})
    for name, label in (("contrastive-offline", "ablation: contrastive, offline targets (paper: teacher once per image)"),
                        ("contrastive-fourier", "ablation: contrastive, Fourier generator 32×32 RGB (no digit-format prior)")):
        r = results[name]
        rows.append({"row": label, "kind": "ablation", "accuracy": r["metrics"]["student_accuracy"],
                     "shifts": {s: r["metrics"]["shifts"][s]["student_accuracy"] for s in SHIFTS},
                     "images": r["synthesis"]["images_total"], "seconds_per_image": r["synthesis"]["seconds_per_image"],
                     "cpu_seconds_per_image": r["synthesis"].get("cpu_seconds_per_image"),
                     "teacher_on_synthetic": r["metrics"]["teacher_accuracy_on_synthetic"]})
    for row in rows:
        row["ratio_to_real_kd"] = row["accuracy"] / real_acc if real_acc else None
    best = max(PROMPTS, key=lambda p: results[p]["metrics"]["student_accuracy"])
    best_acc = results[best]["metrics"]["student_accuracy"]
    return {"rows": rows, "best_prompt": best, "best_accuracy": best_acc, "real_kd_accuracy": real_acc,
            "best_ratio_to_real_kd": best_acc / real_acc, "target_ratio": TARGET_RATIO, "target_met": best_acc / real_acc >= TARGET_RATIO,
            "fewshot": results["contrastive"].get("fewshot")}


def render(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    from edgeclip.data.shifts import SHIFT_DESCRIPTIONS

    m = meta["machine"]
    lines = [
        "# Data-free distillation from class names on real digits (paper 002)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['created']}. Machine: {m['cpu']}, {m['cores_logical']} cores, torch {m['torch']}, open_clip "
        f"{m.get('versions', {}).get('open_clip_torch', '?')}, 1 torch thread per job, {meta['jobs']} jobs in parallel; "
        f"wall time {meta['seconds'] / 60:.1f} min, sum of the runs' own times {meta['run_seconds_total'] / 60:.1f} min, "
        f"CPU time {meta['run_cpu_seconds_total'] / 60:.1f} min (≈ {meta['run_cpu_seconds_total'] / 120:.0f} min of wall time on 2 idle cores)."
        + (f" This invocation reused finished runs (--reuse/--reevaluate), so its wall time is not the runs': {', '.join(meta['reused_runs'])}."
           if meta["reused_runs"] else "")
        + (f" The runs were made by `{meta['runs_made_by']['command']}` ({meta['runs_made_by']['created']}, wall time "
           f"{meta['runs_made_by']['seconds'] / 60:.1f} min)." if meta.get("runs_made_by") else "")
        + _load_note(meta["runs_made_by"].get("load_average") if meta.get("runs_made_by") else meta.get("load_average")),
        "",
        f"Teacher: proxy digits CLIP (trained here on the 719 `pretrain` digits; {pct(meta['proxy_teacher'].get('zero_shot_accuracy_test'))}% "
        f"zero-shot when it was trained; weights `{meta['proxy_teacher'].get('identity', '?')}`). Input to every data-free student: the ten class names. "
        f"Recipe `digits-datafree` with {meta['settings']['per_class']} synthetic images per class, {meta['settings']['steps']} Adam steps "
        f"each, student {STUDENT} ({meta['student_params'] / 1e6:.2f}M params) for {meta['settings']['epochs']} epochs; "
        "test: the 359 real held-out digits (never used for training), clean and under synthetic shifts of them "
        f"(`edgeclip.data.shifts`: {'; '.join(f'{k}: {v}' for k, v in SHIFT_DESCRIPTIONS.items() if k in SHIFTS)}).",
        "",
        _shift_note(meta),
        "",
        "| model | train images | top-1 (%) | / real-data KD | " + " | ".join(SHIFTS) + " | teacher agrees on synthetic (%) | synthesis CPU s / image (wall) |",
        "|---|---:|---:|---:|" + "---:|" * len(SHIFTS) + "---:|---:|",
    ]
    for r in summary["rows"]:
        cells = [r["row"], "-" if r["images"] is None else str(r["images"]), pct(r["accuracy"]),
                 "-" if r["kind"] == "teacher" else f"{r['ratio_to_real_kd']:.2f}",
                 *(pct(r["shifts"].get(s)) for s in SHIFTS), pct(r.get("teacher_on_synthetic")),
                 "-" if r["seconds_per_image"] is None else f"{r.get('cpu_seconds_per_image') or float('nan'):.2f} ({r['seconds_per_image']:.2f})"]
        lines.append("| " + " | ".join(cells) + " |")
    verdict = "met" if summary["target_met"] else "NOT met"
    spread = {r["prompt"]: r["target_cosine_within_class"] for r in summary["rows"] if r.get("prompt")}
    lines += [
        "",
        f"**Winner here: {summary['best_prompt']} prompts** — {pct(summary['best_accuracy'])}% on real digits, "
        f"{summary['best_ratio_to_real_kd']:.2f}× the real-data KD student's {pct(summary['real_kd_accuracy'])}% "
        f"(target ≥ {TARGET_RATIO:.2f}×: {verdict}).",
        "",
        "Reading the table: \"teacher agrees on synthetic\" is the share of synthetic images the teacher classifies as the class "
        "they were prompted for. Contrastive-Prompt spreads the prompts so far that most of its images no longer look like "
        "their own class to the teacher — the student learns from the teacher's soft answers on them (KD), which is why its "
        "no-KD (CE on those labels) row is far lower.",
        "",
        "Prompt spread — mean cosine between the target text embeddings of images of one class (1 = all images of a class "
        "chase the same embedding): " + ", ".join(f"{name} {value:.2f}" for name, value in spread.items()) + ". "
        "The proxy's text tower was trained on six caption templates only, so style words (Mix-Prompt) and a random "
        "pseudo-token (Random-Prompt) barely move its embedding; learning the pseudo-tokens contrastively does.",
    ]
    lines += fewshot_markdown(summary.get("fewshot"), "digits", "contrastive", "", "datafree_digits")
    lines += ["", "Contact sheets (first images of every class, per prompt method): `datafree_digits/<method>.png`.", ""]
    return "\n".join(lines)


def fewshot_markdown(fewshot: dict[str, Any] | None, unit: str, prompt: str, measured_on: str, images_dir: str) -> list[str]:
    """The few-shot section (data-free student vs random init, mean ± std over seeds); [] when not run."""
    if not fewshot:
        return []
    by = {(r["k"], r["start"]): r for r in fewshot["rows"]}
    lines = ["", f"## Few-shot fine-tuning (k real `train` {unit} per class, {fewshot['seeds']} seeds, {fewshot['steps']} SGD "
             f"steps, lr {fewshot['lr']}, batch ≤ {fewshot['batch_size']}; mean ± std top-1 %{measured_on})", "",
             f"| k | from the data-free student ({prompt}) | from random init |", "|---:|---:|---:|"]
    for k in fewshot["shots"]:
        d, s = by[(k, "distilled")], by[(k, "scratch")]
        lines.append(f"| {k} | {100 * d['mean']:.1f} ± {100 * d['std']:.1f} | {100 * s['mean']:.1f} ± {100 * s['std']:.1f} |")
    return lines + ["", f"Plot: `{images_dir}/fewshot.png`."]


def _shift_note(meta: dict[str, Any]) -> str:
    """Which version of the shift module the shift columns come from, when and how they were measured."""
    shifts = meta.get("shifts") or {}
    version = shifts.get("version", "?")
    if shifts.get("remeasured_runs"):
        return (f"Shift columns: `edgeclip.data.shifts` {version}, re-measured on {shifts['measured'][:10]} by this invocation "
                f"(--reevaluate) on the already-trained students of {', '.join(shifts['remeasured_runs'])}, without training "
                "them again; their clean top-1 was re-measured too and is identical to the runs' own.")
    made = meta.get("runs_made_by") or meta
    return (f"Shift columns: `edgeclip.data.shifts` {version}, measured by the training runs "
            f"({str(made.get('created', '?'))[:10]}).")


def _load_note(load: list[float] | None) -> str:
    """What else ran: wall times (and wall seconds per image) depend on it, CPU time does not."""
    if not load:
        return " Wall times depend on what else ran on these cores; CPU time is the fair cost."
    return (f" 1-minute load average {load[0]:.1f} at the start and {load[1]:.1f} at the end on {os.cpu_count()} cores"
            + ("; other jobs shared the cores, so wall times are inflated and CPU time is the fair cost." if max(load) > 2.5 else "."))


def fewshot_plot(fewshot: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    for start, label in (("distilled", "data-free student (contrastive)"), ("scratch", "random init")):
        rows = [r for r in fewshot["rows"] if r["start"] == start]
        ax.errorbar([r["k"] for r in rows], [100 * r["mean"] for r in rows], yerr=[100 * r["std"] for r in rows],
                    marker="o", capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("real images per class (k)")
    ax.set_ylabel("top-1 on real test digits (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/datafree_digits", help="writes <out>.json, <out>.md and <out>/ (images)")
    parser.add_argument("--work", default="runs/bench-datafree", help="run directories")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=40, help="synthetic images per class")
    parser.add_argument("--steps", type=int, default=100, help="Adam steps per synthetic image")
    parser.add_argument("--epochs", type=int, default=100, help="student epochs on the synthetic set")
    parser.add_argument("--fewshot-seeds", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="reuse finished run directories in --work")
    parser.add_argument("--reevaluate", action="store_true",
                        help="reuse finished runs that differ from today's recipes only in evaluation fields (the shift "
                             "list) and re-measure every reused run's shift columns under today's edgeclip.data.shifts, "
                             "without training; clean top-1 is re-measured too and must equal the run's own (implies --reuse)")
    args = parser.parse_args()
    started = time.perf_counter()
    load_start = os.getloadavg()[0]

    from edgeclip.teacher.proxy import load_proxy_teacher, proxy_info

    # Train/cache once before the workers start. Its weights identity goes into the result: two
    # trainings of the same recipe can differ in the last float bits, and so do their students.
    teacher_identity = load_proxy_teacher(progress=True).identity
    tasks = build_tasks(args)
    out = Path(args.out)
    reuse = args.reuse or args.reevaluate
    previous = json.loads(out.with_suffix(".json").read_text()) if reuse and out.with_suffix(".json").is_file() else {}
    made_with = (previous.get("proxy_teacher") or {}).get("identity")
    if args.reevaluate and made_with and made_with != teacher_identity:
        # The teacher's shift columns would come from other weights than its students learned from.
        print(f"error: the runs were made with teacher {made_with}, this cache holds {teacher_identity}; "
              "point EDGECLIP_CACHE at the cache they were made with", file=sys.stderr)
        return 2
    # Longest tasks first so the workers finish together.
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        finished = pool.map(run_task, tasks, chunksize=1)
    results = {name: r for part in finished for name, r in part.items()}
    reused = [name for name, r in results.items() if r.get("reused")]
    from edgeclip.data.shifts import SHIFTS_VERSION

    remeasured = {name: r["remeasured"] for name, r in results.items() if r.get("remeasured")}

    from edgeclip.distill.results import machine_info

    summary = summarize(results)
    images = out.parent / out.name
    images.mkdir(parents=True, exist_ok=True)
    for name in [*PROMPTS, "contrastive-fourier"]:
        method = "contrastive" if name.startswith("contrastive") else name
        shutil.copyfile(Path(args.work) / name / "synthetic" / method / "contact_sheet.png", images / f"{name}.png")
    if summary["fewshot"]:
        fewshot_plot(summary["fewshot"], images / "fewshot.png")
    meta = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": "python " + " ".join(sys.argv), "jobs": args.jobs,
            "reused_runs": reused, "run_seconds_total": sum(r["seconds"] for r in results.values()),
            "run_cpu_seconds_total": sum(r.get("cpu_seconds") or 0.0 for r in results.values()),
            "machine": {**machine_info(), "torch_threads": 1}, "seconds": time.perf_counter() - started,
            "proxy_teacher": {**proxy_info(), "identity": teacher_identity}, "student_params": results["contrastive"]["student"]["params"],
            "settings": {"per_class": args.per_class, "steps": args.steps, "epochs": args.epochs, "fewshot_seeds": args.fewshot_seeds},
            "load_average": [load_start, os.getloadavg()[0]],
            "shifts": {"version": SHIFTS_VERSION, "names": SHIFTS,
                       "remeasured_runs": sorted(remeasured),
                       "measured": max((r["measured"] for r in remeasured.values()), default=None)}}
    total_runs = sum(len(t["steps"]) for t in tasks)
    if len(reused) == total_runs and previous.get("settings") == meta["settings"]:
        # Every run came from an earlier invocation: say which one made them, and how long it took.
        meta["runs_made_by"] = previous.get("runs_made_by") or {k: previous.get(k) for k in ("command", "created", "seconds", "load_average")}
    payload = {**meta, "summary": summary,
               "runs": {name: {k: r.get(k) for k in ("teacher", "student", "metrics", "data", "synthesis", "loss", "seconds", "cpu_seconds", "shifts",
                                                     "remeasured")}
                        for name, r in results.items()}}
    from edgeclip.io_utils import write_result_files

    write_result_files(out, payload, render(summary, meta))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
