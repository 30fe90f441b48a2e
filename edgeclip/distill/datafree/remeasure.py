"""Re-measure a finished data-free run on the real test data without training it again.

The shift columns of a data-free result depend on `edgeclip.data.shifts` (its shift list and
SHIFTS_VERSION), the students do not. When that module changes, this opens what the run saved —
the student (`student/`), its cross-entropy-only baseline when the run trained one (the last
checkpoint of its `scratch-finetune` phase, which is the baseline's final weights) and the
teacher's zero-shot head rebuilt from the recipe — and measures again. The clean test split is
measured first and must give the run's own figures exactly: anything else means the saved models
are not the ones result.json describes, and the run is refused rather than mixed with new numbers.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from edgeclip.config import Recipe
from edgeclip.data import open_image_dataset
from edgeclip.data.shifts import SHIFTS_VERSION, ShiftedDataset, check_shift
from edgeclip.errors import UserError
from edgeclip.io_utils import read_json, safe_torch_load

CLEAN_KEYS = ("teacher_accuracy", "student_accuracy", "scratch_accuracy", "agreement")


def remeasure_run(run_dir: str | Path, recipe: Recipe, shifts: list[str]) -> dict[str, Any]:
    """{"shifts_version", "measured", "clean", "shifts"} for the run in `run_dir` under `shifts`.

    `recipe` is the recipe the run was made with (the teacher, class names, test data and
    templates come from it). Raises UserError when the clean figures differ from result.json."""
    # lazy: defers torch
    from edgeclip.distill.datafree.trainer import _measure, open_clip_teacher
    from edgeclip.distill.results import RESULT_JSON
    from edgeclip.distill.teachers import ZeroShotClipTeacher
    from edgeclip.students.checkpoint import load_checkpoint

    run = Path(run_dir)
    if not (run / RESULT_JSON).is_file() or not (run / "student").is_dir():
        raise UserError(f"{run} is no finished data-free run (result.json and student/ expected); run it first")
    for shift in shifts:
        check_shift(shift)
    earlier = read_json(run / RESULT_JSON)
    if not recipe.data.test:
        raise UserError(f"recipe {recipe.name} has no data.test; shifts are measured on the real test split")
    test = open_image_dataset(recipe.data.test, "test", skip_corrupt=recipe.data.skip_corrupt)
    model, spec, _ = load_checkpoint(run / "student")
    model.eval()
    scratch = None
    if "scratch_accuracy" in (earlier.get("metrics") or {}):
        last = run / "checkpoints" / "scratch-finetune" / "last.pt"
        if not last.is_file():
            raise UserError(f"{run} reports a CE-only baseline but {last} is missing; re-run it without reuse")
        scratch = copy.deepcopy(model)
        scratch.load_state_dict(safe_torch_load(last, "scratch checkpoint", "re-run it without reuse")["model"])
        scratch.eval()
    clip, teacher_spec = open_clip_teacher(recipe.teacher)
    zero_shot = ZeroShotClipTeacher(clip, earlier.get("classes") or list(test.class_names), recipe.data.templates, teacher_spec)

    clean = _measure(zero_shot, model, scratch, test, spec.preprocess)
    stored = earlier.get("metrics") or {}
    drift = {k: (stored[k], clean[k]) for k in CLEAN_KEYS if k in stored and k in clean and stored[k] != clean[k]}
    if drift:
        raise UserError(f"{run}: re-measured clean top-1 differs from its result.json ({drift}); the saved models are "
                        "not the ones it describes — re-run it without reuse")
    size = max(clip.preprocess.size, spec.preprocess.size)  # as distill_datafree shifts
    measured = {name: _measure(zero_shot, model, scratch, ShiftedDataset(test, name, size), spec.preprocess) for name in shifts}
    return {"shifts_version": SHIFTS_VERSION, "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
            "clean": {k: clean[k] for k in CLEAN_KEYS if k in clean}, "shifts": measured}
