#!/usr/bin/env python3
"""Standalone edgeclip benchmark runner for the device itself.

Needs only Python 3.8+, numpy and the artifact's runtime — onnxruntime, openvino, or TensorRT
(its Python API with cuda-python, or JetPack's trtexec) — never torch or edgeclip, so it runs as
is on a Raspberry Pi (Python 3.11), a Jetson (JetPack 5/6: Python 3.8/3.10) or an Intel box. For
every artifact directory (model file + manifest.json written by `edgeclip export`) it prints one
JSON line in the row format of edgeclip's report.json: latency p50/p90/p99 (ms, batch 1),
throughput, peak memory, file size and, given --data, accuracy/agreement.

Which runtime opens an artifact is recorded in its manifest (`runtime_module`, from edgeclip's
backend table), as are the runtime hints local runs honour (onnxruntime graph optimisation
level, OpenVINO inference precision), so the device runs the artifact the way it was checked.
Opening an artifact is artifact_runtime.py's job (with one `runtime_<module>.py` per runtime), the
same code edgeclip's own runtimes use: copy this folder's .py files together.

Peak memory: the process's peak RSS (VmHWM on Linux, ru_maxrss elsewhere) after loading and
running the model at batch 1, minus the same right after importing numpy and the runtime (the
interpreter baseline). A peak never goes down, so with several artifacts each one is measured in
a fresh child process. A TensorRT engine timed through trtexec reports trtexec's own peak RSS.

Speed columns (edgeclip's, measured here): the device's GEMM roof once per invocation, after the
artifacts, in its own process (gemm_roof.py; `--no-roof` skips it), printed last as {"roof": ...};
a row that ran on a GPU says `roof_why_not` instead. With `--equal-size N` each student is timed again
at N x N (the speed reference's input size) by its runtime's `open_resized` (equal_size.py), or says why not.

    python3 edgeclip_runner.py artifacts/onnx-int8 artifacts/tensorrt-fp16 --data eval.npz --threads 4

Zero-shot with class names chosen on the device (DistillCLIP towers; see zero_shot.py, which needs
clip_tokenizer.py and prompt_ensemble.py beside this file):

    python3 edgeclip_runner.py artifacts/onnx-fp32-image --text-tower artifacts/onnx-fp32-text \
        --classes "cat,dog,car" --images photo1.jpg photo2.jpg
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import importlib.util
import resource
import subprocess
import sys
import time

import numpy as np


def _load_runtime_layer():
    """artifact_runtime.py beside this file, loaded by path (it loads the runtime_<module>.py files itself)."""
    name = "edgeclip_device_artifact_runtime"  # the name edgeclip's paths.runner_module gives it
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                         "artifact_runtime.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        sys.modules[name] = module
    return sys.modules[name]


runtime_layer = _load_runtime_layer()
read_manifest, model_file, open_model = runtime_layer.read_manifest, runtime_layer.model_file, runtime_layer.open_model
gemm_roof = runtime_layer.load_sibling("gemm_roof.py")  # the machine's GEMM roof, edgeclip's bench/roof.py method
equal_size = runtime_layer.load_sibling("equal_size.py")  # a student at the teacher's input size, as edgeclip does it

SCHEMA_ROW_FIELDS = ("name", "role", "kind", "backend", "precision", "params", "flops", "flops_per_tower", "size_mb",
                     "latency_ms", "throughput", "peak_mem_mb", "accuracy", "retention", "agreement_teacher",
                     "agreement_reference", "speedup", "status", "notes", "roof_why_not", "equal_resolution")


def maxrss_mb() -> float:
    """Peak resident set size of this program so far, in MiB.

    Linux: VmHWM from /proc/self/status, the high-water mark of this program's own address
    space. `ru_maxrss` is not used there because Linux carries it over fork+exec, so a runner
    started from a big parent (a Python process with torch loaded) would inherit the parent's
    peak. Elsewhere: `ru_maxrss` (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def artifact_size_mb(artifact_dir: str) -> float:
    """Bytes on disk of everything the model needs (weights, external data), manifest and reference data excluded."""
    total = 0
    for root, _, names in os.walk(artifact_dir):
        if os.path.relpath(root, artifact_dir).split(os.sep)[0] == "reference":
            continue
        for name in names:
            if name != "manifest.json":
                total += os.path.getsize(os.path.join(root, name))
    return total / 1e6


def static_dim(value) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def percentiles(samples: list) -> dict:
    values = np.asarray(samples, dtype=np.float64)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(values.mean()),
            "iterations": int(values.size)}


