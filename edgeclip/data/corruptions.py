"""CIFAR-10-C-style corruptions at five severities, implemented here (numpy + Pillow only).

Ten of the corruptions of Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to
Common Corruptions and Perturbations" (ICLR 2019), with the CIFAR-10-C parameters of their
`ImageNet-C/create_c/make_cifar_c.py` (github.com/hendrycks/robustness, Apache-2.0), two or three
per category:

- noise: gaussian_noise, shot_noise, impulse_noise
- blur: gaussian_blur, defocus_blur
- weather-like: fog, brightness
- digital: contrast, pixelate, jpeg_compression

The released CIFAR-10-C arrays are not available offline, so these are re-implementations: the
same formulas and constants, our own random draws (seeded per image, so a corrupted test set is the
same in every run). Reported as "CIFAR-10-C-style", never as CIFAR-10-C itself. Corruptions act on
the image at its own size (32×32 for CIFAR-10), before each model's preprocessing.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image

from edgeclip.data.base import ImageDataset
from edgeclip.errors import UserError, unknown_name_error

SEVERITIES = (1, 2, 3, 4, 5)
CORRUPTIONS_VERSION = "v1"
Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]  # float [0,1] HxWx3 -> float [0,1]

# CIFAR-10-C constants per severity 1..5 (make_cifar_c.py).
GAUSSIAN_NOISE = (0.04, 0.06, 0.08, 0.09, 0.10)
SHOT_NOISE = (500, 250, 100, 75, 50)
IMPULSE_NOISE = (0.01, 0.02, 0.03, 0.05, 0.07)
GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))
FOG = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)
JPEG_QUALITY = (80, 65, 58, 50, 40)


def _convolve(channel: np.ndarray, kernel: np.ndarray, mode: str) -> np.ndarray:
    """2-D correlation of one channel with a small odd-sized kernel, borders padded by `mode`."""
    kh, kw = kernel.shape
    padded = np.pad(channel, ((kh // 2, kh // 2), (kw // 2, kw // 2)), mode=mode)
    out = np.zeros_like(channel)
    # Zero taps are skipped: the defocus disk fills a few of its 17×17 taps, and a shift evaluation
    # corrupts the test set 50 times (same sums, ~10× faster).
    for dy, dx in zip(*np.nonzero(kernel)):
        out += kernel[dy, dx] * padded[dy:dy + channel.shape[0], dx:dx + channel.shape[1]]
    return out


def _gaussian_kernel_1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)  # scipy/skimage's rule
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _gaussian_filter(image: np.ndarray, sigma: float) -> np.ndarray:
    """skimage.filters.gaussian (mode 'nearest', truncate 4) per channel, separable."""
    kernel = _gaussian_kernel_1d(sigma)
    out = np.empty_like(image)
    for c in range(image.shape[2]):
        rows = _convolve(image[:, :, c], kernel[None, :], "edge")
        out[:, :, c] = _convolve(rows, kernel[:, None], "edge")
    return out


def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return np.clip(x + rng.normal(size=x.shape, scale=GAUSSIAN_NOISE[severity - 1]), 0, 1)


def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = SHOT_NOISE[severity - 1]
    return np.clip(rng.poisson(x * c) / c, 0, 1)


def impulse_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper on each value with probability c, half salt (skimage's s&p default)."""
    hit = rng.random(x.shape) < IMPULSE_NOISE[severity - 1]
    salt = rng.random(x.shape) < 0.5
    return np.where(hit, salt.astype(x.dtype), x)


def gaussian_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return np.clip(_gaussian_filter(x, GAUSSIAN_BLUR[severity - 1]), 0, 1)


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    """make_cifar_c's defocus kernel: an aliased disk, normalised, then a 3×3 Gaussian of it."""
    extent = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(extent, extent)
    disk = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    # cv2.GaussianBlur(ksize=(3, 3), sigmaX=alias_blur), border reflect-101 (numpy's 'reflect').
    taps = np.exp(-0.5 * (np.arange(-1, 2) / alias_blur) ** 2)
    taps /= taps.sum()
    return _convolve(_convolve(disk, taps[None, :], "reflect"), taps[:, None], "reflect")


def defocus_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    kernel = _disk(*DEFOCUS_BLUR[severity - 1])
    return np.clip(np.stack([_convolve(x[:, :, c], kernel, "reflect") for c in range(3)], axis=2), 0, 1)


