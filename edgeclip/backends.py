"""The backend table: one row per deployment backend, the only place facts about a backend live.

Like ultralytics' `export_formats()`: exporters, runtimes, target profiles, the benchmark harness,
the int8 recipe choice and the manifests written for the on-device runner all read this table.
Adding a backend = one row here + its exporter module (`exporters/<name>_export.py`) and its
runtime module (`runtimes/<name>_runtime.py`).

Torch-free and import-light on purpose: `edgeclip list backends`, target profiles and the
runtimes read it on machines without torch. Exporters, runtimes and int8 choosers are named by
import path and imported only when used.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
from dataclasses import dataclass
from typing import Any, Callable

from edgeclip.errors import UserError
from edgeclip.registry import Registry

PRECISIONS = ("fp32", "fp16", "int8")


def _load(path: str) -> Any:
    module_name, attribute = path.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda_present() -> bool:
    try:
        import torch
    except ImportError:  # a device with tensorrt but no torch: trust the tensorrt import
        return True
    return bool(torch.cuda.is_available())


# Hardware/OS a backend's runtime needs besides its python module: name -> (check, what to say).
REQUIREMENTS: dict[str, tuple[Callable[[], bool], str]] = {
    "macos": (lambda: platform.system() == "Darwin", "prediction needs macOS"),
    "cuda": (_cuda_present, "needs an NVIDIA GPU (CUDA)"),
}


@dataclass(frozen=True)
class Backend:
    """What a backend produces, what it needs, and where its final artifact must be built and run."""

    name: str
    precisions: tuple[str, ...]
    exporter: str  # "package.module:function" implementing the export
    runtime: str  # "package.module:Class" loading and running an artifact
    export_module: str  # python module needed to export
    runtime_module: str  # python module needed to run (recorded in manifests for the device runner)
    model_suffix: str  # the main model file's suffix inside an artifact
    extra: str  # the `pip install 'edgeclip[<extra>]'` that brings export_module
    uses_opset: bool  # exported through ONNX, so the manifest records the opset
    memory_measurable: bool  # the standalone runner can measure its peak memory in a subprocess here
    int8_method: str | None  # "module:function" choosing the int8 recipe; None = no int8
    build_where: str  # "here" or "target" (TensorRT engines are built on the device that runs them)
    runs_on: str  # human description of where the artifact runs
    requires: tuple[str, ...] = ()  # keys of REQUIREMENTS
    notes: str = ""

    @property
    def can_export_here(self) -> bool:
        return _installed(self.export_module)

    @property
    def can_run_here(self) -> bool:
        """Runtime importable and the hardware/OS it needs present (the one place that decides)."""
        return _installed(self.runtime_module) and all(REQUIREMENTS[r][0]() for r in self.requires)

    def why_not_here(self) -> str:
        """Why artifacts of this backend cannot run on this machine ("" when they can)."""
        if not _installed(self.runtime_module):
            return f"{self.runtime_module} is not installed here"
        missing = [REQUIREMENTS[r][1] for r in self.requires if not REQUIREMENTS[r][0]()]
        return "; ".join(missing)

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise UserError(f"backend '{self.name}' does not support precision '{precision}'; "
                            f"use one of: {', '.join(self.precisions)}")

    def load_exporter(self) -> Callable[..., Any]:
        if not self.can_export_here:
            raise UserError(f"backend '{self.name}' needs the python package '{self.export_module}', which is not "
                            f"installed; install the edgeclip extra for it (pip install 'edgeclip[{self.extra}]')")
        return _load(self.exporter)

    def load_runtime(self) -> type:
        return _load(self.runtime)

    def choose_int8_method(self, *, kind: str, transformer: bool, has_calibration: bool) -> str:
        """The int8 recipe for this backend, model kind and architecture (see compress/quantize.py)."""
        if self.int8_method is None:
            raise UserError(f"backend '{self.name}' has no int8 path; use one of: {', '.join(self.precisions)}")
        return _load(self.int8_method)(kind=kind, transformer=transformer, has_calibration=has_calibration)


BACKENDS: Registry[Backend] = Registry("backend", "edgeclip list backends")

for _row in (
    Backend(
        name="onnx", precisions=("fp32", "fp16", "int8"),
        exporter="edgeclip.exporters.onnx_export:export", runtime="edgeclip.runtimes.onnxruntime_runtime:OnnxRuntime",
        export_module="onnx", runtime_module="onnxruntime", model_suffix=".onnx", extra="all",
        uses_opset=True, memory_measurable=True, int8_method="edgeclip.compress.quantize:onnx_int8_method",
        build_where="here", runs_on="any CPU/GPU with onnxruntime",
        notes="int8: static QDQ (calibrated) for CNNs, dynamic for transformers",
    ),
    Backend(
        name="openvino", precisions=("fp32", "fp16", "int8"),
        exporter="edgeclip.exporters.openvino_export:export", runtime="edgeclip.runtimes.openvino_runtime:OpenVinoRuntime",
        export_module="openvino", runtime_module="openvino", model_suffix=".xml", extra="openvino",
        uses_opset=True, memory_measurable=True, int8_method="edgeclip.compress.quantize:openvino_int8_method",
        build_where="here", runs_on="Intel CPU/GPU/NPU",
        notes="int8 via NNCF post-training quantization on calibration images",
    ),
    Backend(
        name="coreml", precisions=("fp32", "fp16"),
        exporter="edgeclip.exporters.coreml_export:export", runtime="edgeclip.runtimes.coreml_runtime:CoreMLRuntime",
        export_module="coremltools", runtime_module="coremltools", model_suffix=".mlpackage", extra="coreml",
        uses_opset=False, memory_measurable=False, int8_method=None,
        build_where="here", runs_on="Apple (macOS/iOS); prediction needs macOS", requires=("macos",),
        notes="mlprogram via torch.export; parity check only on macOS",
    ),
    Backend(
        name="tensorrt", precisions=("fp32", "fp16", "int8"),
        exporter="edgeclip.exporters.tensorrt_export:export", runtime="edgeclip.runtimes.tensorrt_runtime:TensorRTRuntime",
        export_module="onnx", runtime_module="tensorrt", model_suffix=".engine", extra="all",
        uses_opset=True, memory_measurable=False, int8_method="edgeclip.compress.quantize:tensorrt_int8_method",
        build_where="target", runs_on="NVIDIA GPU/Jetson", requires=("cuda",),
        notes="writes TensorRT-ready ONNX + build kit; engine built and checked on the target (export/tensorrt/)",
    ),
):
    BACKENDS.register(_row.name, _row)


def get_backend(name: str) -> Backend:
    """The backend row; unknown names raise a UserError listing the known backends."""
    return BACKENDS.get(name)


def list_backends() -> list[dict[str, Any]]:
    """Rows for `edgeclip list backends` (one dict per backend; formatted by the caller)."""
    return [{
        "name": name,
        "suffix": row.model_suffix,
        "precisions": list(row.precisions),
        "needs": row.export_module,
        "exports_here": row.can_export_here,
        "runs_here": row.can_run_here,
        "build_where": "on the target device" if row.build_where == "target" else "here",
        "runs_on": row.runs_on,
        "notes": row.notes,
    } for name, row in BACKENDS.items()]
