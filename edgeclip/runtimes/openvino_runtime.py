"""OpenVINO on CPU, threads via INFERENCE_NUM_THREADS. Needs no torch."""

from __future__ import annotations

import numpy as np

from edgeclip.runtimes.base import Runtime


class OpenVinoRuntime(Runtime):
    backend = "openvino"
    device = "CPU"

    def _load(self) -> None:
        import openvino as ov

        core = ov.Core()
        config: dict[str, object] = {}
        if self.threads > 0:
            config["INFERENCE_NUM_THREADS"] = self.threads
        precision = self.manifest.get("runtime_hints", {}).get("openvino_inference_precision")
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        model = core.read_model(str(self.model_path))
        self.compiled = core.compile_model(model, self.device, config)
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.outputs[0]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: batch})
        return np.array(result[self.output])  # copy: the request reuses its output buffer
