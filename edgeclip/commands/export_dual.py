"""`edgeclip export` for dual-encoder students: image / text (+ tokenizer) / fused zero-shot / all."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeclip.bench.remote import EXIT_NO_ENGINE
from edgeclip.commands.export_inputs import sample_data_images
from edgeclip.data import open_image_dataset
from edgeclip.errors import UserError
from edgeclip.io_utils import read_text_file

TOWER_CHOICES = {"image": ["image"], "text": ["text"], "fused": ["zeroshot"], "zeroshot": ["zeroshot"],
                 "all": ["image", "text", "zeroshot"]}


def parse_classes(text: str | None, data: str) -> list[str]:
    """--classes 'a,b,c', @file (one per line), or the data's class names when not given."""
    if text is None:
        return list(open_image_dataset(data, "train").class_names)
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise UserError(f"class file {path} does not exist; give one class name per line")
        return [line.strip() for line in read_text_file(path, "class file").splitlines() if line.strip()]
    return [c.strip() for c in text.split(",") if c.strip()]


def run_dual_export(args: argparse.Namespace, model: Any, spec: Any, model_dir: Path, data: str,
                    frame: tuple[int, int] | None = None) -> int:
    # lazy: defers torch
    from edgeclip.exporters.dual import check_class_names, export_dual_encoder
    from edgeclip.teacher.templates import get_templates

    towers = TOWER_CHOICES[args.tower]
    if frame is not None and args.tower == "text":
        raise UserError("--fused-preprocess needs an image model, but --tower text is a text encoder (token ids); "
                        "drop --fused-preprocess or export --tower image|fused")
    class_names = check_class_names(parse_classes(args.classes, data)) if "zeroshot" in towers else None
    templates = get_templates(args.templates or spec.extra.get("templates") or "plain")
    images_needed = any(t in ("image", "zeroshot") for t in towers)
    calibration = sample_data_images(data, "train", args.calibration_count, spec.preprocess) \
        if images_needed and args.precision == "int8" else None
    # Fused (image/zero-shot towers only; a text tower of --tower all stays as it is): frames of that size.
    parity_preprocess = replace(spec.preprocess, fused_frame=frame) if frame is not None else spec.preprocess
    parity_images = sample_data_images(data, "test", args.parity_count, parity_preprocess) if images_needed else None
    parity_tokens = _prompt_tokens(class_names or parse_classes(None, data), templates, int(spec.context_length or 77)) \
        if "text" in towers else None
    out_root = Path(args.out) if args.out else model_dir.parent / "artifacts"
    artifacts = export_dual_encoder(model, spec, args.backend, args.precision, out_root, towers=towers,
                                    class_names=class_names, templates=templates, calibration=calibration,
                                    parity_images=parity_images, parity_tokens=parity_tokens,
                                    source_checkpoint=str(model_dir), opset=args.opset, tensorrt=args.tensorrt,
                                    fused_preprocess=frame)
    ok = True
    for tower, artifact in artifacts.items():
        print(f"artifact: {artifact.path} ({tower}; {artifact.backend} {artifact.precision}): {artifact.summary()}")
        ok = ok and artifact.ok
    if any(a.status == "failed" for a in artifacts.values()):  # a TensorRT kit its TensorRT would refuse
        return EXIT_NO_ENGINE
    return 0 if ok else 1


def _prompt_tokens(class_names: list[str], templates: list[str], context: int) -> np.ndarray:
    import open_clip

    prompts = [t.format(name) for name in class_names for t in templates][:64]
    return open_clip.SimpleTokenizer(context_length=context)(prompts).numpy().astype(np.int64)
