"""Deploy a dual encoder: image tower, text tower (+ tokenizer), fused zero-shot classifier.

Per backend and precision, `export_dual_encoder` writes three artifacts next to each other:

    <root>/<backend>-<precision>-image/     image (N,3,H,W) → L2-normalized embedding (N,D)
    <root>/<backend>-<precision>-text/      tokens (N,context) int64 → embedding; ships the tokenizer:
                                            bpe_simple_vocab_16e6.txt.gz + tokenizer.json (ids, templates)
    <root>/<backend>-<precision>-zeroshot/  image → logits over baked class embeddings (+ class_embeddings.npy)

With the image and text artifacts (and `devices/runner/clip_tokenizer.py`), a device classifies
with class names chosen at run time; the fused artifact needs no text tower at all. Each
artifact gets the usual manifest and parity check on real inputs; the tokenizer files are added
before the artifact directory is renamed into place, so a crash never leaves a text tower
without its tokenizer. Every tower's manifest also records its `domain` (`domain_record`: the
teacher, data, prompt templates, and what a proxy teacher was trained on).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edgeclip.backends import get_backend
from edgeclip.compress.quantize import method_needs_calibration
from edgeclip.errors import UserError
from edgeclip.exporters import export_model
from edgeclip.manifest import MANIFEST_NAME, Artifact
from edgeclip.exporters.towers import (
    FusedZeroShotClassifier, ImageTower, TextTower, image_tower_spec, text_tower_spec, zero_shot_classifier_spec,
)
from edgeclip.io_utils import atomic_dir, write_json
from edgeclip.prompt_ensemble import class_embeddings_torch
from edgeclip.students.spec import ModelSpec
from edgeclip.teacher.proxy import proxy_domain

TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
TOWERS = ("image", "text", "zeroshot")


def check_class_names(class_names: Sequence[str] | None) -> list[str]:
    names = [str(c).strip() for c in (class_names or [])]
    if not names or not all(names):
        raise UserError("the fused zero-shot classifier needs a non-empty class list without blank names; "
                        "pass --classes 'cat,dog,...' (or a data spec whose classes to use)")
    duplicates = sorted({c for c in names if names.count(c) > 1})
    if duplicates:
        raise UserError(f"class list has duplicates {duplicates}; give every class once")
    return names


@torch.no_grad()
def class_embeddings(model: nn.Module, context_length: int, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """Prompt-ensemble class embeddings with the student's own text tower (DESIGN §4.1)."""
    import open_clip

    tokenizer = open_clip.SimpleTokenizer(context_length=context_length)
    model.eval()
    return class_embeddings_torch(lambda prompts: model.encode_text(tokenizer(prompts)), class_names, templates)


def tokenizer_record(context_length: int, templates: Sequence[str]) -> dict[str, Any]:
    import open_clip

    reference = open_clip.SimpleTokenizer(context_length=context_length)
    return {"type": "clip-bpe", "vocab_file": VOCAB_FILE, "context_length": context_length,
            "sot_token_id": reference.sot_token_id, "eot_token_id": reference.eot_token_id, "pad_token_id": 0,
            "clean": "lower", "templates": list(templates),
            "reference": f"open_clip {open_clip.__version__} SimpleTokenizer; devices/runner/clip_tokenizer.py reproduces it"}


def _add_tokenizer(directory: Path, context_length: int, templates: Sequence[str]) -> None:
    from open_clip.tokenizer import default_bpe

    shutil.copyfile(default_bpe(), directory / VOCAB_FILE)
    record = tokenizer_record(context_length, templates)
    write_json(directory / TOKENIZER_FILE, record)
    _amend_manifest(directory, {"tokenizer": {**record, "file": TOKENIZER_FILE}})


def domain_record(extra: dict[str, Any], templates: Sequence[str]) -> dict[str, Any]:
    """What the towers were taught and how they are prompted, for the pages and devices that use them:
    the run's teacher, data and prompt templates, and a proxy teacher's training domain and classes
    (a digits proxy knows nothing else, so a page can say so instead of ranking "car" among digits)."""
    teacher = str(extra.get("teacher") or "") or None
    return {"teacher": teacher, "data": extra.get("data"), "template_set": extra.get("templates"),
            "templates": list(templates), "proxy": proxy_domain(teacher) if teacher else None}


