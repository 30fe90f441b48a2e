"""Re-measuring a finished data-free run without training it (edgeclip.distill.datafree.remeasure)
and the data-free benchmark's --reevaluate path that uses it: a tiny run is trained once, then its
shift columns are measured again under another shift list; the clean figures must come out
identical, the student must not be trained again, and a run whose figures do not match is refused."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ["red circle", "green square", "blue triangle", "yellow cross", "magenta stripes"]


def _overrides(teacher: str, shifts: str) -> list[str]:
    settings = {
        "teacher": teacher, "student.name": "test_resnet", "student.image_size": 16, "data.train": "synthetic:4",
        "data.test": "synthetic:4", "data.templates": "plain", "datafree.classes": json.dumps(SHAPES),
        "datafree.classes_file": '""', "datafree.prompt": "contrastive", "datafree.images_per_class": 3, "datafree.steps": 2,
        "datafree.batch_size": 2, "datafree.views": 1, "datafree.contrastive_epochs": 2, "datafree.contrastive_batch": 8,
        "datafree.generator": "pixel", "datafree.generator_params": "{}", "datafree.style_template": "'{} in the style of {}'",
        "datafree.template": "'a {}'", "distill.epochs": 2, "distill.batch_size": 4, "distill.milestones": "[]",
        "datafree.warmup_epochs": 1, "datafree.shifts": shifts, "distill.scratch_baseline": "true",
    }
    return [f"{key}={value}" for key, value in settings.items()]


@pytest.fixture
def benchmark():
    spec = importlib.util.spec_from_file_location("datafree_digits_bench", ROOT / "benchmarks" / "datafree_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_run(tmp_path, tiny_teacher_file):
    """A finished tiny data-free run (with its CE-only baseline) measured under [inversion]."""
    from edgeclip.config import load_recipe
    from edgeclip.distill.datafree.trainer import distill_datafree

    recipe = load_recipe("digits-datafree", _overrides(tiny_teacher_file, "[inversion]"))
    out = tmp_path / "run"
    distill_datafree(recipe, out_dir=out, progress=False)
    return out, tiny_teacher_file


def test_remeasure_gives_the_runs_own_clean_and_shift_figures_and_new_shifts(tiny_run) -> None:
    from edgeclip.config import load_recipe
    from edgeclip.data.shifts import SHIFTS_VERSION
    from edgeclip.distill.datafree.remeasure import remeasure_run
    from edgeclip.io_utils import read_json

    out, teacher = tiny_run
    stored = read_json(out / "result.json")["metrics"]
    recipe = load_recipe("digits-datafree", _overrides(teacher, "[inversion, blur]"))
    measured = remeasure_run(out, recipe, ["inversion", "blur"])
    assert measured["shifts_version"] == SHIFTS_VERSION
    assert measured["clean"] == {k: stored[k] for k in ("teacher_accuracy", "student_accuracy", "scratch_accuracy", "agreement")}
    # The shift the run measured itself comes out exactly the same (same models, same shift module).
    assert measured["shifts"]["inversion"] == stored["shifts"]["inversion"]
    assert set(measured["shifts"]) == {"inversion", "blur"} and "scratch_accuracy" in measured["shifts"]["blur"]


def test_remeasure_refuses_a_run_whose_saved_models_do_not_give_its_figures(tiny_run) -> None:
    from edgeclip.config import load_recipe
    from edgeclip.distill.datafree.remeasure import remeasure_run
    from edgeclip.errors import UserError
    from edgeclip.io_utils import read_json, write_json

    out, teacher = tiny_run
    result = read_json(out / "result.json")
    result["metrics"]["student_accuracy"] += 0.5  # what a student trained by other code would look like
    write_json(out / "result.json", result)
    with pytest.raises(UserError, match="differs from its result.json"):
        remeasure_run(out, load_recipe("digits-datafree", _overrides(teacher, "[blur]")), ["blur"])
    with pytest.raises(UserError, match="unknown distribution shift|distribution shift"):
        remeasure_run(out, load_recipe("digits-datafree", _overrides(teacher, "[blur]")), ["no-such-shift"])


def test_benchmark_reevaluate_reuses_a_run_that_differs_only_in_its_shift_list(tiny_run, benchmark) -> None:
    from edgeclip.io_utils import read_json

    out, teacher = tiny_run
    model = out / "student" / "model.pt"
    trained = model.stat().st_mtime_ns, model.read_bytes()
    step = {"name": "contrastive", "recipe": "digits-datafree", "out": str(out),
            "overrides": _overrides(teacher, "[inversion, blur]")}
    threads = torch.get_num_threads()
    try:
        # --reuse alone must not take it (the shift list differs) — checked without running it:
        earlier = read_json(out / "result.json")
        from edgeclip.config import load_recipe, recipe_differences

        differs = recipe_differences(earlier["recipe"], load_recipe("digits-datafree", step["overrides"]).to_dict())
        assert differs == ["datafree.shifts"] and set(differs) <= benchmark.EVALUATION_ONLY
        results = benchmark.run_task({"steps": [step], "reuse": True, "reevaluate": True})
    finally:
        torch.set_num_threads(threads)
    result = results["contrastive"]
    assert result["reused"] and set(result["metrics"]["shifts"]) == {"inversion", "blur"}
    assert result["remeasured"]["shifts_version"] and (out / "remeasured.json").is_file()
    assert (model.stat().st_mtime_ns, model.read_bytes()) == trained  # not trained again
    assert read_json(out / "result.json")["metrics"]["student_accuracy"] == result["metrics"]["student_accuracy"]


def test_recipe_differences_ignores_prose_and_fields_added_at_their_default() -> None:
    from edgeclip.config import recipe_differences

    default = {"data": {"train": "digits", "pairs": "digits"}, "video": {"epochs": 60}}
    today = {"description": "new words", "data": {"train": "digits", "pairs": "digits"}, "video": {"epochs": 60},
             "datafree": {"shifts": ["a", "b"]}}
    run = {"description": "old words", "data": {"train": "digits"}, "datafree": {"shifts": ["a"]}}
    default["datafree"] = {"shifts": []}
    assert recipe_differences(run, today, default) == ["datafree.shifts"]
    today["video"]["epochs"] = 5  # a field the run lacks, no longer at its default: the run did not do this
    today["data"]["train"] = "other"
    assert recipe_differences(run, today, default) == ["data.train", "datafree.shifts", "video"]
