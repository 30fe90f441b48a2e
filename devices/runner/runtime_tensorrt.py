"""TensorRT artifacts (a serialized engine built on the device), for artifact_runtime.py.

Through the TensorRT Python API with cuda-python device buffers (`TensorRTModel`) or, on a device
without the Python bindings (JetPack ships no cuda-python), through JetPack's trtexec
(`TrtexecModel`, which times itself: `latencies`, `peak_rss_mb`). numpy + TensorRT only, no torch.
The engine is `manifest.engine_file`: before the on-device build the manifest's model_file is the ONNX.

Options: `trtexec` (the binary; default $TRTEXEC, PATH, /usr/src/tensorrt/bin/trtexec — the one
lookup, also used by the export kit's check_engine.py, which ships this file).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ENGINE_FILE = "model.engine"
ACCELERATOR = "GPU (tensorrt)"  # what its rows ran on: the CPU's GEMM roof does not apply to them


def runnable_file(manifest: dict) -> str:
    return str(manifest.get("engine_file") or ENGINE_FILE)


def missing_hint(artifact_dir: str) -> str:
    return f"build the engine on this device first (export/tensorrt/build_engine.sh {artifact_dir})"


def find_trtexec(given: str = None) -> str:
    """The trtexec binary: `given`, $TRTEXEC, trtexec on PATH, JetPack's /usr/src/tensorrt/bin/trtexec ("" if none)."""
    for candidate in (given, os.environ.get("TRTEXEC"), shutil.which("trtexec"), "/usr/src/tensorrt/bin/trtexec"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return ""


def versions(options) -> dict:
    found = {}
    try:
        found["tensorrt"] = __import__("tensorrt").__version__
    except Exception:  # noqa: BLE001 - no Python API here; trtexec may still be
        pass
    trtexec = find_trtexec(getattr(options, "trtexec", None))
    if trtexec:
        found["trtexec"] = trtexec
    return found


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

    def __init__(self, path: str, manifest: dict, options) -> None:
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
        self.accelerator = ACCELERATOR

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
    """The engine's input element type: TensorRT text towers take int32 token ids, fused-preprocessing
    artifacts uint8 frames (manifest inputs[0].dtype)."""
    return {"int32": np.int32, "int64": np.int64, "uint8": np.uint8}.get(str(manifest["inputs"][0].get("dtype", "float32")), np.float32)


class TrtexecModel:
    """A serialized engine through JetPack's trtexec: timing from its per-inference times, outputs
    from --loadInputs/--exportOutput (what a device without the Python bindings has)."""

    def __init__(self, path: str, manifest: dict, options, trtexec: str) -> None:
        self.path, self.trtexec = path, trtexec
        self.input_name = manifest["inputs"][0]["name"]
        self.max_batch = int(manifest.get("max_batch") or 8)
        self.input_shape = [None] + [int(d) for d in manifest["inputs"][0]["shape"][1:]]
        self.dtype = engine_input_dtype(manifest)
        self.peak_rss_mb = 0.0
        self.library = f"trtexec ({trtexec})"
        self.accelerator = ACCELERATOR

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


def open_model(path: str, manifest: dict, options):
    """The Python API when tensorrt and cuda-python import, else trtexec (unless `options.tool_fallback`
    is False: one trtexec process per call times a benchmark fine but is far too slow for a live demo)."""
    try:
        return TensorRTModel(path, manifest, options)
    except ImportError:
        if not getattr(options, "tool_fallback", True):
            raise
        trtexec = find_trtexec(getattr(options, "trtexec", None))
        if not trtexec:
            raise RuntimeError("neither the TensorRT Python API (tensorrt + cuda-python) nor trtexec is available "
                               "on this device; install JetPack's TensorRT") from None
        return TrtexecModel(path, manifest, options, trtexec)
