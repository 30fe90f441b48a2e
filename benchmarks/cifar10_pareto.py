"""Latency vs retention of the CIFAR-10 KD students on this CPU: the Pareto table (issue 22).

Each finished KD run (`edgeclip distill --recipe cifar10-kd ...`, result.json + student/) is one
point: retention = student / teacher top-1 on CIFAR-10's own 10,000 test photos, from the run's
result.json. Latency comes from the product's latency search (edgeclip/build/student_search.py
`time_candidates`: the exporter + the benchmark harness, all candidates of one backend timed
interleaved, batch 1, fp32, one thread):
- native: the trained checkpoint at the size it was trained at (32²);
- 224²: the same registered student built for 224² inputs (its ImageNet stem / full stride, random
  weights — latency does not depend on the weights); its retention is NOT measured at 224², the
  column is the equal-resolution speed of the same student family beside the ViT teachers.
The Pareto flags come from the product's `SearchOutcome.record()` (bench/pareto.py).

    python benchmarks/cifar10_pareto.py --runs RUN [RUN ...] --out benchmarks/results/cifar10_pareto
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from edgeclip.bench.environment import collect_environment
from edgeclip.bench.pareto import pareto_markdown, pareto_png
from edgeclip.build.student_search import Candidate, SearchOutcome, Timed, time_candidates
from edgeclip.config import BenchConfig
from edgeclip.io_utils import atomic_path, write_json

EQUAL_SIZE = 224  # the ViT-B/32 teacher's input size


def log(message: str) -> None:
    print(f"[cifar10 pareto] {message}", file=sys.stderr, flush=True)


def run_candidate(run: Path) -> tuple[Candidate, list[str]]:
    """The trained student of a finished KD run as a search candidate (retention from result.json)."""
    result = json.loads((run / "result.json").read_text())
    metrics, student = result["metrics"], result["student"]
    info = {"run": str(run), "epochs": result["training"]["epochs"], "student_accuracy": metrics["student_accuracy"],
            "teacher_accuracy": metrics["teacher_accuracy"], "test_images": result["data"]["test_images"],
            "train_seconds": round(result["training"]["seconds"], 1)}
    candidate = Candidate(student["name"], int(student["image_size"]), checkpoint=str(run / "student"),
                          retention=float(metrics["retention"]), info=info)
    return candidate, list(result["data"]["classes"])


def median_of_repeats(runs: list[Timed]) -> Timed:
    """One candidate's repeated timings → its median p50, with every repeat's p50 and their max/min."""
    p50s = [t.latency_ms for t in runs]
    latency = {**runs[0].latency, "repeat_p50": p50s, "repeat_spread": max(p50s) / min(p50s)}
    return Timed(runs[0].candidate, float(statistics.median(p50s)), latency, runs[0].params, runs[0].flops)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="finished cifar10-kd run directories")
    parser.add_argument("--timing-only", nargs="*", default=[], metavar="STUDENT",
                        help="registered students timed (random weights, at the runs' size and 224²) but not trained: "
                             "the widths the trained ones were chosen from; no retention")
    parser.add_argument("--backends", default="onnx,openvino")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--max-seconds", type=float, default=2.0, help="per candidate per backend (the harness multiplies)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="independent timings of all candidates (export + interleaved harness) per backend; the "
                             "table gives the median p50 and max/min across them, so load-driven swings show")
    parser.add_argument("--out", default="benchmarks/results/cifar10_pareto")
    args = parser.parse_args()
    started = time.time()

    natives, classes = [], None
    for run in map(Path, args.runs):
        candidate, classes = run_candidate(run)
        natives.append(candidate)
    size = natives[0].image_size
    natives += [Candidate(name, size, info={"run": "not trained (timing only)", "epochs": None, "student_accuracy": None,
                                            "teacher_accuracy": None, "train_seconds": None}) for name in args.timing_only]
    equal = [Candidate(c.student, EQUAL_SIZE, retention=c.retention, info={**c.info, "retention_measured_at": c.image_size})
             for c in natives]
    bench = BenchConfig(warmup=20, iterations=args.iterations, max_seconds=args.max_seconds)

    records: dict[str, dict] = {}
    for backend in args.backends.split(","):
        log(f"timing {len(natives)} trained students at their size and at {EQUAL_SIZE}² on {backend}")
        repeats = [time_candidates(natives + equal, classes, backend=backend, precision="fp32", threads=args.threads,
                                   bench=bench, log=log) for _ in range(args.repeats)]
        timed = [median_of_repeats(list(runs)) for runs in zip(*repeats)]
        native = SearchOutcome(timed[:len(natives)], None, backend, "fp32", args.threads, "this machine").record()
        at_equal = SearchOutcome(timed[len(natives):], None, backend, "fp32", args.threads, "this machine").record()
        for row, big in zip(native["candidates"], at_equal["candidates"]):
            row[f"latency_{EQUAL_SIZE}_ms"] = big["latency_ms"]
            row[f"pareto_{EQUAL_SIZE}"] = big["pareto"]
            row[f"flops_{EQUAL_SIZE}"] = big["flops"]
            row["repeat_spread"] = row["latency"]["repeat_spread"]
            row[f"repeat_spread_{EQUAL_SIZE}"] = big["latency"]["repeat_spread"]
        native["extra_columns"] = [{"key": "repeat_spread", "title": "max/min of repeats"},
                                   {"key": f"latency_{EQUAL_SIZE}_ms", "title": f"latency ms at {EQUAL_SIZE}²"},
                                   {"key": f"repeat_spread_{EQUAL_SIZE}", "title": f"max/min at {EQUAL_SIZE}²"}]
        records[backend] = native
        records[f"{backend}@{EQUAL_SIZE}"] = at_equal

    out = Path(args.out)
    environment = collect_environment(threads=args.threads)
    result = {"benchmark": "cifar10_pareto", "command": "python " + " ".join(sys.argv),
              "created": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.time() - started, 1),
              "environment": environment, "equal_size": EQUAL_SIZE, "records": records}
    write_json(out.with_suffix(".json"), result)
    first = args.backends.split(",")[0]
    for key, suffix, latency_key, label in [(first, "", "latency_ms", "native 32²"),
                                            (first, f"_{EQUAL_SIZE}", f"latency_{EQUAL_SIZE}_ms", f"{EQUAL_SIZE}²")]:
        record = records[first] if not suffix else {**records[first], "candidates": [
            {**r, "pareto": r[f"pareto_{EQUAL_SIZE}"]} for r in records[first]["candidates"]]}
        with atomic_path(out.parent / f"{out.name}{suffix}.png") as tmp:
            tmp.write_bytes(pareto_png(record, latency_key=latency_key,
                                       xlabel=f"latency p50 ms at {label} ({first} fp32, {args.threads} thread, batch 1)"))
    lines = ["# CIFAR-10 KD students: latency vs retention on this CPU", "",
             f"Command: `{result['command']}`  ",
             f"Machine: {environment.get('cpu')}, {environment.get('cores_usable')} usable cores, "
             f"1-min load average {environment.get('load_average_1m')} while timing; {args.threads} inference thread.", ""]
    if environment.get("load_warning"):
        lines += [f"> **Warning:** {environment['load_warning']}", ""]
    lines += ["Retention = student / teacher (proxy-cifar10 CLIP + fine-tuned head) top-1 on CIFAR-10's 10,000 test photos, "
              "from each run's result.json. Latency: fp32, batch 1, p50 of the interleaved timing of the product's latency "
              f"search (`edgeclip.build.student_search.time_candidates`), median over {args.repeats} independent repeats "
              "(max/min = their spread: far above 1, the row is load noise, not the model). "
              f"The {EQUAL_SIZE}² column is the same student built for "
              f"{EQUAL_SIZE}² inputs (ImageNet stem, random weights): speed at the teacher's input size, retention not measured "
              "there. Pareto = no other student is both faster (native size) and better retained.", ""]
    for backend in args.backends.split(","):
        lines += pareto_markdown(records[backend], heading="##", title=f"{backend} fp32",
                                 figure=f"{out.name}.png" if backend == first else None)
        lines += ["", f"Pareto at {EQUAL_SIZE}² ({backend}): " + ", ".join(
            r["label"] for r in records[backend]["candidates"] if r[f"pareto_{EQUAL_SIZE}"]), ""]
    lines += ["", "Trained students (train s: wall time of the KD run as recorded in result.json, on the shared 2-core machine):", "",
              "| run | epochs | student top-1 | teacher top-1 | train s |", "|---|---:|---:|---:|---:|"]
    for row in records[first]["candidates"]:
        if row["retention"] is not None:
            lines.append(f"| {row['run']} | {row['epochs']} | {row['student_accuracy']:.4f} | {row['teacher_accuracy']:.4f} | "
                         f"{row['train_seconds']} |")
    lines += ["", f"![{EQUAL_SIZE}²](" + f"{out.name}_{EQUAL_SIZE}.png)"]
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log(f"wrote {out.with_suffix('.json')} and .md in {time.time() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
