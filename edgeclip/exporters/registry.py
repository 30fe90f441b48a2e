"""The backend table (ultralytics/optimum style): one declarative row per export backend.

Torch-free on purpose: `edgeclip list backends` and the runtimes read this table without paying
for a torch import. Each row points at its exporter module by import path; it is imported only
when that backend is used.
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


@dataclass(frozen=True)
class BackendInfo:
    """What a backend produces, what it needs, and where its final artifact must be built."""

    name: str
    suffix: str  # main model file suffix inside the artifact dir
    precisions: tuple[str, ...]
    export_module: str  # python module needed to *export* (import name)
    runtime_module: str  # python module needed to *run* the artifact
    exporter: str  # "package.module:function" implementing the export
    build_where: str  # "here" or "target" (TensorRT engines are built on the device that runs them)
    runs_on: str  # human description of where the artifact runs
    notes: str = ""

    def module_installed(self, module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    @property
    def can_export_here(self) -> bool:
        return self.module_installed(self.export_module)

    @property
    def can_run_here(self) -> bool:
        """Runtime importable and the hardware it needs present (the one place that decides)."""
        if self.name == "coreml" and platform.system() != "Darwin":
            return False  # coremltools converts on Linux, but prediction needs macOS
        if not self.module_installed(self.runtime_module):
            return False
        if self.name == "tensorrt":
            try:
                import torch

                return bool(torch.cuda.is_available())
            except ImportError:  # tensorrt without torch: trust the import
                return True
        return True

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise UserError(
                f"backend '{self.name}' does not support precision '{precision}'; "
                f"use one of: {', '.join(self.precisions)}"
            )

    def load_exporter(self) -> Callable[..., Any]:
        if not self.can_export_here:
            raise UserError(
                f"backend '{self.name}' needs the python package '{self.export_module}', which is not installed; "
                f"install the edgeclip extra for it (pip install 'edgeclip[{self.name}]')"
            )
        module_name, func_name = self.exporter.split(":")
        return getattr(importlib.import_module(module_name), func_name)


BACKENDS: Registry[BackendInfo] = Registry("backend", "edgeclip list backends")

for _info in (
    BackendInfo(
        name="onnx", suffix=".onnx", precisions=("fp32", "fp16", "int8"),
        export_module="onnx", runtime_module="onnxruntime",
        exporter="edgeclip.exporters.onnx_export:export", build_where="here",
        runs_on="any CPU/GPU with onnxruntime",
        notes="int8: static QDQ (calibrated) for CNNs, dynamic for transformers",
    ),
    BackendInfo(
        name="openvino", suffix=".xml", precisions=("fp32", "fp16", "int8"),
        export_module="openvino", runtime_module="openvino",
        exporter="edgeclip.exporters.openvino_export:export", build_where="here",
        runs_on="Intel CPU/GPU/NPU",
        notes="int8 via NNCF post-training quantization on calibration images",
    ),
    BackendInfo(
        name="coreml", suffix=".mlpackage", precisions=("fp32", "fp16"),
        export_module="coremltools", runtime_module="coremltools",
        exporter="edgeclip.exporters.coreml_export:export", build_where="here",
        runs_on="Apple (macOS/iOS); prediction needs macOS",
        notes="mlprogram via torch.export; parity check only on macOS",
    ),
    BackendInfo(
        name="tensorrt", suffix=".onnx", precisions=("fp32", "fp16", "int8"),
        export_module="onnx", runtime_module="tensorrt",
        exporter="edgeclip.exporters.tensorrt_export:export", build_where="target",
        runs_on="NVIDIA GPU/Jetson",
        notes="writes TensorRT-ready ONNX + build kit; engine built on the target (export/tensorrt/build_engine.sh)",
    ),
):
    BACKENDS.register(_info.name, _info)


def get_backend(name: str) -> BackendInfo:
    """The backend row; unknown names raise a UserError listing the known backends."""
    return BACKENDS.get(name)


def list_backends() -> list[dict[str, Any]]:
    """Rows for `edgeclip list backends` (one dict per backend; booleans and lists, formatted by the caller)."""
    rows = []
    for name, info in BACKENDS.items():
        rows.append({
            "name": name,
            "suffix": info.suffix,
            "precisions": list(info.precisions),
            "needs": info.export_module,
            "exports_here": info.can_export_here,
            "runs_here": info.can_run_here,
            "build_where": "on the target device" if info.build_where == "target" else "here",
            "runs_on": info.runs_on,
            "notes": info.notes,
        })
    return rows
