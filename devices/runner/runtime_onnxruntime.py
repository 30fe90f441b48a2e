"""onnxruntime artifacts (`.onnx`), for artifact_runtime.py. numpy + onnxruntime only.

Options: `threads` (intra-op threads, 0 = onnxruntime's default) and `providers` (execution providers
in order, default CPUExecutionProvider; the first one available here is used, else the CPU).
The manifest's `runtime_hints.ort_graph_optimization` is honoured (the level parity was checked at).
"""

from __future__ import annotations

import numpy as np

_LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
_INPUT_TYPES = {"tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
                "tensor(uint8)": np.uint8}  # uint8: raw frames of a fused-preprocessing artifact


def session_options(threads: int, level: str = "all"):
    """The SessionOptions every edgeclip onnxruntime session uses (runtime, runner, equal-resolution timing)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Spinning worker threads keep cores busy between calls; in an interleaved benchmark that
    # steals time from whichever model runs next, so ratios between models would be unfair.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
    return options


def open_resized(model_path: str, size: int, threads: int, manifest: dict):
    """run(batch) of the model with its image input made size x size (edgeclip's equal-resolution timing;
    needs the onnx package, so it runs on the workstation, never on the device)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = size, size
    del model.graph.value_info[:]  # intermediate shapes were inferred for the native size
    for output in model.graph.output:
        output.type.tensor_type.ClearField("shape")
    level = (manifest.get("runtime_hints") or {}).get("ort_graph_optimization", "all")
    session = ort.InferenceSession(model.SerializeToString(), session_options(threads, level),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


class OnnxModel:
    def __init__(self, path: str, manifest: dict, options) -> None:
        import onnxruntime as ort

        level = (manifest.get("runtime_hints") or {}).get("ort_graph_optimization", "all")
        session_options_ = session_options(int(getattr(options, "threads", 0) or 0), level)
        wanted = str(getattr(options, "providers", None) or "CPUExecutionProvider")
        available = ort.get_available_providers()
        chosen = [p for p in (p.strip() for p in wanted.split(",")) if p and p in available] or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(path, session_options_, providers=chosen)
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_shape = list(first.shape)
        self.dtype = _INPUT_TYPES.get(first.type, np.float32)
        self.library = f"onnxruntime {ort.__version__} ({chosen[0]}, graph optimisation {level})"

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch.astype(self.dtype, copy=False)})[0]


def open_model(path: str, manifest: dict, options) -> OnnxModel:
    return OnnxModel(path, manifest, options)
