"""scikit-learn's digits (1,797 real 8×8 handwritten digits) as an `ImageDataset`.

Partition (fixed, seed 0, stratified by class; never depends on a run's seed):
- `test`: 20% (359 images), held out from every teacher and student;
- `pretrain`: half of the rest (719), the only images the proxy CLIP teachers are trained on;
- `train`: the other half (719), what students and teacher heads learn from (paper 000's
  low-shot setting assumes the CLIP never saw the task's labelled images);
- `all`: all 1,797.

Rendering choice: dark ink on a white background (pixel = 255 − value·255/16, grey replicated
to RGB). That is how a "photo of the digit seven" looks to a CLIP-style model (ink on paper),
and it is how scikit-learn itself plots them (`cmap=gray_r`). Images stay 8×8 here; the
model's `Preprocess` upsamples them to its input size.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from edgeclip.data.base import PARTITION_SEED, ImageDataset, check_split
from edgeclip.data.sampling import stratified_split

# Words, not "0".."9", so text prompts read naturally ("a photo of the digit seven").
DIGIT_WORDS: list[str] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

TEST_FRACTION = 0.2
PRETRAIN_FRACTION = 0.5  # of the images left after the test split
# Bump when the rendering above changes, so cached teacher outputs of old pixels are not reused.
RENDER_VERSION = "ink-on-white-v1"
PARTITION_VERSION = "test20-pretrain40-train40"


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


@functools.lru_cache(maxsize=1)
def digits_partition() -> dict[str, list[int]]:
    """Indices into the 1,797 digits of each split (see the module doc); checked disjoint here."""
    _, targets = _digits_arrays()
    rest, test = stratified_split(targets.tolist(), TEST_FRACTION, PARTITION_SEED)
    train_pos, pretrain_pos = stratified_split([int(targets[i]) for i in rest], PRETRAIN_FRACTION, PARTITION_SEED)
    parts = {"test": test, "pretrain": sorted(rest[i] for i in pretrain_pos), "train": sorted(rest[i] for i in train_pos)}
    names = list(parts)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            # A teacher that saw test or train images would make every retention figure a lie.
            assert not set(parts[first]) & set(parts[second]), f"digits {first} and {second} overlap"
    assert sum(len(v) for v in parts.values()) == len(targets)
    parts["all"] = list(range(len(targets)))
    return parts


class DigitsDataset(ImageDataset):
    """One split of the fixed digits partition: train, test, pretrain or all."""

    kind = "digits"

    def __init__(self, split: str = "train") -> None:
        check_split(split, "digits")
        pixels, targets = _digits_arrays()
        indices = digits_partition()[split]
        self.split = split
        self.indices = indices
        self.labels = [int(targets[i]) for i in indices]
        self.class_names = list(DIGIT_WORDS)
        self.skipped = []
        self._pixels = pixels
        self.identity = f"digits:sklearn:{RENDER_VERSION}:{PARTITION_VERSION}:split={split}:n={len(indices)}"

    def load(self, index: int) -> Image.Image:
        gray = self._pixels[self.indices[self._check_index(index)]]
        return Image.fromarray(np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2)))

    def sample_ids(self) -> list[str]:
        return [f"digits:{i}" for i in self.indices]

    def array(self, index: int) -> np.ndarray:
        """The raw uint8 (8, 8) rendered image, for quick plots and checks."""
        return np.array(self._pixels[self.indices[self._check_index(index)]])
