"""A deterministic, learnable synthetic labelled dataset for tests and smoke runs.

`synthetic:N` = N images *per class* per split (default 20), five classes of coloured shapes
on a noisy grey background, 32×32 by default. Each class is one shape in one hue, so both the
shape and the colour carry the label (a tiny CNN learns it in a few epochs); position, size,
hue, background and noise vary per image. Image i of a split is generated from
(seed, split, i) alone, so any image can be rebuilt in any process without the others, and
train and test are different draws from the same distribution.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from edgeclip.data.base import ImageDataset, check_split
from edgeclip.errors import UserError

# (class name, shape, base RGB). Names are words so text prompts read naturally.
SHAPE_CLASSES: list[tuple[str, str, tuple[int, int, int]]] = [
    ("red circle", "circle", (220, 40, 40)),
    ("green square", "square", (40, 200, 60)),
    ("blue triangle", "triangle", (50, 70, 230)),
    ("yellow cross", "cross", (235, 215, 40)),
    ("magenta stripes", "stripes", (220, 50, 210)),
]
DEFAULT_PER_CLASS = 20
DEFAULT_SIZE = 32
_SPLIT_CODES = {"train": 0, "test": 1, "pretrain": 2}
GENERATOR_VERSION = "shapes-v1"  # bump when drawing changes, so caches of old pixels are dropped


def render_shape_image(label: int, rng: np.random.Generator, size: int = DEFAULT_SIZE) -> Image.Image:
    """One RGB image of class `label`, with all variation drawn from `rng`."""
    _, shape, base = SHAPE_CLASSES[label]
    gray = rng.uniform(70, 170)
    background = gray + rng.normal(0.0, 12.0, size=(size, size, 1))
    image = Image.fromarray(np.clip(np.repeat(background, 3, axis=2), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    color = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in base)

    radius = rng.uniform(0.22, 0.34) * size
    cx = rng.uniform(radius, size - radius)
    cy = rng.uniform(radius, size - radius)
    if shape == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=color)
    elif shape == "square":
        draw.rectangle((cx - radius, cy - radius, cx + radius, cy + radius), fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=color)
    elif shape == "cross":
        arm = radius / 3
        draw.rectangle((cx - radius, cy - arm, cx + radius, cy + arm), fill=color)
        draw.rectangle((cx - arm, cy - radius, cx + arm, cy + radius), fill=color)
    else:  # stripes: horizontal bands across the whole image, random period and phase
        period = int(rng.integers(4, 8))
        phase = int(rng.integers(0, period))
        for top in range(-phase, size, period):
            draw.rectangle((0, top, size - 1, top + period // 2 - 1), fill=color)

    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0.0, 6.0, size=(size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


class SyntheticDataset(ImageDataset):
    """`per_class` images of each of the SHAPE_CLASSES per split; labels in class blocks."""

    kind = "synthetic"

    def __init__(
        self, per_class: int = DEFAULT_PER_CLASS, split: str = "train", seed: int = 0, size: int = DEFAULT_SIZE
    ) -> None:
        check_split(split, "synthetic")
        if per_class < 1:
            raise UserError(f"synthetic:N needs N ≥ 1 images per class, got {per_class}; e.g. use synthetic:20")
        if size < 8:
            raise UserError(f"synthetic image size must be at least 8 pixels, got {size}")
        self.per_class = per_class
        self.split = split
        self.seed = seed
        self.size = size
        self.class_names = [name for name, _, _ in SHAPE_CLASSES]
        # "all" = the train draws followed by the test draws.
        parts = ["train", "test"] if split == "all" else [split]
        self._items = [
            (_SPLIT_CODES[part], i) for part in parts for i in range(per_class * len(SHAPE_CLASSES))
        ]
        self.labels = [i // per_class for _, i in self._items]
        self.skipped = []
        self.identity = (
            f"synthetic:{GENERATOR_VERSION}:split={split}:seed={seed}:per_class={per_class}"
            f":size={size}:n={len(self._items)}"
        )

    def sample_ids(self) -> list[str]:
        return [f"synthetic:{self.seed}:{self.size}:{code}:{i}" for code, i in self._items]

    def load(self, index: int) -> Image.Image:
        split_code, i = self._items[self._check_index(index)]
        rng = np.random.default_rng([self.seed, split_code, i])
        return render_shape_image(i // self.per_class, rng, self.size)
