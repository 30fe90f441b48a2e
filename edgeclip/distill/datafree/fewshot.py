"""Few-shot fine-tuning (paper 002 §4.3): is the data-free student a good starting point?

For each k in `shots` and each of `seeds` seeds: k real images per class (drawn by the seed from
the train split), fine-tune a copy of the distilled student with cross-entropy for a fixed number
of optimiser steps, and measure top-1 on the untouched test split. The same architecture from
random initialisation, trained identically on the same k-shot images, is the baseline (the paper
compares with ImageNet weights, which do not exist offline). Each (k, seed) result is stored under
`checkpoint_dir` as it finishes, so a resumed run only does the missing ones.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn
from torch.utils.data import Dataset

from edgeclip.bench.metrics import top1_accuracy
from edgeclip.config import DistillConfig
from edgeclip.data import ImageDataset, Subset, sample_per_class
from edgeclip.data.preprocess import Preprocess
from edgeclip.distill.augment import training_view
from edgeclip.distill.losses import cross_entropy_criterion
from edgeclip.distill.trainer import predict_logits, train_classifier
from edgeclip.errors import UserError
from edgeclip.io_utils import read_json, write_json
from edgeclip.utils import seed_everything


def check_shots(shots: Sequence[int], seeds: int, steps: int, lr: float, batch_size: int) -> None:
    if any(int(k) != k or k < 1 for k in shots):
        raise UserError(f"datafree.fewshot_shots must be positive integers, got {list(shots)}")
    if shots and (seeds < 1 or steps < 1 or lr <= 0 or batch_size < 2):
        raise UserError("few-shot fine-tuning needs fewshot_seeds >= 1, fewshot_steps >= 1, fewshot_lr > 0 and fewshot_batch_size >= 2")


def fewshot_schedule(base: DistillConfig, n_images: int, steps: int, lr: float, batch_size: int) -> DistillConfig:
    """SGD schedule giving about `steps` optimiser steps on `n_images` images (lr ×0.1 at 60%/90%)."""
    batch = max(2, min(batch_size, n_images))
    epochs = max(1, math.ceil(steps / math.ceil(n_images / batch)))
    return dataclasses.replace(base, epochs=epochs, batch_size=batch, lr=lr, milestones=[int(epochs * 0.6), int(epochs * 0.9)],
                               gamma=0.1)


def fewshot_curves(
    student: nn.Module,
    fresh_student: Callable[[], nn.Module],
    train: ImageDataset,
    test_view: Dataset,
    test_labels: Sequence[int],
    preprocess: Preprocess,
    base: DistillConfig,
    *,
    shots: Sequence[int],
    seeds: int,
    steps: int,
    lr: float,
    batch_size: int,
    checkpoint_dir: Path,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Mean ± std top-1 over `seeds` per k, for the distilled student and for random init."""
    check_shots(shots, seeds, steps, lr, batch_size)
    rows = []
    for k in shots:
        for start in ("distilled", "scratch"):
            accuracies = []
            for seed in range(seeds):
                record = checkpoint_dir / f"{start}-k{k}-s{seed}.json"
                if resume and record.is_file():
                    accuracies.append(float(read_json(record)["accuracy"]))
                    continue
                subset = Subset(train, sample_per_class(train.labels, k, seed, train.class_names))
                schedule = fewshot_schedule(base, len(subset), steps, lr, batch_size)
                seed_everything(seed)
                model = copy.deepcopy(student) if start == "distilled" else fresh_student()
                train_set, augment = training_view(subset, preprocess, base.augment)
                train_classifier(model, train_set, criterion=cross_entropy_criterion(), config=schedule, seed=seed,
                                 progress=False, desc=f"few-shot k={k} {start} seed {seed}", batch_transform=augment)
                accuracy = top1_accuracy(predict_logits(model, test_view), list(test_labels))
                write_json(record, {"k": k, "start": start, "seed": seed, "accuracy": accuracy, "images": len(subset),
                                    "epochs": schedule.epochs, "batch_size": schedule.batch_size})
                accuracies.append(accuracy)
                if progress:
                    from tqdm.auto import tqdm

                    tqdm.write(f"few-shot k={k} {start} seed {seed}: top-1 {accuracy:.3f}")
            rows.append({"k": k, "start": start, "accuracies": accuracies, "mean": statistics.fmean(accuracies),
                         "std": statistics.pstdev(accuracies) if len(accuracies) > 1 else 0.0})
    return {"shots": list(shots), "seeds": seeds, "steps": steps, "lr": lr, "batch_size": batch_size, "rows": rows}