def plasma_fractal(rng: np.random.Generator, mapsize: int = 32, wibbledecay: float = 3) -> np.ndarray:
    """Diamond-square height map in [0, 1] (make_cifar_c's, with a seeded generator)."""
    maparray = np.zeros((mapsize, mapsize))
    stepsize, wibble = mapsize, 100.0

    def wibbledmean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        half = stepsize // 2
        corners = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squares = corners + np.roll(corners, shift=-1, axis=0)
        squares += np.roll(squares, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(squares)
        down_right = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        up_left = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        left = down_right + np.roll(down_right, 1, axis=0) + up_left + np.roll(up_left, -1, axis=1)
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(left)
        top = down_right + np.roll(down_right, 1, axis=1) + up_left + np.roll(up_left, -1, axis=0)
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(top)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def fog(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    strength, decay = FOG[severity - 1]
    size = 1 << int(np.ceil(np.log2(max(x.shape[:2]))))
    max_val = x.max()
    fogged = x + strength * plasma_fractal(rng, size, decay)[: x.shape[0], : x.shape[1], None]
    return np.clip(fogged * max_val / (max_val + strength), 0, 1)


def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """V of HSV raised by c (hue and saturation kept): RGB scales with V; black becomes grey c."""
    value = x.max(axis=2, keepdims=True)
    raised = np.clip(value + BRIGHTNESS[severity - 1], 0, 1)
    scaled = np.where(value > 0, x * raised / np.where(value > 0, value, 1), raised)
    return np.clip(scaled, 0, 1)


def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    means = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - means) * CONTRAST[severity - 1] + means, 0, 1)


def _via_pil(x: np.ndarray, change: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    image = Image.fromarray(np.round(x * 255).astype(np.uint8))
    return np.asarray(change(image).convert("RGB"), dtype=np.float64) / 255.0


def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[:2]
    c = PIXELATE[severity - 1]
    return _via_pil(x, lambda im: im.resize((int(width * c), int(height * c)), Image.Resampling.BOX)
                    .resize((width, height), Image.Resampling.BOX))


def jpeg_compression(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    def encode(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY[severity - 1])
        with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
            decoded.load()
            return decoded.copy()

    return _via_pil(x, encode)


CORRUPTIONS: dict[str, tuple[str, Corruption]] = {
    "gaussian_noise": ("noise", gaussian_noise),
    "shot_noise": ("noise", shot_noise),
    "impulse_noise": ("noise", impulse_noise),
    "gaussian_blur": ("blur", gaussian_blur),
    "defocus_blur": ("blur", defocus_blur),
    "fog": ("weather", fog),
    "brightness": ("weather", brightness),
    "contrast": ("digital", contrast),
    "pixelate": ("digital", pixelate),
    "jpeg_compression": ("digital", jpeg_compression),
}


def check_corruption(name: str, severity: int) -> None:
    if name not in CORRUPTIONS:
        raise unknown_name_error("corruption", name, list(CORRUPTIONS), f"use one of {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise UserError(f"corruption severity must be 1..5, got {severity}")


def corrupt(image: Image.Image, name: str, severity: int, rng: np.random.Generator) -> Image.Image:
    """`image` with corruption `name` at `severity` (1..5), as an 8-bit RGB image (as CIFAR-10-C stores them)."""
    check_corruption(name, severity)
    x = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    out = CORRUPTIONS[name][1](x, severity, rng)
    return Image.fromarray(np.round(np.clip(out, 0, 1) * 255).astype(np.uint8))


class CorruptedDataset(ImageDataset):
    """`base` with corruption `name` at `severity` on every image; image i's random draws come
    from (seed, corruption, severity, i), so the set is the same in every run and process."""

    def __init__(self, base: ImageDataset, name: str, severity: int, *, seed: int = 0) -> None:
        check_corruption(name, severity)
        self.base, self.corruption, self.severity, self.seed = base, name, int(severity), seed
        self.kind = base.kind
        self.mirror_invariant = base.mirror_invariant
        self.labels = list(base.labels)
        self.class_names = list(base.class_names)
        self.skipped = list(base.skipped)
        self.identity = f"{base.identity}|corruption={name}:s{self.severity}:seed={seed}:{CORRUPTIONS_VERSION}"
        self._code = list(CORRUPTIONS).index(name)

    def load(self, index: int) -> Image.Image:
        index = self._check_index(index)
        rng = np.random.default_rng([self.seed, self._code, self.severity, index])
        return corrupt(self.base.load(index), self.corruption, self.severity, rng)

    def sample_ids(self) -> list[str]:
        return self.base.sample_ids()

    def describe(self) -> dict:
        return {**super().describe(), "corruption": self.corruption, "category": CORRUPTIONS[self.corruption][0],
                "severity": self.severity, "description": "CIFAR-10-C-style corruption implemented here (not the released arrays)"}
