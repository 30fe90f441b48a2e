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

Peak memory: the process's peak RSS (VmHWM on Linux, ru_maxrss elsewhere) after loading and
running the model at batch 1, minus the same right after importing numpy and the runtime (the
interpreter baseline). A peak never goes down, so with several artifacts each one is measured in
a fresh child process. A TensorRT engine timed through trtexec reports trtexec's own peak RSS.

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
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

SCHEMA_ROW_FIELDS = ("name", "role", "kind", "backend", "precision", "params", "flops", "flops_per_tower", "size_mb",
                     "latency_ms", "throughput", "peak_mem_mb", "accuracy", "retention", "agreement_teacher",
                     "agreement_reference", "speedup", "status", "notes")
_ORT_LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


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
    named = manifest.get("model_file")
    if not named:
        raise RuntimeError(f"the manifest in {artifact_dir} names no model_file; re-export it with `edgeclip export`")
    path = os.path.join(artifact_dir, str(named))
    if not os.path.exists(path):
        raise RuntimeError(f"manifest names model file {named} but it is missing from {artifact_dir}")
    return path


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


class OnnxModel:
    def __init__(self, path: str, manifest: dict, args: argparse.Namespace) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Spinning worker threads steal cores between calls; edgeclip's own runtime turns it off too.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if args.threads > 0:
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
        level = (manifest.get("runtime_hints") or {}).get("ort_graph_optimization", "all")
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _ORT_LEVELS[level])
        providers = [p.strip() for p in args.providers.split(",") if p.strip()]
        available = ort.get_available_providers()
        chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(path, options, providers=chosen)
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_shape = list(first.shape)
        self.dtype = {"tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(first.type, np.float32)
        self.library = f"onnxruntime {ort.__version__} ({chosen[0]}, graph optimisation {level})"

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch.astype(self.dtype, copy=False)})[0]


class OpenVinoModel:
    """Compiled once per input shape with that shape made static: with a dynamic batch, OpenVINO
    2026.4 on an x86 CPU gave an int8 MobileNetV3 different logits at batch 1 than at batch 64
    (edgeclip's runtimes/openvino_runtime.py has the numbers)."""

    def __init__(self, path: str, manifest: dict, args: argparse.Namespace) -> None:
        import openvino as ov

        self.core = ov.Core()
        self.path = path
        model = self.core.read_model(path)
        self.config = {"INFERENCE_NUM_THREADS": args.threads} if args.threads > 0 else {}
        precision = (manifest.get("runtime_hints") or {}).get("openvino_inference_precision")
        if precision:
            self.config["INFERENCE_PRECISION_HINT"] = precision
        self.device = args.openvino_device
        partial = model.input(0).get_partial_shape()
        self.input_shape = [d.get_length() if d.is_static else None for d in partial]
        self.compiled = {}
        if len(self.input_shape) > 1 and all(d is not None for d in self.input_shape[1:]):
            self._compiled_for(tuple([1] + self.input_shape[1:]))  # a model the device cannot compile fails here
        self.library = "openvino {} ({}, precision {}, static shapes)".format(ov.__version__, self.device, precision or "default")

    def _compiled_for(self, shape: tuple) -> tuple:
        if shape not in self.compiled:
            model = self.core.read_model(self.path)
            if model.input(0).get_partial_shape().is_dynamic:
                model.reshape({model.input(0): list(shape)})
            compiled = self.core.compile_model(model, self.device, self.config)
            self.compiled[shape] = (compiled, compiled.output(0))
        return self.compiled[shape]

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype.kind == "f":
            batch = batch.astype(np.float32, copy=False)
        compiled, output = self._compiled_for(tuple(int(d) for d in batch.shape))
        return np.asarray(compiled(batch)[output])


def cuda_checked(cudart, call: str, result):
    """The values of a cuda-python call, or a RuntimeError naming the call and its CUDA error.

    cuda-python returns `(cudaError_t, *values)` and raises nothing itself: an unchecked failed
    cudaMalloc hands back a null pointer that the engine then writes through."""
    error = result[0] if isinstance(result, tuple) else result
    code = int(getattr(error, "value", error))  # cudaError_t is an IntEnum in some releases, a plain Enum in others
    if code != 0:
        name = getattr(error, "name", "") or f"error {code}"
        try:
            described = cudart.cudaGetErrorString(error)[1]
            detail = ": " + (described.decode() if isinstance(described, bytes) else str(described))
        except Exception:  # noqa: BLE001 - the name and code are enough
            detail = ""
        raise RuntimeError(f"CUDA call {call} failed with {name} ({code}){detail}")
    values = result[1:] if isinstance(result, tuple) else ()
    return values[0] if len(values) == 1 else (values or None)


