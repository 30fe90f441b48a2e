"""The supervised/KD training loop shared by students, students from scratch and CNN teachers.

Teacher outputs come in as one precomputed tensor aligned with the training set (the teacher ran
once per image, see `edgeclip.teacher.cache`); each batch looks its rows up by index. Note the
trade-off: with augmentation on, the student sees an augmented view while the teacher's target
comes from the clean image — that is what makes the cache possible, and it is the usual
"offline KD" setting.

Determinism: every epoch reseeds torch and the loader's generator from (seed, epoch), so a run
resumed from `last.pt` at epoch e continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from edgeclip.config import DistillConfig
from edgeclip.distill.augment import TensorImages
from edgeclip.distill.losses import WeightedLoss
from edgeclip.errors import UserError
from edgeclip.distill.resume import CHECKPOINT_NAME, restore_training, save_training
from edgeclip.utils import seed_everything, stable_hash

# Batch entries this loop hands the criterion (see distill.losses).
TRAINER_INPUTS = frozenset({"student_logits", "teacher_logits", "labels"})


# The DistillConfig fields that define an optimisation run (a resume must match them, bar epochs).
SCHEDULE_FIELDS = ("batch_size", "lr", "momentum", "weight_decay", "milestones", "gamma")


def check_schedule(cfg: DistillConfig, epochs: int) -> None:
    """One-line UserErrors for a schedule that cannot train."""
    if epochs < 1:
        raise UserError(f"distill.epochs must be >= 1, got {epochs}")
    if cfg.batch_size < 2:
        raise UserError(f"distill.batch_size must be >= 2 (BatchNorm needs 2 samples), got {cfg.batch_size}")
    if cfg.lr <= 0:
        raise UserError(f"distill.lr must be > 0, got {cfg.lr}")


@dataclass
class EpochStats:
    epoch: int
    loss: float
    train_accuracy: float
    seconds: float
    lr: float
    terms: dict[str, float] = field(default_factory=dict)


class _Indexed(Dataset):
    """Adds the sample index so the batch can look up its cached teacher outputs."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        image, label = self.base[index]
        return image, label, index


def _fingerprint(model: nn.Module, cfg: DistillConfig, seed: int, criterion: WeightedLoss, n: int,
                 trained: list[nn.Parameter] | None = None) -> str:
    # What must not change between an interrupted run and its resumption (epochs may grow).
    shapes = [list(p.shape) for p in model.state_dict().values()]
    fixed = {name: getattr(cfg, name) for name in SCHEDULE_FIELDS}
    if trained is None:
        return stable_hash(fixed, seed, criterion.describe(), n, shapes)
    return stable_hash(fixed, seed, criterion.describe(), n, shapes, [list(p.shape) for p in trained])


