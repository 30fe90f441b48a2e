"""Open an exported edgeclip artifact (manifest.json + model file) with its backend's runtime.

The one torch-free runtime layer: the device runner (edgeclip_runner.py), the dashcam accident
demo and edgeclip's own runtimes (`edgeclip.runtimes`) all open artifacts through it, so a model
runs the same way on the workstation, in the parity check at export and on the device. Python 3.8+,
numpy and the artifact's runtime only — no torch, no edgeclip: it ships to the device beside the runner.

Which runtime opens an artifact is the manifest's `runtime_module` (written from edgeclip's backend
table). Its code is `runtime_<runtime_module>.py` beside this file, which defines

    open_model(path, manifest, options) -> model   # .run(batch) -> first output, .input_name,
                                                   # .input_shape, .library (a one-line description)
    runnable_file(manifest) -> str                 # optional: the file that runs (default: model_file)
    missing_hint(artifact_dir) -> str              # optional: what to do when that file is missing
    versions(options) -> dict                      # optional: library versions for the environment line

`options` is any object with attributes (the runner's argparse namespace, `RuntimeOptions` here);
each runtime reads the ones it knows with a default. Nothing in this file names a backend.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from types import ModuleType
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME_PREFIX = "runtime_"


class ArtifactError(RuntimeError):
    """An artifact this device cannot open as it is (missing files, unknown runtime); the message names the fix."""


class RuntimeOptions:
    """How to run: `threads` (0 = the runtime's default), `tool_fallback` (a runtime may fall back to an
    external tool run once per call, e.g. trtexec: fine for a benchmark, too slow for a live demo) and
    any runtime-specific setting by keyword (onnxruntime `providers`, OpenVINO `openvino_device`,
    TensorRT `trtexec`)."""

    def __init__(self, threads: int = 0, tool_fallback: bool = True, **settings: Any) -> None:
        self.threads = int(threads)
        self.tool_fallback = bool(tool_fallback)
        self.__dict__.update(settings)


def load_sibling(file_name: str) -> ModuleType:
    """A module of this folder, loaded by path once, as `edgeclip_device_<stem>` (the name edgeclip's
    `paths.runner_module` gives it too, so host and device share one instance)."""
    name = "edgeclip_device_" + os.path.splitext(file_name)[0]
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file_name))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def runtime_names() -> List[str]:
    """The runtime modules this folder can open (one `runtime_<name>.py` each)."""
    return sorted(name[len(RUNTIME_PREFIX):-3] for name in os.listdir(HERE)
                  if name.startswith(RUNTIME_PREFIX) and name.endswith(".py"))


def runtime(runtime_module: str) -> ModuleType:
    """The device-side code for a manifest's `runtime_module`."""
    if runtime_module not in runtime_names():
        raise ArtifactError(f"this runner cannot open runtime '{runtime_module}' (manifest runtime_module); "
                            "re-export with this edgeclip or run the artifact where its runtime is")
    return load_sibling(f"{RUNTIME_PREFIX}{runtime_module}.py")


def read_manifest(artifact_dir: str) -> dict:
    path = os.path.join(artifact_dir, "manifest.json")
    if not os.path.isfile(path):
        raise ArtifactError(f"no manifest.json in {artifact_dir}; copy the whole artifact directory from `edgeclip export`")
    with open(path) as handle:
        manifest = json.load(handle)
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} is not a JSON object; re-export the artifact with `edgeclip export`")
    return manifest


def model_file(artifact_dir: str, manifest: dict) -> str:
    """Path of the file the artifact's runtime runs (the model file, or e.g. a TensorRT engine built on the device)."""
    code = runtime(str(manifest.get("runtime_module")))
    named = code.runnable_file(manifest) if hasattr(code, "runnable_file") else manifest.get("model_file")
    if not named:
        raise ArtifactError(f"the manifest in {artifact_dir} names no model_file; re-export it with `edgeclip export`")
    path = os.path.join(artifact_dir, str(named))
    if not os.path.exists(path):
        hint = code.missing_hint(artifact_dir) if hasattr(code, "missing_hint") else "re-export it with `edgeclip export`"
        raise ArtifactError(f"model file {path} named in {os.path.join(artifact_dir, 'manifest.json')} is missing; {hint}")
    return path


def open_model(path: str, manifest: dict, options: Any) -> Any:
    """`path` (from `model_file`) run with the runtime the manifest names."""
    return runtime(str(manifest.get("runtime_module"))).open_model(path, manifest, options)


def open_artifact(artifact_dir: str, options: Any = None, manifest: dict = None) -> Any:
    """The artifact in `artifact_dir` (its manifest, when the caller has read it already), loaded with its
    backend's runtime; `.manifest` is its manifest."""
    manifest = read_manifest(artifact_dir) if manifest is None else manifest
    model = open_model(model_file(artifact_dir, manifest), manifest, options or RuntimeOptions())
    model.manifest = manifest
    return model


def import_library(runtime_module: str) -> None:
    """Import a runtime's library now (the runner's memory baseline then counts it); a missing one is
    left for open_model to report."""
    if runtime_module in runtime_names():
        try:
            __import__(runtime_module)
        except ImportError:
            pass


def library_versions(options: Any) -> Dict[str, str]:
    """Versions of the runtimes installed here (for the runner's environment line)."""
    versions: Dict[str, str] = {}
    for name in runtime_names():
        code = runtime(name)
        try:
            versions.update(code.versions(options) if hasattr(code, "versions") else {name: __import__(name).__version__})
        except Exception:  # noqa: BLE001 - a runtime that is absent or broken here is simply not listed
            pass
    return versions
