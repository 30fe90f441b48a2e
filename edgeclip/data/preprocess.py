"""Preprocessing spec: how raw images become model input. Travels with every model and artifact.

Kept free of torch so the on-device runner can reuse the same arithmetic with numpy only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

ResizeMode = Literal["center_crop", "letterbox", "stretch"]


@dataclass(frozen=True)
class Preprocess:
    """Resize to `size` (square) by `resize_mode`, scale to [0,1], normalize by mean/std. NCHW RGB."""

    size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    resize_mode: ResizeMode = "center_crop"
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    pad_value: tuple[int, int, int] = (0, 0, 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocess":
        data = dict(data)
        for key in ("mean", "std", "pad_value"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def resize(self, image: Image.Image) -> Image.Image:
        """Geometric part only: RGB image → `size`×`size` RGB image."""
        image = image.convert("RGB")
        if self.resize_mode == "letterbox":
            return letterbox(image, self.size, self.pad_value, self.interpolation)
        if self.resize_mode == "stretch":
            return image.resize((self.size, self.size), _resample(self.interpolation))
        return center_crop(image, self.size, self.interpolation)

    def __call__(self, image: Image.Image) -> np.ndarray:
        """PIL image → float32 array (3, size, size), normalized."""
        array = np.asarray(self.resize(image), dtype=np.float32) / 255.0
        array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1))


def _resample(name: str) -> int:
    return Image.Resampling.BICUBIC if name == "bicubic" else Image.Resampling.BILINEAR


def center_crop(image: Image.Image, size: int, interpolation: str = "bicubic") -> Image.Image:
    """CLIP preprocessing: resize the short side to `size`, then crop the centre square."""
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), _resample(interpolation))
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def letterbox(
    image: Image.Image, size: int, pad_value: tuple[int, int, int] = (0, 0, 0), interpolation: str = "bicubic"
) -> Image.Image:
    """Shrink the long side to `size` keeping aspect ratio, then pad to a centred square.

    Nothing is cut off (a dashcam accident at the frame's edge survives), unlike center crop.
    """
    width, height = image.size
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = image.resize((new_w, new_h), _resample(interpolation))
    canvas = Image.new("RGB", (size, size), tuple(pad_value))
    canvas.paste(resized, ((size - new_w) // 2, (size - new_h) // 2))
    return canvas
