"""torch views of the datasets: preprocessed tensors for training and evaluation.

Kept apart from the dataset classes so that `edgeclip.data` (and the runtimes that read a
manifest's preprocessing) import without torch, as on a device.
"""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image
from torch.utils.data import Dataset

from edgeclip.data.base import ImageDataset
from edgeclip.data.pairs import PairDataset
from edgeclip.data.preprocess import Preprocess
from edgeclip.errors import UserError


class Preprocessed(Dataset):
    """torch view of an `ImageDataset`: item i is `(float32 tensor (3,H,W), int label)`.

    `augment` (PIL → PIL, train time only) runs before `preprocess`, so evaluation and export see
    exactly the `Preprocess` arithmetic that travels with the model.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        preprocess: Preprocess,
        augment: Callable[[Image.Image], Image.Image] | None = None,
    ) -> None:
        self.dataset = dataset
        self.preprocess = preprocess
        self.augment = augment

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.dataset.load(index)
        if self.augment is not None:
            image = self.augment(image)
        return torch.from_numpy(self.preprocess(image)), int(self.dataset.labels[index])


def preprocess_all(dataset: ImageDataset, preprocess: Preprocess) -> torch.Tensor:
    """Every image of a small dataset as one float32 tensor (N, 3, H, W), in index order."""
    if len(dataset) == 0:
        raise UserError(f"dataset {dataset.identity} has no images; point the data spec at a folder with images")
    return torch.stack([torch.from_numpy(preprocess(dataset.load(i))) for i in range(len(dataset))])


class PreprocessedPairs(Dataset):
    """torch view of a `PairDataset`: item i is `(float32 tensor (3,H,W), caption str)`; the
    default collate turns a batch of captions into a list of strings for the tokenizer."""

    def __init__(
        self,
        pairs: PairDataset,
        preprocess: Preprocess,
        augment: Callable[[Image.Image], Image.Image] | None = None,
    ) -> None:
        self.pairs = pairs
        self.preprocess = preprocess
        self.augment = augment

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        image = self.pairs.load(index)
        if self.augment is not None:
            image = self.augment(image)
        return torch.from_numpy(self.preprocess(image)), self.pairs.captions[index]
