"""Backends on this CPU: image towers and students in PyTorch, ORT fp32/int8, OpenVINO fp32/int8.

Part 1 (speed, random weights are fine): the OpenAI ViT-B/32 image tower, MobileNetV3-small/large
and the dual-encoder image towers (DistillCLIP ViT-S/16, DistillCLIP MobileNetV3) at 224×224,
batch 1. Every variant of every model is timed in ONE interleaved (round-robin) session, so ratios
between variants and between models are equally fair. Each export is checked against PyTorch on
real images; with random weights top-1 agreement means nothing (near-tied logits), so the parity
column shows mean cosine, and a row whose parity failed carries no ratio.

Part 2 (accuracy after quantization, real data): MobileNetV3-small/large and ResNet18/8 distilled
from the proxy digits teacher (edgeclip's KD trainer), exported to the same four formats;
accuracy on the held-out digits and top-1 agreement with the fp32 PyTorch student.

Usage:
    python benchmarks/backends_cpu.py --out benchmarks/results/backends_cpu [--quick]
Writes <out>.json and <out>.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgeclip.bench.environment import collect_environment
from edgeclip.bench.flops import count_flops
from edgeclip.bench.harness import benchmark_interleaved, evaluate_runtime
from edgeclip.config import load_recipe
from edgeclip.data import open_image_dataset
from edgeclip.exporters import ImageTower, export_model, image_tower_spec
from edgeclip.runtimes import load_runtime
from edgeclip.runtimes.torch_runtime import TorchRuntime
from edgeclip.students import create_student
from edgeclip.utils import count_params, seed_everything
from edgeclip.io_utils import write_result_files

VARIANTS = [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8")]
DASHCAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "dad-demo"


def real_images(preprocess, count: int) -> np.ndarray:
    """Real 224² inputs for calibration: dashcam frames when present, else digits."""
    frames = sorted(DASHCAM.glob("*/*.jpg"))
    frames = frames[:: max(1, len(frames) // count)][:count]
    if frames:
        from edgeclip.data.images import load_image

        return np.stack([preprocess(load_image(p)) for p in frames]).astype(np.float32)
    digits = open_image_dataset("digits", "train")
    return np.stack([preprocess(digits.load(i)) for i in range(count)]).astype(np.float32)


def speed_models() -> list[tuple[str, torch.nn.Module, object]]:
    import open_clip

    torch.backends.mha.set_fastpath_enabled(False)
    models = []
    vit = open_clip.create_model("ViT-B-32")  # random weights: speed, size and FLOPs only
    models.append(("openai ViT-B/32 image tower", ImageTower(vit).eval(), image_tower_spec(vit, "vit_b32_image")))
    for name in ("distillclip_vit_s16", "distillclip_mobilenetv3"):
        clip, _ = create_student(name)
        models.append((f"{name} image tower", ImageTower(clip).eval(), image_tower_spec(clip, f"{name}_image")))
    for name in ("mobilenetv3_small", "mobilenetv3_large"):
        model, spec = create_student(name, class_names=[str(i) for i in range(1000)], image_size=224)
        # Random weights give near-tied logits: top-1 agreement says nothing, so parity is judged by cosine alone.
        spec.extra["parity_thresholds"] = {p: {"min_top1_agreement": None} for p in ("fp16", "int8")}
        models.append((f"{name} (1000 classes)", model.eval(), spec))
    return models


def export_variants(label, model, spec, work: Path, calibration: np.ndarray) -> tuple[dict, dict]:
    """Export the four variants (+ the PyTorch model itself); returns (runners, rows) keyed by model|format."""
    example = torch.from_numpy(calibration[:1])
    flops = count_flops(model, (example,))
    # A tower wraps the whole CLIP; only the image tower's weights are exported and run.
    params = count_params(model.clip.visual if isinstance(model, ImageTower) else model)
    base = {"model": label, "params": params, "flops": flops}
    runners = {f"{label}|pytorch-fp32": TorchRuntime(model, spec).run}
    rows = {f"{label}|pytorch-fp32": {**base, "backend": "pytorch", "precision": "fp32", "size_mb": params * 4 / 1e6,
                                      "parity": {"passed": True, "mean_cosine": 1.0, "scope": "reference"}}}
    for backend, precision in VARIANTS:
        key = f"{label}|{backend}-{precision}"
        started = time.perf_counter()
        try:
            artifact = export_model(model, spec, backend, precision, work / spec.name / f"{backend}-{precision}",
                                    calibration=calibration, parity_inputs=calibration[:16])
            parity = artifact.manifest["parity"]
            rows[key] = {**base, "backend": backend, "precision": precision, "size_mb": artifact.manifest["size_bytes"] / 1e6,
                         "quantization": artifact.manifest.get("quantization"),
                         "parity": {k: parity.get(k) for k in ("passed", "max_abs_diff", "mean_cosine", "min_cosine")},
                         "export_seconds": round(time.perf_counter() - started, 1)}
            runners[key] = load_runtime(artifact.path).run
        except Exception as exc:  # a failed variant is a row with its reason
            rows[key] = {**base, "backend": backend, "precision": precision, "status": f"failed: {type(exc).__name__}: {exc}"}
    return runners, rows


def time_all(runners: dict, rows: dict, inputs: dict, args) -> list[dict]:
    """Every variant of every model in one interleaved session; parity failures become failed rows."""
    stats = benchmark_interleaved(runners, inputs, warmup=args.warmup, iterations=args.iterations,
                                  max_seconds=args.seconds * len(runners))
    out = []
    for key, row in rows.items():
        result = stats.get(key, {})
        status = row.get("status") or ("ok" if "p50" in result else f"failed: {result.get('error')}")
        if status == "ok" and (row.get("parity") or {}).get("passed") is False:
            status = f"failed: parity (mean cosine {row['parity']['mean_cosine']:.3f} vs fp32 PyTorch)"
        out.append({**row, "latency_ms": {k: result.get(k) for k in ("p50", "p90", "p99", "iterations")} if "p50" in result else None,
                    "status": status})
    return out


def accuracy_rows(work: Path, args) -> list[dict]:
    """Students distilled on digits, exported; accuracy and agreement with their fp32 PyTorch self."""
    from edgeclip.distill.classifier_kd import distill_classifier

    test = open_image_dataset("digits", "test")
    rows = []
    for student in ("mobilenetv3_small", "mobilenetv3_large", "resnet18_w8"):
        # kd_digits.py's full-data schedule (lr 0.1, batch 128, ×0.1 at 60% and 90% of the epochs): the
        # quickstart recipe's milestones are for its own 30 epochs and would never decay a shorter run.
        e = args.kd_epochs
        recipe = load_recipe("quickstart", [f"student.name={student}", f"distill.epochs={e}", "distill.batch_size=128",
                                            "distill.lr=0.1", f"distill.milestones=[{int(e * 0.6)},{int(e * 0.9)}]"])
        seed_everything(0)
        result = distill_classifier(recipe, out_dir=work / f"kd-{student}", progress=False)
        spec = result.spec
        images = np.stack([spec.preprocess(test.load(i)) for i in range(len(test))]).astype(np.float32)
        labels = np.asarray(test.labels)
        train = open_image_dataset("digits", "train")
        calibration = np.stack([spec.preprocess(train.load(i)) for i in range(0, len(train), len(train) // 128)][:128]).astype(np.float32)
        reference = evaluate_runtime(TorchRuntime(result.model, spec).run, images, labels)
        rows.append({"student": student, "backend": "pytorch", "precision": "fp32", "accuracy": reference["accuracy"],
                     "teacher_accuracy": result.metrics["teacher_accuracy"], "agreement_fp32": 1.0})
        for backend, precision in VARIANTS:
            artifact = export_model(result.model, spec, backend, precision, work / f"kd-{student}" / f"{backend}-{precision}",
                                    calibration=calibration, parity_inputs=images[:64])
            evaluated = evaluate_runtime(load_runtime(artifact.path).run, images, labels, reference_logits=reference["logits"])
            rows.append({"student": student, "backend": backend, "precision": precision, "accuracy": evaluated["accuracy"],
                         "teacher_accuracy": result.metrics["teacher_accuracy"],
                         "agreement_fp32": evaluated["agreement_reference"],
                         "quantization": artifact.manifest.get("quantization")})
    return rows


def ratio(rows: list[dict], model_a: str, key_a: str, model_b: str, key_b: str) -> float | None:
    """p50 ratio of two rows of the same run; None when either failed (parity included)."""
    def p50(model, key):
        for row in rows:
            if row["model"].startswith(model) and f"{row['backend']}-{row['precision']}" == key and row.get("latency_ms") \
                    and row["status"] == "ok":
                return row["latency_ms"]["p50"]
        return None

    a, b = p50(model_a, key_a), p50(model_b, key_b)
    return None if a is None or b is None else a / b


def to_markdown(result: dict) -> str:
    env = result["environment"]
    lines = [f"# Backends on CPU — {result['created']}", "",
             f"Machine: {env.get('cpu')} · {env.get('cores_logical', env.get('cores'))} logical cores · "
             f"torch {env.get('versions', {}).get('torch')} · onnxruntime {env.get('versions', {}).get('onnxruntime')} · "
             f"openvino {env.get('versions', {}).get('openvino')}", "",
             f"Command: `{result['command']}`", "",
             "## Speed (batch 1, 224×224, random weights; every variant of every model timed in one interleaved run)", "",
             "Parity = mean cosine with the fp32 PyTorch model on 16 real images (random weights: top-1 agreement is "
             "meaningless here, logits are near-ties). A row whose parity failed has no ratio.", "",
             "| model | format | params | GFLOPs | size MB | p50 ms | p90 ms | parity (cosine) | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["speed"]:
        lat = row.get("latency_ms") or {}
        parity = row.get("parity") or {}
        verdict = "-" if parity.get("passed") is None else f"{'pass' if parity['passed'] else 'FAIL'} ({parity.get('mean_cosine', 0):.4f})"
        lines.append(f"| {row['model']} | {row['backend']}-{row['precision']} | {row['params'] / 1e6:.2f}M | "
                     f"{row['flops'] / 1e9:.2f} | {row.get('size_mb', 0) or 0:.1f} | "
                     f"{lat.get('p50', float('nan')):.2f} | {lat.get('p90', float('nan')):.2f} | {verdict} | {row['status'][:60]} |")
    lines += ["", "## Ratios (p50, same run; only rows whose parity passed)", ""]
    for name, value in result["ratios"].items():
        lines.append(f"- {name}: {'n/a' if value is None else f'{value:.2f}×'}")
    if result.get("accuracy"):
        lines += ["", "## Students distilled on digits: accuracy after export (359 held-out digits)", "",
                  "| student | format | accuracy | agreement with fp32 PyTorch | teacher accuracy |", "|---|---|---|---|---|"]
        for row in result["accuracy"]:
            lines.append(f"| {row['student']} | {row['backend']}-{row['precision']} | {row['accuracy']:.4f} | "
                         f"{row['agreement_fp32']:.4f} | {row['teacher_accuracy']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/backends_cpu")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="timing budget per variant")
    parser.add_argument("--kd-epochs", type=int, default=15)
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    seed_everything(0)
    runners, rows, inputs = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for label, model, spec in speed_models():
            print(f"exporting {label}", file=sys.stderr, flush=True)
            calibration = real_images(spec.preprocess, 32)
            model_runners, model_rows = export_variants(label, model, spec, work, calibration)
            runners.update(model_runners)
            rows.update(model_rows)
            inputs.update({key: calibration[:1] for key in model_runners})
        print(f"timing {len(runners)} variants interleaved", file=sys.stderr, flush=True)
        speed = time_all(runners, rows, inputs, args)
        accuracy = [] if args.skip_accuracy else accuracy_rows(work, args)
    ratios = {
        "ViT-B/32 image tower ORT fp32 / MobileNetV3-large ORT fp32": ratio(speed, "openai ViT-B/32", "onnx-fp32", "mobilenetv3_large", "onnx-fp32"),
        "ViT-B/32 image tower ORT int8 / MobileNetV3-large ORT int8": ratio(speed, "openai ViT-B/32", "onnx-int8", "mobilenetv3_large", "onnx-int8"),
    }
    for model in ("mobilenetv3_small", "mobilenetv3_large", "openai ViT-B/32", "distillclip_mobilenetv3", "distillclip_vit_s16"):
        for backend in ("onnx", "openvino"):
            ratios[f"{model} {backend} int8 / fp32 latency"] = ratio(speed, model, f"{backend}-int8", model, f"{backend}-fp32")
    result = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(["python"] + sys.argv),
              "environment": collect_environment(), "speed": speed, "ratios": ratios, "accuracy": accuracy}
    out = Path(args.out)
    write_result_files(out, result, to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
