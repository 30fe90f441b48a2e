"""Distribution shifts of an image dataset: noise, blur, rotation, inversion (no torch).

`ShiftedDataset(base, "blur")` serves the same samples as `base` (same labels, same sample ids)
with a deterministic corruption: image i is always shifted the same way (its random draws come
from (seed, i)), so two models are compared on identical inputs. The default severities are set
for small images such as the 8×8 digits, which are first enlarged to `work_size` (32) so that blur
and rotation act on a smooth image rather than on eight pixels.

    noise      Gaussian pixel noise, std `severity` × 0.25 of the 0–255 range
    blur       Gaussian blur, radius `severity` × 2 px at work size
    rotation   rotation by ±`severity` × 20° (sign drawn per image), corners filled with the border colour
    inversion  255 − pixel (white ink on black for digits); severity ignored

At severity 1 the digits proxy CLIP's zero-shot top-1 on the test split (97.5% unshifted) is
88% (noise), 97% (blur), 73% (rotation) and 7% (inversion: it never saw white ink on black).
"""

from __future__ import annotations

import random
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from edgeclip.data.base import ImageDataset
from edgeclip.errors import UserError, unknown_name_error

DEFAULT_WORK_SIZE = 32
# Bump whenever a shift's arithmetic or default strength changes: teacher-output caches key on
# the dataset identity, and a stale cache would silently report the old shift's numbers.
SHIFTS_VERSION = "v2"


def _noise(image: Image.Image, severity: float, rng: random.Random) -> Image.Image:
    array = np.asarray(image, dtype=np.float32)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0.0, 0.25 * 255 * severity, array.shape)
    return Image.fromarray(np.clip(array + noise, 0, 255).round().astype(np.uint8))


def _blur(image: Image.Image, severity: float, rng: random.Random) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=2.0 * severity))


def border_colour(image: Image.Image) -> tuple[int, ...]:
    """Median colour of the outermost pixels (the background of a centred object)."""
    array = np.asarray(image)
    border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    return tuple(int(v) for v in np.median(border, axis=0))


def _rotation(image: Image.Image, severity: float, rng: random.Random) -> Image.Image:
    angle = 20.0 * severity * rng.choice((-1.0, 1.0))
    return image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=border_colour(image))


def _inversion(image: Image.Image, severity: float, rng: random.Random) -> Image.Image:
    return Image.fromarray(255 - np.asarray(image))


SHIFTS: dict[str, Callable[[Image.Image, float, random.Random], Image.Image]] = {
    "noise": _noise,
    "blur": _blur,
    "rotation": _rotation,
    "inversion": _inversion,
}


def check_shift(name: str) -> str:
    if name not in SHIFTS:
        raise unknown_name_error("distribution shift", name, SHIFTS, "use noise, blur, rotation or inversion")
    return name


def apply_shift(image: Image.Image, name: str, severity: float = 1.0, rng: random.Random | None = None) -> Image.Image:
    """One shifted RGB image (`rng` draws the random parts: noise, rotation direction)."""
    return SHIFTS[check_shift(name)](image.convert("RGB"), severity, rng or random.Random(0))


class ShiftedDataset(ImageDataset):
    """`base` with shift `name` applied to every image (deterministic per index)."""

    def __init__(self, base: ImageDataset, name: str, severity: float = 1.0, *, work_size: int | None = DEFAULT_WORK_SIZE,
                 seed: int = 0) -> None:
        check_shift(name)
        if severity < 0:
            raise UserError(f"shift severity must be >= 0, got {severity}")
        self.base = base
        self.shift = name
        self.severity = float(severity)
        self.work_size = work_size
        self.seed = seed
        self.kind = base.kind
        self.labels = list(base.labels)
        self.class_names = list(base.class_names)
        self.skipped = list(base.skipped)
        self.identity = f"{base.identity}|shift={name}:{severity:g}:size={work_size}:seed={seed}:{SHIFTS_VERSION}"

    def load(self, index: int) -> Image.Image:
        index = self._check_index(index)
        image = self.base.load(index).convert("RGB")
        if self.work_size and image.size != (self.work_size, self.work_size):
            image = image.resize((self.work_size, self.work_size), Image.Resampling.BICUBIC)
        return apply_shift(image, self.shift, self.severity, random.Random(self.seed * 1_000_003 + index))

    def sample_ids(self) -> list[str]:
        return self.base.sample_ids()
