"""Training steps with OpenMP's default waiting vs OMP_WAIT_POLICY=PASSIVE, on a machine whose
cores are shared. Why `edgeclip` sets PASSIVE before torch is imported (edgeclip/cli.py).

Usage (the committed results came from exactly this, see "command" in the JSON):
    python benchmarks/omp_wait_policy.py --out benchmarks/results/threading

Each measurement is a fresh Python process (the policy is read once, when torch's OpenMP runtime
starts) that trains the quickstart student (mobilenetv3_small, 32x32, batch 64, SGD) for
--steps steps with --threads torch threads, after 2 untimed warm-up steps, and prints its
seconds for each step. Conditions: the machine as found, and with one extra busy-looping process
(another user's job on "the other core"). Policies: unset (libgomp's default: spin for a while,
then sleep) and PASSIVE (sleep at once). Runs are interleaved per round; a run over --timeout
seconds is stopped and keeps the steps it finished. The load average before each run is
recorded: on a shared machine "as found" is not idle, and the report says so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

POLICIES = {"unset": None, "PASSIVE": "PASSIVE"}
CONDITIONS = ("as found", "+1 busy process")


def child(steps: int, threads: int, batch: int) -> None:
    """Runs inside the measured process: prints {"seconds_per_step": ...}."""
    import torch

    from edgeclip.students.registry import create_student

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, _ = create_student("mobilenetv3_small", class_names=[str(i) for i in range(10)], image_size=32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    model.train()

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    for _ in range(2):
        step()
    for _ in range(steps):  # one line per step: a run stopped at the timeout still reports what it timed
        started = time.perf_counter()
        step()
        print(json.dumps({"step_s": time.perf_counter() - started}), flush=True)


def measure(policy: str | None, steps: int, threads: int, batch: int, timeout: float) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    load_before = round(os.getloadavg()[0], 2)
    command = [sys.executable, __file__, "--child", "--steps", str(steps), "--threads", str(threads), "--batch", str(batch)]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        timed_out = True
    if process.returncode != 0 and not timed_out:
        raise SystemExit(f"measurement failed: {err.strip()[-500:]}")
    steps_s = [json.loads(line)["step_s"] for line in out.splitlines() if line.startswith("{")]
    return {"seconds_per_step": round(statistics.median(steps_s), 4) if steps_s else None, "steps_timed": len(steps_s),
            "step_s": [round(x, 4) for x in steps_s], "timed_out": timed_out,
            "wall_s": round(time.perf_counter() - started, 1), "load_before": load_before}


def busy_process() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def summarize(runs: list[dict[str, Any]], timeout: float, steps: int) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for condition in CONDITIONS:
        for policy in POLICIES:
            mine = [r for r in runs if r["condition"] == condition and r["policy"] == policy]
            # a run stopped before its first timed step counts as `timeout` seconds per step (a lower bound, flagged)
            values = [r["seconds_per_step"] if r["seconds_per_step"] is not None else timeout for r in mine]
            table[f"{condition} | {policy}"] = {
                "median_s_per_step": round(statistics.median(values), 4) if values else None,
                "runs": len(mine), "timed_out": sum(r["timed_out"] for r in mine),
                "no_step_timed": sum(r["seconds_per_step"] is None for r in mine),
                "load_before": [r["load_before"] for r in mine]}
    return table


def markdown(data: dict[str, Any]) -> str:
    env = data["environment"]
    lines = ["# Training steps: OpenMP default waiting vs OMP_WAIT_POLICY=PASSIVE", "",
             f"Command: `{data['command']}`", ""]
    if env.get("load_warning"):
        lines += [f"> **Warning:** {env['load_warning']}", ""]
    lines += [f"{data['steps']} timed SGD steps of mobilenetv3_small (32x32, batch {data['batch']}) with "
              f"{data['threads']} torch threads, a fresh process per run, {data['rounds']} rounds interleaved. "
              f"Machine: {env.get('cpu')}, {env.get('cores_usable')} usable cores.", "",
              "| condition | OMP_WAIT_POLICY | median s/step | runs (timed out) | load average before each run |",
              "|---|---|---:|---:|---|"]
    for key, row in data["summary"].items():
        condition, policy = key.split(" | ")
        bound = "≥ " if row["no_step_timed"] else ""
        lines.append(f"| {condition} | {policy} | {bound}{row['median_s_per_step']} | {row['runs']} ({row['timed_out']}) | "
                     f"{', '.join(str(v) for v in row['load_before'])} |")
    lines += ["", "Slowdown of the default policy relative to PASSIVE (median s/step ratio):", ""]
    for condition, ratio in data["unset_over_passive"].items():
        lines.append(f"- {condition}: {ratio}×")
    lines += ["", "s/step is the median of the steps a run timed; a run stopped at the timeout keeps the steps it "
              "finished, and one that timed none counts as the timeout per step (a lower bound, marked ≥).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/threading")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the recipes' distill.threads)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds before a run is stopped")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.steps, args.threads, args.batch)
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's edgeclip, not an installed one
    from edgeclip.bench.environment import collect_environment
    from edgeclip.io_utils import write_result_files

    runs = []
    for round_index in range(args.rounds):
        for condition in CONDITIONS:
            spinner = busy_process() if condition != "as found" else None
            try:
                for policy, value in POLICIES.items():
                    record = measure(value, args.steps, args.threads, args.batch, args.timeout)
                    runs.append({"round": round_index, "condition": condition, "policy": policy, **record})
                    print(json.dumps(runs[-1]), flush=True)
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    summary = summarize(runs, args.timeout, args.steps)
    ratios = {}
    for condition in CONDITIONS:
        unset, passive = (summary[f"{condition} | {p}"]["median_s_per_step"] for p in POLICIES)
        ratios[condition] = round(unset / passive, 2) if unset and passive else None
    environment = collect_environment(threads=args.threads)
    data = {"command": "python benchmarks/omp_wait_policy.py " + " ".join(sys.argv[1:]), "steps": args.steps,
            "threads": args.threads, "batch": args.batch, "rounds": args.rounds, "timeout_s": args.timeout,
            "runs": runs, "summary": summary, "unset_over_passive": ratios, "environment": environment}
    write_result_files(args.out, data, markdown(data))
    print(markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
