"""Exported artifacts on the device (onnxruntime, OpenVINO, TensorRT) and the model directory.

Torch-free and edgeclip-free: part of the device demo package.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from .frames import InputError

MODEL_FILE = "accident_model.json"
MODEL_FORMAT = "edgeclip-accident-model"


class Model:
    """One exported artifact (manifest.json + model file) run with its backend's runtime."""

    def __init__(self, artifact_dir: str, threads: int = 0, providers: str = "CPUExecutionProvider") -> None:
        path = os.path.join(artifact_dir, "manifest.json")
        if not os.path.isfile(path):
            raise InputError(f"{artifact_dir} has no manifest.json; copy the whole artifact directory")
        with open(path) as handle:
            self.manifest = json.load(handle)
        self.backend = self.manifest["backend"]
        self.input_name = self.manifest["inputs"][0]["name"]
        model_file = self.manifest.get("engine_file") if self.backend == "tensorrt" else self.manifest["model_file"]
        model_path = os.path.join(artifact_dir, model_file or "model.engine")
        if not os.path.isfile(model_path):
            hint = ("build the engine on this device first (export/tensorrt/build_engine.sh)" if self.backend == "tensorrt"
                    else "re-export it")
            raise InputError(f"model file {model_path} is missing; {hint}")
        try:
            if self.backend == "onnx":
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                wanted = [p.strip() for p in providers.split(",") if p.strip()]
                chosen = [p for p in wanted if p in ort.get_available_providers()] or ["CPUExecutionProvider"]
                self.session = ort.InferenceSession(model_path, options, providers=chosen)
                self.run = lambda x: self.session.run(None, {self.input_name: x})[0]
            elif self.backend == "openvino":
                import openvino as ov

                config = {"INFERENCE_NUM_THREADS": threads} if threads > 0 else {}
                hint = (self.manifest.get("runtime_hints") or {}).get("openvino_inference_precision")
                if hint:
                    config["INFERENCE_PRECISION_HINT"] = hint
                self.run = _openvino_static_runner(ov, model_path, config)
            elif self.backend == "tensorrt":
                self.run = _tensorrt_runner(model_path, self.input_name, self.manifest["outputs"][0]["name"])
            else:
                raise InputError(f"{artifact_dir} is a {self.backend} artifact; the device demo runs onnx, openvino or tensorrt")
        except ImportError as exc:
            raise InputError(f"the {self.backend} runtime is not installed here ({exc}); install it to run {artifact_dir}") from None


def cuda_checked(cudart, call: str, result):
    """The values of a cuda-python call, or a RuntimeError naming the call and its CUDA error
    (cuda-python returns `(cudaError_t, *values)` and raises nothing itself)."""
    error = result[0] if isinstance(result, tuple) else result
    code = int(getattr(error, "value", error))  # cudaError_t: an IntEnum in some releases, a plain Enum in others
    if code != 0:
        raise RuntimeError(f"CUDA call {call} failed with {getattr(error, 'name', '') or 'error'} ({code})")
    values = result[1:] if isinstance(result, tuple) else ()
    return values[0] if len(values) == 1 else (values or None)


def _tensorrt_runner(engine_path: str, input_name: str, output_name: str):
    """A TensorRT engine on the GPU with cuda-python buffers (no torch): the copies and the engine
    on one stream, synchronised before the output is read, every CUDA status checked."""
    import tensorrt as trt

    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart

    def check(call, result):
        return cuda_checked(cudart, call, result)

    with open(engine_path, "rb") as handle:
        engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(handle.read())
    if engine is None:
        raise InputError(f"TensorRT cannot load {engine_path}; it was built for another GPU or TensorRT version: rebuild it here")
    context, stream = engine.create_execution_context(), check("cudaStreamCreate", cudart.cudaStreamCreate())

    def run(batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        context.set_input_shape(input_name, batch.shape)
        out = np.empty(tuple(context.get_tensor_shape(output_name)), dtype=np.float32)
        d_in = check("cudaMalloc", cudart.cudaMalloc(batch.nbytes))
        d_out = None
        try:
            d_out = check("cudaMalloc", cudart.cudaMalloc(out.nbytes))
            check("cudaMemcpyAsync (host to device)", cudart.cudaMemcpyAsync(
                d_in, batch.ctypes.data, batch.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))
            context.set_tensor_address(input_name, int(d_in))
            context.set_tensor_address(output_name, int(d_out))
            if not context.execute_async_v3(stream):
                raise RuntimeError("TensorRT execution failed")
            check("cudaMemcpyAsync (device to host)", cudart.cudaMemcpyAsync(
                out.ctypes.data, d_out, out.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))
            check("cudaStreamSynchronize", cudart.cudaStreamSynchronize(stream))
        finally:  # freed whatever happened; a failed free is reported only when nothing else failed first
            frees = [cudart.cudaFree(pointer) for pointer in (d_in, d_out) if pointer is not None]
        for result in frees:
            check("cudaFree", result)
        return out

    return run


# -- the model directory --------------------------------------------------------------------------
def read_model_dir(model_dir: str) -> dict:
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.isdir(model_dir):
        raise InputError(f"model directory {model_dir} does not exist; pass the run directory of `edgeclip video train`")
    if not os.path.isfile(path):
        raise InputError(f"{model_dir} has no temporal head ({MODEL_FILE} is missing); train one with "
                         f"`edgeclip video train --clips LIST --encoder SPEC --out {model_dir}`")
    try:
        with open(path) as handle:
            config = json.load(handle)
    except ValueError as exc:
        raise InputError(f"{path} is corrupt ({exc}); re-run `edgeclip video export`") from None
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise InputError(f"{path} is not an edgeclip accident model; re-run `edgeclip video export`")
    return config


def find_artifact(model_dir: str, config: dict, part: str, backend: str, precision: str | None) -> str:
    """`artifacts/<part>-<backend>-<precision>`; precision None → fp32 if present, else the only one."""
    found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(model_dir, "artifacts", f"{part}-{backend}-*"))
                   if os.path.isfile(os.path.join(p, "manifest.json")))
    wanted = [f"{part}-{backend}-{precision}"] if precision else [f"{part}-{backend}-fp32", *found[:1]]
    for name in wanted:
        if name in found:
            return os.path.join(model_dir, "artifacts", name)
    what = "temporal head" if part == "head" else "image encoder"
    have = ", ".join(found) or "none"
    raise InputError(f"{model_dir} has no exported {what} for {backend}{'-' + precision if precision else ''} "
                     f"(found: {have}); run `edgeclip video export --model {model_dir} --backend {backend}`")


def _openvino_static_runner(ov, model_path: str, config: dict):
    """Compile once per input shape with that shape static: OpenVINO 2026.4 gave an int8 MobileNetV3
    compiled with a dynamic batch different logits at batch 1 (edgeclip runtimes/openvino_runtime.py)."""
    core, compiled = ov.Core(), {}

    def run(batch):
        shape = tuple(int(d) for d in batch.shape)
        if shape not in compiled:
            model = core.read_model(model_path)
            if model.input(0).get_partial_shape().is_dynamic:
                model.reshape({model.input(0): list(shape)})
            built = core.compile_model(model, "CPU", config)
            compiled[shape] = (built.create_infer_request(), built.outputs[0])
        request, output = compiled[shape]
        return np.array(request.infer({0: batch})[output])

    return run
