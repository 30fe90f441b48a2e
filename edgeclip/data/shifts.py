"""Distribution shifts of real images — one module for every evaluation that reports robustness.

Digits have no natural shifted test set, so each shift is applied to the real held-out digits
(stated as "synthetic shift of real images" in every report): Gaussian noise, blur, rotation,
contrast inversion, JPEG compression and low resolution. Shifts act on the image upscaled to the
model's input size (an 8x8 digit blurred at 8x8 would be gone), then each model's own
preprocessing runs. The reported drop is in-distribution top-1 minus shifted top-1.

Two ways in: `synthetic_shifts(size, seed)` gives name → PIL transform (the DistillCLIP suite
passes them to its feature extractor); `ShiftedDataset(base, name, size)` wraps a labelled
dataset so that anything taking an `ImageDataset` (teacher caches, KD evaluation) sees the
shifted images — same labels, same sample ids, an identity that names the shift. No torch here.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from edgeclip.data.base import ImageDataset
from edgeclip.errors import unknown_name_error

Shift = Callable[[Image.Image], Image.Image]
# Bump whenever a shift's arithmetic changes: teacher-output caches key on the dataset identity,
# and a stale cache would silently report the old shift's numbers.
SHIFTS_VERSION = "v3"


def _upscaled(image: Image.Image, size: int) -> Image.Image:
    return image.resize((size, size), Image.BICUBIC) if image.size != (size, size) else image


def _background(image: Image.Image) -> tuple[int, ...]:
    return image.getpixel((0, 0))


def synthetic_shifts(size: int, seed: int = 0) -> dict[str, Shift]:
    """name → PIL transform, each deterministic (noise seeded by the image content and `seed`)."""

    def noise(image: Image.Image) -> Image.Image:
        image = _upscaled(image, size)
        pixels = np.asarray(image, dtype=np.float32)
        rng = np.random.default_rng([seed, int(pixels.sum()) % (2 ** 31)])
        return Image.fromarray(np.clip(pixels + rng.normal(0, 0.25 * 255, pixels.shape), 0, 255).astype(np.uint8))

    def blur(image: Image.Image) -> Image.Image:
        return _upscaled(image, size).filter(ImageFilter.GaussianBlur(radius=max(1.0, size / 16)))

    def rotation(image: Image.Image) -> Image.Image:
        image = _upscaled(image, size)
        return image.rotate(30, resample=Image.BICUBIC, fillcolor=_background(image))

    def inversion(image: Image.Image) -> Image.Image:
        return ImageOps.invert(_upscaled(image, size))

    def jpeg(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        _upscaled(image, size).save(buffer, format="JPEG", quality=10)
        with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
            return decoded.convert("RGB")

    def resolution(image: Image.Image) -> Image.Image:
        small = max(2, size // 8)
        return _upscaled(image, size).resize((small, small), Image.BILINEAR).resize((size, size), Image.NEAREST)

    return {"noise": noise, "blur": blur, "rotation": rotation, "inversion": inversion, "jpeg": jpeg,
            "resolution": resolution}


SHIFT_DESCRIPTIONS = {
    "noise": "Gaussian noise, sigma 0.25 of the range",
    "blur": "Gaussian blur, radius size/16",
    "rotation": "rotated 30 degrees",
    "inversion": "contrast inverted (white ink on black)",
    "jpeg": "JPEG quality 10",
    "resolution": "down to size/8 and back up",
}


def check_shift(name: str) -> str:
    if name not in SHIFT_DESCRIPTIONS:
        raise unknown_name_error("distribution shift", name, SHIFT_DESCRIPTIONS, f"use one of {', '.join(SHIFT_DESCRIPTIONS)}")
    return name


class ShiftedDataset(ImageDataset):
    """`base` with shift `name` applied to every image at `size`×`size` (deterministic)."""

    def __init__(self, base: ImageDataset, name: str, size: int = 32, *, seed: int = 0) -> None:
        check_shift(name)
        self.base = base
        self.shift = name
        self.size = int(size)
        self.seed = seed
        self._transform = synthetic_shifts(self.size, seed)[name]
        self.kind = base.kind
        self.labels = list(base.labels)
        self.class_names = list(base.class_names)
        self.skipped = list(base.skipped)
        self.identity = f"{base.identity}|shift={name}:size={self.size}:seed={seed}:{SHIFTS_VERSION}"

    def load(self, index: int) -> Image.Image:
        return self._transform(self.base.load(self._check_index(index)).convert("RGB"))

    def sample_ids(self) -> list[str]:
        return self.base.sample_ids()

    def describe(self) -> dict:
        return {**super().describe(), "shift": self.shift, "description": f"synthetic shift of real images: {SHIFT_DESCRIPTIONS[self.shift]}"}
