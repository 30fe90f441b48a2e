"""The labelled-image dataset contract, subsets, class checks and augmentation (no torch here)."""

from __future__ import annotations

import math
import random
from typing import Any, Sequence

import numpy as np
from PIL import Image

from edgeclip.errors import UserError
from edgeclip.utils import stable_hash

# Every split name a dataset can be asked for. `pretrain` is the pool a proxy CLIP teacher is
# trained on: disjoint from `train` (what students and teacher heads learn from) and `test`.
SPLITS = ("train", "test", "pretrain", "all")
# Partitions are a property of the data, never of a run's seed: the same test images are held
# out for every teacher and student, whatever `recipe.seed` says.
PARTITION_SEED = 0


def check_split(split: str, kind: str, allowed: tuple[str, ...] = SPLITS) -> None:
    """A UserError naming the allowed splits when `split` is not one of them."""
    if split not in allowed:
        raise UserError(f"unknown split '{split}' for {kind} data; use one of {', '.join(allowed)}")


class ImageDataset:
    """A labelled image dataset: `len(ds)`, `ds.load(i) -> PIL RGB`, `labels`, `class_names`.

    `identity` is a stable string (no Python `hash()`, same in every process) that teacher-output
    caches key on; it must change whenever the images behind the indices could change.
    `skipped` lists files dropped as corrupt when opened with `skip_corrupt=True`.
    """

    kind: str = "images"
    # Whether a mirrored image shows the same class (photos: yes; digits and text: no). Training
    # augmentation flips only such datasets.
    mirror_invariant: bool = False
    labels: list[int]
    class_names: list[str]
    identity: str
    skipped: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> Image.Image:
        raise NotImplementedError

    def sample_ids(self) -> list[str]:
        """One id per image naming the underlying sample (file path, source index), so two
        datasets can be checked for shared images whatever their split or subset."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> list[int]:
        """Images per class, indexed by label."""
        counts = [0] * len(self.class_names)
        for label in self.labels:
            counts[label] += 1
        return counts

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for run reports."""
        return {
            "kind": self.kind,
            "identity": self.identity,
            "images": len(self),
            "classes": list(self.class_names),
            "per_class": self.class_counts(),
            "skipped": list(self.skipped),
        }

    def _check_index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {self.kind} dataset of {len(self)} images")
        return index % len(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r}, images={len(self)}, classes={self.num_classes})"


class Subset(ImageDataset):
    """The images at `indices` of `dataset` (e.g. a low-shot sample); same class names and labels."""

    def __init__(self, dataset: ImageDataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        for i in self.indices:
            if not 0 <= i < len(dataset):
                raise IndexError(f"subset index {i} out of range for a dataset of {len(dataset)} images")
        self.kind = dataset.kind
        self.mirror_invariant = dataset.mirror_invariant
        self.labels = [dataset.labels[i] for i in self.indices]
        self.class_names = list(dataset.class_names)
        self.skipped = list(dataset.skipped)
        # Which indices, not only how many, decide the images, so the hash covers the list.
        self.identity = f"subset[n={len(self.indices)},idx={stable_hash(self.indices)}]({dataset.identity})"

    def load(self, index: int) -> Image.Image:
        return self.dataset.load(self.indices[self._check_index(index)])

    def sample_ids(self) -> list[str]:
        parent = self.dataset.sample_ids()
        return [parent[i] for i in self.indices]


def shared_samples(first: ImageDataset, second: ImageDataset) -> int:
    """How many underlying images two datasets share (0 for disjoint splits)."""
    return len(set(first.sample_ids()) & set(second.sample_ids()))


def check_disjoint(first: ImageDataset, second: ImageDataset, what: str) -> None:
    """UserError when `first` and `second` share images (e.g. a teacher's pool and a test split)."""
    shared = shared_samples(first, second)
    if shared:
        raise UserError(f"{what}: {shared} images are in both {first.identity} and {second.identity}; "
                        "use disjoint data (separate train/ and test/ folders, or the built-in splits)")


def check_same_classes(train: ImageDataset, test: ImageDataset) -> None:
    """Raise a `UserError` unless `train` and `test` have the same classes in the same order.

    Labels are indices into `class_names`, so a class folder present on one side only would make
    every later label mean something else.
    """
    if list(train.class_names) == list(test.class_names):
        return
    train_set, test_set = set(train.class_names), set(test.class_names)
    missing_in_test = sorted(train_set - test_set)
    missing_in_train = sorted(test_set - train_set)
    parts = []
    if missing_in_test:
        parts.append(f"missing in test: {', '.join(missing_in_test)}")
    if missing_in_train:
        parts.append(f"missing in train: {', '.join(missing_in_train)}")
    if not parts:
        parts.append(f"same names in a different order (train {train.class_names}, test {test.class_names})")
    raise UserError(
        f"train and test data have different classes ({'; '.join(parts)}); "
        "give both the same class folders (an empty class needs at least one image)"
    )


class DefaultAugment:
    """Train-time augmentation on PIL images: a small random crop that keeps the aspect ratio,
    a small rotation/translation, and an optional horizontal flip.

    The output's long side is `size`, so a following `Preprocess` still applies its own resize
    mode (letterbox keeps its padding; center crop its crop). Tiny images (8×8 digits) are
    upsampled *before* cropping so the crop does not round away whole pixels. Randomness comes
    from Python's `random`, which DataLoader re-seeds per worker and `seed_everything` seeds.
    """

    def __init__(
        self,
        size: int,
        *,
        hflip: bool = False,
        scale: tuple[float, float] = (0.8, 1.0),
        degrees: float = 10.0,
        translate: float = 0.06,
    ) -> None:
        if size < 1:
            raise ValueError(f"augment size must be positive, got {size}")
        self.size = size
        self.hflip = hflip
        self.scale = scale
        self.degrees = degrees
        self.translate = translate

    def __call__(self, image: Image.Image) -> Image.Image:
        image = image.convert("RGB")
        width, height = image.size
        factor = self.size / max(width, height)
        width, height = max(1, round(width * factor)), max(1, round(height * factor))
        image = image.resize((width, height), Image.Resampling.BICUBIC)

        # Crop an area fraction in `scale` with the image's own aspect ratio, then back to size.
        side = math.sqrt(random.uniform(*self.scale))
        crop_w, crop_h = max(1, round(width * side)), max(1, round(height * side))
        left, top = random.randint(0, width - crop_w), random.randint(0, height - crop_h)
        image = image.crop((left, top, left + crop_w, top + crop_h)).resize((width, height), Image.Resampling.BICUBIC)

        # Fill uncovered corners with the border's median colour (white for digits, road for dashcam).
        array = np.asarray(image)
        border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
        fill = tuple(int(v) for v in np.median(border, axis=0))
        shift = (round(random.uniform(-self.translate, self.translate) * width),
                 round(random.uniform(-self.translate, self.translate) * height))
        # PIL's rotate does rotation + translation; torchvision would cost seconds of import time.
        image = image.rotate(
            random.uniform(-self.degrees, self.degrees), resample=Image.Resampling.BILINEAR,
            translate=shift, fillcolor=fill,
        )
        if self.hflip and random.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image

    def __repr__(self) -> str:
        return (f"DefaultAugment(size={self.size}, hflip={self.hflip}, scale={self.scale}, "
                f"degrees={self.degrees}, translate={self.translate})")


def default_augment(size: int, *, hflip: bool = False) -> DefaultAugment:
    """Small random-resized-crop + affine. Flipping is off by default because a mirrored digit or
    text is a different thing; pass `hflip=True` for natural photos and dashcam frames."""
    return DefaultAugment(size, hflip=hflip)
