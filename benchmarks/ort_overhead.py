"""Per-op overhead of small students on this CPU: runtime settings measured, and where ORT's time goes.

Part 1: session / compile settings, each timed on mobilenetv3_small and resnet18_w8 (10 classes, 224²,
random weights, batch 1, 1 thread) in ONE interleaved run (CPU-time medians of two rounds,
edgeclip/bench/cpu_timing.py): onnxruntime graph optimization level (all = edgeclip's default, with
the NCHWc layout transformer; extended; basic; disabled), intra-op spinning on vs off (edgeclip: off),
memory arena and memory pattern off, parallel execution mode; OpenVINO without a hint vs
PERFORMANCE_HINT=LATENCY vs THROUGHPUT; PyTorch NCHW vs channels-last (a layout the CPU kernels may
prefer). Every setting is compared with edgeclip's current default in the same run.

Part 2: onnxruntime's profiler on mobilenetv3_small fp32 and int8 (edgeclip's export): per run, time
in compute nodes (Conv/Gemm/MatMul and their int8 and fused forms), in the other nodes (activations,
SE pooling/multiplies, quantize/dequantize, reshapes), and outside any node (session overhead).

Usage (the committed results came from exactly this; see "command" in the JSON):
    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/ort_overhead.py --out benchmarks/results/ort_overhead
"""

from __future__ import annotations

import argparse
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
from edgeclip.bench.ort_profile import profile_onnx
from edgeclip.exporters import export_model
from edgeclip.io_utils import write_result_files
from edgeclip.students import create_student

MODELS = ("mobilenetv3_small", "resnet18_w8")
SIZE = 224


def ort_settings() -> dict[str, dict[str, Any]]:
    """name -> what differs from edgeclip's session (devices/runner/runtime_onnxruntime.py session_options)."""
    return {
        "ort default (edgeclip)": {},
        "ort spinning on": {"spinning": "1"},
        "ort level extended": {"level": "ORT_ENABLE_EXTENDED"},
        "ort level basic": {"level": "ORT_ENABLE_BASIC"},
        "ort level disabled": {"level": "ORT_DISABLE_ALL"},
        "ort arena off": {"arena": False},
        "ort mem pattern off": {"mem_pattern": False},
        "ort parallel execution": {"parallel": True},
    }


def ort_session(path: Path, change: dict[str, Any], threads: int) -> Any:
    import onnxruntime as ort

    from edgeclip.runtimes.base import device_runtime

    options = device_runtime("onnxruntime").session_options(threads, "all")
    if "spinning" in change:
        options.add_session_config_entry("session.intra_op.allow_spinning", change["spinning"])
    if "level" in change:
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, change["level"])
    if change.get("arena") is False:
        options.enable_cpu_mem_arena = False
    if change.get("mem_pattern") is False:
        options.enable_mem_pattern = False
    if change.get("parallel"):
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_runner(session: Any):
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})


def openvino_runner(path: Path, hint: str | None, threads: int):
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}  # as the artifact pins
    if hint:
        config["PERFORMANCE_HINT"] = hint
    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({model.input(0): [1, 3, SIZE, SIZE]})
    request = core.compile_model(model, "CPU", config).create_infer_request()
    return lambda batch: request.infer({0: batch})


def torch_runner(model: torch.nn.Module, channels_last: bool):
    model = model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    def run(batch: np.ndarray) -> Any:
        x = torch.from_numpy(batch)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return model(x)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/ort_overhead")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--profile-runs", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="ort-overhead-"))
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    calibration = rng.standard_normal((16, 3, SIZE, SIZE)).astype(np.float32)
    runners: dict[str, Any] = {}
    models: dict[str, dict[str, Any]] = {}
    paths: dict[str, dict[str, Path]] = {}
    for name in MODELS:
        model, spec = create_student(name, class_names=[str(i) for i in range(10)], image_size=SIZE)
        model.eval()
        models[name] = {"flops": count_flops(model, (torch.from_numpy(batch),))}
        paths[name] = {}
        for backend, precision in (("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32")):
            artifact = export_model(model, spec, backend, precision, work / name / f"{backend}-{precision}",
                                    calibration=calibration, parity_inputs=None)
            paths[name][f"{backend}-{precision}"] = artifact.path / artifact.manifest["model_file"]
        for setting, change in ort_settings().items():
            runners[f"{name}|{setting}"] = ort_runner(ort_session(paths[name]["onnx-fp32"], change, args.threads))
        for hint in (None, "LATENCY", "THROUGHPUT"):
            label = f"openvino {'no hint (edgeclip)' if hint is None else hint}"
            runners[f"{name}|{label}"] = openvino_runner(paths[name]["openvino-fp32"], hint, args.threads)
        runners[f"{name}|torch NCHW"] = torch_runner(model, False)
        runners[f"{name}|torch channels-last"] = torch_runner(model, True)
        print(f"{name}: exported, {len(runners)} runners", flush=True)
    results = interleaved_cpu_medians(runners, {k: batch for k in runners}, rounds=2, iterations=args.iterations,
                                      progress=lambda m: print(m, flush=True))
    rows = []
    for key, result in results.items():
        name, setting = key.split("|", 1)
        baseline_key = f"{name}|" + ("ort default (edgeclip)" if setting.startswith("ort") else
                                     "openvino no hint (edgeclip)" if setting.startswith("openvino") else "torch NCHW")
        baseline = results[baseline_key].get("cpu_ms")
        row = {"model": name, "setting": setting, **result}
        if "cpu_ms" in result and baseline:
            row["vs_default"] = round(result["cpu_ms"] / baseline, 3)
            row["gflops_per_s"] = round(models[name]["flops"] / (result["cpu_ms"] / 1000) / 1e9, 1)
        rows.append(row)
    profiles = {f"mobilenetv3_small {variant}": profile_onnx(paths["mobilenetv3_small"][variant], batch, threads=args.threads,
                                                            runs=args.profile_runs)
                for variant in ("onnx-fp32", "onnx-int8")}
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "environment": collect_environment(args.threads),
              "input": f"1x3x{SIZE}x{SIZE}", "models": models, "rows": rows, "profiles": profiles,
              "seconds": round(time.time() - started, 1), "omp": os.environ.get("OMP_WAIT_POLICY", "")}
    write_result_files(args.out, result, to_markdown(result))
    print(to_markdown(result))
    return 0


