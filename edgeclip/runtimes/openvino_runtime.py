"""OpenVINO on CPU, threads via INFERENCE_NUM_THREADS. Needs no torch.

Every model is compiled once per input shape with that shape made static (`StaticShapeCompiler`).
Measured here (OpenVINO 2026.4.1, Xeon with AVX-512 VNNI; benchmarks/results/int8_pitfalls.md): an
NNCF int8 MobileNetV3-small compiled with a dynamic batch returns other logits at batch 1 than
batched — top-1 agreement with the fp32 student 82.7% one image at a time against 99.4% as one batch
or compiled with static shapes; fp32 models and the int8 ResNets were unaffected. Static shapes are also what a
device deploys (batch 1), so edgeclip's OpenVINO paths never run a dynamic-shape compile.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from edgeclip.runtimes.base import Runtime


class StaticShapeCompiler:
    """Calls an OpenVINO model, compiling it once per input shape with that shape made static."""

    def __init__(self, model: Any, device: str = "CPU", config: dict[str, Any] | None = None) -> None:
        import openvino as ov

        self.core = ov.Core()
        self.model = model  # an ov.Model or a path to an IR / ONNX file
        self.device = device
        self.config = dict(config or {})
        self.compiled: dict[tuple[int, ...], tuple[Any, Any]] = {}

    def _compile(self, shape: tuple[int, ...]) -> tuple[Any, Any]:
        model = self.core.read_model(str(self.model)) if isinstance(self.model, (str, os.PathLike)) else self.model.clone()
        if model.input(0).get_partial_shape().is_dynamic:
            model.reshape({model.input(0): list(shape)})
        compiled = self.core.compile_model(model, self.device, self.config)
        return compiled.create_infer_request(), compiled.outputs[0]

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Compile for `shape` now (a model the device cannot compile fails here, not at the first call)."""
        if shape not in self.compiled:
            self.compiled[shape] = self._compile(shape)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        shape = tuple(int(d) for d in batch.shape)
        self.prepare(shape)
        request, output = self.compiled[shape]
        return np.array(request.infer({0: batch})[output])  # copy: the request reuses its output buffer


def compile_config(threads: int, manifest: dict[str, Any]) -> dict[str, object]:
    """The CPU compile config of an artifact (the runtime, equal-resolution timing)."""
    config: dict[str, object] = {}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    precision = manifest.get("runtime_hints", {}).get("openvino_inference_precision")
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


class OpenVinoRuntime(Runtime):
    backend = "openvino"
    device = "CPU"

    def _load(self) -> None:
        self.compiler = StaticShapeCompiler(self.model_path, self.device, compile_config(self.threads, self.manifest))
        # Compile batch 1 now (what devices run), so a broken or unsupported IR fails at load.
        dims = (self.manifest.get("inputs") or [{}])[0].get("shape") or []
        if len(dims) > 1 and all(isinstance(d, int) for d in dims[1:]):
            self.compiler.prepare((1, *dims[1:]))
        else:
            self.compiler.core.read_model(str(self.model_path))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.compiler(batch)
