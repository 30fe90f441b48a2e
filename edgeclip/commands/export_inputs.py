"""What `edgeclip export` and `edgeclip compress int8` feed an exporter: real images and prompts from
the data a checkpoint was trained on, and the tower of a dual encoder being exported."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeclip.errors import UserError

DEFAULT_DATA = "digits"  # real labelled images that ship offline with scikit-learn (DESIGN §6)


def sample_data_images(data: str, split: str, count: int, preprocess: Any) -> np.ndarray:
    """`count` preprocessed images from `data`/`split`, seeded; falls back to the train split if no test split."""
    # lazy: `edgeclip --help` does not load it
    from edgeclip.data import open_image_dataset
    from edgeclip.data.sampling import sample_images

    if count <= 0:
        raise UserError(f"image count must be positive, got {count}; pass e.g. --calibration-count 128")
    try:
        dataset = open_image_dataset(data, split)
    except UserError:
        if split == "train":
            raise
        dataset = open_image_dataset(data, "train")
    return sample_images(dataset, preprocess, count)


def text_needs_calibration(backend: str, precision: str) -> bool:
    # lazy: `edgeclip --help` does not load it
    from edgeclip.backends import get_backend
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
