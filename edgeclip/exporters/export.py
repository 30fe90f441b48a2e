"""`export_model`: one backend + precision → an artifact directory with a validated manifest.

The artifact is built in a temporary sibling directory and renamed into place only when export
and parity measurement finished, so a crash never leaves a complete-looking artifact.

Parity failure is not an exception: the artifact is still written (so it can be inspected and
benchmarked as a failing row), its manifest says `parity.passed: false` and `status: rejected`, and
the returned `Artifact.ok` is False. int8 whose top-1 agreement with fp32 is below the int8 bar
(compress/int8_rule.py) is `rejected` the same way. Callers decide: the CLI exits 1, the benchmark
marks the row failed (parity) or its verdict keeps fp32 (the int8 rule).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgeclip.compress.int8_rule import REJECTED, fallback_hint, judge_artifact
from edgeclip.errors import UserError
from edgeclip.exporters import parity as par
from edgeclip.exporters.common import (
    ExportResult, check_inputs, example_input, output_shape, reference_outputs,
)
from edgeclip.exporters.fused_preprocess import classic_agreement, fuse_preprocessing
from edgeclip.manifest import MANIFEST_NAME, SCHEMA_VERSION, Artifact, tool_versions
from edgeclip.backends import get_backend
from edgeclip.bench.flops import count_flops
from edgeclip.compress.smoothquant import smooth_quant_if_transformer
from edgeclip.utils import count_params, disable_mha_fastpath
from edgeclip.io_utils import atomic_dir, write_json
from edgeclip.runtimes import runtime_class
from edgeclip.students.repvgg import fold_reparameterizable
from edgeclip.students.spec import ModelSpec

REFERENCE_DIR = "reference"  # inputs + PyTorch outputs shipped for checks on the device


def checkpoint_sha256(path: str | Path) -> str:
    """sha256 of a checkpoint file, or of a checkpoint directory's files (sorted, names included)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"source checkpoint {path} does not exist; pass the checkpoint the model was loaded from")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _artifact_files(directory: Path) -> list[str]:
    files = []
    for root, _dirs, names in os.walk(directory):
        for name in names:
            if name != MANIFEST_NAME:
                files.append(str((Path(root) / name).relative_to(directory)))
    return sorted(files)


def _model_bytes(work_dir: Path, files: list[str]) -> int:
    """Bytes a deployment needs: every file but the device's check data (reference/)."""
    return sum((work_dir / f).stat().st_size for f in files if not f.startswith(REFERENCE_DIR + "/"))


