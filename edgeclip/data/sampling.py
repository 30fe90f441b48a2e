"""Seeded index selection: low-shot k-per-class subsets and stratified train/test splits."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from edgeclip.errors import UserError


def _indices_by_class(labels: Sequence[int]) -> dict[int, list[int]]:
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_class[int(label)].append(index)
    return dict(sorted(by_class.items()))


def _class_label(label: int, class_names: Sequence[str] | None) -> str:
    if class_names is not None and 0 <= label < len(class_names):
        return f"'{class_names[label]}' (label {label})"
    return f"label {label}"


def sample_per_class(
    labels: Sequence[int], k: int, seed: int, class_names: Sequence[str] | None = None
) -> list[int]:
    """Exactly `k` indices of every class, drawn without replacement by `seed`; returned sorted.

    Classes are those present in `labels`, plus every index of `class_names` when given (so a
    class with no images at all is an error, not silently dropped from a low-shot run).
    """
    if int(k) != k or k < 1:
        raise UserError(f"shots per class must be a positive integer, got {k!r}; set data.shots to 1 or more (0 = all)")
    by_class = _indices_by_class(labels)
    if class_names is not None:
        for label in range(len(class_names)):
            by_class.setdefault(label, [])
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in sorted(by_class):
        members = by_class[label]
        if len(members) < k:
            raise UserError(
                f"class {_class_label(label, class_names)} has only {len(members)} images but {k} shots "
                f"per class were asked for; lower data.shots to at most {len(members)} or add images"
            )
        # Per-class draws come from one generator in a fixed class order, so the subset depends
        # only on (labels, k, seed).
        picked = rng.choice(len(members), size=k, replace=False)
        chosen.extend(members[i] for i in picked)
    return sorted(chosen)


def stratified_split(labels: Sequence[int], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split indices into (train, test), each class contributing round(n·test_fraction) to test.

    A class with at least two images keeps at least one on each side, so every class is both
    learnable and measurable. Both lists are sorted.
    """
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"test fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train: list[int] = []
    test: list[int] = []
    for _, members in _indices_by_class(labels).items():
        order = rng.permutation(len(members))
        n_test = int(round(len(members) * test_fraction))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        test.extend(members[i] for i in order[:n_test])
        train.extend(members[i] for i in order[n_test:])
    return sorted(train), sorted(test)


def sample_indices(total: int, count: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded sample of `count` out of `total` (all when count is 0 or ≥ total)."""
    if 0 < count < total:
        return np.sort(np.random.default_rng(seed).choice(total, count, replace=False))
    return np.arange(total)


def sample_images(dataset, preprocess, count: int, seed: int = 0) -> np.ndarray:  # noqa: ANN001 - ImageDataset, Preprocess
    """A seeded sample of `count` images of `dataset` (0 = all), preprocessed: float32 (N,3,H,W), or
    uint8 (N,H,W,3) frames for a fused preprocessing (`Preprocess.fused_frame`).

    The one sampler behind calibration and parity inputs (build and `edgeclip export`).
    """
    if len(dataset) == 0:
        raise UserError(f"dataset {dataset.identity} has no images; point the calibration/parity data at a folder with images")
    indices = sample_indices(len(dataset), count, seed)
    batch = np.stack([preprocess(dataset.load(int(i))) for i in indices])
    return batch if batch.dtype == np.uint8 else batch.astype(np.float32)
