"""A user's own image folder, end to end through the CLI: CIFAR-10 as a deliberately imbalanced 3-class folder.

What a user with a folder of class folders does, each step a real `edgeclip` command (recorded
with its exit code and wall time): distill a small student from a CNN teacher trained here (and
the same student from scratch), `compress int8` (the int8 rule decides), `export` fp32, `eval`
(baselines, per-class accuracy, confusion) and `bench` on the folder (the report with its verdict).

Data: three CIFAR-10 classes extracted with Python's tarfile from
/work/shared/data/cifar10/cifar10-jpg.tar.gz (see its PROVENANCE.md: CIFAR-10 re-encoded as JPEG)
into <work>/folder/{train,test}/<class>/, imbalanced on purpose — train 600/300/150, test
400/200/100 (the first files of each class folder in archive order), so the majority class is 57%
of the test images and a student that learns only "the big class" scores 57%, not 33%.

Usage (the committed results came from exactly this, see "command" in the JSON):
    python benchmarks/user_folder.py --out benchmarks/results/user_folder
Writes <out>.json, <out>.md and <out>_report.md (the bench report.md of the run); `--render`
re-writes <out>.md from <out>.json without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from edgeclip.bench.environment import collect_environment
from edgeclip.io_utils import atomic_path, write_result_files

ARCHIVE = Path("/work/shared/data/cifar10/cifar10-jpg.tar.gz")
# class -> (train images, test images): one class is half the training set, as in the folder.
SUBSET = {"ship": (600, 400), "truck": (300, 200), "frog": (150, 100)}
TEACHER = "cnn:resnet18@0.5"
STUDENT = "mobilenetv3_small"


def extract_subset(archive: Path, dest: Path) -> dict[str, dict[str, int]]:
    """The first N files of each chosen class per split, streamed out of the archive (no full unpack)."""
    wanted = {("train", c): n for c, (n, _) in SUBSET.items()} | {("test", c): n for c, (_, n) in SUBSET.items()}
    taken = {key: 0 for key in wanted}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3:
                continue
            key = (parts[-3], parts[-2])
            if key not in wanted or taken[key] >= wanted[key] or not parts[-1].lower().endswith(".jpg"):
                continue
            target = dest / key[0] / key[1] / parts[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
            taken[key] += 1
            if all(taken[k] >= wanted[k] for k in wanted):
                break
    return {split: {c: taken[(split, c)] for c in SUBSET} for split in ("train", "test")}


def edgeclip(args: list[str], cache: Path) -> dict:
    command = [sys.executable, "-m", "edgeclip", *args]
    started = time.perf_counter()
    result = subprocess.run(command, env={**os.environ, "EDGECLIP_CACHE": str(cache)}, capture_output=True, text=True)
    return {"command": "edgeclip " + " ".join(args), "exit_code": result.returncode,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "stdout_tail": result.stdout.strip().splitlines()[-6:], "stderr_tail": result.stderr.strip().splitlines()[-4:]}


def run(work: Path, epochs: int) -> dict:
    folder, run_dir, cache = work / "folder", work / "run", work / "cache"
    counts = extract_subset(ARCHIVE, folder)
    schedule = ["--set", "student.image_size=32", "--set", "distill.batch_size=64", "--set", "distill.lr=0.05",
                "--set", f"distill.milestones=[{int(epochs * 0.7)}]", "--set", "distill.threads=2"]
    steps = {
        "distill": edgeclip(["distill", "--recipe", "digits-kd", "--data", str(folder), "--teacher", TEACHER, "--student", STUDENT,
                             "--epochs", str(epochs), "--scratch", *schedule, "--out", str(run_dir), "--quiet"], cache),
    }
    student = run_dir / "student"
    steps["compress_int8"] = edgeclip(["compress", "int8", "--model", str(student), "--backend", "onnx", "--data", str(folder)], cache)
    steps["export_fp32"] = edgeclip(["export", "--model", str(student), "--backend", "onnx", "--precision", "fp32",
                                     "--calibration", str(folder)], cache)
    steps["eval"] = edgeclip(["eval", "--model", str(student), "--data", str(folder), "--out", str(run_dir)], cache)
    evaluation = json.loads((run_dir / "eval.json").read_text()) if (run_dir / "eval.json").is_file() else None
    artifacts = [a for a in ("onnx-fp32", "onnx-int8-auto") if (run_dir / "artifacts" / a / "manifest.json").is_file()]
    bench = ["bench", *[x for a in artifacts for x in ("--artifact", str(run_dir / "artifacts" / a))], "--data", str(folder),
             "--out", str(run_dir), "--no-memory", "--iterations", "100", "--max-seconds", "5"]
    if evaluation and evaluation.get("teacher_accuracy"):
        bench += ["--teacher-accuracy", f"{evaluation['teacher_accuracy']:.6f}"]
    steps["bench"] = edgeclip(bench, cache)
    result = json.loads((run_dir / "result.json").read_text()) if (run_dir / "result.json").is_file() else {}
    report = json.loads((run_dir / "report.json").read_text()) if (run_dir / "report.json").is_file() else None
    int8_manifest = run_dir / "artifacts" / "onnx-int8-auto" / "manifest.json"
    int8 = json.loads(int8_manifest.read_text()) if int8_manifest.is_file() else {}
    return {"images": counts, "steps": steps, "distill_metrics": result.get("metrics"), "teacher": result.get("teacher"),
            "eval": evaluation, "int8": {"status": int8.get("status"), "next_step": int8.get("next_step"),
                                        "parity": int8.get("parity"), "validation": (int8.get("quantization") or {}).get("validation")},
            "report": report, "report_md": (run_dir / "report.md").read_text() if report else None,
            "eval_md": (run_dir / "eval.md").read_text() if evaluation else None}


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def to_markdown(result: dict) -> str:
    env, ev = result["environment"], result["eval"] or {}
    q = ev.get("qualifiers") or {}
    base = q.get("baselines") or {}
    metrics = result.get("distill_metrics") or {}
    lines = [f"# A user's image folder end to end — {result['created']}", "",
             f"Machine: {env.get('cpu')} · {env.get('cores_logical')} logical cores (shared: load average "
             f"{env.get('load_average_1m')}) · torch {env['versions'].get('torch')} · onnxruntime {env['versions'].get('onnxruntime')}",
             "", f"Command: `{result['command']}`.", "",
             "Data: CIFAR-10 (JPEG re-encoding, see /work/shared/data/cifar10/PROVENANCE.md) as a folder of three classes, "
             f"imbalanced on purpose: train {result['images']['train']}, test {result['images']['test']}. "
             f"Teacher `{TEACHER}` (CE-trained here), student `{STUDENT}` at 32×32, {result['epochs']} epochs.", "",
             "## The steps (each a real CLI call)", "", "| step | command | exit | wall s |", "|---|---|---:|---:|"]
    for name, step in result["steps"].items():
        lines.append(f"| {name} | `{step['command'][:150]}{'…' if len(step['command']) > 150 else ''}` | {step['exit_code']} | "
                     f"{step['wall_seconds']:.0f} |")
    lines += ["", "## What the numbers mean", "",
              f"- Test images: {base.get('images')}; **majority-class baseline {pct(base.get('majority'))}** (always "
              f"'{base.get('majority_class')}'), **chance {pct(base.get('chance'))}**. Accuracy only means something above both.",
              f"- Teacher top-1 {pct(ev.get('teacher_accuracy'))}; KD student {pct(ev.get('student_accuracy'))}; the same student "
              f"from scratch {pct(metrics.get('scratch_accuracy'))} (distill's own measurement on the same test images).",
              f"- KD vs scratch: {(metrics.get('kd_gain') or 0) * 100:+.1f} points"
              + (" — both within a few points of the majority baseline: at this CPU budget neither student learned much "
                 "beyond predicting the big class, so the KD gain says nothing either way."
                 if max(metrics.get('student_accuracy') or 0, metrics.get('scratch_accuracy') or 0)
                 <= (base.get('majority') or 0) + 0.05 else "."),
              f"- The CNN teacher on its clean training images after the BatchNorm re-estimation: train mode "
              f"{pct(((result.get('teacher') or {}).get('training') or {}).get('train_mode_accuracy'))}, eval mode "
              f"{pct(((result.get('teacher') or {}).get('training') or {}).get('eval_mode_accuracy'))} (the two agree: "
              "what training measured is what evaluation sees).",
              f"- Retention {ev.get('retention') and round(ev['retention'], 3)}: student / teacher — "
              + ("flagged by the eval verdict below (a near-baseline teacher or a ratio above 1)."
                 if any("retention" in f or "the teacher" in f for f in q.get("flags") or [])
                 else "the teacher is clear of both baselines and the ratio is not above 1, so it measures what KD kept."),
              f"- Agreement with the teacher {pct(ev.get('agreement'))}, next to the student's prediction spread: "
              f"{(q.get('student_predictions') or {}).get('classes_predicted')} of 3 classes predicted, entropy "
              f"{(q.get('student_predictions') or {}).get('entropy_bits', 0):.2f} of "
              f"{(q.get('student_predictions') or {}).get('max_entropy_bits', 0):.2f} bits — constant predictions would show here.",
              "- Per-class accuracy of the student: " + ", ".join(f"{k} {pct(v)}" for k, v in (q.get('per_class_accuracy') or {}).items())
              + " (the mean hides the small classes).",
              f"- int8 (`compress int8`, exit {result['steps']['compress_int8']['exit_code']}): artifact status "
              f"`{result['int8'].get('status')}`, parity top-1 agreement with fp32 "
              f"{pct((result['int8'].get('parity') or {}).get('top1_agreement'))} on "
              f"{(result['int8'].get('parity') or {}).get('num_inputs')} held-out images"
              + (f" — {result['int8']['next_step']}" if result['int8'].get('next_step') else "") + ".",
              f"- Eval verdict: {'; '.join(q.get('flags') or []) or 'accuracy clear of both baselines, predictions spread over the classes'}.",
              ]
    if result.get("verdict_sentence"):
        lines += [f"- Bench verdict: {result['verdict_sentence']}"]
    lines += ["", "The bench report of this run is in `user_folder_report.md` (per-class table and confusion matrix included);",
              "the eval output follows.", "", "## eval.md of the run", ""] + (result.get("eval_md") or "").splitlines()
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/user_folder")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--work", default=None, help="keep the folder and run here (default: a temporary directory)")
    parser.add_argument("--render", action="store_true", help="only re-write <out>.md from <out>.json (no run)")
    args = parser.parse_args()
    from edgeclip.bench.verdict import verdict_sentence

    if args.render:
        result = json.loads(Path(args.out).with_suffix(".json").read_text())
        with atomic_path(Path(args.out).with_suffix(".md")) as tmp_file:
            tmp_file.write_text(to_markdown(result))
        return 0

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeclip-user-folder-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        outcome = run(work, args.epochs)
    report = outcome.pop("report")
    report_md = outcome.pop("report_md")
    result = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(["python"] + sys.argv), "epochs": args.epochs,
              "wall_seconds": round(time.perf_counter() - started, 1), "environment": collect_environment(), **outcome,
              "verdict": report and report.get("verdict"), "verdict_sentence": verdict_sentence(report["verdict"]) if report else "",
              "rows": [{"name": r["name"], "role": r["role"], "format": f"{r['backend']}-{r['precision']}", "accuracy": r["accuracy"],
                        "retention": r["retention"], "agreement_reference": r["agreement_reference"],
                        "p50_ms": (r["latency_ms"] or {}).get("p50"), "status": r["status"], "notes": r["notes"],
                        "quality_flags": (r.get("quality") or {}).get("flags")} for r in (report or {}).get("rows", [])]}
    out = Path(args.out)
    write_result_files(out, result, to_markdown(result))
    if report_md:
        with atomic_path(out.with_name(out.name + "_report.md")) as tmp_file:
            tmp_file.write_text(report_md)
    print(to_markdown(result))
    failed = [name for name, step in outcome["steps"].items() if step["exit_code"] not in (0, 1)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
