"""onnxruntime artifacts (`.onnx`), for artifact_runtime.py. numpy + onnxruntime only.

Options: `threads` (intra-op threads, 0 = onnxruntime's default) and `providers` (execution providers
in order, default CPUExecutionProvider; the first one available here is used, else the CPU).
The manifest's `runtime_hints.ort_graph_optimization` is honoured (the level parity was checked at).
Also here: `open_resized` (the model at another input size: equal-resolution timing) and `roof_gemms`
(onnxruntime's fp32 and int8 GEMMs of the machine's roof, gemm_roof.py); both build their ONNX bytes
with onnx_proto.py beside this file, so neither needs the `onnx` package.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from typing import Callable, Dict, List, Optional

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


def _onnx_proto():
    """onnx_proto.py beside this file, loaded by path once (as artifact_runtime.load_sibling names it)."""
    name = "edgeclip_device_onnx_proto"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                         "onnx_proto.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        sys.modules[name] = module
    return sys.modules[name]


def chosen_providers(options) -> List[str]:
    """The execution providers asked for (`options.providers`, in order) that this onnxruntime has, else the CPU."""
    import onnxruntime as ort

    wanted = str(getattr(options, "providers", None) or "CPUExecutionProvider")
    available = ort.get_available_providers()
    return [p for p in (p.strip() for p in wanted.split(",")) if p and p in available] or ["CPUExecutionProvider"]


GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider", "MIGraphXExecutionProvider",
                 "DmlExecutionProvider")


def accelerator(provider: str) -> Optional[str]:
    """What a row timed with this provider ran on when not the CPU (its speed is then no CPU roof's)."""
    if provider == "CPUExecutionProvider":
        return None
    return f"GPU ({provider})" if provider in GPU_PROVIDERS else provider


def ort_session(model, options_, providers: List[str]):
    import onnxruntime as ort

    return ort.InferenceSession(model, options_, providers=providers)


def _session(model: bytes, model_dir: str, external: bool, options_, providers: List[str]):
    if not external:
        return ort_session(model, options_, providers)
    # Weights in files beside the model are read relative to the model file, and onnxruntime refuses a
    # path that leaves its folder (links included) or a model given as bytes (before 1.17): the resized
    # model is written into a temporary folder with copies of the original folder's files (a student's
    # weights: megabytes), never into the artifact itself.
    with tempfile.TemporaryDirectory(prefix="edgeclip-resized-") as work:
        for entry in os.listdir(model_dir):
            if os.path.isfile(os.path.join(model_dir, entry)):
                shutil.copy(os.path.join(model_dir, entry), os.path.join(work, entry))
        path = os.path.join(work, "resized.onnx")
        with open(path, "wb") as handle:
            handle.write(model)
        return ort_session(path, options_, providers)


def open_resized(model_path: str, size: int, threads: int, manifest: dict, options=None):
    """run(batch) of the model with its image input made size x size (edgeclip's equal-resolution timing,
    here and on the device: the ONNX is rewritten with onnx_proto.py, so the `onnx` package is not needed).
    `options.providers` as for the artifact itself, so the student runs where its native timing ran."""
    with open(str(model_path), "rb") as handle:
        model, external = _onnx_proto().resize_image_input(handle.read(), size)
    level = (manifest.get("runtime_hints") or {}).get("ort_graph_optimization", "all")
    session = _session(model, os.path.dirname(os.path.abspath(str(model_path))), external,
                       session_options(threads, level), chosen_providers(options))
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def roof_gemms(threads: int) -> Dict[str, Dict[str, Callable]]:
    """The GEMMs of the machine's roof run by onnxruntime (gemm_roof.py): {precision: {library: setup(a, b) -> call}}.
    u8 activations x s8 weights is onnxruntime's fast int8 GEMM on x86 (VNNI/AMX when present)."""
    def setup(op: str, input_type):
        def make(a: np.ndarray, b: np.ndarray):
            session = ort_session(_onnx_proto().gemm_model(op, b), session_options(threads, "all"), ["CPUExecutionProvider"])
            feed = {"A": np.ascontiguousarray(a, dtype=input_type)}
            return lambda: session.run(None, feed)
        return make

    return {"fp32": {"onnxruntime": setup("MatMul", np.float32)},
            "int8": {"onnxruntime MatMulInteger u8s8": setup("MatMulInteger", np.uint8),
                     "onnxruntime QLinearMatMul u8s8": setup("QLinearMatMul", np.uint8)}}


class OnnxModel:
    def __init__(self, path: str, manifest: dict, options) -> None:
        import onnxruntime as ort

        level = (manifest.get("runtime_hints") or {}).get("ort_graph_optimization", "all")
        session_options_ = session_options(int(getattr(options, "threads", 0) or 0), level)
        chosen = chosen_providers(options)
        self.session = ort.InferenceSession(path, session_options_, providers=chosen)
        self.accelerator = accelerator(chosen[0])
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_shape = list(first.shape)
        self.dtype = _INPUT_TYPES.get(first.type, np.float32)
        self.library = f"onnxruntime {ort.__version__} ({chosen[0]}, graph optimisation {level})"

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch.astype(self.dtype, copy=False)})[0]


def open_model(path: str, manifest: dict, options) -> OnnxModel:
    return OnnxModel(path, manifest, options)
