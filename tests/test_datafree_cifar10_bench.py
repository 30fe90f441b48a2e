"""Paper 002 on CIFAR-10: the benchmark's options and run plan (benchmarks/datafree_cifar10.py), and the
matched real-data reference it trains (edgeclip.distill.datafree.real_reference) on a tiny teacher."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ["red circle", "green square", "blue triangle", "yellow cross", "magenta stripes"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("datafree_cifar10_bench", ROOT / "benchmarks" / "datafree_cifar10.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_registered_prompt_method_gets_a_run_and_the_real_rows_are_planned(bench, tmp_path) -> None:
    from edgeclip.distill.datafree.prompts import PROMPT_METHODS

    finished = tmp_path / "kd-run"
    finished.mkdir()
    (finished / "result.json").write_text("{}")
    args = bench.parse_args(["--work", str(tmp_path / "w"), "--per-class", "7", "--real-kd-run", str(finished)])
    steps = {s["name"]: s for task in bench.build_tasks(args) for s in task["steps"]}
    assert set(PROMPT_METHODS) <= set(steps) and set(bench.PROMPTS) == set(PROMPT_METHODS)
    for method in PROMPT_METHODS:
        assert f"datafree.prompt={method}" in steps[method]["overrides"] and steps[method]["recipe"] == "cifar10-datafree"
        assert "datafree.images_per_class=7" in steps[method]["overrides"]
    assert any(o.startswith("datafree.fewshot_shots=") for o in steps["contrastive"]["overrides"])
    # The finished cifar10-kd run is only read; the matched reference uses as many real images as synthetic ones.
    assert steps["real-kd"]["out"] == str(finished) and steps["real-kd"]["reuse_only"] and steps["real-kd"]["recipe"] == "cifar10-kd"
    assert steps["real-matched"]["kind"] == "real-matched" and steps["real-matched"]["per_class"] == 7


def test_the_result_lists_the_settings_that_differ_from_the_recipe(bench) -> None:
    changes = {c["field"]: c for c in bench.recipe_changes(bench.parse_args(["--steps", "30", "--views", "1", "--epochs", "10"]))}
    assert changes["datafree.steps"] == {"field": "datafree.steps", "recipe": 200, "used": 30}
    assert changes["datafree.views"]["used"] == 1 and changes["distill.epochs"]["used"] == 10
    assert changes["distill.milestones"]["used"] == [6, 9]
    assert "datafree.lr" not in changes and "datafree.prompt" not in changes  # only what the options set


@pytest.mark.parametrize("argv", [["--jobs", "0"], ["--steps", "0"], ["--real-kd-run", "/nonexistent/run"]])
def test_bad_options_exit_2(bench, argv, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(argv)
    assert exit_info.value.code == 2


@pytest.fixture
def tiny_recipe(tmp_path, tiny_clip_config):
    from edgeclip.config import load_recipe
    from edgeclip.data import Preprocess
    from edgeclip.teacher.clip_teacher import ClipTeacher

    torch.manual_seed(0)
    teacher = tmp_path / "tiny-clip.pt"
    ClipTeacher.from_config("tiny-clip", tiny_clip_config, Preprocess(size=16)).save(teacher)
    settings = {"teacher": str(teacher), "student.name": "test_resnet", "student.image_size": 16, "data.train": "synthetic:4",
                "data.test": "synthetic:4", "data.templates": "plain", "datafree.classes": json.dumps(SHAPES),
                "datafree.classes_file": '""', "distill.epochs": 2, "distill.batch_size": 4, "distill.milestones": "[]"}
    return load_recipe("cifar10-datafree", [f"{k}={v}" for k, v in settings.items()])


def test_matched_real_reference_trains_on_k_real_images_per_class_and_reuses_its_finished_run(tiny_recipe, tmp_path, monkeypatch) -> None:
    from edgeclip.distill.datafree import real_reference

    out = tmp_path / "matched"
    result = real_reference.distill_on_real(tiny_recipe, 2, out)
    assert result["data"]["train_images"] == 2 * len(SHAPES) and "split=train" in result["data"]["train"]
    assert result["data"]["test_images"] == 4 * len(SHAPES) and "split=test" in result["data"]["test"]
    assert 0.0 <= result["metrics"]["student_accuracy"] <= 1.0 and "l1" in json.dumps(result["loss"])
    assert (out / "result.json").is_file() and (out / "checkpoints").is_dir()

    # Same settings: the finished run comes back without training; other settings train again.
    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr("edgeclip.distill.datafree.trainer._two_phase", no_training)
    again = real_reference.distill_on_real(tiny_recipe, 2, out)
    assert again["reused"] and again["metrics"] == result["metrics"]
    with pytest.raises(AssertionError, match="trained again"):
        real_reference.distill_on_real(tiny_recipe, 3, out)
