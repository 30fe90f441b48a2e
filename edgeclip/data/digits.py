"""scikit-learn's digits (1,797 real 8×8 handwritten digits) as an `ImageDataset`.

Rendering choice: dark ink on a white background (pixel = 255 − value·255/16, grey replicated
to RGB). That is how a "photo of the digit seven" looks to a CLIP-style model (ink on paper),
and it is how scikit-learn itself plots them (`cmap=gray_r`). Images stay 8×8 here; the
model's `Preprocess` upsamples them to its input size.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from edgeclip.data.base import ImageDataset
from edgeclip.data.sampling import stratified_split
from edgeclip.errors import UserError

# Words, not "0".."9", so text prompts read naturally ("a photo of the digit seven").
DIGIT_WORDS: list[str] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

SPLITS = ("train", "test", "all")
TEST_FRACTION = 0.2
# Bump when the rendering above changes, so cached teacher outputs of old pixels are not reused.
RENDER_VERSION = "ink-on-white-v1"


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (1797, 8, 8) rendered ink-on-white, int labels (1797,)); loaded once per process."""
    # Imported here: scikit-learn takes ~1 s to import and most commands never need digits.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    values = np.clip(bunch.images, 0, 16)
    pixels = np.round(255.0 - values * (255.0 / 16.0)).astype(np.uint8)
    pixels.setflags(write=False)
    return pixels, bunch.target.astype(np.int64)


class DigitsDataset(ImageDataset):
    """Digits split 80/20 train/test, stratified by class and fixed by `seed`; `split="all"` = all 1,797."""

    kind = "digits"

    def __init__(self, split: str = "train", seed: int = 0) -> None:
        if split not in SPLITS:
            raise UserError(f"unknown digits split '{split}'; use one of {', '.join(SPLITS)}")
        pixels, targets = _digits_arrays()
        if split == "all":
            indices = list(range(len(targets)))
        else:
            train, test = stratified_split(targets.tolist(), TEST_FRACTION, seed)
            indices = train if split == "train" else test
        self.split = split
        self.seed = seed
        self.indices = indices
        self.labels = [int(targets[i]) for i in indices]
        self.class_names = list(DIGIT_WORDS)
        self.skipped = []
        self._pixels = pixels
        # "all" does not depend on the seed; leaving it out lets caches share across seeds.
        seed_part = "" if split == "all" else f":seed={seed}"
        self.identity = f"digits:sklearn:{RENDER_VERSION}:split={split}{seed_part}:n={len(indices)}"

    def load(self, index: int) -> Image.Image:
        gray = self._pixels[self.indices[self._check_index(index)]]
        return Image.fromarray(np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2)))

    def array(self, index: int) -> np.ndarray:
        """The raw uint8 (8, 8) rendered image, for quick plots and checks."""
        return np.array(self._pixels[self.indices[self._check_index(index)]])
