"""The README quickstart, measured: `edgeclip build --recipe quickstart --target cpu` from an empty cache.

Run 1 gets a fresh, empty EDGECLIP_CACHE, so its wall time includes everything a new user waits
for: training the proxy teacher, fine-tuning its head, distilling the student, exporting the
students and the speed reference (ViT-B/32 image tower, random weights) for every backend and
precision, parity, benchmarking, report. With --runs 2 the second run checks that the same
command gives the same numbers (training is deterministic on CPU: seeded, deterministic kernels,
fixed thread count); it starts from a cache holding only run 1's proxy teacher (its 80-epoch
training is the slowest step; --retrain-teacher repeats it too), so head, student, exports and
speed reference are all redone.

Usage (the committed results came from exactly this, see "command" in the JSON):
    python benchmarks/quickstart.py --out benchmarks/results/quickstart --runs 2
Writes <out>.json, <out>.md and <out>_report.md (the first run's report.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgeclip.bench.environment import collect_environment
from edgeclip.io_utils import atomic_path, write_result_files


def run_once(work: Path, index: int, teachers_from: Path | None = None) -> dict:
    """One build with a fresh EDGECLIP_CACHE; `teachers_from` seeds it with an earlier run's trained proxy teacher."""
    cache, out = work / f"cache{index}", work / f"run{index}"
    if teachers_from is not None and teachers_from.is_dir():
        shutil.copytree(teachers_from, cache / "teachers")
    command = [sys.executable, "-m", "edgeclip", "build", "--recipe", "quickstart", "--target", "cpu", "--out", str(out), "--quiet"]
    started = time.perf_counter()
    result = subprocess.run(command, env={**os.environ, "EDGECLIP_CACHE": str(cache)}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else None
    return {"exit_code": result.returncode, "wall_seconds": round(seconds, 1), "report": report,
            "report_md": (out / "report.md").read_text() if report else None,
            "stderr_tail": result.stderr.strip().splitlines()[-5:]}


def summary_rows(report: dict) -> list[dict]:
    return [{"name": r["name"], "role": r["role"], "format": f"{r['backend']}-{r['precision']}", "accuracy": r["accuracy"],
             "retention": r["retention"], "p50_ms": (r["latency_ms"] or {}).get("p50"), "speedup": r["speedup"],
             "size_mb": r["size_mb"], "status": r["status"]} for r in report["rows"]]


def to_markdown(result: dict) -> str:
    env = result["environment"]
    first = result["runs"][0]
    lines = [f"# Quickstart build — {result['created']}", "",
             f"Machine: {env.get('cpu')} · {env.get('cores_logical')} logical cores · torch {env['versions'].get('torch')} · "
             f"onnxruntime {env['versions'].get('onnxruntime')} · openvino {env['versions'].get('openvino')}", "",
             f"Command: `{result['command']}`; each run: `{result['build_command']}` with a fresh EDGECLIP_CACHE.", ""]
    for i, run in enumerate(result["runs"], 1):
        lines.append(f"- run {i}: exit {run['exit_code']}, {run['wall_seconds']:.0f} s wall ({run['wall_seconds'] / 60:.1f} min); "
                     f"cache at start: {run.get('cache', 'empty')}")
    if first["rows"]:
        lines += ["", "## Run 1 rows", "", "| model | role | format | accuracy | retention | p50 ms | × teacher | size MB | status |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in first["rows"]:
            fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
            lines.append(f"| {r['name']} | {r['role']} | {r['format']} | {fmt(r['accuracy'], '.4f')} | {fmt(r['retention'], '.3f')} | "
                         f"{fmt(r['p50_ms'], '.2f')} | {fmt(r['speedup'], '.1f')} | {fmt(r['size_mb'], '.2f')} | {r['status'][:50]} |")
        lines += ["", f"Verdict: {first['verdict_sentence']}"]
    if len(result["runs"]) > 1:
        lines += ["", f"Same numbers in every run (accuracy and retention of every row): **{result['deterministic']}**.",
                  f"Load average (1 min) when the runs ended: {result['environment'].get('load_average_1m')}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/quickstart")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--retrain-teacher", action="store_true",
                        help="every run from an empty cache (default: runs after the first reuse run 1's proxy teacher, "
                             "whose training is deterministic too, and repeat everything else)")
    args = parser.parse_args()
    from edgeclip.bench.verdict import verdict_sentence

    runs = []
    with tempfile.TemporaryDirectory(prefix="edgeclip-quickstart-") as tmp:
        for index in range(args.runs):
            seed_teacher = None if index == 0 or args.retrain_teacher else Path(tmp) / "cache0" / "teachers"
            print(f"quickstart run {index + 1}/{args.runs} ({'proxy teacher of run 1' if seed_teacher else 'empty cache'})",
                  file=sys.stderr, flush=True)
            run = run_once(Path(tmp), index, seed_teacher)
            run["cache"] = "proxy teacher of run 1, nothing else" if seed_teacher else "empty"
            report = run.pop("report")
            run["rows"] = summary_rows(report) if report else []
            run["verdict_sentence"] = verdict_sentence(report["verdict"]) if report else ""
            runs.append(run)
            print(f"  exit {run['exit_code']} in {run['wall_seconds']:.0f} s", file=sys.stderr, flush=True)
            if index > 0:
                shutil.rmtree(Path(tmp) / f"cache{index}", ignore_errors=True)
    accuracy = [[(r["name"], r["format"], r["accuracy"], r["retention"]) for r in run["rows"]] for run in runs]
    result = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(["python"] + sys.argv),
              "build_command": "edgeclip build --recipe quickstart --target cpu", "environment": collect_environment(),
              "deterministic": all(a == accuracy[0] for a in accuracy),
              "runs": [{k: v for k, v in run.items() if k != "report_md"} for run in runs]}
    out = Path(args.out)
    write_result_files(out, result, to_markdown(result))
    if runs[0]["report_md"]:
        with atomic_path(out.with_name(out.name + "_report.md")) as tmp:
            tmp.write_text(runs[0]["report_md"])
    print(to_markdown(result))
    return 0 if all(run["exit_code"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