def _build_manifest(
    model: nn.Module, spec: ModelSpec, backend: str, precision: str, result: ExportResult, work_dir: Path,
    source_checkpoint: str | None, opset: int,
) -> dict[str, Any]:
    files = _artifact_files(work_dir)
    size = _model_bytes(work_dir, files)
    return {
        "schema_version": SCHEMA_VERSION,
        "name": spec.name,
        "kind": spec.kind,
        "role": spec.extra.get("role", "student"),
        # Recorded here so rows measured without the PyTorch model (on a device) still show them.
        "params": count_params(model),
        "flops": count_flops(model, (example_input(spec, batch=1),)),
        "backend": backend,
        "precision": precision,
        "status": result.status,
        "next_step": result.next_step,
        "model_file": result.model_file,
        "files": files,
        "size_bytes": size,
        "inputs": [{"name": spec.input_names[0], "shape": spec.input_shape(), "dtype": spec.input_dtype}],
        "outputs": [{"name": spec.output_names[0], "shape": output_shape(model, spec), "dtype": "float32"}],
        "preprocessing": spec.preprocess.to_dict(),
        "class_names": list(spec.class_names),
        "embed_dim": spec.embed_dim,
        "context_length": spec.context_length,
        "spec": spec.to_dict(),
        "source_checkpoint": (
            {"path": str(source_checkpoint), "sha256": checkpoint_sha256(source_checkpoint)} if source_checkpoint else None
        ),
        "exporter": result.exporter,
        "opset": opset if get_backend(backend).uses_opset else None,
        # What the standalone device runner must import to run this artifact (it has no backend table).
        "runtime_module": get_backend(backend).runtime_module,
        "quantization": result.quantization or {"method": "none"},
        "runtime_hints": result.runtime_hints,
        "tool_versions": tool_versions(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **result.extra,
        "parity": par.not_run("pending", "export in progress"),
    }


def _measure_parity(
    model: nn.Module, spec: ModelSpec, precision: str, result: ExportResult, work_dir: Path,
    manifest: dict[str, Any], parity_inputs: np.ndarray | None,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """(parity record, the artifact's outputs on `parity_inputs` or None when parity did not run)."""
    if parity_inputs is None:
        return par.not_run("not_run", "no parity inputs were given"), None
    if result.parity_mode.startswith("skipped:"):
        return par.not_run("skipped", result.parity_mode.split(":", 1)[1]), None

    if result.parity_mode == "simulated":
        run, scope = result.parity_runner, result.parity_scope
    else:
        run, scope = runtime_class(manifest["backend"])(work_dir, manifest).run, f"{manifest['backend']} runtime"
    # One input at a time, as devices run it: a runtime whose batch-1 path differs from its batched
    # one (OpenVINO int8 with a dynamic batch, measured here) must fail parity, not hide behind it.
    exported = np.concatenate([run(parity_inputs[i:i + 1]) for i in range(len(parity_inputs))])
    reference = reference_outputs(model, parity_inputs)
    thresholds = par.thresholds_for(precision, spec.parity_atol, spec.parity_rtol, spec.extra.get("parity_thresholds"))
    record = par.compare_outputs(reference, exported, kind=spec.kind, precision=precision, thresholds=thresholds)
    record["scope"] = scope
    record["batch"] = 1
    if get_backend(manifest["backend"]).build_where == "target":
        _ship_reference(model, work_dir, parity_inputs, reference)
    return record, exported


def _ship_reference(model: nn.Module, work_dir: Path, inputs: np.ndarray, outputs: np.ndarray) -> None:
    """Inputs and PyTorch outputs for the device to check the artifact it builds there (the engine),
    plus edgeclip's parity rules as a standalone module, so the device judges by the same thresholds."""
    reference = work_dir / REFERENCE_DIR
    reference.mkdir(exist_ok=True)
    np.save(reference / "inputs.npy", inputs)
    np.save(reference / "outputs.npy", outputs.astype(np.float32))
    shutil.copy2(par.__file__, reference / "edgeclip_parity.py")


def export_model(
    model: nn.Module,
    spec: ModelSpec,
    backend: str,
    precision: str,
    out_dir: str | Path,
    *,
    calibration: np.ndarray | None = None,
    parity_inputs: np.ndarray | None = None,
    source_checkpoint: str | None = None,
    opset: int = 18,
    int8: Any = None,
    tensorrt: str | None = None,
    fused_preprocess: Any = None,
) -> Artifact:
    """Export `model` to `out_dir` (conventionally `.../artifacts/<backend>-<precision>/`).

    `calibration`: real preprocessed inputs for static int8 (required where the chosen method is
    static). `parity_inputs`: real preprocessed inputs to compare against PyTorch; None → parity
    "not_run". Returns the Artifact; check `artifact.ok` (False when parity failed).
    `int8` (compress.int8.Int8Options): how int8 is made (mode auto: CPU-aware weights, calibration
    choice, mixed precision from validation images, speed check); None keeps the classic methods.
    `tensorrt`: the target's TensorRT version (8.5 | 8.6 | 10.3; None = the default, 8.6) — the
    TensorRT export writes what it parses and checks every node against its operator table.
    `fused_preprocess` ('HxW' or (height, width)): the artifact takes raw uint8 RGB frames of that size
    and preprocesses them in its graph (exporters/fused_preprocess.py); `calibration`/`parity_inputs`
    are then uint8 (N, H, W, 3) frames, and the manifest also records the top-1 agreement with the
    classic path (PIL preprocessing + the unfused model) on the parity frames.
    """
    info = get_backend(backend)  # unknown backend → UserError listing known ones
    info.check_precision(precision)
    spec.check_exportable()
    unfused = model
    if fused_preprocess is not None:
        if precision == "int8":
            raise UserError("int8 with --fused-preprocess is not supported: int8 calibrates on preprocessed float "
                            "tensors; export fp32/fp16 with --fused-preprocess, or int8 without it")
        model, spec = fuse_preprocessing(model, spec, fused_preprocess)
    calibration = check_inputs(spec, calibration, "calibration")
    parity_inputs = check_inputs(spec, parity_inputs, "parity")
    exporter = info.load_exporter()
    disable_mha_fastpath()
    model = model.eval()
    # RepVGG-style students deploy with their training-time branches folded into single convs; parity
    # below still compares against `model` as trained, so a wrong fold fails the artifact.
    deployed = fold_reparameterizable(model)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as work_dir:
        extra_args: dict[str, Any] = {"int8": int8} if int8 is not None and precision == "int8" else {}
        if tensorrt is not None and info.version_key:  # the runtime version its artifacts are written for
            extra_args["tensorrt_version"] = tensorrt
        exported = deployed
        if int8 is not None and precision == "int8" and int8.smoothquant_alpha is not None and calibration is not None:
            # The smoothed copy is exported; parity still compares against the model as given.
            exported, int8.smoothing = smooth_quant_if_transformer(deployed, calibration, int8.smoothquant_alpha)
        result: ExportResult = exporter(exported, spec, precision, work_dir, calibration=calibration, opset=opset, **extra_args)
        manifest = _build_manifest(deployed, spec, backend, precision, result, work_dir, source_checkpoint, opset)
        manifest["reparameterized"] = deployed is not model
        write_json(work_dir / MANIFEST_NAME, manifest)  # runtimes load from the manifest during parity
        manifest["parity"], exported_outputs = _measure_parity(model, spec, precision, result, work_dir, manifest, parity_inputs)
        if fused_preprocess is not None:
            manifest["fused_preprocessing"] = {
                **spec.extra["fused_preprocessing"],
                "classic_agreement": (classic_agreement(unfused, spec, parity_inputs, exported_outputs)
                                      if exported_outputs is not None else None),
            }
        rejected = judge_artifact(manifest)  # compress/int8_rule.py: a failed artifact is never `ready`
        # (a TensorRT artifact stays `needs_target_build`: its failed parity already fails every row)
        if rejected and (manifest["status"] == "ready" or manifest["parity"].get("passed") is not False):
            manifest["status"] = REJECTED
            manifest["next_step"] = f"{rejected}; {fallback_hint(str(source_checkpoint or 'MODEL'), backend)}"
        manifest["files"] = _artifact_files(work_dir)  # the device reference data joined the artifact
        manifest["size_bytes"] = _model_bytes(work_dir, manifest["files"])
        write_json(work_dir / MANIFEST_NAME, manifest)
    return Artifact(out_dir, manifest)