def _add_class_embeddings(directory: Path, embeddings: torch.Tensor, templates: Sequence[str]) -> None:
    np.save(directory / "class_embeddings.npy", embeddings.numpy().astype(np.float32))
    _amend_manifest(directory, {"class_embeddings": {"file": "class_embeddings.npy", "templates": list(templates),
                                                     "normalized": True}})


def _amend_manifest(directory: Path, fields: dict[str, Any]) -> None:
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    manifest.update(fields)
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    manifest["files"] = files
    manifest["size_bytes"] = sum((directory / f).stat().st_size for f in files)
    write_json(directory / MANIFEST_NAME, manifest)


def _text_int8_needs_calibration(backend: str, precision: str) -> bool:
    if precision != "int8":
        return False
    method = get_backend(backend).choose_int8_method(kind="text_encoder", transformer=True, has_calibration=False)
    return method_needs_calibration(method)


def export_dual_encoder(
    model: nn.Module, spec: ModelSpec, backend: str, precision: str, out_root: str | Path, *,
    towers: Sequence[str] = TOWERS, class_names: Sequence[str] | None = None, templates: Sequence[str] = ("{}",),
    calibration: np.ndarray | None = None, parity_images: np.ndarray | None = None, parity_tokens: np.ndarray | None = None,
    source_checkpoint: str | None = None, opset: int = 18, name: str | None = None, tensorrt: str | None = None,
    fused_preprocess: Any = None,
) -> dict[str, Artifact]:
    """Export the asked-for towers of `model` (an open_clip dual encoder); returns tower → Artifact.
    `fused_preprocess` (frame size) applies to the image and zero-shot towers; the text tower takes tokens."""
    unknown = [t for t in towers if t not in TOWERS]
    if unknown:
        raise UserError(f"unknown tower {unknown[0]!r}; choose from {', '.join(TOWERS)}")
    names = check_class_names(class_names) if "zeroshot" in towers else []
    context = int(spec.context_length or 77)
    base = name or spec.name
    model = model.eval()
    logit_scale = float(spec.extra.get("logit_scale") or model.logit_scale.exp().item())
    domain = domain_record(spec.extra, templates)
    out_root = Path(out_root)
    artifacts: dict[str, Artifact] = {}
    for tower in towers:
        final = out_root / f"{backend}-{precision}-{tower}"
        if tower == "image":
            module, tower_spec, calib, parity = ImageTower(model), image_tower_spec(model, f"{base}-image", spec.preprocess), calibration, parity_images
        elif tower == "text":
            tower_spec = text_tower_spec(model, f"{base}-text", spec.preprocess)
            tower_spec.context_length = context
            # A static text int8 recipe (TensorRT's explicit QDQ) calibrates on the prompts, as `edgeclip export` does.
            calib = parity_tokens if _text_int8_needs_calibration(backend, precision) else None
            module, parity = TextTower(model), parity_tokens
        else:
            embeddings = class_embeddings(model, context, names, templates)
            module = FusedZeroShotClassifier(model, embeddings, logit_scale)
            tower_spec = zero_shot_classifier_spec(model, f"{base}-zeroshot", names, spec.preprocess)
            calib, parity = calibration, parity_images
        tower_spec.extra["logit_scale"] = logit_scale  # the device's zero-shot logits use the same scale
        with atomic_dir(final) as tmp:
            artifact = export_model(module, tower_spec, backend, precision, tmp / "artifact", calibration=calib,
                                    parity_inputs=parity, source_checkpoint=source_checkpoint, opset=opset,
                                    tensorrt=tensorrt, fused_preprocess=None if tower == "text" else fused_preprocess)
            for item in (tmp / "artifact").iterdir():
                item.rename(tmp / item.name)
            (tmp / "artifact").rmdir()
            if tower == "text":
                _add_tokenizer(tmp, context, templates)
            elif tower == "zeroshot":
                _add_class_embeddings(tmp, embeddings, templates)
            _amend_manifest(tmp, {"domain": domain})
        artifacts[tower] = Artifact(final, json.loads((final / MANIFEST_NAME).read_text()))
        del artifact
    return artifacts
