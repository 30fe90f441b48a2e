"""The backend table: one row per deployment backend, the only place facts about a backend live.

Like ultralytics' `export_formats()`: exporters, runtimes, target profiles, the benchmark harness,
the int8 recipe choice and the manifests written for the on-device runner all read this table.
Adding a backend = one row here + its exporter module (`exporters/<name>_export.py`) + its
device-side runtime (`devices/runner/runtime_<runtime_module>.py`, which the device runner, the
accident demo and `edgeclip.runtimes` all run artifacts with) — see docs/ARCHITECTURE.md.

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
from edgeclip.paths import runner_dir
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
    export_module: str  # python module needed to export
    runtime_module: str  # python module needed to run (recorded in manifests: the device layer opens the artifact
    #                      with devices/runner/runtime_<runtime_module>.py)
    model_suffix: str  # the main model file's suffix inside an artifact
    extra: str  # the `pip install 'edgeclip[<extra>]'` that brings export_module
    uses_opset: bool  # exported through ONNX, so the manifest records the opset
    memory_measurable: bool  # the standalone runner can measure its peak memory in a subprocess here
    int8_method: str | None  # "module:function" choosing the int8 recipe; None = no int8
    build_where: str  # "here" or "target" (TensorRT engines are built on the device that runs them)
    runs_on: str  # human description of where the artifact runs
    tools: tuple[str, ...]  # distributions whose versions go into every manifest and report (they change the model/timing)
    # "package.module:Class" loading and running an artifact here; the default runs it with the device layer
    runtime: str = "edgeclip.runtimes.base:ArtifactRuntime"
    requires: tuple[str, ...] = ()  # keys of REQUIREMENTS
    report_tools: tuple[str, ...] = ()  # more distributions a report's environment lists (a GPU build of the runtime)
    version_key: str | None = None  # target-profile / recipe `target.` key pinning the runtime version artifacts are written for
    version_parser: str | None = None  # "module:function" normalising that version (unknown -> UserError)
    precision_evidence: str | None = None  # "module:function(model_path) -> {int8, fp16?}" read from the model file
    notes: str = ""

    @property
    def built_on_target(self) -> bool:
        """The final artifact (an engine) is built on the device: this machine can neither time nor tune it."""
        return self.build_where == "target"

    @property
    def runs_on_any_cpu(self) -> bool:
        """Runs on a plain CPU host (no GPU, no particular OS), where its artifact is built."""
        return not self.requires and not self.built_on_target

    @property
    def has_device_runtime(self) -> bool:
        """The device layer (devices/runner/) can open its artifacts: the runner and the accident demo run it."""
        return (runner_dir() / f"runtime_{self.runtime_module}.py").is_file()

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

    def parse_version(self, version: Any) -> str:
        """`version` normalised by the backend's parser (it pins the runtime version its artifacts are written for)."""
        if self.version_parser is None:
            raise UserError(f"backend '{self.name}' takes no runtime version; drop the version setting")
        return _load(self.version_parser)(version)

    def precision_evidence_of(self, model_path: Any) -> dict[str, bool] | None:
        """What the model file says about its precision (None: this backend has no reader, or it found nothing)."""
        return _load(self.precision_evidence)(model_path) if self.precision_evidence else None

    def choose_int8_method(self, *, kind: str, transformer: bool, has_calibration: bool) -> str:
        """The int8 recipe for this backend, model kind and architecture (see compress/quantize.py)."""
        if self.int8_method is None:
            raise UserError(f"backend '{self.name}' has no int8 path; use one of: {', '.join(self.precisions)}")
        return _load(self.int8_method)(kind=kind, transformer=transformer, has_calibration=has_calibration)


BACKENDS: Registry[Backend] = Registry("backend", "edgeclip list backends")

