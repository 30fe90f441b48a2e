"""Export a run's CLIP teacher to image + text towers for the zero-shot page (needs torch).

The page shows the teacher's top-5 beside the student's, from exported artifacts like the
student's, so the serving process never imports torch. A DistillCLIP run records its teacher in
`<run>/teacher/clip_teacher.json`; this module loads it once and writes
`<run>/demo/teacher/<backend>-fp32-{image,text}` (manifest, parity on real images and real
prompts, the tokenizer with the student's prompt templates). `edgeclip demo zero-shot` runs it
in a child process (`python -m edgeclip.demo.teacher_towers RUN --backend onnx`) the first time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgeclip.data import open_image_dataset
from edgeclip.data.sampling import sample_images
from edgeclip.errors import UserError
from edgeclip.prompt_ensemble import class_prompts
from edgeclip.students.spec import ModelSpec
from edgeclip.utils import disable_mha_fastpath

PARITY_IMAGES = 16


def teacher_record_path(run_dir: Path) -> Path:
    return run_dir / "teacher" / "clip_teacher.json"


def teacher_towers_dir(run_dir: Path) -> Path:
    return run_dir / "demo" / "teacher"


def has_teacher_towers(run_dir: Path, backend: str) -> bool:
    root = teacher_towers_dir(run_dir)
    return all((root / f"{backend}-fp32-{tower}" / "manifest.json").is_file() for tower in ("image", "text"))


def _student_templates_and_data(run_dir: Path) -> tuple[list[str] | None, str]:
    """The prompt templates the student's text tower ships (so both columns prompt alike) and its data spec."""
    templates = None
    for tokenizer in sorted((run_dir / "artifacts").glob("*-text/tokenizer.json")):
        templates = json.loads(tokenizer.read_text()).get("templates")
        break
    data = "digits"
    spec_path = run_dir / "student" / "spec.json"
    if spec_path.is_file():
        extra = json.loads(spec_path.read_text()).get("extra", {}) or {}
        data = str(extra.get("data") or data)
        if templates is None and extra.get("templates"):
            # lazy: defers torch
            from edgeclip.teacher.templates import get_templates

            templates = list(get_templates(str(extra["templates"])))
    return templates, data


def export_teacher_towers(run_dir: str | Path, backend: str = "onnx") -> dict[str, Any]:
    """Write the teacher's image and text towers (fp32) under `<run>/demo/teacher/`; returns tower → Artifact."""
    # lazy: defers torch
    import numpy as np

    from edgeclip.exporters.dual import export_dual_encoder
    from edgeclip.teacher import ClipTeacher

    run_dir = Path(run_dir)
    record_path = teacher_record_path(run_dir)
    if not record_path.is_file():
        raise UserError(f"{run_dir} records no CLIP teacher ({record_path} is missing); the page shows the student alone")
    record = json.loads(record_path.read_text())
    teacher = ClipTeacher.load(str(record["spec"]))
    templates, data = _student_templates_and_data(run_dir)
    templates = templates or ["{}"]
    test = open_image_dataset(data, "test")
    parity_images = sample_images(test, teacher.preprocess, PARITY_IMAGES)
    prompts = [p for per_class in class_prompts(test.class_names, templates) for p in per_class][:64]
    parity_tokens = teacher.tokenize(prompts).numpy().astype(np.int64)
    spec = ModelSpec(name=str(record.get("name") or teacher.name), kind="dual_encoder", preprocess=teacher.preprocess,
                     context_length=teacher.context_length, extra={"logit_scale": teacher.logit_scale, "teacher": record["spec"]})
    disable_mha_fastpath()
    return export_dual_encoder(teacher.model, spec, backend, "fp32", teacher_towers_dir(run_dir), towers=("image", "text"),
                               templates=templates, parity_images=parity_images, parity_tokens=parity_tokens,
                               name=spec.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeclip.demo.teacher_towers",
                                     description="Export a DistillCLIP run's teacher towers for `edgeclip demo zero-shot`.")
    parser.add_argument("run_dir")
    parser.add_argument("--backend", default="onnx")
    args = parser.parse_args(argv)
    try:
        artifacts = export_teacher_towers(args.run_dir, args.backend)
    except UserError as exc:
        print(f"edgeclip: error: {exc}", file=sys.stderr)
        return 2
    for tower, artifact in artifacts.items():
        print(f"teacher {tower} tower: {artifact.summary()}")
    return 0 if all(a.ok for a in artifacts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