def timed_loop(run, batch: np.ndarray, warmup: int, iterations: int, max_seconds: float) -> list:
    for _ in range(warmup):
        run(batch)
    samples = []
    deadline = time.perf_counter() + max_seconds
    while len(samples) < max(1, iterations):
        start = time.perf_counter()
        run(batch)
        samples.append((time.perf_counter() - start) * 1000.0)
        if time.perf_counter() >= deadline:
            break
    return samples


def empty_row(artifact_dir: str, manifest: dict) -> dict:
    row = {key: None for key in SCHEMA_ROW_FIELDS}
    row.update(name=str(manifest.get("name") or os.path.basename(os.path.normpath(artifact_dir))),
               role=str(manifest.get("role") or "student"), kind=manifest.get("kind"),
               backend=str(manifest.get("backend") or "unknown"),
               precision=str(manifest.get("precision") or "unknown"), params=manifest.get("params"),
               flops=manifest.get("flops"), flops_per_tower=manifest.get("flops_per_tower"), status="ok", notes="")
    return row


def parity_failure(manifest: dict) -> str | None:
    """Same rule as edgeclip's harness: a failed parity fails the row whatever else it is."""
    parity = manifest.get("parity") or {}
    if parity.get("passed") is False:
        return f"failed: parity against PyTorch failed ({parity.get('scope') or 'at export'}; see manifest.json parity)"
    return None


def parity_not_verified(manifest: dict) -> str | None:
    """A check that never ran is a visible status, never an "ok"."""
    parity = manifest.get("parity") or {}
    if parity.get("passed") is None:
        return f"skipped: parity not verified ({parity.get('reason') or parity.get('status') or 'no parity record'})"
    return None


def fused_frame(manifest: dict):
    """[height, width] of the raw frames a fused-preprocessing artifact takes (uint8 input), else None."""
    declared = (manifest.get("inputs") or [{}])[0]
    if str(declared.get("dtype")) != "uint8":
        return None
    return (manifest.get("preprocessing") or {}).get("fused_frame") or list(declared.get("shape", [0, 224, 224])[1:3])


def input_maker(model, manifest: dict):
    """(fixed batch or None, make_batch(n)) for random inputs of the artifact's declared shape."""
    declared = (manifest.get("inputs") or [{}])[0]
    shape = list(model.input_shape)
    fixed_batch = static_dim(shape[0]) if shape else None
    rng = np.random.default_rng(0)
    if fused_frame(manifest):  # fused preprocessing: raw uint8 RGB frames (N, H, W, 3), preprocessed in the graph
        height = (static_dim(shape[1]) if len(shape) == 4 else None) or int(fused_frame(manifest)[0])
        width = (static_dim(shape[2]) if len(shape) == 4 else None) or int(fused_frame(manifest)[1])
        return fixed_batch, lambda n: rng.integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)
    if str(declared.get("dtype", "float32")).startswith("int"):  # text encoder: (N, context) token ids
        context = (static_dim(shape[1]) if len(shape) == 2 else None) or int(manifest.get("context_length") or 77)
        return fixed_batch, lambda n: rng.integers(1, 400, size=(n, context), dtype=np.int64)
    size = int((manifest.get("preprocessing") or {}).get("size") or 224)
    height = (static_dim(shape[2]) if len(shape) == 4 else None) or size
    width = (static_dim(shape[3]) if len(shape) == 4 else None) or size
    return fixed_batch, lambda n: rng.standard_normal((n, 3, height, width)).astype(np.float32)


