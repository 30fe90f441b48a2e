"""The DistillCLIP optimisation loop: AdamW + warm-up/cosine, global-batch losses, resumable.

Determinism: the order of an epoch is a permutation seeded by (seed, epoch, rank) and each
step's augmentation by (seed, epoch, step, rank), so a run resumed from a mid-epoch checkpoint
replays exactly the batches an uninterrupted run would (tested bit-for-bit).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edgeclip.distill.distillclip import ddp
from edgeclip.distill.distillclip.student import parameter_groups
from edgeclip.errors import UserError
from edgeclip.distill.resume import CHECKPOINT_NAME, restore_training, save_training
from edgeclip.utils import stable_hash



class TrainingInterrupted(RuntimeError):
    """Raised by `stop_after_steps` (tests simulate a kill right after a checkpoint)."""


@dataclass
class LoopSettings:
    epochs: int
    global_batch: int
    lr: float
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    warmup_steps: int
    seed: int
    augment: bool
    checkpoint_every: int = 0


@dataclass
class EpochStats:
    epoch: int
    loss: float
    seconds: float
    lr: float
    steps: int
    samples_per_second: float
    terms: dict[str, float] = field(default_factory=dict)


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


class PairImages(torch.utils.data.Dataset):
    """(preprocessed image tensor, index) of a pair source."""

    def __init__(self, pairs: Any, preprocess: Any) -> None:
        self.pairs, self.preprocess = pairs, preprocess

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.preprocess(self.pairs.load(index))), index


def epoch_batches(n: int, local_batch: int, steps: int, seed: int, epoch: int, rank: int) -> list[list[int]]:
    order = np.random.default_rng([seed, epoch, rank]).permutation(n)
    return [order[s * local_batch:(s + 1) * local_batch].tolist() for s in range(steps)]


def train_dual_encoder(
    student: nn.Module,
    pairs: Any,
    tokens: torch.Tensor,
    *,
    criterion: Any,
    settings: LoopSettings,
    teacher_embeddings: tuple[torch.Tensor, torch.Tensor] | None,
    online_teacher: Any = None,
    preprocess: Any,
    env: ddp.DistEnv,
    device: torch.device,
    checkpoint_dir: Path | None,
    resume: bool,
    progress: bool,
    num_workers: int = 0,
    augment_fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    stop_after_steps: int | None = None,
) -> list[EpochStats]:
    """Train `student` (a DistillStudent) on `pairs`; teacher embeddings come cached or from `online_teacher`."""
    world = env.world_size
    if settings.global_batch % world:
        raise UserError(f"distill.batch_size {settings.global_batch} is the global batch and must divide by the "
                        f"{world} processes; use a multiple of {world}")
    local_batch = settings.global_batch // world
    if local_batch < 2:
        raise UserError(f"distill.batch_size {settings.global_batch} leaves {local_batch} pair per process; "
                        "similarity maps need >= 2 per process")
    steps = ddp.all_reduce_min(len(pairs) // local_batch, device)
    if steps < 1:
        raise UserError(f"{len(pairs)} pairs on rank {env.rank} are fewer than one batch of {local_batch}; "
                        "lower distill.batch_size or give more pairs")
    total_steps = steps * settings.epochs
    params = [p for p in student.parameters() if p.requires_grad]

    optimizer = torch.optim.AdamW(parameter_groups(student, settings.weight_decay), lr=settings.lr,
                                  betas=tuple(settings.betas), eps=settings.eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(settings.warmup_steps, total_steps))
    model: nn.Module = student
    if env.distributed:
        model = nn.parallel.DistributedDataParallel(student, device_ids=[device.index] if device.type == "cuda" else None)
    fingerprint = stable_hash(asdict(settings), criterion.describe(), len(pairs), world,
                              [list(p.shape) for p in params])

    history: list[EpochStats] = []
    start_epoch, start_step = 0, 0
    ckpt = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir else None
    if resume and ckpt is not None and ckpt.is_file():
        state = restore_training(ckpt, fingerprint, model=student, optimizer=optimizer, scheduler=scheduler,
                                 made_by="student, data, loss or schedule")
        history = [EpochStats(**h) for h in state["history"]]
        start_epoch, start_step = state["epoch"], state["step"]
        partial = state.get("partial", {"loss": 0.0, "terms": {}, "seconds": 0.0})
    else:
        partial = {"loss": 0.0, "terms": {}, "seconds": 0.0}

    def save(epoch: int, step: int, partial_state: dict) -> None:
        if ckpt is not None and env.is_main:
            state = {"epoch": epoch, "step": step, "fingerprint": fingerprint, "model": student.state_dict(),
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "history": [asdict(h) for h in history], "partial": partial_state}
            save_training(ckpt, state)
        ddp.barrier()

    dataset = PairImages(pairs, preprocess)
    done_steps = 0
    for epoch in range(start_epoch, settings.epochs):
        batches = epoch_batches(len(pairs), local_batch, steps, settings.seed, epoch, env.rank)
        first = start_step if epoch == start_epoch else 0
        loss_sum = partial["loss"] if epoch == start_epoch else 0.0
        term_sums: dict[str, float] = dict(partial["terms"]) if epoch == start_epoch else {}
        seconds = partial["seconds"] if epoch == start_epoch else 0.0
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches[first:], num_workers=num_workers)
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        bar = tqdm(loader, desc=f"distillclip {epoch + 1}/{settings.epochs}", initial=first, total=steps,
                   disable=not (progress and env.is_main), leave=False, dynamic_ncols=True)
        tick = time.perf_counter()
        for step_in_epoch, (images, index) in enumerate(bar, start=first):
            images = images.to(device)
            if settings.augment and augment_fn is not None:
                generator = torch.Generator().manual_seed(int(stable_hash(settings.seed, epoch, step_in_epoch, env.rank)[:8], 16))
                images = augment_fn(images.cpu(), generator).to(device)
            batch = _global_batch(model, student, images, tokens[index].to(device), index, teacher_embeddings,
                                  online_teacher, dataset, device)
            loss, parts = criterion(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach())
            for name, value in parts.items():
                term_sums[name] = term_sums.get(name, 0.0) + value
            done = step_in_epoch + 1
            bar.set_postfix(loss=f"{loss_sum / (done - 0):.4f}")
            done_steps += 1
            every = settings.checkpoint_every
            if every and done % every == 0 and done < steps:
                now = time.perf_counter()
                seconds += now - tick
                tick = now
                save(epoch, done, {"loss": loss_sum, "terms": term_sums, "seconds": seconds})
            if stop_after_steps is not None and done_steps >= stop_after_steps:
                raise TrainingInterrupted(f"stopped after {done_steps} steps (epoch {epoch + 1}, step {done})")
        bar.close()
        seconds += time.perf_counter() - tick
        stats = EpochStats(epoch=epoch + 1, loss=loss_sum / steps, seconds=seconds, lr=lr, steps=steps,
                           samples_per_second=steps * settings.global_batch / max(seconds, 1e-9),
                           terms={k: v / steps for k, v in term_sums.items()})
        history.append(stats)
        if progress and env.is_main:
            tqdm.write(f"distillclip epoch {epoch + 1}/{settings.epochs}: loss {stats.loss:.4f} "
                       + " ".join(f"{k} {v:.4f}" for k, v in stats.terms.items()) + f" ({seconds:.1f}s)")
        save(epoch + 1, 0, {"loss": 0.0, "terms": {}, "seconds": 0.0})
    student.eval()
    return history


def _global_batch(model: nn.Module, student: nn.Module, images: torch.Tensor, tokens: torch.Tensor, index: torch.Tensor,
                  cached: tuple[torch.Tensor, torch.Tensor] | None, online_teacher: Any, dataset: PairImages,
                  device: torch.device) -> dict[str, Any]:
    """Student forward (through DDP), teacher embeddings, everything all-gathered to the global batch."""
    out = model(images, tokens)
    batch: dict[str, Any] = {name: ddp.all_gather_with_grad(value) for name, value in out.items()}
    if cached is not None:
        teacher_image, teacher_text = cached[0][index].to(device), cached[1][index].to(device)
    elif online_teacher is not None:
        clean = torch.stack([torch.from_numpy(online_teacher.preprocess(dataset.pairs.load(int(i)))) for i in index]).to(device)
        teacher_image = online_teacher.encode_image(clean, normalize=True).float()
        captions = [dataset.pairs.captions[int(i)] for i in index]
        teacher_text = online_teacher.encode_text(captions, normalize=True).float()
    else:
        teacher_image = teacher_text = None
    if teacher_image is not None:
        batch["teacher_image"] = ddp.all_gather_no_grad(teacher_image)
        batch["teacher_text"] = ddp.all_gather_no_grad(teacher_text)
    batch["student_logit_scale"] = student.logit_scale()
    return batch
