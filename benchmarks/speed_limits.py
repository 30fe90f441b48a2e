"""How close edgeclip's students run to this CPU's limit, against the ViT-B/32 image tower and speed anchors.

Every model at 224² (MobileCLIP's MCi0 tower at its own 256²), random weights (speed only), batch 1,
1 thread, exported with edgeclip's own exporters (export defaults) to ORT fp32/int8 and OpenVINO
fp32/int8, loaded with edgeclip's runtimes, and timed all together in ONE interleaved run (CPU-time
medians of two rounds, edgeclip/bench/cpu_timing.py). Per model: GFLOPs, the best variant whose
parity passed, its p50, "ViT-B/32 best ÷ this", achieved GFLOP/s and % of this machine's GEMM
roof of its precision (edgeclip/bench/roof.py). onnxruntime's profiler splits the small students'
ORT calls into compute nodes and the rest (edgeclip/bench/ort_profile.py).

Models: ViT-B/32 image tower (open_clip, the speed reference of every build); anchors MobileCLIP-S0
image tower (open_clip 3.3 has no MobileCLIP-S0 config: MobileCLIP2-S0's image tower is the same
MCi0 = timm fastvit_mci0 at 256²), timm MobileNetV4-conv-small, EfficientViT-B0, FastViT-T8 (1000
classes); edgeclip students mobilenetv3_small and resnet18_w8 (10 classes, CIFAR-10 heads) and
their pruned variants (edgeclip.compress.prune, the code behind `edgeclip compress prune`: 50% and
70% of channels); the DistillCLIP MobileNetV3 image tower; registered students named by --extra.

Usage (the committed results came from exactly this; see "command" in the JSON):
    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/speed_limits.py --out benchmarks/results/speed_limits \
        --extra mobilenetv4_conv_small_050 repvgg_a0_w8 repvgg_a0_w4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from edgeclip.bench.cpu_timing import interleaved_cpu_medians
from edgeclip.bench.environment import collect_environment
from edgeclip.bench.flops import conv_flops_by_kind, count_flops
from edgeclip.bench.ort_profile import profile_onnx
from edgeclip.bench.roof import machine_roof, roof_for
from edgeclip.io_utils import write_result_files
from edgeclip.students.repvgg import fold_reparameterizable

VARIANTS = [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8")]
VIT = "ViT-B/32 image tower"
SPEEDUP_GOAL = 25.0
ROOF_GOAL = 50.0
SMALL_STUDENTS = ("mobilenetv3_small", "resnet18_w8")  # profiled with onnxruntime's profiler (and their pruned variants)
SMALL_GFLOPS = 0.2  # "small students" of the roof goal
COSINE_ONLY = {p: {"min_top1_agreement": None} for p in ("fp16", "int8")}  # random weights: near-tied logits


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _tower(arch: str, label: str) -> tuple[torch.nn.Module, Any]:
    import open_clip

    from edgeclip.exporters.towers import ImageTower, image_tower_spec

    torch.manual_seed(0)
    clip = open_clip.create_model(arch, pretrained=None).eval()
    tower = ImageTower(clip).eval()
    try:
        return tower, image_tower_spec(clip, label)
    except AttributeError:  # a timm image tower with a custom text tower (MobileCLIP2) hides its width: measure it
        from edgeclip.clip_models import preprocess_from_open_clip

        preprocess = preprocess_from_open_clip(clip)
        with torch.no_grad():
            width = int(tower(torch.zeros(1, 3, preprocess.size, preprocess.size)).shape[-1])
        clip.embed_dim = width  # what towers._embed_dim reads first
        return tower, image_tower_spec(clip, label, preprocess)


def _timm(name: str) -> tuple[torch.nn.Module, Any]:
    import timm

    from edgeclip.data.preprocess import Preprocess
    from edgeclip.students.spec import ModelSpec

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=1000).eval()
    spec = ModelSpec(name=name, kind="classifier", preprocess=Preprocess(size=224), class_names=[str(i) for i in range(1000)])
    spec.extra["parity_thresholds"] = COSINE_ONLY
    return model, spec


def _student(name: str, prune_ratio: float = 0.0) -> tuple[torch.nn.Module, Any]:
    from edgeclip.students import create_student

    torch.manual_seed(0)
    model, spec = create_student(name, class_names=[str(i) for i in range(10)], image_size=224)
    spec.extra["parity_thresholds"] = COSINE_ONLY
    if prune_ratio:
        from edgeclip.compress.prune import prune_model
        from edgeclip.config import PruneConfig

        model, _ = prune_model(model.eval(), spec, PruneConfig(ratio=prune_ratio))
    return model.eval(), spec


def _distillclip_tower() -> tuple[torch.nn.Module, Any]:
    from edgeclip.exporters.towers import ImageTower, image_tower_spec
    from edgeclip.students import create_student

    torch.manual_seed(0)
    clip, _ = create_student("distillclip_mobilenetv3")
    return ImageTower(clip.eval()).eval(), image_tower_spec(clip, "distillclip_mobilenetv3_image")


def model_list(extra: list[str]) -> list[tuple[str, str, Callable[[], tuple[torch.nn.Module, Any]]]]:
    """(label, role, factory); role: reference | anchor | student."""
    models = [
        (VIT, "reference", lambda: _tower("ViT-B-32", "ViT-B-32 image tower")),
        ("MobileCLIP-S0 image tower (MCi0, 256²)", "anchor", lambda: _tower("MobileCLIP2-S0", "mobileclip_s0_image")),
        ("MobileNetV4-conv-small (timm)", "anchor", lambda: _timm("mobilenetv4_conv_small")),
        ("EfficientViT-B0 (timm)", "anchor", lambda: _timm("efficientvit_b0")),
        ("FastViT-T8 (timm)", "anchor", lambda: _timm("fastvit_t8")),
        ("mobilenetv3_small", "student", lambda: _student("mobilenetv3_small")),
        ("mobilenetv3_small pruned 50%", "student", lambda: _student("mobilenetv3_small", 0.5)),
        ("resnet18_w8", "student", lambda: _student("resnet18_w8")),
        ("resnet18_w8 pruned 70%", "student", lambda: _student("resnet18_w8", 0.7)),
        ("DistillCLIP MobileNetV3 image tower", "student", _distillclip_tower),
    ]
    models += [(name, "student", (lambda n=name: _student(n))) for name in extra]
    return models


def export_variants(label: str, model: torch.nn.Module, spec: Any, work: Path, rng: np.random.Generator) -> dict[str, Any]:
    """{variant: artifact path or "failed: ..."}; the ViT comes from the speed-reference cache every build uses."""
    from edgeclip.exporters import export_model

    size = spec.preprocess.size
    calibration = rng.standard_normal((16, 3, size, size)).astype(np.float32)
    out: dict[str, Any] = {}
    if label == VIT:
        from edgeclip.build.speed_reference import speed_reference_artifacts

        directories, failed = speed_reference_artifacts("ViT-B-32", VARIANTS, log=log, tower_factory=lambda _: (model, spec))
        from edgeclip.manifest import read_manifest

        for directory in directories:
            manifest = read_manifest(directory)
            out[f"{manifest['backend']}-{manifest['precision']}"] = directory
        for row in failed:
            out[f"{row.backend}-{row.precision}"] = row.status
        return out
    for backend, precision in VARIANTS:
        key = f"{backend}-{precision}"
        try:
            artifact = export_model(model, spec, backend, precision, work / spec.name / key, calibration=calibration,
                                    parity_inputs=calibration[:8])
            out[key] = artifact.path
        except Exception as exc:  # noqa: BLE001 - a variant that cannot export is a row with its reason
            out[key] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/speed_limits")
    parser.add_argument("--iterations", type=int, default=25, help="timed calls per model variant per round")
    parser.add_argument("--extra", nargs="*", default=[], help="more registered students to time at 224²")
    parser.add_argument("--only", nargs="*", default=[], help="time only models whose label contains one of these (a quick check)")
    args = parser.parse_args()
    from edgeclip.manifest import read_manifest
    from edgeclip.runtimes import load_runtime

    torch.set_num_threads(1)
    started, cpu_started = time.time(), time.process_time()
    load_start = round(os.getloadavg()[0], 2)
    roof = machine_roof(1)
    log(f"roof: fp32 {roof['fp32']} GFLOP/s, int8 {roof['int8']} GOP/s ({'cached' if roof['cached'] else 'measured'})")
    work = Path(tempfile.mkdtemp(prefix="speed-limits-"))
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    runners: dict[str, Any] = {}
    inputs: dict[str, np.ndarray] = {}
    profiles: dict[str, Any] = {}
    for label, role, factory in model_list(args.extra):
        if args.only and not any(part in label for part in args.only):
            continue
        log(f"{label}: building and exporting")
        try:
            model, spec = factory()
        except Exception as exc:  # noqa: BLE001 - a model this machine cannot build is reported, not fatal
            rows.append({"model": label, "role": role, "status": f"failed: {type(exc).__name__}: {exc}"})
            continue
        size = spec.preprocess.size
        batch = rng.standard_normal((1, 3, size, size)).astype(np.float32)
        # FLOPs of what is deployed: re-parameterisable blocks (RepVGG, FastViT/MobileOne) folded as export folds them.
        flops = count_flops(fold_reparameterizable(model), (torch.from_numpy(batch),))
        for key, path in export_variants(label, model, spec, work, rng).items():
            backend, precision = key.split("-")
            row = {"model": label, "role": role, "backend": backend, "precision": precision, "input_size": size,
                   "gflops": flops / 1e9, "status": "ok"}
            if isinstance(path, str):
                row["status"] = path
            else:
                manifest = read_manifest(path)
                row["parity"] = {k: (manifest.get("parity") or {}).get(k) for k in ("passed", "mean_cosine", "min_cosine")}
                if row["parity"]["passed"] is False:
                    row["status"] = f"failed: parity (mean cosine {row['parity']['mean_cosine']})"
                runner_key = f"{label}|{key}"
                runners[runner_key] = load_runtime(path, threads=1).run
                inputs[runner_key] = batch
                if label.split(" ")[0] in SMALL_STUDENTS and backend == "onnx":
                    profile = profile_onnx(path / manifest["model_file"], batch, threads=1)
                    kind_flops = conv_flops_by_kind(fold_reparameterizable(model), torch.from_numpy(batch))
                    profile["conv_gflops_by_kind"] = {  # FLOPs of the kind / its profiled µs
                        kind: round(kind_flops[kind] / (us / 1e6) / 1e9, 1)
                        for kind, us in profile.get("conv_us_by_kind", {}).items() if kind in kind_flops and us}
                    profile["conv_flops_by_kind"] = kind_flops
                    profiles[f"{label} {key}"] = profile
            rows.append(row)
        del model
    log(f"timing {len(runners)} variants interleaved, 2 rounds x {args.iterations}")
    timings = interleaved_cpu_medians(runners, inputs, rounds=2, iterations=args.iterations, progress=log)
    for row in rows:
        timing = timings.get(f"{row['model']}|{row.get('backend')}-{row.get('precision')}")
        if not timing:
            continue
        if "error" in timing:
            row["status"] = f"failed: {timing['error'][:200]}"
            continue
        row.update(p50_ms=timing["cpu_ms"], p50_ms_rounds=timing["cpu_ms_rounds"], wall_ms_rounds=timing["wall_ms_rounds"],
                   round_spread=timing["round_spread"])
        row["achieved_gflops"] = row["gflops"] / (row["p50_ms"] / 1000.0)
        ceiling = roof_for(row["precision"], roof)
        row["roof_percent"] = 100.0 * row["achieved_gflops"] / ceiling if ceiling else None
    for label, profile in profiles.items():
        row = next(r for r in rows if label == f"{r['model']} {r.get('backend')}-{r.get('precision')}")
        profile["cpu_p50_us"] = round(row["p50_ms"] * 1000, 1) if row.get("p50_ms") else None
        if profile.get("compute_nodes_us"):
            profile["compute_only_gflops"] = round(row["gflops"] / (profile["compute_nodes_us"] / 1e6), 1)
        ceiling = roof_for(row["precision"], roof)
        profile["at_roof_us"] = round(row["gflops"] / ceiling * 1e6, 1) if ceiling else None
    result = {"command": " ".join(["python", *sys.argv]), "environment": collect_environment(1), "roof": roof,
              "load_average_1m_start": load_start, "load_average_1m_end": round(os.getloadavg()[0], 2),
              "rows": rows, "summary": summarize(rows), "profiles": profiles, "goals": goals(rows, profiles, roof),
              "wall_seconds": round(time.time() - started, 1), "cpu_seconds": round(time.process_time() - cpu_started, 1)}
    write_result_files(args.out, result, to_markdown(result))
    print(to_markdown(result))
    return 0


def _ok(rows: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["model"] == model and r["status"] == "ok" and r.get("p50_ms")]


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per model: its best passing variant, and the ViT's best over it (same run)."""
    vit = _ok(rows, VIT)
    vit_best = min(vit, key=lambda r: r["p50_ms"]) if vit else None
    summary = []
    for model in dict.fromkeys(r["model"] for r in rows):
        passing = _ok(rows, model)
        if not passing:
            summary.append({"model": model, "best": None})
            continue
        best = min(passing, key=lambda r: r["p50_ms"])
        same_backend = [r for r in vit if r["backend"] == best["backend"]]
        summary.append({
            "model": model, "role": best["role"], "gflops": best["gflops"], "input_size": best["input_size"],
            "best": f"{best['backend']}-{best['precision']}", "p50_ms": best["p50_ms"],
            "vit_best_over_this": vit_best["p50_ms"] / best["p50_ms"] if vit_best else None,
            "vit_best_same_backend_over_this": min(r["p50_ms"] for r in same_backend) / best["p50_ms"] if same_backend else None,
            "achieved_gflops": best["achieved_gflops"], "roof_percent": best["roof_percent"],
            "fp32_roof_percent_best_fp32": max((r["roof_percent"] for r in passing if r["precision"] == "fp32"
                                                and r["roof_percent"] is not None), default=None),
        })
    return summary


