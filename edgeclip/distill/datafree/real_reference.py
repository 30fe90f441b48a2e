"""The data-free recipe's KD on real images: the matched real-data reference for a synthetic set.

Everything a data-free run does after synthesis — the student, the loss (L1 to the teacher's
similarity vector unless the recipe names other terms), the online teacher on every augmented
batch, the warm-up/fine-tune schedule, the seed — but the synthetic set is replaced by `per_class`
real images per class from the recipe's `data.train` split, so the two differ only in where the
images come from. Measured on `data.test` like the data-free student. Writes

    <out>/settings.json  what the run was asked (an interrupted run continues only with the same)
    <out>/checkpoints/   resumable last.pt per phase
    <out>/result.json    written last (its presence means the run finished)

and a finished run with the same recipe and `per_class` is returned without training again.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from edgeclip.config import Recipe
from edgeclip.data import Subset, check_disjoint, open_image_dataset, sample_per_class
from edgeclip.distill.datafree.classes import resolve_class_names
from edgeclip.errors import UserError
from edgeclip.io_utils import read_json, write_json
from edgeclip.utils import count_params, seed_everything

RESULT = "result.json"
SETTINGS = "settings.json"


def distill_on_real(recipe: Recipe, per_class: int, out_dir: str | Path, *, progress: bool = False) -> dict[str, Any]:
    """Train the recipe's student with its data-free loss/schedule on `per_class` real train images
    per class; returns (and writes) the result with metrics on the real test split."""
    # lazy: defers torch
    from edgeclip.distill.augment import training_view
    from edgeclip.distill.classifier_kd import build_student
    from edgeclip.distill.datafree.synthesis import OnlineTeacher
    from edgeclip.distill.datafree.trainer import _criterion, _measure, _two_phase, open_clip_teacher
    from edgeclip.distill.teachers import ZeroShotClipTeacher
    from edgeclip.teacher.templates import get_templates

    out = Path(out_dir)
    # As JSON gives it back (tuples become lists), so a finished run compares equal.
    settings = json.loads(json.dumps({"recipe": recipe.to_dict(), "per_class": int(per_class)}))
    if (out / RESULT).is_file():
        earlier = read_json(out / RESULT)
        if earlier.get("settings") == settings:
            return {**earlier, "reused": True}
    if not recipe.data.train or not recipe.data.test:
        raise UserError("the real-data reference trains on data.train and is measured on data.test; set both")
    started, cpu_started = time.perf_counter(), time.process_time()
    class_names = resolve_class_names(recipe.datafree.classes, recipe.datafree.classes_file)
    clip, teacher_spec = open_clip_teacher(recipe.teacher)
    train = open_image_dataset(recipe.data.train, "train", skip_corrupt=recipe.data.skip_corrupt)
    test = open_image_dataset(recipe.data.test, "test", skip_corrupt=recipe.data.skip_corrupt)
    for name, data in (("data.train", train), ("data.test", test)):
        if list(data.class_names) != class_names:
            raise UserError(f"{name} has classes {list(data.class_names)[:6]}... but the class list is {class_names[:6]}...; "
                            "give the same names in the same order")
    check_disjoint(train, test, "real-data reference train and test data overlap")
    subset = Subset(train, sample_per_class(train.labels, per_class, recipe.seed, class_names))
    seed_everything(recipe.seed)
    model, spec, student_name, _ = build_student(recipe, class_names)
    criterion = _criterion(recipe)
    train_set, augment = training_view(subset, spec.preprocess, recipe.distill.augment)
    # The same teacher signal as the data-free run: the teacher labels each augmented batch.
    online = OnlineTeacher(clip, clip.class_embeddings(class_names, get_templates(recipe.data.templates)), spec.preprocess)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT).unlink(missing_ok=True)
    # Continue an interrupted run only when it had these settings; otherwise start clean.
    resume = (out / SETTINGS).is_file() and read_json(out / SETTINGS) == settings
    if not resume:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        write_json(out / SETTINGS, settings)
    _two_phase(model, train_set, augment, criterion, recipe, None, out / "checkpoints", "", resume, progress, online)
    zero_shot = ZeroShotClipTeacher(clip, class_names, recipe.data.templates, teacher_spec)
    result = {
        "settings": settings,
        "data": {"train": train.identity, "train_images": len(subset), "per_class": int(per_class), "test": test.identity,
                 "test_images": len(test)},
        "student": {"name": student_name, "params": count_params(model)},
        "loss": criterion.describe(),
        "metrics": _measure(zero_shot, model, None, test, spec.preprocess),
        "seconds": time.perf_counter() - started,
        # CPU time of this process: the cost on an idle core, whatever else shares the machine.
        "cpu_seconds": time.process_time() - cpu_started,
    }
    write_json(out / RESULT, result)
    return result