def benchmark_artifact(artifact_dir: str, args: argparse.Namespace, baseline_mb: float) -> dict:
    """One report row for one artifact. Errors become a failed/skipped row, never a crash."""
    try:
        manifest = read_manifest(artifact_dir)
    except (RuntimeError, ValueError) as exc:
        row = empty_row(artifact_dir, {})
        row["status"] = f"failed: {exc}"
        return row
    row = empty_row(artifact_dir, manifest)
    failure = parity_failure(manifest)
    if failure:  # whatever else it is, an artifact that does not match PyTorch is not deployable
        row["status"] = failure
        return row
    # e.g. a TensorRT artifact whose engine is not built yet; a `rejected` int8 (below the agreement
    # bar at export) is still measured: the host's verdict never picks it
    if manifest.get("status", "ready") not in ("ready", "rejected"):
        row["status"] = f"needs_target: {manifest.get('next_step') or manifest['status']}"
        return row
    try:
        row["size_mb"] = manifest["size_bytes"] / 1e6 if manifest.get("size_bytes") else artifact_size_mb(artifact_dir)
        model = runtime_layer.open_artifact(artifact_dir, args, manifest)
        if getattr(model, "accelerator", None):  # a GPU row: the CPU's GEMM roof says nothing about it
            row["roof_why_not"] = f"not measured for {model.accelerator} rows"
        fixed_batch, make_batch = input_maker(model, manifest)
        one = make_batch(fixed_batch or 1)
        times_itself = hasattr(model, "latencies")  # trtexec: timing and peak memory are the tool's own
        if times_itself:
            samples = model.latencies(len(one), args.warmup, args.iterations)
        else:
            samples = timed_loop(model.run, one, args.warmup, args.iterations, args.max_seconds)
        row["latency_ms"] = percentiles(samples)
        notes = [f"{model.library}, threads={args.threads or 'auto'}"]
        if times_itself:
            row["peak_mem_mb"] = model.peak_rss_mb
            notes.append(f"peak memory = trtexec's peak RSS {model.peak_rss_mb:.1f} MiB (CUDA context included)")
        else:  # memory right after the batch-1 runs: what a deployed single-image pipeline needs
            peak = maxrss_mb()
            row["peak_mem_mb"] = max(0.0, peak - baseline_mb)
            notes.append(f"peak RSS {peak:.1f} MiB minus baseline {baseline_mb:.1f} MiB")
        if args.throughput_batch > 0:
            n = fixed_batch or min(args.throughput_batch, int(manifest.get("max_batch") or args.throughput_batch))
            batch = make_batch(n)
            if times_itself:
                row["throughput"] = n * 1000.0 / float(np.median(model.latencies(n, 1, args.throughput_iterations)))
            else:
                model.run(batch)  # warm-up at the new shape
                start, done = time.perf_counter(), 0
                while done < args.throughput_iterations:
                    model.run(batch)
                    done += 1
                    if time.perf_counter() - start >= args.max_seconds:
                        break
                row["throughput"] = done * n / (time.perf_counter() - start)
        if args.data and str((manifest.get("inputs") or [{}])[0].get("dtype", "float32")).startswith("int"):
            notes.append("accuracy not measured: a text encoder takes token ids, not the --data images")
        elif args.data and fused_frame(manifest) and "frames" not in np.load(args.data).files:
            notes.append("accuracy not measured: this artifact takes uint8 {}x{} frames (fused preprocessing) and --data "
                         "holds preprocessed float images; add a 'frames' array (N,H,W,3) uint8 to the .npz".format(
                             *fused_frame(manifest)))
        elif args.data and manifest.get("kind") in ("classifier", "zero_shot_classifier"):
            evaluate(row, model, args, fixed_batch or (int(manifest["max_batch"]) if manifest.get("max_batch") else None))
        if args.equal_size and row["role"] == "student":  # after the memory peak: the second session is not counted
            row["equal_resolution"] = time_at_equal_size(artifact_dir, manifest, row["latency_ms"], args)
        row["notes"] = "; ".join(notes)
        row["status"] = parity_not_verified(manifest) or row["status"]
    except Exception as exc:  # one broken artifact must not hide the others' rows
        row["status"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return row


def time_at_equal_size(artifact_dir: str, manifest: dict, native_latency: dict, args: argparse.Namespace) -> dict:
    """The row's `equal_resolution`: the student opened again at --equal-size (the speed reference's input
    size) with its runtime's `open_resized` and timed with the same loop, or why it cannot run there."""
    size = args.equal_size
    if equal_size.image_size(manifest) == size:
        return equal_size.native_record(size, native_latency)
    try:
        code = runtime_layer.runtime(str(manifest.get("runtime_module")))
    except runtime_layer.ArtifactError:
        code = None
    run, why_not = equal_size.resized_runner(manifest, model_file(artifact_dir, manifest), size, args.threads, code, args)
    if run is None:
        return equal_size.equal_resolution_record(size, None, why_not)
    try:
        samples = timed_loop(run, equal_size.example_input(size), args.warmup, args.iterations, args.max_seconds)
    except Exception as exc:  # noqa: BLE001 - the native row stands; the equal-size timing says why it failed
        return equal_size.failed_record(size, f"{type(exc).__name__}: {exc}")
    return equal_size.equal_resolution_record(size, percentiles(samples))


def measure_roof(args: argparse.Namespace) -> dict:
    """The device's GEMM roof (gemm_roof.py), measured in a fresh process: numpy's BLAS reads its thread
    count from the environment only at import, and the GEMMs' memory must not count in any row's peak."""
    env = dict(os.environ)
    if args.threads > 0:
        env.update({name: str(args.threads) for name in gemm_roof.BLAS_THREAD_VARIABLES})
    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--roof-only", "--threads", str(args.threads),
                            "--roof-size", str(args.roof_size)], capture_output=True, text=True, env=env)
    for line in child.stdout.splitlines():
        if line.startswith('{"roof"'):
            return json.loads(line)["roof"]
    tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
    return {"gemm": None, "threads": args.threads, "by_library": {}, "fp32": None, "int8": None,
            "errors": {"roof": f"the roof process exited {child.returncode}: {tail}"}}


