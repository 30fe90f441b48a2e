"""Exported artifacts on the device (through the device runtime layer) and the model directory.

Torch-free and edgeclip-free: part of the device demo package.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import sys
from types import ModuleType

from .frames import InputError

MODEL_FILE = "accident_model.json"
MODEL_FORMAT = "edgeclip-accident-model"
RUNTIME_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runtime")


def runtime_layer() -> ModuleType:
    """The device runtime layer (edgeclip's devices/runner/artifact_runtime.py, reached through the
    `runtime` link in this folder, which copies of the folder carry as files): the demo opens
    artifacts exactly as the device runner and edgeclip's own runtimes do."""
    name = "edgeclip_device_artifact_runtime"  # the name edgeclip's paths.runner_module gives it: one instance
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(RUNTIME_DIR, "artifact_runtime.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        sys.modules[name] = module
    return sys.modules[name]


class Model:
    """One exported artifact (manifest.json + model file) run with its backend's runtime."""

    def __init__(self, artifact_dir: str, threads: int = 0, providers: str = "CPUExecutionProvider") -> None:
        layer = runtime_layer()
        backend = "its"
        try:
            self.manifest = layer.read_manifest(artifact_dir)
            backend = str(self.manifest.get("backend"))
            options = layer.RuntimeOptions(threads=threads, providers=providers, tool_fallback=False)
            model = layer.open_artifact(artifact_dir, options, self.manifest)
        except ImportError as exc:
            raise InputError(f"the {backend} runtime is not installed here ({exc}); install it to run {artifact_dir}") from None
        except (RuntimeError, ValueError) as exc:  # the layer's ArtifactError, a runtime refusing the model
            raise InputError(f"cannot run {artifact_dir} ({exc})") from None
        self.backend = backend
        self.input_name = model.input_name
        self.run = model.run


# -- the model directory --------------------------------------------------------------------------
def read_model_dir(model_dir: str) -> dict:
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.isdir(model_dir):
        raise InputError(f"model directory {model_dir} does not exist; pass the run directory of `edgeclip video train`")
    if not os.path.isfile(path):
        raise InputError(f"{model_dir} has no temporal head ({MODEL_FILE} is missing); train one with "
                         f"`edgeclip video train --clips LIST --encoder SPEC --out {model_dir}`")
    try:
        with open(path) as handle:
            config = json.load(handle)
    except ValueError as exc:
        raise InputError(f"{path} is corrupt ({exc}); re-run `edgeclip video export`") from None
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise InputError(f"{path} is not an edgeclip accident model; re-run `edgeclip video export`")
    return config


def find_artifact(model_dir: str, config: dict, part: str, backend: str, precision: str | None) -> str:
    """`artifacts/<part>-<backend>-<precision>`; precision None → fp32 if present, else the only one."""
    found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(model_dir, "artifacts", f"{part}-{backend}-*"))
                   if os.path.isfile(os.path.join(p, "manifest.json")))
    wanted = [f"{part}-{backend}-{precision}"] if precision else [f"{part}-{backend}-fp32", *found[:1]]
    for name in wanted:
        if name in found:
            return os.path.join(model_dir, "artifacts", name)
    what = "temporal head" if part == "head" else "image encoder"
    have = ", ".join(found) or "none"
    raise InputError(f"{model_dir} has no exported {what} for {backend}{'-' + precision if precision else ''} "
                     f"(found: {have}); run `edgeclip video export --model {model_dir} --backend {backend}`")
