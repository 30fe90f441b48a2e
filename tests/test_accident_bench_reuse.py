"""benchmarks/accident_demo.py --kd-run / --distillclip-run: a finished run is used only when today's
recipe would have made it (export/bench settings aside), copied into --work, and described."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("accident_demo_bench", ROOT / "benchmarks" / "accident_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_run(folder: Path, recipe: dict) -> Path:
    (folder / "student").mkdir(parents=True)
    (folder / "student" / "model.pt").write_bytes(b"weights")
    (folder / "student" / "spec.json").write_text("{}")
    (folder / "result.json").write_text(json.dumps({"recipe": recipe, "seconds": 12.5,
                                                    "metrics": {"student_accuracy": 0.9805, "note": "x"}}))
    return folder


def test_a_run_of_todays_recipe_is_copied_into_work_and_described(tmp_path, bench) -> None:
    from edgeclip.config import load_recipe

    recipe = load_recipe("quickstart").to_dict()
    recipe["export"]["parity_samples"] = 16  # export settings do not change the student
    del recipe["video"]  # a section added to the code after the run: still at its default today
    source = _fake_run(tmp_path / "made-earlier", recipe)
    info = bench.adopt_run(source, tmp_path / "work" / "kd-student", "quickstart")
    assert (tmp_path / "work" / "kd-student" / "student" / "model.pt").read_bytes() == b"weights"
    assert info["recipe"] == "quickstart" and info["metrics"] == {"student_accuracy": 0.9805}
    assert info["source"] == str(source.resolve()) and len(info["model_sha256_16"]) == 16


def test_a_run_of_another_recipe_is_refused(tmp_path, bench) -> None:
    from edgeclip.config import load_recipe

    recipe = load_recipe("quickstart").to_dict()
    recipe["student"]["name"] = "mobilenetv3_small"
    source = _fake_run(tmp_path / "older", recipe)
    with pytest.raises(SystemExit, match="differs in: student.name"):
        bench.adopt_run(source, tmp_path / "work" / "kd-student", "quickstart")
    assert not (tmp_path / "work").exists()
    with pytest.raises(SystemExit, match="no finished run"):
        bench.adopt_run(tmp_path / "missing", tmp_path / "work" / "kd-student", "quickstart")
