"""`edgeclip eval --model DIR --suite ...` for dual-encoder students (the command's dual-encoder half)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgeclip.data import open_image_dataset
from edgeclip.data.class_match import parse_class_map
from edgeclip.errors import UserError
from edgeclip.eval.suite import open_shift_folder, parse_suites, render_markdown, run_suite, size_table
from edgeclip.io_utils import atomic_path, write_json

DEFAULT_SUITES = "zero-shot,linear-probe,shift,retrieval"


def find_teacher_spec(model_dir: Path, spec: Any, given: list[str]) -> str:
    if len(given) > 1:
        raise UserError("a dual-encoder evaluation takes one --teacher")
    if given:
        return given[0]
    record = model_dir.parent / "teacher" / "clip_teacher.json"
    if record.is_file():
        return json.loads(record.read_text())["spec"]
    if spec.extra.get("teacher"):
        return str(spec.extra["teacher"])
    raise UserError(f"no teacher recorded for {model_dir}; pass --teacher (e.g. proxy-digits-large or ViT-B-32:openai)")


def check_shift_arguments(args: argparse.Namespace, suites: list[str], test: Any) -> None:
    """--shift-set/--shift-images make sense only with the shift suite, and a subset only of corruptions."""
    # lazy: defers torch
    from edgeclip.eval.corruption_shift import shift_family

    shift_set, images = getattr(args, "shift_set", "auto"), getattr(args, "shift_images", None)
    if images is not None and images < 1:
        raise UserError(f"--shift-images must be a positive number of test images, got {images}; leave it out to use all")
    if images is not None and "shift" not in suites:
        raise UserError(f"--shift-images sizes the shift suite, which --suite {args.suite} leaves out; add 'shift'")
    if images is not None and shift_family(shift_set, test) != "corruptions":
        raise UserError("--shift-images subsets the corruption shifts of photos; this data gets synthetic shifts "
                        "(add --shift-set corruptions, or drop --shift-images)")


def evaluate_dual_encoder(args: argparse.Namespace, model: Any, spec: Any, model_dir: Path) -> int:
    # lazy: defers torch
    from edgeclip.eval.encoders import student_encoder, teacher_encoder
    from edgeclip.teacher import ClipTeacher
    from edgeclip.teacher.templates import get_templates

    suites = parse_suites(args.suite or DEFAULT_SUITES)
    data_spec = args.data or spec.extra.get("data") or "digits"
    test = open_image_dataset(data_spec, "test")
    train = open_image_dataset(data_spec, "train")
    class_map = parse_class_map(getattr(args, "class_map", None))
    if args.shift_data and "shift" not in suites:
        raise UserError(f"--shift-data is evaluated by the shift suite, which --suite {args.suite} leaves out; add 'shift'")
    for folder in args.shift_data or []:  # every input check before the teacher loads or anything is encoded
        open_shift_folder(folder, test.class_names, class_map)
    check_shift_arguments(args, suites, test)
    templates_name = args.templates or spec.extra.get("templates") or "digits"
    templates = get_templates(templates_name)
    teacher_spec = find_teacher_spec(model_dir, spec, args.teacher)
    teacher = ClipTeacher.load(teacher_spec)
    say = (lambda m: None) if args.quiet else (lambda m: print(f"[edgeclip eval] {m}", file=sys.stderr, flush=True))
    t_enc, s_enc = teacher_encoder(teacher), student_encoder(model, spec, name=spec.name)
    suite = run_suite(t_enc, s_enc, test=test, train=train, templates=templates, suites=suites,
                      shift_folders=args.shift_data or [], progress=say, class_map=class_map,
                      shift_set=getattr(args, "shift_set", "auto"), shift_images=getattr(args, "shift_images", None))
    latency = None
    backends = [b.strip() for b in (args.latency_backends or "").split(",") if b.strip() and b.strip() != "none"]
    if backends:
        latency = _latency(teacher, model, spec, test, backends, say)
    size = size_table(teacher.model, model, teacher_pre=teacher.preprocess, student_pre=spec.preprocess,
                      teacher_context=teacher.context_length, student_context=int(spec.context_length or 77), latency=latency)
    report = {"schema": "edgeclip.eval.dual_encoder/1", "student": spec.name, "model": str(model_dir), "teacher": teacher_spec,
              "data": test.identity, "templates": templates_name, "suites": suites, "suite": suite, "size": size}
    out = Path(args.out) if args.out else model_dir.parent
    markdown = render_markdown(report)
    with atomic_path(out / "eval.md") as tmp:
        tmp.write_text(markdown)
    write_json(out / "eval.json", report)
    print(markdown)
    print(f"saved: {out / 'eval.json'}")
    return 0


def _latency(teacher: Any, model: Any, spec: Any, test: Any, backends: list[str], say: Any) -> dict[str, Any]:
    # lazy: defers torch
    from edgeclip.eval.size import tower_latency, tower_modules

    towers, inputs = {}, {}
    for role, clip, pre, context in (("teacher", teacher.model, teacher.preprocess, teacher.context_length),
                                     ("student", model, spec.preprocess, int(spec.context_length or 77))):
        for tower, module_spec in tower_modules(role, clip, pre, context).items():
            towers[f"{role}/{tower}"] = module_spec
        image = pre(test.load(0))[None].astype(np.float32)
        tokens = teacher.tokenize(["a photo of the digit seven."]).numpy()
        tokens = np.pad(tokens, ((0, 0), (0, max(0, context - tokens.shape[1]))))[:, :context]
        if tokens[0, -1] not in (0, 49407):
            tokens[0, -1] = 49407
        inputs[f"{role}/image"], inputs[f"{role}/text"] = image, tokens.astype(np.int64)
    say(f"latency per tower on {', '.join(backends)} (fp32, batch 1, interleaved)")
    return tower_latency(towers, inputs, backends=backends, precisions=("fp32",), iterations=50, max_seconds=10)
