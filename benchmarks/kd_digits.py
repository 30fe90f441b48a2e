"""Paper 000 on real digits (or CIFAR-10) with a proxy CLIP teacher: KD vs from-scratch, full data and
low-shot, and the capacity-gap table (fine-tuned proxy CLIP vs two CE-trained CNN teachers).

Usage (the committed results came from exactly this, see "command" in the JSON):
    python benchmarks/kd_digits.py --out benchmarks/results/kd_digits --work runs/bench-kd-digits --jobs 2
    python benchmarks/kd_digits.py --dataset cifar10 --out benchmarks/results/cifar10_kd --work runs/bench-kd-cifar10 ...

Table 1: teacher = proxy digits CLIP (frozen) + MLP head fine-tuned on the same training images
(the k-shot images in low-shot rows); students MobileNetV3-small and ResNet18 with 1/8 of the
filters at 32×32; each student trained with Hinton KD (α=β=0.5, τ=1) and from scratch (CE) under
the same budget (epochs, batch, SGD schedule, augmentation, seed). Test split (359 images) unchanged.
Table 2: capacity gap for the ResNet18-1/8 student on full data: the proxy teacher's run from
table 1 plus runs with CE-trained ResNet teachers of growing size (digits: ResNet18 and ResNet34 at
half width with the ImageNet stem; CIFAR-10: ResNet18 at 1/8 — the student's own size — and 1/4 of
the filters with the CIFAR stem, `cnn:cifar_resnet18@W`).
Every run is an `edgeclip distill` run directory under --work; tasks run in --jobs processes with
one torch thread each (2 cores).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

STUDENTS = ["mobilenetv3_small", "resnet18_w8"]
SHOTS = [0, 5, 10, 20]
# Per dataset: the recipe, its proxy teacher, the low-shot settings, full-data epochs (None = the
# recipe's own schedule) and how the test split is described.
DATASET_SETTINGS = {
    "digits": {"recipe": "digits-kd", "teacher": "proxy-digits", "shots": SHOTS, "epochs": 12,
               "test": "359 held-out digits", "title": "real digits",
               "cnn_teachers": ["cnn:resnet18@0.5", "cnn:resnet34@0.5"]},
    "cifar10": {"recipe": "cifar10-kd", "teacher": "proxy-cifar10", "shots": [0, 10, 50, 100], "epochs": None,
                "test": "CIFAR-10's own 10,000 test photos", "title": "real CIFAR-10 photos",
                "cnn_teachers": ["cnn:cifar_resnet18@0.125", "cnn:cifar_resnet18@0.25"]},
}
CAPACITY_STUDENT = "resnet18_w8"
DIGIT_CLASSES = 10


def overrides_for(shots: int, args: argparse.Namespace) -> list[str]:
    """Same budget for KD and scratch. Low-shot: batch 32 and a fixed number of optimizer steps
    (--lowshot-steps), so k=5 (2 steps per epoch) is not starved next to k=20 (7 steps per epoch)."""
    if shots == 0:
        if args.epochs is None:
            return []  # the recipe's own schedule
        e = args.epochs
        return [f"distill.epochs={e}", "distill.batch_size=128", "distill.lr=0.1", f"distill.milestones=[{int(e * 0.6)},{int(e * 0.9)}]"]
    steps_per_epoch = math.ceil(DIGIT_CLASSES * shots / 32)
    e = math.ceil(args.lowshot_steps / steps_per_epoch)
    return [f"data.shots={shots}", f"distill.epochs={e}", "distill.batch_size=32", "distill.lr=0.05",
            f"distill.milestones=[{int(e * 0.6)},{int(e * 0.9)}]", f"distill.head_epochs={args.lowshot_head_epochs}"]


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """One `edgeclip distill` run (in a worker process, one torch thread)."""
    import torch

    torch.set_num_threads(1)
    from edgeclip.config import load_recipe
    from edgeclip.distill.classifier_kd import distill_classifier
    from edgeclip.distill.reuse import reusable_run

    out = Path(task["out"])
    recipe = load_recipe(task["recipe"], task["overrides"])
    if task["reuse"]:
        # edgeclip's one reuse rule: a finished run of this recipe (these overrides) and this teacher.
        earlier = reusable_run(out, recipe, teacher=task["teacher"])
        if earlier.reusable:
            return {**earlier.result, "reused": True}
        print(f"{task['name']}: {earlier.reason}; training again", flush=True)
    started = time.perf_counter()
    # --reuse also resumes an unfinished run from its last.pt (same recipe fingerprint), as `edgeclip distill --resume`.
    result = distill_classifier(recipe, teacher=task["teacher"], out_dir=out, progress=False, resume=task["reuse"]).result
    result["teacher_spec"] = task["teacher"]
    from edgeclip.distill.results import write_run_result

    write_run_result(out, result)  # records the teacher spec the reuse check compares
    print(f"[{time.strftime('%H:%M:%S')}] {task['name']}: teacher {result['metrics']['teacher_accuracy']:.3f} "
          f"student {result['metrics']['student_accuracy']:.3f} scratch {result['metrics'].get('scratch_accuracy')} "
          f"({time.perf_counter() - started:.0f}s)", flush=True)
    return result


def build_tasks(args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(args.work)
    tasks = []
    setting = DATASET_SETTINGS[args.dataset]
    for shots in args.shots:
        for student in args.students:
            name = f"proxy-{student}-k{shots}"
            tasks.append({"name": name, "teacher": setting["teacher"], "recipe": setting["recipe"], "out": str(work / name), "reuse": args.reuse,
                          "overrides": [f"student.name={student}", "distill.scratch_baseline=true", *overrides_for(shots, args)]})
    for teacher in setting["cnn_teachers"] if args.capacity else []:
        name = f"{teacher.split(':')[1].replace('@', '-w')}-{CAPACITY_STUDENT}-k0"
        tasks.append({"name": name, "teacher": teacher, "recipe": setting["recipe"], "out": str(work / name), "reuse": args.reuse,
                      "overrides": [f"student.name={CAPACITY_STUDENT}", f"distill.teacher_epochs={args.teacher_epochs}", *overrides_for(0, args)]})
    # Longest first so the two workers finish together.
    return sorted(tasks, key=lambda t: ("k0" not in t["name"], "mobilenet" not in t["name"]))


def flops_at_recipe_size(recipe_name: str, teacher: Any, students: list[str]) -> dict[str, Any]:
    """FLOPs (2 × MACs, bench.flops) of each student and of the teacher's image tower at the recipe's student input
    size, so the table can say which students fit a fraction of the teacher's compute."""
    import torch

    from edgeclip.bench.flops import count_flops
    from edgeclip.config import load_recipe
    from edgeclip.eval.size import tower_flops
    from edgeclip.students.registry import create_student

    size = load_recipe(recipe_name).student.image_size
    flops = {"image_size": size, "teacher_image": tower_flops(teacher.model, size, teacher.context_length)["image"],
             "students": {}}
    for name in students:
        model, _spec = create_student(name, class_names=[str(i) for i in range(DIGIT_CLASSES)], image_size=size)
        flops["students"][name] = count_flops(model.eval(), (torch.zeros(1, 3, size, size),))
    return flops


