"""Preloaded image tensors and batched augmentation for small datasets.

Why: on 2 CPU cores the per-image PIL pipeline (decode, augment, preprocess) costs ~0.5–1 ms per
image, as much as a 32×32 student's forward+backward. Small datasets (digits: 719 × 3×32×32
floats = 18 MB) are preprocessed once into a tensor, and augmentation runs on whole batches with
one `affine_grid`/`grid_sample` call. Larger datasets stay on the PIL `Preprocessed` path.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import Dataset

from edgeclip.data import ImageDataset, Preprocess, Preprocessed, default_augment, preprocess_all

# Preload when the preprocessed tensor stays below this size.
PRELOAD_MAX_BYTES = 1 << 30


class TensorImages(Dataset):
    """A preprocessed dataset held in memory: item i is (images[i], labels[i])."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images for {len(labels)} labels")
        self.images = images
        self.labels = labels.long()

    @classmethod
    def from_dataset(cls, dataset: ImageDataset, preprocess: Preprocess) -> "TensorImages":
        return cls(preprocess_all(dataset, preprocess), torch.as_tensor(list(dataset.labels), dtype=torch.long))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


def fits_in_memory(dataset: ImageDataset, preprocess: Preprocess) -> bool:
    return len(dataset) * 3 * preprocess.size * preprocess.size * 4 <= PRELOAD_MAX_BYTES


class BatchAugment:
    """Per-image random rotation, scale and shift of a normalized batch (N,3,H,W).

    Uncovered corners are filled with each image's mean border colour (white paper for digits),
    as `data.DefaultAugment` does for PIL images. No flips: a mirrored digit is another thing.
    """

    def __init__(self, degrees: float = 10.0, scale: tuple[float, float] = (0.9, 1.1), translate: float = 0.06, hflip: bool = False) -> None:
        self.degrees = degrees
        self.scale = scale
        self.translate = translate
        self.hflip = hflip

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(self.degrees)
        zoom = self.scale[0] + torch.rand(n, generator=generator) * (self.scale[1] - self.scale[0])
        shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 2 * self.translate  # grid units span 2
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if self.hflip else torch.ones(n)
        theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
        grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
        border = torch.cat([images[:, :, 0, :], images[:, :, -1, :], images[:, :, :, 0], images[:, :, :, -1]], dim=2)
        fill = border.mean(dim=2)[:, :, None, None]
        return nn.functional.grid_sample(images - fill, grid, align_corners=False) + fill

    def __repr__(self) -> str:
        return f"BatchAugment(degrees={self.degrees}, scale={self.scale}, translate={self.translate}, hflip={self.hflip})"


def training_view(dataset: ImageDataset, preprocess: Preprocess, augment: bool) -> tuple[Dataset, BatchAugment | None]:
    """(torch dataset, batch transform) for training: preloaded + batch-augmented when small,
    else the PIL path with `data.default_augment` per image."""
    hflip = dataset.mirror_invariant
    if fits_in_memory(dataset, preprocess):
        return TensorImages.from_dataset(dataset, preprocess), (BatchAugment(hflip=hflip) if augment else None)

    return Preprocessed(dataset, preprocess, default_augment(preprocess.size, hflip=hflip) if augment else None), None


def eval_view(dataset: ImageDataset, preprocess: Preprocess) -> Dataset:
    if fits_in_memory(dataset, preprocess):
        return TensorImages.from_dataset(dataset, preprocess)

    return Preprocessed(dataset, preprocess)
