"""Where onnxruntime int8 pays for a CNN on this CPU: ResNet18 width × input size × batch, fp32 vs int8.

Usage (the committed results came from exactly this, see "command" in the JSON):
    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/int8_regime.py --out benchmarks/results/int8_regime

Issue 22 measured that no onnxruntime int8 setting makes edgeclip's small students (8–96 channels)
faster than fp32 at batch 1, while OpenVINO int8 does and onnxruntime's u8s8 GEMM reaches several
times the fp32 roof. This finds the regime: the registered ResNet18 students at 1/8, 1/4, 1/2 and
full width (8–64 … 64–512 channels), at 32² (CIFAR stem) and 112² (ImageNet stem), batch 1 and 8,
each exported by the product (`export_model`) in fp32 and in the build's int8 (config.Int8Config's
defaults, as `edgeclip build` makes it for onnxruntime, without the mixed-precision search) from random
weights calibrated on random images — speed only, no accuracy here. Timing: CPU-time medians of
every artifact run round-robin in one process (`bench.cpu_timing`), two rounds, 1 thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeclip.bench.cpu_timing import interleaved_cpu_medians
from edgeclip.bench.environment import collect_environment
from edgeclip.bench.flops import count_flops
from edgeclip.compress.int8_inputs import int8_options
from edgeclip.config import Int8Config
from edgeclip.io_utils import write_result_files
from edgeclip.manifest import read_manifest
from edgeclip.runtimes import load_runtime
from edgeclip.students import create_student

WIDTHS = {"resnet18_w8": "8–64", "resnet18_w4": "16–128", "resnet18_w2": "32–256", "resnet18": "64–512"}
SIZES = (32, 112)
BATCHES = (1, 8)
# The build's int8 settings (config.Int8Config defaults, compress/int8_inputs.int8_options) without the two
# steps that need meaningful outputs or would decide for us: the mixed-precision search (random weights
# carry no decisions) and the export's own speed check (this benchmark is the speed measurement).
BUILD_INT8 = dataclasses.replace(int8_options(Int8Config(), None), mixed=False, speed_check=False)
WIN = 0.95  # int8 "pays" when it takes ≤ 95% of fp32's time: the build's ship rule asks for ≥ 5% faster


def export_pair(student: str, size: int, work: Path, rng: np.random.Generator) -> dict[str, Any]:
    """fp32 and int8 onnx artifacts of one student at one input size (random weights)."""
    from edgeclip.exporters import export_model

    torch.manual_seed(0)
    model, spec = create_student(student, class_names=[str(i) for i in range(10)], image_size=size)
    model.eval()
    spec.extra["parity_thresholds"] = {"min_mean_cosine": 0.9}  # random weights: logits carry no decisions
    calibration = rng.standard_normal((16, 3, size, size)).astype(np.float32)
    paths, int8_options = {}, {}
    for precision in ("fp32", "int8"):
        directory = work / f"{student}-{size}" / precision
        export_model(model, spec, "onnx", precision, directory, calibration=calibration, parity_inputs=calibration[:4],
                     int8=BUILD_INT8 if precision == "int8" else None)
        paths[precision] = directory
        if precision == "int8":
            quantization = read_manifest(directory).get("quantization", {})
            int8_options = {"method": quantization.get("method"), **{k: quantization.get("options", {}).get(k)
                                                                     for k in ("weights", "activations", "per_channel")}}
    flops = count_flops(model, torch.zeros(1, 3, size, size))
    return {"paths": paths, "gflops": flops / 1e9, "int8": int8_options}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/int8_regime")
    parser.add_argument("--students", nargs="*", default=list(WIDTHS))
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            pairs = {s: export_pair(s, size, Path(tmp), rng) for s in args.students}
            runners, inputs = {}, {}
            for student, pair in pairs.items():
                for batch in BATCHES:
                    example = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
                    for precision, path in pair["paths"].items():
                        key = f"{student}|{batch}|{precision}"
                        runners[key], inputs[key] = load_runtime(path, threads=1).run, example
            print(f"[{time.strftime('%H:%M:%S')}] timing {len(runners)} artifacts at {size}²", flush=True)
            timed = interleaved_cpu_medians(runners, inputs, rounds=args.rounds, iterations=args.iterations, warmup=3)
            for student, pair in pairs.items():
                for batch in BATCHES:
                    fp32, int8 = (timed.get(f"{student}|{batch}|{p}", {}) for p in ("fp32", "int8"))
                    ratio = int8["cpu_ms"] / fp32["cpu_ms"] if "cpu_ms" in fp32 and "cpu_ms" in int8 else None
                    rows.append({"student": student, "channels": WIDTHS.get(student, "?"), "input": size, "batch": batch,
                                 "gflops_per_image": round(pair["gflops"], 4), "int8_quantization": pair["int8"],
                                 "fp32_cpu_ms": fp32.get("cpu_ms"), "int8_cpu_ms": int8.get("cpu_ms"),
                                 "int8_over_fp32": None if ratio is None else round(ratio, 3),
                                 "int8_pays": None if ratio is None else ratio <= WIN,
                                 "round_spread": max(fp32.get("round_spread", 0), int8.get("round_spread", 0)),
                                 "error": fp32.get("error") or int8.get("error")})
    result = {"command": "OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python " + " ".join(sys.argv),
              "environment": collect_environment(), "load_average_end": os.getloadavg(),
              "seconds": round(time.time() - started, 1), "win_threshold": WIN, "rows": rows}
    write_result_files(args.out, result, to_markdown(result))
    print(to_markdown(result))
    return 0


def to_markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    lines = ["# Where onnxruntime int8 pays for a CNN on this CPU", "",
             f"Command: `{result['command']}` ({result['seconds']:.0f} s; 1-min load average at the end "
             f"{result['load_average_end'][0]:.1f} on {os.cpu_count()} cores — CPU-time medians, every artifact "
             "round-robin in one process, so ratios are fair while absolute times drift).", "",
             "Artifacts: `edgeclip.exporters.export_model` fp32 and int8 (the build's onnxruntime int8, "
             "its mode `auto` picks the CPU-aware weight/activation types; no mixed-precision search on random weights) of the registered ResNet18 students, random weights "
             "(speed only). int8 *pays* when its CPU time is ≤ "
             f"{result['win_threshold']:.2f}× fp32's (the ship rule's ≥ 5% faster). int8 as recorded in the manifests: "
             f"{sorted({str(r['int8_quantization']) for r in rows})}.", "",
             "| student | channels | input | batch | GFLOPs/img | fp32 ms | int8 ms | int8 / fp32 | int8 pays | round spread |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        if r["error"]:
            lines.append(f"| {r['student']} | {r['channels']} | {r['input']} | {r['batch']} | {r['gflops_per_image']} | "
                         f"error: {r['error'][:80]} | | | | |")
            continue
        lines.append(f"| {r['student']} | {r['channels']} | {r['input']}² | {r['batch']} | {r['gflops_per_image']:.3f} | "
                     f"{r['fp32_cpu_ms']:.3f} | {r['int8_cpu_ms']:.3f} | {r['int8_over_fp32']:.3f} | "
                     f"{'yes' if r['int8_pays'] else 'no'} | {r['round_spread']:.2f} |")
    paying = [r for r in rows if r.get("int8_pays")]
    lines += ["", "Where it pays: " + (", ".join(f"{r['student']} at {r['input']}² batch {r['batch']} ({r['int8_over_fp32']:.2f}×)"
                                                 for r in paying) or "nowhere in this grid") + ".",
              "", "The build keeps deciding per artifact (`compress/ship_rule.py`): int8 ships only where it was measured "
              "≥ 5% faster on the target, so outside this regime fp32 ships."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
