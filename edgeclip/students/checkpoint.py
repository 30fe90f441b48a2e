"""Student checkpoints: `model.pt` (weights + how to rebuild the architecture) and `spec.json`.

`model.pt` is a plain dict of tensors, strings, numbers, lists and dicts, so it loads with
`torch.load(weights_only=True)` — no pickled code runs when a checkpoint is opened. A pruned
student also carries `structure` (students/structure.py): the layer sizes that differ from the
registered architecture, as data, replayed on the freshly built model before its weights load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_path, safe_torch_load
from edgeclip.students.registry import STUDENTS, create_student
from edgeclip.students.spec import ModelSpec
from edgeclip.students.structure import apply_structure

MODEL_FILE = "model.pt"
SPEC_FILE = "spec.json"
FORMAT = "edgeclip-student"
FORMAT_VERSION = 2  # 2: optional "structure" (pruned layer sizes); files without it are still written as 1


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    spec: ModelSpec,
    *,
    student_name: str,
    build_kwargs: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    structure: dict[str, Any] | None = None,
) -> Path:
    """Write `directory/model.pt` and `directory/spec.json` atomically; returns the model.pt path.

    `build_kwargs` are the `create_student` options that rebuild the architecture (class names,
    image size, config overrides); by default those `create_student` recorded in
    `spec.extra["build_kwargs"]`. `extra` (e.g. epoch, metrics, teacher name) must be JSON-like.
    `structure` (from `students.structure.describe_structure`) records a pruned architecture.
    """
    STUDENTS.get(student_name)  # fail now, not when someone tries to load it
    if build_kwargs is None:
        build_kwargs = dict(spec.extra.get("build_kwargs", {}))
    for label, value in (("build_kwargs", build_kwargs), ("extra", extra or {}), ("structure", structure or {})):
        try:
            json.dumps(value)
        except TypeError as err:
            raise UserError(f"checkpoint {label} must be JSON-like (numbers, strings, lists, dicts): {err}") from None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        # Readers older than the structure field must refuse a pruned checkpoint, not mis-load it.
        "format_version": FORMAT_VERSION if structure else 1,
        "student_name": student_name,
        "build_kwargs": build_kwargs,
        "extra": extra or {},
        **({"structure": structure} if structure else {}),
        # Clone so tensors that share storage (tied weights, views) are saved independently.
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    # spec.json first: model.pt is written last, so a complete-looking model.pt always has its spec.
    spec.save(directory / SPEC_FILE)
    model_path = directory / MODEL_FILE
    with atomic_path(model_path) as tmp:
        torch.save(payload, tmp)
    return model_path


def load_checkpoint(path: str | Path) -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    """Rebuild a student from a checkpoint directory (or its model.pt) and load its weights.

    Returns `(model in eval mode, spec, info)` where info has student_name, build_kwargs, extra.
    """
    path = Path(path)
    model_path = path / MODEL_FILE if path.is_dir() else path
    spec_path = model_path.parent / SPEC_FILE
    if not model_path.is_file():
        raise UserError(f"no student checkpoint at {model_path}; pass a directory written by save_checkpoint (model.pt + spec.json)")
    if not spec_path.is_file():
        raise UserError(f"{spec_path} is missing next to {model_path.name}; re-save the checkpoint with save_checkpoint")
    payload = safe_torch_load(model_path, "student checkpoint", "re-save it with save_checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{model_path} is not an edgeclip student checkpoint (no '{FORMAT}' header); save it with edgeclip's save_checkpoint")
    if not isinstance(payload.get("student_name"), str) or not isinstance(payload.get("state_dict"), dict):
        raise UserError(f"{model_path} is an incomplete edgeclip checkpoint (no student_name/state_dict); re-save it with save_checkpoint")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(f"{model_path} was written by a newer edgeclip (format {payload['format_version']}); upgrade edgeclip")
    try:
        spec = ModelSpec.load(spec_path)
    except (ValueError, TypeError, KeyError) as err:
        raise UserError(f"{spec_path} is not a valid model spec ({err}); re-save the checkpoint") from None

    name = payload["student_name"]
    model, _ = create_student(name, **payload.get("build_kwargs", {}))
    structure = payload.get("structure")
    if structure:
        if not isinstance(structure, dict):
            raise UserError(f"{model_path} has a malformed 'structure' entry; re-save the checkpoint with save_checkpoint")
        apply_structure(model, structure, payload["state_dict"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        lines = str(err).splitlines()
        first = (lines[1] if len(lines) > 1 else lines[0]).strip()
        first = first if len(first) <= 200 else first[:200] + "..."  # key lists can run to thousands of chars
        raise UserError(
            f"weights in {model_path} do not fit student '{name}' with {payload.get('build_kwargs', {})} ({first}); "
            "the checkpoint's student name or build options are wrong — re-save it with the options it was trained with"
        ) from None
    model.eval()
    info = {"student_name": name, "build_kwargs": payload.get("build_kwargs", {}), "extra": payload.get("extra", {}),
            "structure": structure or None}
    return model, spec, info