for _row in (
    Backend(
        name="onnx", precisions=("fp32", "fp16", "int8"),
        exporter="edgeclip.exporters.onnx_export:export",
        export_module="onnx", runtime_module="onnxruntime", model_suffix=".onnx", extra="all",
        uses_opset=True, memory_measurable=True, int8_method="edgeclip.compress.quantize:onnx_int8_method",
        build_where="here", runs_on="any CPU/GPU with onnxruntime",
        tools=("onnx", "onnxruntime"), report_tools=("onnxruntime-gpu",),
        precision_evidence="edgeclip.bench.model_precision:onnx_evidence",
        notes="int8: static QDQ (calibrated) for CNNs, dynamic for transformers",
    ),
    Backend(
        name="openvino", precisions=("fp32", "fp16", "int8"),
        exporter="edgeclip.exporters.openvino_export:export",
        export_module="openvino", runtime_module="openvino", model_suffix=".xml", extra="openvino",
        uses_opset=True, memory_measurable=True, int8_method="edgeclip.compress.quantize:openvino_int8_method",
        build_where="here", runs_on="Intel CPU/GPU/NPU", tools=("openvino", "nncf"),
        precision_evidence="edgeclip.bench.model_precision:openvino_evidence",
        notes="int8 via NNCF post-training quantization on calibration images",
    ),
    Backend(
        name="coreml", precisions=("fp32", "fp16"),
        exporter="edgeclip.exporters.coreml_export:export", runtime="edgeclip.runtimes.coreml_runtime:CoreMLRuntime",
        export_module="coremltools", runtime_module="coremltools", model_suffix=".mlpackage", extra="coreml",
        uses_opset=False, memory_measurable=False, int8_method=None,
        build_where="here", runs_on="Apple (macOS/iOS); prediction needs macOS", requires=("macos",),
        tools=("coremltools",),
        notes="mlprogram via torch.export; parity check only on macOS",
    ),
    Backend(
        name="tensorrt", precisions=("fp32", "fp16", "int8"),
        exporter="edgeclip.exporters.tensorrt_export:export", runtime="edgeclip.runtimes.tensorrt_runtime:TensorRTRuntime",
        export_module="onnx", runtime_module="tensorrt", model_suffix=".engine", extra="all",
        uses_opset=True, memory_measurable=False, int8_method="edgeclip.compress.quantize:tensorrt_int8_method",
        build_where="target", runs_on="NVIDIA GPU/Jetson", requires=("cuda",), tools=("tensorrt",),
        version_key="tensorrt", version_parser="edgeclip.exporters.tensorrt_support:normalize_version",
        notes="writes TensorRT-ready ONNX + build kit; engine built and checked on the target (export/tensorrt/)",
    ),
):
    BACKENDS.register(_row.name, _row)


def get_backend(name: str) -> Backend:
    """The backend row; unknown names raise a UserError listing the known backends."""
    return BACKENDS.get(name)


def backend_tools() -> tuple[str, ...]:
    """Every backend's tool distributions, in table order (manifests record their versions)."""
    return tuple(tool for _, row in BACKENDS.items() for tool in row.tools)


def report_tools() -> tuple[str, ...]:
    """The distributions a report's environment lists for the backends (each row's tools, then its extra builds)."""
    return tuple(tool for _, row in BACKENDS.items() for tool in (*row.tools, *row.report_tools))


def device_backends() -> list[str]:
    """Backends the device layer runs (the accident demo's and the device runner's choices)."""
    return [name for name, row in BACKENDS.items() if row.has_device_runtime]


def cpu_backends() -> list[str]:
    """Backends whose artifacts run on any CPU host without a device (table order = preference)."""
    return [name for name, row in BACKENDS.items() if row.runs_on_any_cpu and row.has_device_runtime]


def int8_backends() -> list[str]:
    """Backends with an int8 path (`edgeclip compress --backend` choices)."""
    return [name for name, row in BACKENDS.items() if row.int8_method]


def versioned_backends() -> list[Backend]:
    """Rows whose artifacts are written for a pinned runtime version (a target profile key names it)."""
    return [row for _, row in BACKENDS.items() if row.version_key]


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
