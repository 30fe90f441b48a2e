"""Recipes: YAML → typed dataclasses, overrides, and clear errors for bad keys/values."""

from __future__ import annotations

import pytest

from edgeclip.config import Recipe, list_recipes, load_recipe
from edgeclip.errors import UserError


def test_shipped_quickstart_loads_with_types() -> None:
    recipe = load_recipe("quickstart")
    assert isinstance(recipe, Recipe)
    assert recipe.name == "quickstart"
    assert recipe.teacher == "proxy-digits"
    assert isinstance(recipe.distill.lr, float) and isinstance(recipe.distill.milestones, list)
    assert "quickstart" in [name for name, _ in list_recipes()]


def test_overrides_are_typed_and_nested() -> None:
    recipe = load_recipe("quickstart", ["distill.epochs=3", "distill.lr=1", "export.backends=[onnx]", "student.name=resnet18_w8"])
    assert recipe.distill.epochs == 3
    assert recipe.distill.lr == 1.0 and isinstance(recipe.distill.lr, float)
    assert recipe.export.backends == ["onnx"]
    assert recipe.student.name == "resnet18_w8"


def test_unknown_key_gets_close_match_hint() -> None:
    with pytest.raises(UserError, match=r"unknown recipe key 'distill.epoch'; did you mean 'distill.epochs'"):
        load_recipe("quickstart", ["distill.epoch=3"])


def test_bad_value_type_is_rejected() -> None:
    with pytest.raises(UserError, match=r"'distill.epochs' must be int"):
        load_recipe("quickstart", ["distill.epochs=many"])


def test_unknown_recipe_suggests_close_match() -> None:
    with pytest.raises(UserError, match=r"unknown recipe 'quikstart'; did you mean 'quickstart'"):
        load_recipe("quikstart")


def test_recipe_from_path_and_bad_yaml(tmp_path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("teacher: ViT-B-32:openai\ndistill:\n  epochs: 2\n")
    recipe = load_recipe(str(good))
    assert recipe.name == "mine" and recipe.distill.epochs == 2 and recipe.teacher == "ViT-B-32:openai"
    bad = tmp_path / "bad.yaml"
    bad.write_text("distill: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(str(bad))
    with pytest.raises(UserError, match="does not exist"):
        load_recipe(str(tmp_path / "missing.yaml"))


def test_set_without_equals_is_rejected() -> None:
    with pytest.raises(UserError, match="is not key=value"):
        load_recipe("quickstart", ["distill.epochs"])


def test_relative_data_paths_of_a_recipe_file_resolve_beside_it(tmp_path, monkeypatch) -> None:
    recipes = tmp_path / "project"
    (recipes / "photos" / "cat").mkdir(parents=True)
    (recipes / "recipe.yaml").write_text("data:\n  train: photos\n  test: digits\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recipe = load_recipe(str(recipes / "recipe.yaml"))
    assert recipe.data.train == str(recipes / "photos")  # found beside the recipe, not in the working directory
    assert recipe.data.test == "digits"  # a dataset name stays a name