def student_table(results: dict[str, dict[str, Any]], shots_run: list[int], students: list[str]) -> list[dict[str, Any]]:
    rows = []
    for shots in shots_run:
        for student in students:
            r = results[f"proxy-{student}-k{shots}"]
            m = r["metrics"]
            rows.append({"setting": "full" if shots == 0 else f"k={shots}", "train_images": r["data"]["train_images"],
                         "teacher": r["teacher"]["name"], "teacher_accuracy": m["teacher_accuracy"],
                         "teacher_zero_shot_accuracy": m.get("teacher_zero_shot_accuracy"), "student": student,
                         "student_params": r["student"]["params"], "kd_accuracy": m["student_accuracy"],
                         "scratch_accuracy": m["scratch_accuracy"], "kd_retention": m["retention"],
                         "scratch_retention": m["scratch_retention"], "kd_gain": m["kd_gain"], "agreement": m["agreement"],
                         "epochs": r["recipe"]["distill"]["epochs"], "batch_size": r["recipe"]["distill"]["batch_size"],
                         "seconds": r["seconds"]})
    return rows


def pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def render(rows: list[dict[str, Any]], capacity_md: str, meta: dict[str, Any]) -> str:
    lines = [
        f"# Hinton KD from a fine-tuned proxy CLIP on {meta['setting']['title']} (paper 000)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores_logical']} cores, torch {meta['machine']['torch']}, "
        f"1 torch thread per job, {meta['jobs']} jobs; wall time of this invocation {meta['seconds'] / 60:.1f} min, "
        f"sum of all runs' own times {meta['run_seconds_total'] / 60:.1f} min."
        + (f" Finished runs reused from an earlier invocation with the same overrides (--reuse): {', '.join(meta['reused_runs'])}."
           if meta["reused_runs"] else ""),
        "",
        f"Teacher: {meta['setting']['teacher']} CLIP (frozen) + MLP head fine-tuned with CE on the same training images. Students at 32×32. "
        "KD = 0.5·KL(τ=1) + 0.5·CE; scratch = CE only, same epochs/batch/schedule/augmentation/seed. "
        "SGD momentum 0.9, wd 1e-4, lr ×0.1 at 60% and 90% of the epochs; full data lr 0.1, low-shot lr 0.05 and a fixed "
        "number of steps. "
        f"Test split: {meta['setting']['test']} in every row.",
        "",
        *([f"Low-shot settings not run in this invocation (--shots {','.join(map(str, meta['shots']))}): "
           f"{', '.join(f'k={k}' for k in meta['setting']['shots'] if k not in meta['shots'])}.", ""]
          if sorted(meta["shots"]) != sorted(meta["setting"]["shots"]) else []),
        f"FLOPs at {meta['flops']['image_size']}×{meta['flops']['image_size']} (2 × MACs): the teacher's image tower "
        f"{meta['flops']['teacher_image'] / 1e6:.1f} M; *× teacher* = the student's FLOPs / that.",
        "",
        "| setting | train imgs | teacher top-1 (%) | student | params | MFLOPs | × teacher | KD top-1 (%) | scratch top-1 (%) | KD − scratch (pts) | retention KD | retention scratch | agreement KD (%) | epochs × batch |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        student_flops = meta["flops"]["students"][r["student"]]
        lines.append(f"| {r['setting']} | {r['train_images']} | {pct(r['teacher_accuracy'])} | {r['student']} | {r['student_params'] / 1e6:.2f}M | "
                     f"{student_flops / 1e6:.2f} | {student_flops / meta['flops']['teacher_image']:.3f} | "
                     f"{pct(r['kd_accuracy'])} | {pct(r['scratch_accuracy'])} | {100 * r['kd_gain']:+.1f} | {r['kd_retention']:.3f} | "
                     f"{r['scratch_retention']:.3f} | {pct(r['agreement'])} | {r['epochs']} × {r['batch_size']} |")
    zs = rows[0].get("teacher_zero_shot_accuracy")
    if zs is not None:
        lines += ["", f"Proxy CLIP zero-shot (prompt ensemble, before the MLP head), full data: {pct(zs)}%."]
    if capacity_md:
        lines += ["", capacity_md.replace("# Capacity-gap analysis", "## Capacity gap (student resnet18_w8, full data)")]
    else:
        lines += ["", "Capacity-gap table not run in this invocation (--no-capacity)."]
    return "\n".join(lines) + "\n"


def shots_list(text: str) -> list[int]:
    """`--shots 0,5`: comma-separated integers, or argparse's one-line usage error (checked
    against the dataset's settings in main)."""
    try:
        shots = [int(k) for k in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not shots:
        raise argparse.ArgumentTypeError(f"expected at least one setting, got {text!r}")
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/kd_digits", help="writes <out>.json and <out>.md")
    parser.add_argument("--work", default="runs/bench-kd-digits", help="run directories")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--dataset", choices=sorted(DATASET_SETTINGS), default="digits", help="digits (default) or cifar10")
    parser.add_argument("--students", nargs="+", default=list(STUDENTS), help=f"students (default: {' '.join(STUDENTS)})")
    parser.add_argument("--no-capacity", dest="capacity", action="store_false", help="skip the CNN-teacher capacity-gap runs")
    parser.add_argument("--epochs", type=int, default=None,
                        help="full-data epochs (KD, scratch and CNN teachers); default: 12 for digits, the recipe's for cifar10")
    parser.add_argument("--teacher-epochs", type=int, default=12, help="CE epochs of the CNN teachers")
    parser.add_argument("--lowshot-steps", type=int, default=300, help="optimizer steps (batch 32) of every low-shot run")
    parser.add_argument("--lowshot-head-epochs", type=int, default=60)
    parser.add_argument("--reuse", action="store_true",
                        help="reuse finished run directories in --work and resume unfinished ones from their last.pt")
    parser.add_argument("--shots", type=shots_list, default=None,
                        help="comma-separated settings to run: 0 = full data, k = k images per class "
                             "(default: digits 0,5,10,20; cifar10 0,10,50,100)")
    args = parser.parse_args()
    setting = DATASET_SETTINGS[args.dataset]
    if args.epochs is None:
        args.epochs = setting["epochs"]
    args.shots = args.shots or list(setting["shots"])
    if [k for k in args.shots if k not in setting["shots"]]:
        parser.error(f"--shots must be among {','.join(map(str, setting['shots']))} for {args.dataset}")
    if args.capacity and CAPACITY_STUDENT not in args.students:
        parser.error(f"the capacity-gap table needs {CAPACITY_STUDENT} among --students (or pass --no-capacity)")
    started = time.perf_counter()

    from edgeclip.teacher import ClipTeacher

    teacher = ClipTeacher.load(setting["teacher"])  # train/cache once before the workers start
    tasks = build_tasks(args)
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        finished = pool.map(run_task, tasks, chunksize=1)
    # Only runs that really were reused (a finished run of another recipe or teacher is trained again).
    reused = [t["name"] for t, r in zip(tasks, finished) if r.get("reused")]
    results = {t["name"]: r for t, r in zip(tasks, finished)}

    from edgeclip.distill.capacity_gap import render_markdown, rows_from_runs
    from edgeclip.distill.results import machine_info
    from edgeclip.teacher.proxy import proxy_info
    from edgeclip.teacher.proxy_cifar10 import proxy_cifar10_info

    capacity_md, capacity_rows, gamma = "", [], None
    if args.capacity:
        capacity_runs = [Path(args.work) / f"proxy-{CAPACITY_STUDENT}-k0"] + [Path(t["out"]) for t in tasks if t["teacher"].startswith("cnn:")]
        capacity_rows, gamma = rows_from_runs(capacity_runs)
        capacity_md = render_markdown(capacity_rows, gamma)
    rows = student_table(results, args.shots, args.students)
    meta = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": "python " + " ".join(sys.argv), "jobs": args.jobs,
            "reused_runs": reused, "run_seconds_total": sum(r["seconds"] for r in finished),
            "machine": {**machine_info(), "torch_threads": 1}, "seconds": time.perf_counter() - started,
            "proxy_teacher": proxy_cifar10_info() if args.dataset == "cifar10" else proxy_info(), "shots": args.shots,
            "dataset": args.dataset, "setting": setting,
            "flops": flops_at_recipe_size(setting["recipe"], teacher, args.students)}
    from dataclasses import asdict

    payload = {**meta, "student_table": rows, "capacity_gap": {"gamma": gamma, "rows": [asdict(r) for r in capacity_rows]},
               "runs": {name: {k: r[k] for k in ("teacher", "student", "metrics", "data", "param_gap", "seconds")} for name, r in results.items()}}
    out = Path(args.out)
    from edgeclip.io_utils import write_result_files

    write_result_files(out, payload, render(rows, capacity_md, meta))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
