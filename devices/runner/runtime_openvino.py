"""OpenVINO artifacts (`.xml` IR), for artifact_runtime.py. numpy + openvino only.

Every model is compiled once per input shape with that shape made static (`StaticShapeCompiler`).
Measured (OpenVINO 2026.4.1, Xeon with AVX-512 VNNI; edgeclip's benchmarks/results/int8_pitfalls.md):
an NNCF int8 MobileNetV3-small compiled with a dynamic batch returns other logits at batch 1 than
batched — top-1 agreement with the fp32 student 82.7% one image at a time against 99.4% as one
batch or compiled with static shapes; fp32 models and the int8 ResNets were unaffected. Static
shapes are also what a device deploys (batch 1), so no OpenVINO path of edgeclip, its runner or its
demos runs a dynamic-shape compile.

Options: `threads` (INFERENCE_NUM_THREADS, 0 = OpenVINO's default), `openvino_device` (CPU, GPU,
NPU; default CPU). The manifest's `runtime_hints.openvino_inference_precision` is honoured.
Also here: `open_resized` (equal-resolution timing) and `roof_gemms` (OpenVINO's fp32 GEMM of the
machine's roof, gemm_roof.py).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Tuple

import numpy as np


class StaticShapeCompiler:
    """Calls an OpenVINO model, compiling it once per input shape with that shape made static."""

    def __init__(self, model: Any, device: str = "CPU", config: Dict[str, Any] = None) -> None:
        import openvino as ov

        self.core = ov.Core()
        self.model = model  # an ov.Model or a path to an IR / ONNX file
        self.device = device
        self.config = dict(config or {})
        self.compiled: Dict[Tuple[int, ...], Tuple[Any, Any]] = {}

    def read(self) -> Any:
        """The model as a fresh ov.Model (read from its file, or a clone: reshaping must not touch the original)."""
        return self.core.read_model(str(self.model)) if isinstance(self.model, (str, os.PathLike)) else self.model.clone()

    def _compile(self, shape: Tuple[int, ...]) -> Tuple[Any, Any]:
        model = self.read()
        if model.input(0).get_partial_shape().is_dynamic:
            model.reshape({model.input(0): list(shape)})
        compiled = self.core.compile_model(model, self.device, self.config)
        return compiled.create_infer_request(), compiled.outputs[0]

    def prepare(self, shape: Tuple[int, ...]) -> None:
        """Compile for `shape` now (a model the device cannot compile fails here, not at the first call)."""
        if shape not in self.compiled:
            self.compiled[shape] = self._compile(shape)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        shape = tuple(int(d) for d in batch.shape)
        self.prepare(shape)
        request, output = self.compiled[shape]
        return np.array(request.infer({0: batch})[output])  # copy: the request reuses its output buffer


def compile_config(threads: int, manifest: dict) -> Dict[str, Any]:
    """The compile config of an artifact (runtime, runner, equal-resolution timing)."""
    config: Dict[str, Any] = {"INFERENCE_NUM_THREADS": threads} if threads > 0 else {}
    precision = (manifest.get("runtime_hints") or {}).get("openvino_inference_precision")
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


def open_resized(model_path: str, size: int, threads: int, manifest: dict, options=None):
    """run(batch) of the model compiled for a size x size image at batch 1 (equal-resolution timing), on
    `options.openvino_device` (default CPU) as the artifact itself."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(model_path))
    model.reshape({model.input(0): [1, 3, size, size]})
    compiled = core.compile_model(model, device_of(options), compile_config(threads, manifest))
    request, output = compiled.create_infer_request(), compiled.outputs[0]
    return lambda batch: request.infer({0: batch})[output]


def device_of(options) -> str:
    return str(getattr(options, "openvino_device", None) or "CPU")


def roof_gemms(threads: int) -> Dict[str, Dict[str, Callable]]:
    """OpenVINO's fp32 GEMM of the machine's roof (gemm_roof.py): {precision: {library: setup(a, b) -> call}}."""
    def fp32(a: np.ndarray, b: np.ndarray):
        import openvino as ov
        try:
            import openvino.opset13 as ops
        except ImportError:  # OpenVINO before 2023.1 (older device images): the runtime namespace
            from openvino.runtime import opset8 as ops

        parameter = ops.parameter(list(a.shape), np.float32, name="A")
        model_class = getattr(ov, "Model", None) or ov.runtime.Model
        model = model_class([ops.matmul(parameter, ops.constant(b), False, False)], [parameter], "roof")
        # f32 pinned as edgeclip's OpenVINO artifacts pin it: on a CPU with bf16 (AVX512_BF16/AMX) OpenVINO's
        # default is bf16, which measured a "fp32" roof 1.9x this one's.
        config: Dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = threads
        request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
        return lambda: request.infer({0: a})

    return {"fp32": {"openvino": fp32}}


class OpenVinoModel:
    def __init__(self, path: str, manifest: dict, options) -> None:
        import openvino as ov

        config = compile_config(int(getattr(options, "threads", 0) or 0), manifest)
        precision = (manifest.get("runtime_hints") or {}).get("openvino_inference_precision")
        device = device_of(options)
        self.accelerator = None if device == "CPU" else f"{device} (openvino)"  # GPU/NPU rows: no CPU roof applies
        self.compiler = StaticShapeCompiler(path, device, config)
        self.input_name = manifest["inputs"][0]["name"]
        partial = self.compiler.read().input(0).get_partial_shape()  # a broken IR fails here
        self.input_shape = [d.get_length() if d.is_static else None for d in partial]
        if len(self.input_shape) > 1 and all(d is not None for d in self.input_shape[1:]):
            self.compiler.prepare(tuple([1] + self.input_shape[1:]))  # batch 1, what devices run: a model the device cannot compile fails here
        self.library = "openvino {} ({}, precision {}, static shapes)".format(ov.__version__, device, precision or "default")

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype.kind == "f":
            batch = batch.astype(np.float32, copy=False)
        return self.compiler(batch)


def open_model(path: str, manifest: dict, options) -> OpenVinoModel:
    return OpenVinoModel(path, manifest, options)
