"""Open train/test data for a distillation run, checked, with the low-shot selection applied."""

from __future__ import annotations

from dataclasses import dataclass

from edgeclip.config import DataConfig
from edgeclip.data import ImageDataset, Subset, check_disjoint, check_same_classes, open_image_dataset, sample_per_class
from edgeclip.data.class_match import parse_class_map, rename_classes
from edgeclip.errors import UserError


@dataclass
class DistillData:
    train_full: ImageDataset  # the whole train split (teacher caches key on it)
    train: ImageDataset  # what student and teacher train on: train_full or its k-shot Subset
    test: ImageDataset  # never reduced: low-shot changes the training data only (paper 000 §3.3.1)
    shots: int

    @property
    def class_names(self) -> list[str]:
        return list(self.train.class_names)

    def describe(self) -> dict:
        return {"train": self.train.identity, "test": self.test.identity, "train_images": len(self.train),
                "test_images": len(self.test), "shots": self.shots, "classes": self.class_names}


def low_shot(dataset: ImageDataset, shots: int, seed: int) -> ImageDataset:
    """k images per class from `dataset` (seeded); `shots=0` keeps everything."""
    if shots < 0:
        raise UserError(f"data.shots must be >= 0 (0 = all images), got {shots}")
    if shots == 0:
        return dataset
    return Subset(dataset, sample_per_class(dataset.labels, shots, seed, dataset.class_names))


def open_distill_data(cfg: DataConfig, seed: int, shots: int | None = None) -> DistillData:
    """Train and test splits from the recipe's data specs; class folders must agree and the
    splits must not share an image. `seed` picks the low-shot sample, never the split."""
    # data.classname_map renames class folders (0 -> zero): the names the student predicts and the
    # teacher's prompts use. Train and test are then matched by name (same set, same order).
    class_map = parse_class_map(cfg.classname_map)
    train = rename_classes(open_image_dataset(cfg.train, "train", skip_corrupt=cfg.skip_corrupt), class_map,
                           f"data.train {cfg.train}")
    test = rename_classes(open_image_dataset(cfg.test, "test", skip_corrupt=cfg.skip_corrupt), class_map,
                          f"data.test {cfg.test}")
    check_same_classes(train, test)
    check_disjoint(train, test, "train and test data overlap")
    if len(test) == 0:
        raise UserError(f"test data {cfg.test} has no images; point data.test at a folder with a test split")
    k = cfg.shots if shots is None else shots
    return DistillData(train_full=train, train=low_shot(train, k, seed), test=test, shots=k)