def train_classifier(
    model: nn.Module,
    train_set: Dataset,
    *,
    criterion: WeightedLoss,
    config: DistillConfig,
    seed: int = 0,
    epochs: int | None = None,
    teacher_logits: torch.Tensor | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    desc: str = "train",
    batch_transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    parameters: Iterable[nn.Parameter] | None = None,
    teacher_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[EpochStats]:
    """Train `model` on `train_set` ((image, label) pairs) with `criterion`; returns per-epoch stats.

    The schedule (SGD, MultiStepLR, batch size) comes from `config`; `epochs` overrides its
    `epochs` (CNN teachers train for `teacher_epochs`).
    `teacher_logits[i]` is the teacher's output for `train_set[i]`. With `checkpoint_dir`, the
    state after every epoch is written atomically to `last.pt`; `resume=True` continues from it.
    `batch_transform(images, generator)` augments whole batches (see `distill.augment`);
    a `TensorImages` train set is batched by slicing instead of a DataLoader.
    `parameters` limits what the optimiser updates (e.g. only the head during a warm-up); the
    rest of the model still runs in train mode (BatchNorm statistics follow the data).
    `teacher_fn(images) -> logits` is the online alternative to `teacher_logits`: the teacher
    labels each batch as the student sees it (after `batch_transform`), so augmented views get
    the teacher's answer for the augmented image rather than for the clean one.
    """
    epochs = config.epochs if epochs is None else epochs
    check_schedule(config, epochs)
    criterion.check_inputs(TRAINER_INPUTS, "classifier training")
    n = len(train_set)  # type: ignore[arg-type]
    if n == 0:
        raise UserError("the training set is empty; check data.train and data.shots")
    if criterion.needs_teacher and teacher_fn is None:
        if teacher_logits is None:
            raise UserError("the KD loss needs teacher outputs but none were given; pass a teacher or set distill.alpha=0")
        if len(teacher_logits) != n:
            raise ValueError(f"{len(teacher_logits)} teacher outputs for {n} training images")
    trained = list(parameters) if parameters is not None else None
    if trained is not None and not trained:
        raise ValueError("train_classifier got an empty parameter list")
    optimizer = torch.optim.SGD(trained if trained is not None else model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=config.milestones, gamma=config.gamma)
    fingerprint = _fingerprint(model, config, seed, criterion, n, trained)
    if teacher_fn is not None:
        fingerprint = stable_hash(fingerprint, "online-teacher")
    history: list[EpochStats] = []
    start_epoch = 0
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    if resume and ckpt_path is not None and ckpt_path.is_file():
        state = restore_training(ckpt_path, fingerprint, model=model, optimizer=optimizer, scheduler=scheduler,
                                 made_by="model, data or recipe")
        history = [EpochStats(**h) for h in state["history"]]
        start_epoch = state["epoch"]

    # A final batch of one sample breaks BatchNorm in train mode; drop it in that single case.
    drop_last = n % config.batch_size == 1
    for epoch in range(start_epoch, epochs):
        # Python `random` drives the PIL augment, torch the shuffling and dropout.
        epoch_seed = seed * 100_003 + epoch
        seed_everything(epoch_seed)
        generator = torch.Generator().manual_seed(epoch_seed)
        batches = _batches(train_set, config, generator, drop_last)
        augment_generator = torch.Generator().manual_seed(epoch_seed + 1)
        transform = (lambda images: batch_transform(images, augment_generator)) if batch_transform else None
        history.append(_run_epoch(model, batches, criterion, optimizer, teacher_logits, epoch, epochs, progress, desc, transform,
                                  teacher_fn))
        scheduler.step()
        if ckpt_path is not None:
            state = {
                "epoch": epoch + 1,
                "fingerprint": fingerprint,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "history": [asdict(h) for h in history],
            }
            save_training(ckpt_path, state)
    model.eval()
    return history


def _batches(train_set: Dataset, config: DistillConfig, generator: torch.Generator, drop_last: bool) -> Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Shuffled (images, labels, indices) batches; in-memory tensors are sliced, not collated."""
    if isinstance(train_set, TensorImages):
        n = len(train_set)
        order = torch.randperm(n, generator=generator)
        stop = n - (n % config.batch_size) if drop_last else n
        return [(train_set.images[idx], train_set.labels[idx], idx)
                for idx in (order[i:i + config.batch_size] for i in range(0, stop, config.batch_size))]
    return DataLoader(_Indexed(train_set), batch_size=config.batch_size, shuffle=True, generator=generator,
                      drop_last=drop_last, num_workers=config.num_workers)


def _run_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    criterion: WeightedLoss,
    optimizer: torch.optim.Optimizer,
    teacher_logits: torch.Tensor | None,
    epoch: int,
    epochs: int,
    progress: bool,
    desc: str,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    teacher_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> EpochStats:
    model.train()
    started = time.perf_counter()
    total_loss, correct, seen = 0.0, 0, 0
    term_sums: dict[str, float] = {}
    lr = optimizer.param_groups[0]["lr"]
    bar = tqdm(loader, desc=f"{desc} {epoch + 1}/{epochs}", disable=not progress, leave=False, dynamic_ncols=True)
    for images, labels, index in bar:
        targets = teacher_logits[index] if teacher_logits is not None and criterion.needs_teacher else None
        if transform is not None:
            images = transform(images)
        if teacher_fn is not None and criterion.needs_teacher:
            with torch.no_grad():
                targets = teacher_fn(images)
        logits = model(images)
        loss, parts = criterion({"student_logits": logits, "teacher_logits": targets, "labels": labels})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        batch = len(labels)
        total_loss += float(loss.detach()) * batch
        for name, value in parts.items():
            term_sums[name] = term_sums.get(name, 0.0) + value * batch
        correct += int((logits.detach().argmax(1) == labels).sum())
        seen += batch
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    bar.close()
    seconds = time.perf_counter() - started
    stats = EpochStats(epoch=epoch + 1, loss=total_loss / max(seen, 1), train_accuracy=correct / max(seen, 1), seconds=seconds, lr=lr,
                       terms={k: v / max(seen, 1) for k, v in term_sums.items()})
    if progress:
        tqdm.write(f"{desc} epoch {epoch + 1}/{epochs}: loss {stats.loss:.4f} train acc {stats.train_accuracy:.3f} ({seconds:.1f}s)")
    return stats


@torch.no_grad()
def predict_logits(model: nn.Module, dataset: Dataset, batch_size: int = 256) -> torch.Tensor:
    """Eval-mode logits (N, C) over an (image, label) dataset, in dataset order."""
    model.eval()
    if isinstance(dataset, TensorImages):
        outputs = [model(dataset.images[i:i + batch_size]) for i in range(0, len(dataset), batch_size)]
    else:
        outputs = [model(images) for images, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False)]
    return torch.cat(outputs) if outputs else torch.empty(0)


def history_summary(history: list[EpochStats]) -> dict[str, Any]:
    """Compact, JSON-ready training record."""
    return {
        "epochs": len(history),
        "final_loss": history[-1].loss if history else None,
        "final_train_accuracy": history[-1].train_accuracy if history else None,
        "seconds": sum(h.seconds for h in history),
        "per_epoch": [asdict(h) for h in history],
    }