def goals(rows: list[dict[str, Any]], profiles: dict[str, Any], roof: dict[str, Any]) -> dict[str, Any]:
    summary = {s["model"]: s for s in summarize(rows) if s.get("best")}
    students = {m: s for m, s in summary.items() if s["role"] == "student" and s["input_size"] == 224}
    fastest = max(students.values(), key=lambda s: s["vit_best_over_this"] or 0, default=None)
    speed = {"goal": f">= {SPEEDUP_GOAL:g}x faster than the ViT-B/32 image tower at its fastest passing variant, 224², same run",
             "best_student": fastest and fastest["model"], "best_variant": fastest and fastest["best"],
             "measured": fastest and fastest["vit_best_over_this"],
             "same_backend": fastest and fastest["vit_best_same_backend_over_this"]}
    speed["met"] = bool(speed["measured"] and speed["measured"] >= SPEEDUP_GOAL)
    if fastest:
        speed["profile_of_best"] = profiles.get(f"{fastest['model']} {fastest['best']}") or profiles.get(f"{fastest['model']} onnx-fp32")
    small = {m: s["fp32_roof_percent_best_fp32"] for m, s in students.items() if s["gflops"] <= SMALL_GFLOPS}
    roof_goal = {"goal": f"small students (<= {SMALL_GFLOPS:g} GFLOPs) >= {ROOF_GOAL:g}% of the fp32 roof "
                         f"({roof.get('fp32')} GFLOP/s) in their fastest fp32 variant",
                 "measured_percent": small, "met": bool(small) and all(v is not None and v >= ROOF_GOAL for v in small.values()),
                 "compute_share_ort_profiler": {k: p.get("compute_share") for k, p in profiles.items()},
                 "compute_only_gflops": {k: p.get("compute_only_gflops") for k, p in profiles.items()}}
    return {"speedup": speed, "roof": roof_goal}


