"""What `edgeclip export` and `edgeclip compress int8` feed an exporter: the recipe a checkpoint's
export follows, real images and prompts from the data it was trained on, int8 calibration by the
build's rule, and the tower of a dual encoder being exported."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from edgeclip.backends import get_backend
from edgeclip.config import Recipe, build_dataclass, load_recipe
from edgeclip.errors import UserError
from edgeclip.io_utils import read_json

DEFAULT_DATA = "digits"  # real labelled images that ship offline with scikit-learn (DESIGN §6)


def sample_data_images(data: str, split: str, count: int, preprocess: Any, seed: int = 0) -> np.ndarray:
    """`count` preprocessed images from `data`/`split`, seeded; falls back to the train split if no test split."""
    # lazy: `edgeclip --help` does not load it
    from edgeclip.data import open_image_dataset
    from edgeclip.data.sampling import sample_images

    if count <= 0:
        raise UserError(f"image count must be positive, got {count}; pass e.g. --calibration-count 64")
    try:
        dataset = open_image_dataset(data, split)
    except UserError:
        if split == "train":
            raise
        dataset = open_image_dataset(data, "train")
    return sample_images(dataset, preprocess, count, seed)


def checkpoint_recipe(model_dir: Path, name: str | None) -> Any:  # -> edgeclip.config.Recipe
    """The recipe an export of this checkpoint follows: `name` (--recipe) if given, else the one its
    run recorded (`<run>/result.json`, beside `<run>/student`), else the recipe defaults — so an export
    of a build's student makes int8 as that build did."""
    if name:
        return load_recipe(name)
    result = model_dir.parent / "result.json"
    recorded = (read_json(result) if result.is_file() else {}).get("recipe")
    if not isinstance(recorded, dict):
        return Recipe()
    try:
        return build_dataclass(Recipe, recorded, "")
    except UserError as exc:
        raise UserError(f"the recipe recorded in {result} does not load today ({exc}); pass --recipe NAME") from None


def resolve_counts(args: argparse.Namespace, recipe: Any) -> None:
    """Flags left unset take the recipe's values (the recipe dataclasses hold every default)."""
    if args.calibration_count is None:
        args.calibration_count = recipe.data.calibration_count
    if getattr(args, "parity_count", None) is None:
        args.parity_count = recipe.export.parity_samples
    if getattr(args, "opset", 0) is None:
        args.opset = recipe.export.opset


def int8_inputs_for(data: str, preprocess: Any, recipe: Any, settings: Any, calibration_count: int,
                    target: Any, model_dir: Path, data_given: bool = False) -> tuple[np.ndarray, Any]:
    """(calibration images, Int8Options) of one int8 export, by the build's rule (compress/int8_inputs.py).
    The recipe's `data.calibration` calibrates, as in the build, unless the user named the data."""
    # lazy: `edgeclip --help` does not load it
    from edgeclip.compress.int8_inputs import int8_images, int8_options, qat_record
    from edgeclip.data import open_image_dataset

    if calibration_count <= 0:
        raise UserError(f"image count must be positive, got {calibration_count}; pass e.g. --calibration-count 64")
    other = recipe.data.calibration if recipe.data.calibration and not data_given else ""
    calibration, validation = int8_images(open_image_dataset(data, "train"), preprocess, settings,
                                          calibration_count=calibration_count, seed=recipe.seed,
                                          calibration_data=open_image_dataset(other, "train") if other else None)
    return calibration, int8_options(settings, validation, target, qat_record(model_dir))


def text_needs_calibration(backend: str, precision: str) -> bool:
    # lazy: `edgeclip --help` does not load it
    from edgeclip.compress.quantize import method_needs_calibration

    if precision != "int8":
        return False
    return method_needs_calibration(get_backend(backend).choose_int8_method(kind="text_encoder", transformer=True,
                                                                             has_calibration=False))


def text_inputs(data: str, context_length: int) -> np.ndarray:
    """Real prompts from the data's class names, tokenized with open_clip's bundled (offline) tokenizer."""
    # lazy: `edgeclip --help` does not load it
    import open_clip

    from edgeclip.data import open_image_dataset

    class_names = open_image_dataset(data, "train").class_names
    prompts = [f"a photo of a {name}." for name in class_names] + [f"a blurry photo of the {name}, seen from far away." for name in class_names]
    return open_clip.tokenize(prompts, context_length=context_length).numpy().astype(np.int64)


def model_for_export(model: Any, spec: Any, tower: str) -> tuple[Any, Any, str]:
    """Dual encoders are exported one tower at a time; everything else as is."""
    # lazy: `edgeclip --help` does not load it (torch)
    from edgeclip.exporters import towers

    if spec.kind != "dual_encoder":
        return model, spec, ""
    if tower == "text":
        return towers.TextTower(model), towers.text_tower_spec(model, f"{spec.name}-text", spec.preprocess), "-text"
    return towers.ImageTower(model), towers.image_tower_spec(model, f"{spec.name}-image", spec.preprocess), ""
