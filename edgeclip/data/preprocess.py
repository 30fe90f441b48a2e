"""Preprocessing spec: how raw images become model input. Travels with every model and artifact.

Kept free of torch so the on-device runner can reuse the same arithmetic with numpy only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
from PIL import Image

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

ResizeMode = Literal["center_crop", "letterbox", "stretch"]


@dataclass(frozen=True)
class Preprocess:
    """Resize to `size` (square) by `resize_mode`, scale to [0,1], normalize by mean/std. NCHW RGB.

    `fused_frame` (height, width): the model graph itself does this preprocessing on a raw uint8 RGB
    frame of that size (`exporters/fused_preprocess.py`); the host only hands it frames, and
    calling this object gives that frame (`to_frame`), not a float tensor. None: the classic path.
    """

    size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    resize_mode: ResizeMode = "center_crop"
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    pad_value: tuple[int, int, int] = (0, 0, 0)
    fused_frame: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.fused_frame is None:
            # Absent rather than null: teacher-output and feature caches hash this dict, and an unfused
            # preprocessing must keep the key it had before the field existed.
            del data["fused_frame"]
        else:
            data["fused_frame"] = list(self.fused_frame)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocess":
        data = dict(data)
        for key in ("mean", "std", "pad_value"):
            if key in data:
                data[key] = tuple(data[key])
        if data.get("fused_frame") is not None:
            data["fused_frame"] = tuple(int(v) for v in data["fused_frame"])
        return cls(**data)

    @property
    def fused(self) -> bool:
        return self.fused_frame is not None

    def classic(self) -> "Preprocess":
        """The same preprocessing done on the host (what an unfused artifact of this model takes)."""
        return replace(self, fused_frame=None)

    def to_frame(self, image: Image.Image) -> np.ndarray:
        """PIL image → uint8 (H, W, 3) RGB frame of `fused_frame`'s size. An image of another size is
        stretched to it on the host (PIL bilinear): the artifact's graph was built for one frame size."""
        if self.fused_frame is None:
            raise ValueError("to_frame needs a fused preprocessing (fused_frame set)")
        height, width = self.fused_frame
        image = image.convert("RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)

    def resize(self, image: Image.Image) -> Image.Image:
        """Geometric part only: RGB image → `size`×`size` RGB image."""
        image = image.convert("RGB")
        if self.resize_mode == "letterbox":
            return letterbox(image, self.size, self.pad_value, self.interpolation)
        if self.resize_mode == "stretch":
            return image.resize((self.size, self.size), _resample(self.interpolation))
        return center_crop(image, self.size, self.interpolation)

    def __call__(self, image: Image.Image) -> np.ndarray:
        """PIL image → float32 array (3, size, size), normalized; for a fused preprocessing the uint8
        (H, W, 3) frame the graph takes (`to_frame`)."""
        if self.fused_frame is not None:
            return self.to_frame(image)
        array = np.asarray(self.resize(image), dtype=np.float32) / 255.0
        array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1))


def _resample(name: str) -> int:
    return Image.Resampling.BICUBIC if name == "bicubic" else Image.Resampling.BILINEAR


def center_crop(image: Image.Image, size: int, interpolation: str = "bicubic") -> Image.Image:
    """CLIP preprocessing: resize the short side to `size`, then crop the centre square."""
    new_w, new_h, left, top = center_crop_box(*image.size, size)
    image = image.resize((new_w, new_h), _resample(interpolation))
    return image.crop((left, top, left + size, top + size))