def _limit_sentence(speed: dict[str, Any]) -> str:
    """What the best student's ORT profile says limits it: arithmetic (its FLOPs at the roof) or the rest."""
    p = speed.get("profile_of_best") or {}
    if not p.get("compute_nodes_us") or not p.get("at_roof_us"):
        return ""
    whole = p.get("cpu_p50_us") or (p["compute_nodes_us"] + p["other_nodes_us"])
    in_kernels = p["compute_nodes_us"] - p["at_roof_us"]  # compute kernels slower than the roof
    around = whole - p["compute_nodes_us"]  # everything that is not a compute kernel
    where = ("mostly inside the compute kernels (narrow, depthwise or tiny convolutions run far below the GEMM roof)"
             if in_kernels > around else "mostly outside the compute kernels (per-op overhead)")
    return (f" What limits it (ORT profiler, node medians): its compute nodes take {p['compute_nodes_us']:.0f} µs where its "
            f"FLOPs at the roof would take {p['at_roof_us']:.0f} µs, the other nodes {p['other_nodes_us']:.0f} µs, the whole "
            f"call {whole:.0f} µs of CPU time: the gap to the roof is {where}.")


def _f(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def to_markdown(result: dict[str, Any]) -> str:
    env, roof, goal = result["environment"], result["roof"], result["goals"]
    lines = [
        "# Speed limits on this CPU: students vs ViT-B/32 and anchors, % of the GEMM roof", "",
        f"Command: `{result['command']}`", "",
        f"Machine: {env.get('cpu')}, {env.get('cores_usable')} usable cores, shared with other jobs (load average "
        f"{result['load_average_1m_start']} at the start, {result['load_average_1m_end']} at the end): times are "
        "CPU-time medians of two interleaved rounds (each round's median; the rounds' values are in the JSON), 1 thread, "
        "batch 1, random weights, edgeclip's export defaults. "
        f"Benchmark took {result['wall_seconds']:.0f} s wall, {result['cpu_seconds']:.0f} s CPU of this process.", "",
        f"GEMM roof (1 thread, {roof.get('gemm')}): fp32 {roof.get('fp32')} GFLOP/s "
        f"({', '.join(f'{k} {v}' for k, v in roof['by_library'].get('fp32', {}).items())}); int8 {roof.get('int8')} GOP/s "
        f"({', '.join(f'{k} {v}' for k, v in roof['by_library'].get('int8', {}).items())}).", "",
        "## Best passing variant per model", "",
        "| model | input | GFLOPs | best variant | p50 ms | ViT-B/32 best ÷ this | same backend | achieved GFLOP/s | % of its precision's roof | best fp32 % of fp32 roof |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["summary"]:
        if not s.get("best"):
            lines.append(f"| {s['model']} | - | - | none passed | - | - | - | - | - | - |")
            continue
        lines.append(f"| {s['model']} | {s['input_size']}² | {s['gflops']:.3f} | {s['best']} | {s['p50_ms']:.2f} | "
                     f"{_f(s['vit_best_over_this'], '.1f')} | {_f(s['vit_best_same_backend_over_this'], '.1f')} | "
                     f"{s['achieved_gflops']:.0f} | {_f(s['roof_percent'], '.0f')}% | {_f(s['fp32_roof_percent_best_fp32'], '.0f')}% |")
    lines += ["", "## Every variant", "", "| model | variant | p50 ms (round 1, 2) | GFLOP/s | % roof | parity cosine | status |",
              "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if "backend" not in r:
            lines.append(f"| {r['model']} | - | - | - | - | - | {r['status'][:120]} |")
            continue
        rounds = ", ".join(f"{v:.2f}" for v in r.get("p50_ms_rounds") or [])
        cosine = (r.get("parity") or {}).get("mean_cosine")
        lines.append(f"| {r['model']} | {r['backend']}-{r['precision']} | {_f(r.get('p50_ms'), '.2f')} ({rounds}) | "
                     f"{_f(r.get('achieved_gflops'), '.0f')} | {_f(r.get('roof_percent'), '.0f')} | {_f(cosine, '.4f')} | "
                     f"{r['status'][:120]} |")
    speed, roof_goal = goal["speedup"], goal["roof"]
    lines += ["", "## Goals", "",
              f"- **Student at 224² ≥ {SPEEDUP_GOAL:g}× faster than ViT-B/32 at its fastest passing variant: "
              f"{'met' if speed['met'] else 'not met'}** — best {speed['best_student']} ({speed['best_variant']}): "
              f"{_f(speed['measured'], '.1f')}× (ViT's best in the same backend ÷ it: {_f(speed['same_backend'], '.1f')}×)."
              + _limit_sentence(speed),
              f"- **Small students (≤ {SMALL_GFLOPS:g} GFLOPs) ≥ {ROOF_GOAL:g}% of the fp32 roof in their fastest fp32 variant: "
              f"{'met' if roof_goal['met'] else 'not met'}** — "
              + ", ".join(f"{m} {_f(v, '.0f')}%" for m, v in roof_goal["measured_percent"].items()) + ".",
              "", "## Where the small students' ORT time goes (onnxruntime profiler, µs per call)", "",
              "Node times are each node's median over 30 profiled calls; model_run (the median call) is wall-clock and on "
              "this loaded machine includes waiting for a core, so \"outside nodes\" is an upper bound: compare the node "
              "sums with the CPU-time p50 of the timing run. \"At roof\": the model's FLOPs at the GEMM roof of its precision.", "",
              "| model variant | CPU-time p50 | model_run (wall) | compute nodes | other nodes | outside nodes (wall) | at roof | "
              "compute-only GFLOP/s | conv µs (GFLOP/s) by kind | top other ops (µs, nodes) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for label, p in result["profiles"].items():
        if "error" in p:
            lines.append(f"| {label} | {p['error']} |||||||||")
            continue
        top = ", ".join(f"{o['op']} {o['us_per_run']:.0f} ({o['nodes']})" for o in p["by_op"] if not o["compute"])
        kinds = ", ".join(f"{kind} {us:.0f} ({_f(p.get('conv_gflops_by_kind', {}).get(kind), '.0f')})"
                          for kind, us in p.get("conv_us_by_kind", {}).items())
        lines.append(f"| {label} | {_f(p.get('cpu_p50_us'), '.0f')} | {p['model_run_us']:.0f} | {p['compute_nodes_us']:.0f} | "
                     f"{p['other_nodes_us']:.0f} | {p['outside_nodes_us']:.0f} | {_f(p.get('at_roof_us'), '.0f')} | "
                     f"{_f(p.get('compute_only_gflops'), '.0f')} | {kinds} | {top[:200]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