class TensorRTModel:
    """A serialized engine through the TensorRT Python API; device buffers via cuda-python.

    The input copy, the engine and the output copy are queued on one CUDA stream and the stream
    is synchronised before the output is read; every CUDA call's status is checked."""

    def __init__(self, path: str, manifest: dict, args: argparse.Namespace) -> None:
        import tensorrt as trt

        try:  # cuda-python: NVIDIA's CUDA runtime bindings (pip install cuda-python); module moved in 12.6
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart

        self.trt, self.cudart = trt, cudart
        with open(path, "rb") as handle:
            self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(handle.read())
        if self.engine is None:
            raise RuntimeError("deserialize_cuda_engine returned None: the engine was built for another GPU or TensorRT")
        self.context = self.engine.create_execution_context()
        self.input_name = manifest["inputs"][0]["name"]
        self.output_name = manifest["outputs"][0]["name"]
        self.input_shape = [None] + [int(d) for d in manifest["inputs"][0]["shape"][1:]]
        self.dtype = engine_input_dtype(manifest)
        self.stream = self._cuda("cudaStreamCreate", cudart.cudaStreamCreate())
        self.buffers: dict = {}
        self.library = f"TensorRT {trt.__version__} (Python API)"

    def _cuda(self, call: str, result):
        return cuda_checked(self.cudart, call, result)

    def _buffer(self, name: str, nbytes: int) -> int:
        size, pointer = self.buffers.get(name, (0, None))
        if size < nbytes:
            if pointer is not None:
                self.buffers.pop(name)
                self._cuda("cudaFree", self.cudart.cudaFree(pointer))
            pointer = self._cuda("cudaMalloc", self.cudart.cudaMalloc(nbytes))
            self.buffers[name] = (nbytes, pointer)
        return self.buffers[name][1]

    def run(self, batch: np.ndarray) -> np.ndarray:
        cudart = self.cudart
        batch = np.ascontiguousarray(batch, dtype=self.dtype)
        if not self.context.set_input_shape(self.input_name, tuple(batch.shape)):
            raise RuntimeError(f"the engine refuses input shape {tuple(batch.shape)} for {self.input_name} (outside its profile)")
        source = self._buffer(self.input_name, batch.nbytes)
        out = np.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=np.float32)
        target = self._buffer(self.output_name, out.nbytes)
        self._cuda("cudaMemcpyAsync (host to device)", cudart.cudaMemcpyAsync(
            source, batch.ctypes.data, batch.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
        self.context.set_tensor_address(self.input_name, source)
        self.context.set_tensor_address(self.output_name, target)
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execution failed (execute_async_v3 returned False)")
        self._cuda("cudaMemcpyAsync (device to host)", cudart.cudaMemcpyAsync(
            out.ctypes.data, target, out.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        self._cuda("cudaStreamSynchronize", cudart.cudaStreamSynchronize(self.stream))  # before `out` is read
        return out


def engine_input_dtype(manifest: dict) -> type:
    """The engine's input element type: TensorRT text towers take int32 token ids (manifest inputs[0].dtype)."""
    return {"int32": np.int32, "int64": np.int64}.get(str(manifest["inputs"][0].get("dtype", "float32")), np.float32)


class TrtexecModel:
    """A serialized engine through JetPack's trtexec: timing from its per-inference times, outputs
    from --loadInputs/--exportOutput (what a device without the Python bindings has)."""

    def __init__(self, path: str, manifest: dict, args: argparse.Namespace, trtexec: str) -> None:
        self.path, self.trtexec = path, trtexec
        self.input_name = manifest["inputs"][0]["name"]
        self.max_batch = int(manifest.get("max_batch") or 8)
        self.input_shape = [None] + [int(d) for d in manifest["inputs"][0]["shape"][1:]]
        self.dtype = engine_input_dtype(manifest)
        self.peak_rss_mb = 0.0
        self.library = f"trtexec ({trtexec})"

    def _call(self, flags: list) -> None:
        result = subprocess.run([self.trtexec, f"--loadEngine={self.path}", *flags], capture_output=True, text=True)
        # ru_maxrss of waited-for children: the largest trtexec run so far (KiB on Linux, bytes on macOS).
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        self.peak_rss_mb = peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"trtexec exited {result.returncode}: {tail[0]}")

    def _shape(self, batch_size: int) -> str:
        return f"--shapes={self.input_name}:" + "x".join(str(d) for d in [batch_size] + self.input_shape[1:])

    def run(self, batch: np.ndarray) -> np.ndarray:
        with tempfile.TemporaryDirectory() as work:
            inputs, outputs = os.path.join(work, "inputs.bin"), os.path.join(work, "outputs.json")
            np.ascontiguousarray(batch, dtype=self.dtype).tofile(inputs)  # raw bytes: the engine's input type
            self._call([self._shape(len(batch)), f"--loadInputs={self.input_name}:{inputs}", f"--exportOutput={outputs}",
                        "--iterations=1", "--warmUp=0", "--duration=0"])
            with open(outputs) as handle:
                first = json.load(handle)[0]
        dims = [int(d) for d in str(first["dimensions"]).split("x")]
        return np.asarray(first["values"], dtype=np.float32).reshape(dims)

    def latencies(self, batch_size: int, warmup: int, iterations: int) -> list:
        """Per-inference latency (ms, host-to-host) of `iterations` runs after `warmup` runs' worth of warm-up."""
        with tempfile.TemporaryDirectory() as work:
            times = os.path.join(work, "times.json")
            # trtexec's warm-up is in milliseconds: ~10 ms per requested warm-up run.
            self._call([self._shape(batch_size), f"--iterations={max(1, iterations)}", f"--warmUp={max(0, warmup) * 10}",
                        "--duration=0", f"--exportTimes={times}"])
            with open(times) as handle:
                entries = json.load(handle)
        return [float(e["latencyMs"]) for e in entries][:max(1, iterations)]


def find_trtexec(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("TRTEXEC"), shutil.which("trtexec"), "/usr/src/tensorrt/bin/trtexec"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def open_model(path: str, manifest: dict, args: argparse.Namespace):
    """The artifact's runtime, chosen by the manifest's `runtime_module` (edgeclip's backend table)."""
    module = manifest.get("runtime_module")
    if module == "onnxruntime":
        return OnnxModel(path, manifest, args)
    if module == "openvino":
        return OpenVinoModel(path, manifest, args)
    if module == "tensorrt":
        try:
            return TensorRTModel(path, manifest, args)
        except ImportError:
            trtexec = find_trtexec(args.trtexec)
            if trtexec is None:
                raise RuntimeError("neither the TensorRT Python API (tensorrt + cuda-python) nor trtexec is available "
                                   "on this device; install JetPack's TensorRT") from None
            return TrtexecModel(path, manifest, args, trtexec)
    raise RuntimeError(f"this runner cannot open runtime '{module}' (manifest runtime_module); "
                       "re-export with this edgeclip or run the artifact where its runtime is")


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


def input_maker(model, manifest: dict):
    """(fixed batch or None, make_batch(n)) for random inputs of the artifact's declared shape."""
    declared = (manifest.get("inputs") or [{}])[0]
    shape = list(model.input_shape)
    fixed_batch = static_dim(shape[0]) if shape else None
    rng = np.random.default_rng(0)
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
        model = open_model(model_file(artifact_dir, manifest), manifest, args)
        fixed_batch, make_batch = input_maker(model, manifest)
        one = make_batch(fixed_batch or 1)
        if isinstance(model, TrtexecModel):
            samples = model.latencies(len(one), args.warmup, args.iterations)
        else:
            samples = timed_loop(model.run, one, args.warmup, args.iterations, args.max_seconds)
        row["latency_ms"] = percentiles(samples)
        notes = [f"{model.library}, threads={args.threads or 'auto'}"]
        if isinstance(model, TrtexecModel):
            row["peak_mem_mb"] = model.peak_rss_mb
            notes.append(f"peak memory = trtexec's peak RSS {model.peak_rss_mb:.1f} MiB (CUDA context included)")
        else:  # memory right after the batch-1 runs: what a deployed single-image pipeline needs
            peak = maxrss_mb()
            row["peak_mem_mb"] = max(0.0, peak - baseline_mb)
            notes.append(f"peak RSS {peak:.1f} MiB minus baseline {baseline_mb:.1f} MiB")
        if args.throughput_batch > 0:
            n = fixed_batch or min(args.throughput_batch, int(manifest.get("max_batch") or args.throughput_batch))
            batch = make_batch(n)
            if isinstance(model, TrtexecModel):
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
        elif args.data and manifest.get("kind") in ("classifier", "zero_shot_classifier"):
            evaluate(row, model, args, fixed_batch or (int(manifest["max_batch"]) if manifest.get("max_batch") else None))
        row["notes"] = "; ".join(notes)
        row["status"] = parity_not_verified(manifest) or row["status"]
    except Exception as exc:  # one broken artifact must not hide the others' rows
        row["status"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return row


def evaluate(row: dict, model, args: argparse.Namespace, fixed_batch: int | None) -> None:
    """Accuracy and agreement on an .npz with images (N,3,H,W) float32, labels (N,), optional teacher/reference logits."""
    data = np.load(args.data)
    images, labels = data["images"], data["labels"].astype(np.int64)
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
    versions = {"numpy": np.__version__}
    for module in ("onnxruntime", "openvino", "tensorrt"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:
            pass
    trtexec = find_trtexec(args.trtexec)
    if trtexec:
        versions["trtexec"] = trtexec
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
                        ("--trtexec", args.trtexec)):
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
    parser.add_argument("--trtexec", default=None, help="trtexec binary for TensorRT engines without the Python API "
                        "(default: $TRTEXEC, PATH, /usr/src/tensorrt/bin/trtexec)")
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
        module = read_manifest(artifact_dir).get("runtime_module")
    except (RuntimeError, ValueError):
        return
    if module in ("onnxruntime", "openvino", "tensorrt"):
        try:
            __import__(module)
        except ImportError:
            pass  # benchmark_artifact reports the missing library as the row's failure


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