def evaluate(row: dict, model, args: argparse.Namespace, fixed_batch: int | None) -> None:
    """Accuracy and agreement on an .npz with images (N,3,H,W) float32 — or frames (N,H,W,3) uint8 for a
    fused-preprocessing artifact —, labels (N,), optional teacher/reference logits."""
    data = np.load(args.data)
    images = data["frames"] if fused_frame(getattr(model, "manifest", {}) or {}) else data["images"]
    labels = data["labels"].astype(np.int64)
    step = min(fixed_batch, args.eval_batch) if fixed_batch else args.eval_batch
    outputs = []
    for i in range(0, len(images), step):
        chunk = images[i:i + step]
        if fixed_batch and isinstance(model.input_shape[0], int) and len(chunk) < fixed_batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed_batch - len(chunk), axis=0)])
            outputs.append(model.run(chunk)[: len(images) - i])
        else:
            outputs.append(model.run(chunk))
    predicted = np.concatenate(outputs).argmax(axis=1)
    row["accuracy"] = float((predicted == labels).mean())
    for key, field in (("teacher_logits", "agreement_teacher"), ("reference_logits", "agreement_reference")):
        if key in data.files:
            row[field] = float((predicted == data[key].argmax(axis=1)).mean())
    teacher_accuracy = args.teacher_accuracy
    if teacher_accuracy is None and "teacher_logits" in data.files:
        teacher_accuracy = float((data["teacher_logits"].argmax(axis=1) == labels).mean())
    if teacher_accuracy:
        row["retention"] = row["accuracy"] / teacher_accuracy


def environment(args: argparse.Namespace) -> dict:
    versions = {"numpy": np.__version__, **runtime_layer.library_versions(args)}
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            fields = {}
            for line in handle:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
        # x86: "model name"; arm64 boards: "Model" (e.g. Raspberry Pi 5) or "Hardware".
        board = fields.get("model", "")
        cpu = fields.get("model name") or (board if board and not board.isdigit() else "") or fields.get("hardware") or cpu
    except OSError:
        pass
    return {"hostname": platform.node(), "cpu": cpu, "arch": platform.machine(), "cores": os.cpu_count(),
            "threads": args.threads, "os": platform.platform(), "python": platform.python_version(),
            "versions": versions, "memory_method": "peak RSS (VmHWM / ru_maxrss) per artifact in a fresh process minus the post-import baseline"}


