"""A few evaluation images as the model sees them (after its resize and normalization), for the report.

A folder of white-on-black digits, a 64×64 photo letterboxed to 224, or classes in another order
all look plausible in a table of numbers; a strip of the model's actual inputs, labelled with the
class each counts as, shows such mismatches at a glance (issue: "the report shows a few input
thumbnails as the model sees them").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeclip.bench.figures import png_figure
from edgeclip.bench.harness import load_eval_data, open_eval_dataset
from edgeclip.data.preprocess import Preprocess

PREVIEW_NAME = "inputs.png"
PREVIEW_COUNT = 8


def denormalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(N,3,H,W) normalized → (N,H,W,3) in [0,1], the pixels the model's preprocessing produced."""
    pixels = images.transpose(0, 2, 3, 1) * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    return np.clip(pixels, 0.0, 1.0)


def spread_indices(labels: np.ndarray, count: int) -> list[int]:
    """Up to `count` indices, one per class in turn (first image of each class, then the second, ...)."""
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        by_class.setdefault(int(label), []).append(index)
    picked: list[int] = []
    depth = 0
    while len(picked) < count and any(depth < len(v) for v in by_class.values()):
        for label in sorted(by_class):
            if depth < len(by_class[label]) and len(picked) < count:
                picked.append(by_class[label][depth])
        depth += 1
    return picked


def preview_png(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], mean: Sequence[float],
                std: Sequence[float], count: int = PREVIEW_COUNT) -> bytes:
    """A one-row PNG strip of up to `count` inputs (spread over classes), each titled with its label."""
    picked = spread_indices(labels, count)
    pixels = denormalize(images[picked], mean, std)
    with png_figure(1, len(picked), figsize=(1.3 * len(picked), 1.6), dpi=100, squeeze=False) as (fig, axes, buffer):
        for ax, image, index in zip(axes[0], pixels, picked):
            ax.imshow(image, interpolation="nearest")
            label = int(labels[index])
            ax.set_title(class_names[label] if 0 <= label < len(class_names) else str(label), fontsize=8)
            ax.axis("off")
        fig.suptitle(f"as the model sees them ({images.shape[2]}×{images.shape[3]}, after its preprocessing)", fontsize=8)
    return buffer.getvalue()


def preview_for_artifact(data: str | Path, manifest: dict[str, Any], *, split: str = "test",
                         class_map: Any = None) -> bytes | None:
    """The preview of `data` preprocessed for the artifact of `manifest`; None when it has no
    image preprocessing or class names (text towers, dual encoders without classes)."""
    preprocess, classes = manifest.get("preprocessing"), manifest.get("class_names")
    if not isinstance(preprocess, dict) or not classes:
        return None
    # Fused preprocessing: the artifact takes frames; the host path shows what its graph computes (PIL bicubic
    # instead of its box + bilinear resize: the same geometry and normalization).
    settings = Preprocess.from_dict(preprocess).classic()
    if Path(data).suffix == ".npz":  # already preprocessed (build's eval_data.npz)
        evaluation = load_eval_data(data, settings, split=split, class_names=classes, class_map=class_map)
        images, labels = evaluation.images, evaluation.labels
    else:  # a dataset: preprocess only the few images shown, not all of them
        dataset = open_eval_dataset(data, split, classes, class_map)
        picked = spread_indices(np.asarray(dataset.labels), PREVIEW_COUNT)
        images = np.stack([settings(dataset.load(i)) for i in picked])
        labels = np.asarray(dataset.labels)[picked]
    return preview_png(images, labels, classes, settings.mean, settings.std)
