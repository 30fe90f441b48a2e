#!/usr/bin/env python3
"""Standalone edgeclip benchmark runner for the device itself.

Needs only Python 3.9+, numpy and the runtime of the artifact (onnxruntime or openvino); never
torch or edgeclip, so it runs on a Raspberry Pi or a Jetson as is. For every artifact directory
(model file + manifest.json written by `edgeclip export`) it prints one JSON line in the row
format of edgeclip's report.json: latency p50/p90/p99 (ms, batch 1), throughput, peak memory,
file size and, given --data, accuracy/agreement.

Peak memory: the process's peak RSS (VmHWM on Linux, ru_maxrss elsewhere) after loading and
running the model at batch 1, minus the same right after importing numpy and the runtime (the
interpreter baseline). A peak never goes down, so with several artifacts each one is measured in
a fresh child process (one artifact per process).

    python3 edgeclip_runner.py artifacts/onnx-int8 artifacts/onnx-fp32 --data eval.npz --threads 4

Zero-shot with class names chosen on the device (DistillCLIP towers; see zero_shot.py):

    python3 edgeclip_runner.py artifacts/onnx-fp32-image --text-tower artifacts/onnx-fp32-text \
        --classes "cat,dog,car" --images photo1.jpg photo2.jpg
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

SCHEMA_ROW_FIELDS = ("name", "role", "backend", "precision", "params", "flops", "flops_per_tower", "size_mb",
                     "latency_ms", "throughput", "peak_mem_mb", "accuracy", "retention", "agreement_teacher",
                     "agreement_reference", "status", "notes")
MODEL_SUFFIXES = {"onnx": (".onnx",), "openvino": (".xml",)}


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


def read_manifest(artifact_dir: str) -> dict:
    path = os.path.join(artifact_dir, "manifest.json")
    if not os.path.isfile(path):
        raise RuntimeError(f"no manifest.json in {artifact_dir}; copy the whole artifact directory from `edgeclip export`")
    with open(path) as handle:
        return json.load(handle)


def model_file(artifact_dir: str, manifest: dict) -> str:
    """The model file: manifest's `model_file` (or first of `files`), else the only file of the backend's type."""
    backend = manifest.get("backend", "onnx")
    suffixes = MODEL_SUFFIXES.get(backend, ())
    named = manifest.get("model_file") or manifest.get("model_path")
    files = manifest.get("files")
    if not named and files:
        candidates = list(files.values()) if isinstance(files, dict) else list(files)
        named = next((f for f in candidates if str(f).endswith(suffixes)), None)
    if named:
        path = os.path.join(artifact_dir, str(named))
        if not os.path.isfile(path):
            raise RuntimeError(f"manifest names model file {named} but it is missing from {artifact_dir}")
        return path
    found = sorted(p for s in suffixes for p in glob.glob(os.path.join(artifact_dir, "*" + s)))
    if len(found) != 1:
        raise RuntimeError(f"expected one {'/'.join(suffixes) or backend} model file in {artifact_dir}, found {len(found)}")
    return found[0]


def artifact_size_mb(artifact_dir: str) -> float:
    """Bytes on disk of everything the model needs (weights, external data), manifest excluded."""
    total = 0
    for root, _, names in os.walk(artifact_dir):
        for name in names:
            if name != "manifest.json":
                total += os.path.getsize(os.path.join(root, name))
    return total / 1e6


class OnnxModel:
    def __init__(self, path: str, threads: int, providers: list[str]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        available = ort.get_available_providers()
        chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(path, options, providers=chosen)
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_shape = list(first.shape)
        self.dtype = {"tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(first.type, np.float32)
        self.library = f"onnxruntime {ort.__version__} ({chosen[0]})"

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch.astype(self.dtype, copy=False)})[0]


class OpenVinoModel:
    def __init__(self, path: str, threads: int, device: str) -> None:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(path)
        config = {"INFERENCE_NUM_THREADS": threads} if threads > 0 else {}
        self.compiled = core.compile_model(model, device, config)
        partial = model.input(0).get_partial_shape()
        self.input_shape = [d.get_length() if d.is_static else None for d in partial]
        self.output = self.compiled.output(0)
        self.library = f"openvino {ov.__version__} ({device})"

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype.kind == "f":
            batch = batch.astype(np.float32, copy=False)
        return np.asarray(self.compiled(batch)[self.output])


def open_model(path: str, backend: str, args: argparse.Namespace):
    if backend == "onnx":
        return OnnxModel(path, args.threads, [p.strip() for p in args.providers.split(",") if p.strip()])
    if backend == "openvino":
        return OpenVinoModel(path, args.threads, args.openvino_device)
    raise NotImplementedError(backend)


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
    row.update(name=str(manifest.get("name") or manifest.get("model_name") or os.path.basename(os.path.normpath(artifact_dir))),
               role=str(manifest.get("role") or "student"), backend=str(manifest.get("backend") or "unknown"),
               precision=str(manifest.get("precision") or "unknown"), params=manifest.get("params"),
               flops=manifest.get("flops"), flops_per_tower=manifest.get("flops_per_tower"), status="ok", notes="")
    return row


def benchmark_artifact(artifact_dir: str, args: argparse.Namespace, baseline_mb: float) -> dict:
    """One report row for one artifact. Errors become a failed/skipped row, never a crash."""
    try:
        manifest = read_manifest(artifact_dir)
    except (RuntimeError, ValueError) as exc:
        row = empty_row(artifact_dir, {})
        row["status"] = f"failed: {exc}"
        return row
    row = empty_row(artifact_dir, manifest)
    backend = row["backend"]
    if manifest.get("status", "ready") != "ready":  # e.g. a TensorRT artifact whose engine is built on the target
        row["status"] = f"needs_target: {manifest.get('next_step') or manifest['status']}"
        return row
    if backend not in MODEL_SUFFIXES:
        row["status"] = (f"skipped: the runner measures onnx/openvino artifacts; for {backend} use the target's own "
                         "tool (TensorRT: trtexec --loadEngine=<engine> --percentile=50,90,99, see export/)")
        return row
    try:
        row["size_mb"] = manifest["size_bytes"] / 1e6 if manifest.get("size_bytes") else artifact_size_mb(artifact_dir)
        model = open_model(model_file(artifact_dir, manifest), backend, args)
        declared = (manifest.get("inputs") or [{}])[0]
        preprocessing = manifest.get("preprocessing") or manifest.get("preprocess") or {}
        size = int(preprocessing.get("size") or 224)
        shape = model.input_shape
        fixed_batch = static_dim(shape[0]) if shape else None
        rng = np.random.default_rng(0)
        is_text = str(declared.get("dtype", "float32")).startswith("int")
        if is_text:  # text encoder: (N, context) token ids
            context = static_dim(shape[1]) if len(shape) == 2 else None
            context = context or int(manifest.get("context_length") or 77)

            def make_batch(n: int) -> np.ndarray:
                return rng.integers(1, 400, size=(n, context), dtype=np.int64)
        else:
            height = (static_dim(shape[2]) if len(shape) == 4 else None) or size
            width = (static_dim(shape[3]) if len(shape) == 4 else None) or size

            def make_batch(n: int) -> np.ndarray:
                return rng.standard_normal((n, 3, height, width)).astype(np.float32)
        one = make_batch(fixed_batch or 1)
        samples = timed_loop(model.run, one, args.warmup, args.iterations, args.max_seconds)
        row["latency_ms"] = percentiles(samples)
        # Memory right after the batch-1 runs: what a deployed single-image pipeline needs.
        peak = maxrss_mb()
        row["peak_mem_mb"] = max(0.0, peak - baseline_mb)
        notes = [f"{model.library}, threads={args.threads or 'auto'}",
                 f"peak RSS {peak:.1f} MiB minus baseline {baseline_mb:.1f} MiB"]
        if args.throughput_batch > 0:
            n = fixed_batch or args.throughput_batch
            batch = make_batch(n)
            model.run(batch)  # warm-up at the new shape
            start, done = time.perf_counter(), 0
            while done < args.throughput_iterations:
                model.run(batch)
                done += 1
                if time.perf_counter() - start >= args.max_seconds:
                    break
            row["throughput"] = done * n / (time.perf_counter() - start)
        if args.data and is_text:
            notes.append("accuracy not measured: a text encoder takes token ids, not the --data images")
        elif args.data:
            evaluate(row, model, args, fixed_batch)
        row["notes"] = "; ".join(notes)
        if (manifest.get("parity") or {}).get("passed") is False:  # measured, but not a deployable model
            row["status"] = "failed: parity against PyTorch failed at export (see manifest.json parity)"
    except Exception as exc:  # one broken artifact must not hide the others' rows
        row["status"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return row


def evaluate(row: dict, model, args: argparse.Namespace, fixed_batch: int | None) -> None:
    """Accuracy and agreement on an .npz with images (N,3,H,W) float32, labels (N,), optional teacher/reference logits."""
    data = np.load(args.data)
    images, labels = data["images"], data["labels"].astype(np.int64)
    step = fixed_batch or args.eval_batch
    outputs = []
    for i in range(0, len(images), step):
        chunk = images[i:i + step]
        if fixed_batch and len(chunk) < fixed_batch:  # pad the last chunk of a fixed-batch model
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
    versions = {"numpy": np.__version__}
    for module in ("onnxruntime", "openvino"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:
            pass
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
                        ("--openvino-device", args.openvino_device), ("--teacher-accuracy", args.teacher_accuracy)):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def parse_args(argv: list | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark edgeclip artifacts on this device; prints one JSON row per artifact.")
    parser.add_argument("artifacts", nargs="+", help="artifact directories (each with manifest.json)")
    parser.add_argument("--data", help=".npz with images (N,3,H,W) float32 preprocessed, labels (N,), optional teacher_logits / reference_logits")
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
    parser.add_argument("--environment", action="store_true", help="first print one line {\"environment\": {...}}")
    parser.add_argument("--in-process", action="store_true", help="measure all artifacts in this process (peak memory then accumulates)")
    zero_shot = parser.add_argument_group("zero-shot with new class names (dual-encoder towers; prints one JSON line)")
    zero_shot.add_argument("--classes", help="class names 'a,b,c' or @file; the artifact is then an image tower to classify with")
    zero_shot.add_argument("--text-tower", help="text-tower artifact (ships its tokenizer) that embeds the class prompts")
    zero_shot.add_argument("--class-embeddings", help=".npy of precomputed class embeddings instead of a text tower")
    zero_shot.add_argument("--templates", help="prompt templates 'a photo of a {}.,{}' or @file; default: the text tower's")
    zero_shot.add_argument("--images", nargs="+", help="image files to classify (needs Pillow)")
    zero_shot.add_argument("--logit-scale", type=float, help="default: the one recorded in the image tower's manifest")
    return parser.parse_args(argv)


def import_runtime(artifact_dir: str) -> None:
    """Import the artifact's runtime library before the memory baseline, so the baseline counts
    the interpreter and libraries and the measurement counts only the model."""
    try:
        backend = read_manifest(artifact_dir).get("backend")
    except (RuntimeError, ValueError):
        return
    module = {"onnx": "onnxruntime", "openvino": "openvino"}.get(backend)
    if module:
        try:
            __import__(module)
        except ImportError:
            pass  # benchmark_artifact reports the missing library as the row's failure


def main(argv: list | None = None) -> int:
    args = parse_args(argv)
    if args.classes:  # zero-shot mode: new class names on the device
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # zero_shot.py, clip_tokenizer.py sit here
        import zero_shot

        try:
            result = zero_shot.run(args, open_model, read_manifest, model_file)
        except (RuntimeError, ValueError, OSError) as exc:
            print(f"edgeclip_runner: error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({"zero_shot": result}), flush=True)
        return 0
    if args.environment:
        print(json.dumps({"environment": environment(args)}), flush=True)
    if len(args.artifacts) == 1 or args.in_process:
        for artifact_dir in args.artifacts:
            import_runtime(artifact_dir)
            baseline = maxrss_mb()
            print(json.dumps(benchmark_artifact(artifact_dir, args, baseline)), flush=True)
        return 0
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