def center_crop_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(resized width, resized height, crop left, crop top) of `center_crop`; the fused graph uses the same."""
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    return new_w, new_h, (new_w - size) // 2, (new_h - size) // 2


def letterbox(
    image: Image.Image, size: int, pad_value: tuple[int, int, int] = (0, 0, 0), interpolation: str = "bicubic"
) -> Image.Image:
    """Shrink the long side to `size` keeping aspect ratio, then pad to a centred square.

    Nothing is cut off (a dashcam accident at the frame's edge survives), unlike center crop.
    """
    new_w, new_h, left, top = letterbox_box(*image.size, size)
    resized = image.resize((new_w, new_h), _resample(interpolation))
    canvas = Image.new("RGB", (size, size), tuple(pad_value))
    canvas.paste(resized, (left, top))
    return canvas


def letterbox_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(resized width, resized height, pad left, pad top) of `letterbox`; the fused graph uses the same."""
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    return new_w, new_h, (size - new_w) // 2, (size - new_h) // 2


MAX_FRAME_SIDE = 8192  # larger than any camera/decoder frame edgeclip targets (8K is 7680 wide)


def parse_frame_size(text: str) -> tuple[int, int]:
    """'720x1280' (height x width, as numpy/torch shape a frame) → (720, 1280); ValueError with the fix."""
    parts = str(text).strip().lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"frame size {text!r} is not HEIGHTxWIDTH; write it like 720x1280 (height first)")
    height, width = (int(p) for p in parts)
    if not (1 <= height <= MAX_FRAME_SIDE and 1 <= width <= MAX_FRAME_SIDE):
        raise ValueError(f"frame size {height}x{width} is out of range; each side must be 1..{MAX_FRAME_SIDE} pixels")
    return height, width


@dataclass(frozen=True)
class FrameGeometry:
    """Static arithmetic of a fused preprocessing: frame (H, W) → `size`×`size` model input.

    `trim` (top, left, height, width): the frame region whose height/width divide by `pool` (the
    remainder, if any, is split evenly off both edges); `pool` (kh, kw): integer box pre-filter (average
    of kh×kw pixels, the antialiasing a bilinear resize lacks when it shrinks by more than 2×; a divisor
    of the side when one leaves the bilinear step ≤ 2× to shrink, so most frames need no trim);
    `resized` (h, w): bilinear target, the same size PIL's `Preprocess.resize` resizes to; then the
    center crop (`crop` top, left) or letterbox padding (`pad` top, bottom, left, right).
    """

    frame: tuple[int, int]
    trim: tuple[int, int, int, int]
    pool: tuple[int, int]
    resized: tuple[int, int]
    crop: tuple[int, int] | None
    pad: tuple[int, int, int, int] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_geometry(preprocess: Preprocess, frame: tuple[int, int]) -> FrameGeometry:
    """The geometry of `preprocess.resize` for a fixed frame size (ValueError when the frame is too small)."""
    height, width = frame
    size = preprocess.size
    crop = pad = None
    if preprocess.resize_mode == "letterbox":
        new_w, new_h, left, top = letterbox_box(width, height, size)
        pad = (top, size - new_h - top, left, size - new_w - left)
    elif preprocess.resize_mode == "stretch":
        new_w = new_h = size
    else:  # center_crop
        new_w, new_h, left, top = center_crop_box(width, height, size)
        crop = (top, left)
    if new_h > height or new_w > width:
        raise ValueError(
            f"a {height}x{width} frame is smaller than the {new_h}x{new_w} the model's {preprocess.resize_mode} "
            f"to {size}x{size} resizes it to; fused preprocessing only shrinks frames: pass the camera's real "
            "frame size, or export without fused preprocessing")
    pool_h, used_h = _pool_factor(height, new_h)
    pool_w, used_w = _pool_factor(width, new_w)
    trim = ((height - used_h) // 2, (width - used_w) // 2, used_h, used_w)
    return FrameGeometry((height, width), trim, (pool_h, pool_w), (new_h, new_w), crop, pad)


# The bilinear step after the box pre-filter may shrink by at most this much: up to 2× its two taps still
# touch every input pixel (beyond, pixels are skipped: aliasing). Preferring a divisor of the side up to here
# (no trimmed edge) measured better than trimming for a larger box: top-1 agreement with the PIL path of a
# CIFAR-10 student on 600 photos upsampled to 100² was 0.973 with a 2×2 box (50 → 32 bilinear) and 0.908 with
# a 3×3 box after trimming 1 pixel (33 → 32).
MAX_BILINEAR_SHRINK = 2.0


def _pool_factor(side: int, target: int) -> tuple[int, int]:
    """(box factor k, pixels of `side` it uses) for shrinking `side` towards `target`: the largest divisor of
    `side` up to side // target when the bilinear step after it then shrinks by ≤ MAX_BILINEAR_SHRINK (no
    pixel dropped, no copy), else side // target with the remainder trimmed off both edges."""
    ideal = max(1, side // target)
    divisor = next(k for k in range(ideal, 0, -1) if side % k == 0)
    if (side // divisor) <= MAX_BILINEAR_SHRINK * target:
        return divisor, side
    return ideal, side // ideal * ideal