def verdict_lines(rows: list[dict[str, Any]]) -> list[str]:
    """A setting helps when it beats the default by more than both rows' round-to-round spread (it becomes the
    default only when it helps both models)."""
    lines = []
    by_key = {(r["model"], r["setting"]): r for r in rows}
    for row in rows:
        if "vs_default" not in row or row["vs_default"] == 1.0 or row["setting"].endswith("(edgeclip)") \
                or row["setting"] == "torch NCHW":
            continue
        default = next(r for (m, s), r in by_key.items() if m == row["model"] and s.split(" ")[0] == row["setting"].split(" ")[0]
                       and ("edgeclip" in s or s == "torch NCHW"))
        noise = max(row.get("round_spread") or 0.0, default.get("round_spread") or 0.0)
        change = 1.0 - row["vs_default"]
        if change > noise:
            lines.append(f"- {row['model']}, {row['setting']}: {change:.1%} faster than the default (round spread {noise:.1%}): helps")
        elif change < -noise:
            lines.append(f"- {row['model']}, {row['setting']}: {-change:.1%} slower than the default: keep the default")
        else:
            lines.append(f"- {row['model']}, {row['setting']}: {row['vs_default']:.3f}× the default's CPU time, within the "
                         f"round spread ({noise:.1%}): no measurable effect")
    return lines


def to_markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = ["# ORT per-op overhead on small students", "", f"Command: `{result['command']}`", "",
             f"Machine: {env.get('cpu')}, {env.get('cores_usable')} usable cores, load average at start "
             f"{env.get('load_average_1m')} (shared with other jobs: CPU-time medians, two interleaved rounds). "
             f"Input {result['input']}, batch 1, {env.get('threads')} thread(s), random weights.", "",
             "## Settings (CPU ms per call; ratio to edgeclip's default in the same run)", "",
             "| model | setting | CPU ms (round 1, 2) | × default | GFLOP/s |", "|---|---|---|---|---|"]
    for row in result["rows"]:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['setting']} | failed: {row['error'][:80]} | - | - |")
            continue
        rounds = ", ".join(f"{v:.3f}" for v in row["cpu_ms_rounds"])
        lines.append(f"| {row['model']} | {row['setting']} | {row['cpu_ms']:.3f} ({rounds}) | {row.get('vs_default', '-')} | "
                     f"{row.get('gflops_per_s', '-')} |")
    lines += ["", "## Verdict", ""] + verdict_lines(result["rows"])
    lines += ["", "## onnxruntime profiler: mobilenetv3_small, µs per run", "",
              "Node times are each node's median over the profiled calls, model_run the median call; profiles are "
              "wall-clock, so on this loaded machine model_run (and so \"outside nodes\") includes time waiting for a "
              "core: compare the node sums with the CPU-time figures above.", "",
              "| variant | model_run | compute nodes | other nodes | outside nodes | compute share | nodes/run | top non-compute ops |",
              "|---|---|---|---|---|---|---|---|"]
    for variant, prof in result["profiles"].items():
        if "error" in prof:
            lines.append(f"| {variant} | {prof['error']} |||||||")
            continue
        other = [o for o in prof["by_op"] if not o["compute"]][:4]
        top = ", ".join(f"{o['op']} {o['us_per_run']:.0f} ({o['nodes']})" for o in other)
        lines.append(f"| {variant} | {prof['model_run_us']:.0f} | {prof['compute_nodes_us']:.0f} | {prof['other_nodes_us']:.0f} | "
                     f"{prof['outside_nodes_us']:.0f} | {prof['compute_share']:.0%} | {prof['nodes_per_run']} | {top} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
