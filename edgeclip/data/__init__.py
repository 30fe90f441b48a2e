"""edgeclip.data: labelled image datasets, image–caption pairs, preprocessing, low-shot sampling.

Entry points: `open_image_dataset(spec, split)` for `digits`, `synthetic[:N]` or a folder of
class folders; `open_pair_dataset(csv)`; `Preprocessed(dataset, preprocess, augment)` for torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgeclip.data.base import (
    PARTITION_SEED, SPLITS, DefaultAugment, ImageDataset, Subset, check_disjoint, check_same_classes, check_split,
    default_augment, shared_samples,
)
from edgeclip.data.cifar10 import CIFAR10_CLASSES, Cifar10Dataset
from edgeclip.data.digits import DIGIT_WORDS, DigitsDataset
from edgeclip.data.folder import FolderDataset
from edgeclip.data.images import IMAGE_EXTENSIONS, load_image
from edgeclip.data.pairs import PairDataset
from edgeclip.data.preprocess import Preprocess, center_crop, letterbox
from edgeclip.data.sampling import sample_per_class, stratified_split
from edgeclip.data.synthetic import DEFAULT_PER_CLASS, SyntheticDataset
from edgeclip.errors import UserError, unknown_name_error
from edgeclip.registry import Registry

SPEC_FORMS = "'digits', 'cifar10' (or 'cifar10:/path/to/cifar10-jpg.tar.gz'), 'synthetic' or 'synthetic:N' (N images per class), or a path to a folder of class folders"


@dataclass(frozen=True)
class DatasetEntry:
    """A named built-in dataset: `factory(arg, split)`; `arg` is the text after ':' (or '')."""

    factory: Callable[[str, str], ImageDataset]
    description: str


DATASETS: Registry[DatasetEntry] = Registry("dataset", "edgeclip list datasets")


def _open_digits(arg: str, split: str) -> ImageDataset:
    if arg:
        raise UserError(f"'digits' takes no ':{arg}' argument; use plain 'digits'")
    return DigitsDataset(split=split)


def _open_cifar10(arg: str, split: str) -> ImageDataset:
    return Cifar10Dataset(split=split, tarball=arg or None)


def _open_synthetic(arg: str, split: str) -> ImageDataset:
    if not arg:
        return SyntheticDataset(DEFAULT_PER_CLASS, split=split)
    try:
        per_class = int(arg)
    except ValueError:
        raise UserError(f"'synthetic:{arg}' needs a whole number of images per class, e.g. 'synthetic:20'") from None
    return SyntheticDataset(per_class, split=split)


DATASETS.register("digits", DatasetEntry(
    _open_digits, "scikit-learn digits: 1,797 real 8x8 handwritten digits, 10 classes; fixed splits "
                  "test 359 / pretrain 719 (proxy teachers only) / train 719"))
DATASETS.register("cifar10", DatasetEntry(
    _open_cifar10, "CIFAR-10: 60,000 real 32x32 photos, 10 classes, read from cifar10-jpg.tar.gz; fixed splits "
                   "test 10,000 (CIFAR's own) / pretrain 25,000 (proxy teachers only) / train 25,000"))
DATASETS.register("synthetic", DatasetEntry(
    _open_synthetic, f"coloured shapes, 5 classes, 32x32; synthetic:N = N per class per split (default {DEFAULT_PER_CLASS})"))


def list_datasets() -> list[tuple[str, str]]:
    """(name, description) of the built-in datasets, for `edgeclip list datasets`."""
    return [(name, entry.description) for name, entry in DATASETS.items()]


# A folder without train/ and test/ is split this way (fixed, PARTITION_SEED) when a split is asked for.
FLAT_FOLDER_TEST_FRACTION = 0.2


def open_image_dataset(spec: str, split: str = "train", *, skip_corrupt: bool = False) -> ImageDataset:
    """Open a labelled image dataset by spec: a built-in name (`digits`, `synthetic[:N]`) or a folder.

    Splits are fixed per dataset (never by a run's seed), so every teacher and student of a
    dataset is measured on the same held-out images. An existing path always wins, so a folder
    that happens to be called `digits` still opens as a folder.
    """
    check_split(split, "data")
    spec = str(spec).strip()
    if not spec:
        raise UserError(f"empty data spec; use {SPEC_FORMS}")
    if Path(spec).expanduser().exists():
        dataset = FolderDataset(spec, split, skip_corrupt=skip_corrupt)
        if dataset.split == "all" and split != "all":
            # A flat folder of class folders: split it 80/20 (fixed), so that "train" and
            # "test" never share an image.
            train_indices, test_indices = stratified_split(dataset.labels, FLAT_FOLDER_TEST_FRACTION, PARTITION_SEED)
            return Subset(dataset, train_indices if split == "train" else test_indices)
        return dataset
    name, _, arg = spec.partition(":")
    if name in DATASETS:
        return DATASETS.get(name).factory(arg, split)
    if "/" in spec or "\\" in spec or spec.startswith((".", "~")):
        raise UserError(f"data folder {spec} does not exist; fix the path, or use {SPEC_FORMS}")
    raise unknown_name_error("data spec", spec, DATASETS.names(), f"use {SPEC_FORMS}")


def open_pair_dataset(csv_path: str | Path, *, skip_corrupt: bool = False) -> PairDataset:
    """Image–caption pairs from a `path,caption` CSV (see `data/pairs.py`)."""
    return PairDataset(csv_path, skip_corrupt=skip_corrupt)


# torch views load on first use, so reading datasets and preprocessing needs no torch (devices).
_TORCH_VIEWS = ("Preprocessed", "PreprocessedPairs", "preprocess_all")


def __getattr__(name: str):
    if name in _TORCH_VIEWS:
        # lazy: defers torch
        from edgeclip.data import torch_views

        return getattr(torch_views, name)
    raise AttributeError(f"module 'edgeclip.data' has no attribute '{name}'")


__all__ = [
    "CIFAR10_CLASSES", "DATASETS", "Cifar10Dataset", "DIGIT_WORDS", "IMAGE_EXTENSIONS", "PARTITION_SEED", "SPLITS",
    "DatasetEntry", "DefaultAugment", "DigitsDataset", "FolderDataset", "ImageDataset", "PairDataset",
    "Preprocess", "Preprocessed", "PreprocessedPairs", "Subset", "SyntheticDataset",
    "center_crop", "check_disjoint", "check_same_classes", "check_split", "shared_samples", "default_augment", "letterbox", "list_datasets", "load_image",
    "open_image_dataset", "open_pair_dataset", "preprocess_all", "sample_per_class", "stratified_split",
]