def child_command(artifact_dir: str, args: argparse.Namespace) -> list:
    argv = [sys.executable, os.path.abspath(__file__), artifact_dir]
    for flag, value in (("--data", args.data), ("--warmup", args.warmup), ("--iterations", args.iterations),
                        ("--max-seconds", args.max_seconds), ("--threads", args.threads),
                        ("--throughput-batch", args.throughput_batch), ("--throughput-iterations", args.throughput_iterations),
                        ("--eval-batch", args.eval_batch), ("--providers", args.providers),
                        ("--openvino-device", args.openvino_device), ("--teacher-accuracy", args.teacher_accuracy),
                        ("--trtexec", args.trtexec), ("--equal-size", args.equal_size)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + ["--no-roof"]  # the parent measures the roof once, after every artifact


def parse_args(argv: list | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark edgeclip artifacts on this device; prints one JSON row per artifact.")
    parser.add_argument("artifacts", nargs="*", help="artifact directories (each with manifest.json)")
    parser.add_argument("--data", help=".npz with images (N,3,H,W) float32 preprocessed, labels (N,), optional teacher_logits / "
                        "reference_logits; frames (N,H,W,3) uint8 for artifacts with fused preprocessing")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=10.0, help="time cap per measurement")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads; 0 = runtime default")
    parser.add_argument("--throughput-batch", type=int, default=8, help="batch for images/s; 0 = skip")
    parser.add_argument("--throughput-iterations", type=int, default=10)
    parser.add_argument("--eval-batch", type=int, default=32)
    parser.add_argument("--teacher-accuracy", type=float, help="teacher accuracy on the same data, for retention")
    parser.add_argument("--providers", default="CPUExecutionProvider",
                        help="onnxruntime providers in order, e.g. TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider")
    parser.add_argument("--openvino-device", default="CPU")
    parser.add_argument("--trtexec", default=None, help="trtexec binary for TensorRT engines without the Python API "
                        "(default: $TRTEXEC, PATH, /usr/src/tensorrt/bin/trtexec)")
    parser.add_argument("--environment", action="store_true", help="first print one line {\"environment\": {...}}")
    parser.add_argument("--in-process", action="store_true", help="measure all artifacts in this process (peak memory then accumulates)")
    parser.add_argument("--equal-size", type=int, help="also time each student artifact with its image input resized to "
                        "N x N (the speed reference's input size: edgeclip's equal-resolution column), or say why it cannot run there")
    speed = parser.add_argument_group("GEMM roof (achieved GFLOP/s and % of roof per row; edgeclip's bench/roof.py method)")
    speed.add_argument("--no-roof", action="store_true", help="skip the roof (measured once per invocation, in its own "
                       "process, after the artifacts; printed as one line {\"roof\": {...}})")
    speed.add_argument("--roof-only", action="store_true", help="measure only the roof (no artifacts needed)")
    speed.add_argument("--roof-size", type=int, default=gemm_roof.ROOF_SIZE,
                       help="GEMM size (default %(default)s, the method's; smaller ones under-state the roof: quick checks only)")
    zero_shot = parser.add_argument_group("zero-shot with new class names (dual-encoder towers; prints one JSON line)")
    zero_shot.add_argument("--classes", help="class names 'a,b,c' or @file; the artifact is then an image tower to classify with")
    zero_shot.add_argument("--text-tower", help="text-tower artifact (ships its tokenizer) that embeds the class prompts")
    zero_shot.add_argument("--class-embeddings", help=".npy of precomputed class embeddings instead of a text tower")
    zero_shot.add_argument("--templates", help="prompt templates 'a photo of a {}.,{}' or @file; default: the text tower's")
    zero_shot.add_argument("--images", nargs="+", help="image files to classify (needs Pillow)")
    zero_shot.add_argument("--logit-scale", type=float, help="default: the one recorded in the image tower's manifest")
    args = parser.parse_args(argv)
    if not args.artifacts and not args.roof_only:
        parser.error("give one or more artifact directories (or --roof-only)")
    if args.equal_size is not None and args.equal_size < 1 or args.roof_size < 1:
        parser.error("--equal-size and --roof-size must be positive")
    return args


def import_runtime(artifact_dir: str) -> None:
    """Import the artifact's runtime library before the memory baseline, so the baseline counts
    the interpreter and libraries and the measurement counts only the model."""
    try:
        runtime_layer.import_library(str(read_manifest(artifact_dir).get("runtime_module")))
    except (RuntimeError, ValueError):
        return


def main(argv: list | None = None) -> int:
    args = parse_args(argv)
    if args.classes:  # zero-shot mode: new class names on the device
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # zero_shot.py and its two helpers sit here
        import zero_shot

        try:
            result = zero_shot.run(args, open_model, read_manifest, model_file)
        except (RuntimeError, ValueError, OSError) as exc:
            print(f"edgeclip_runner: error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({"zero_shot": result}), flush=True)
        return 0
    if args.roof_only:
        print(json.dumps({"roof": gemm_roof.measure_roof(args.threads, runtime_layer, size=args.roof_size)}), flush=True)
        return 0
    if args.environment:
        print(json.dumps({"environment": environment(args)}), flush=True)
    benchmark_all(args)
    if not args.no_roof:
        print(json.dumps({"roof": measure_roof(args)}), flush=True)
    return 0


def benchmark_all(args: argparse.Namespace) -> None:
    """One JSON row per artifact, in order."""
    if len(args.artifacts) == 1 or args.in_process:
        for artifact_dir in args.artifacts:
            import_runtime(artifact_dir)
            baseline = maxrss_mb()
            print(json.dumps(benchmark_artifact(artifact_dir, args, baseline)), flush=True)
        return
    for artifact_dir in args.artifacts:  # one fresh process per artifact: ru_maxrss never goes down
        child = subprocess.run(child_command(artifact_dir, args), capture_output=True, text=True)
        rows = [line for line in child.stdout.splitlines() if line.startswith("{")]
        if child.returncode != 0 or not rows:
            try:
                row = empty_row(artifact_dir, read_manifest(artifact_dir))
            except (RuntimeError, ValueError):
                row = empty_row(artifact_dir, {})
            row["status"] = f"failed: runner exited {child.returncode}: {(child.stderr.strip().splitlines() or [''])[-1]}"
            rows = [json.dumps(row)]
        for line in rows:
            print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
