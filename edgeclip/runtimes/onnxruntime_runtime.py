"""onnxruntime on CPU (CPUExecutionProvider). Needs no torch: safe on a bare device."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeclip.runtimes.base import Runtime

_LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def session_options(threads: int, level: str = "all") -> Any:
    """The SessionOptions every edgeclip onnxruntime session uses (the runtime, equal-resolution timing)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Spinning worker threads keep cores busy between calls; in an interleaved benchmark that
    # steals time from whichever backend runs next, so ratios between backends would be unfair.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
    return options


class OnnxRuntime(Runtime):
    backend = "onnxruntime"

    def _load(self) -> None:
        import onnxruntime as ort

        level = self.manifest.get("runtime_hints", {}).get("ort_graph_optimization", "all")
        self.session = ort.InferenceSession(str(self.model_path), session_options(self.threads, level),
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]
