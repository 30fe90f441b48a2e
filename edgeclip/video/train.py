"""Train and cross-validate a temporal head on frozen frame features (paper 001 §3.3.5).

Recipe defaults are the paper's: AdamW lr 4e-4, weight decay 5e-2, cosine decay, batch 8,
gradient accumulation 16 (one optimizer step per 128 windows). The loss is cross-entropy
weighted by inverse class frequency (the protocol yields more normal than accident windows).

With few clips, k-fold cross-validation *by clip*: every window of a clip is on the same side,
checked in code for every fold. Metrics are pooled over the out-of-fold predictions (each window
is predicted by the one model that never saw its clip); a sliding window over each held-out clip
gives the clip-level alert metrics (detection, time-to-accident). Training is resumable: each
fold checkpoints every epoch and a finished fold is not run again.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edgeclip.config import VideoHeadConfig
from edgeclip.errors import UserError
from edgeclip.distill.resume import save_training
from edgeclip.io_utils import read_json, safe_torch_load, write_json
from edgeclip.utils import seed_everything, stable_hash, torch_threads
from edgeclip.video.dataset import WindowDataset, stream_probabilities
from edgeclip.video.heads import TEMPORAL_HEADS, create_head
from edgeclip.video.metrics import alert_metrics, window_metrics


@dataclass
class HeadTrainConfig(VideoHeadConfig):
    """One head training: the settings (config.VideoHeadConfig, whose defaults are the only ones) and the seed."""

    seed: int = 0

    @classmethod
    def from_recipe(cls, video: VideoHeadConfig, seed: int) -> "HeadTrainConfig":
        """The head-training fields of a recipe's `video:` section (config.VideoConfig) and its seed."""
        shared = {f.name: copy.deepcopy(getattr(video, f.name)) for f in dataclasses.fields(VideoHeadConfig)}
        return cls(**shared, seed=seed)

    def validate(self) -> None:
        TEMPORAL_HEADS.get(self.head)  # unknown head: UserError with close matches
        for name in ("epochs", "batch_size", "accumulation", "folds"):
            if getattr(self, name) < (0 if name == "folds" else 1):
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.folds == 1:
            raise UserError("--folds 1 cannot hold clips out; use --folds 0 (no cross-validation) or >= 2")
        if self.lr <= 0 or not 0 < self.threshold < 1:
            raise UserError(f"lr must be > 0 and threshold in (0, 1); got lr {self.lr}, threshold {self.threshold}")


def clip_folds(dataset: WindowDataset, folds: int, seed: int) -> list[list[int]]:
    """Clips per fold: clips with accident windows and normal-only clips dealt round-robin after a seeded shuffle."""
    clips = sorted({w.clip for w in dataset.windows})
    if folds > len(clips):
        raise UserError(f"{folds}-fold cross-validation needs at least {folds} clips, there are {len(clips)}; lower --folds")
    rng = np.random.default_rng(seed)
    has_accident = {w.clip for w in dataset.windows if w.label == 1}
    out: list[list[int]] = [[] for _ in range(folds)]
    position = 0
    for group in ([c for c in clips if c in has_accident], [c for c in clips if c not in has_accident]):
        for clip in rng.permutation(group):
            out[position % folds].append(int(clip))
            position += 1
    return [sorted(f) for f in out]


def assert_disjoint_clips(dataset: WindowDataset, train: np.ndarray, test: np.ndarray) -> None:
    """No clip may have windows on both sides: neighbouring frames of one clip would leak the answer."""
    shared = set(dataset.clips[train].tolist()) & set(dataset.clips[test].tolist())
    if shared:
        names = ", ".join(dataset.entries[c].name for c in sorted(shared))
        raise AssertionError(f"clips on both sides of a fold: {names}")


def class_weights(labels: np.ndarray) -> torch.Tensor:
    counts = np.bincount(labels, minlength=2).astype(np.float64)
    return torch.tensor(len(labels) / (2.0 * np.maximum(counts, 1.0)), dtype=torch.float32)


def one_thread() -> contextlib.AbstractContextManager[None]:
    """Heads are tiny: a second intra-op thread only adds synchronisation (measured on 2 busy cores:
    31 ms per EVL micro-batch with 1 thread, 690 ms with 2)."""
    return torch_threads(1)


def train_head(x: np.ndarray, y: np.ndarray, config: HeadTrainConfig, *, encoder: Any = None,
               checkpoint: Path | None = None, progress: bool = True, desc: str = "head") -> nn.Module:
    """Train one head on windows (N, T, D); resumes from `checkpoint` when it holds an unfinished run."""
    with one_thread():
        return _train_head(x, y, config, encoder=encoder, checkpoint=checkpoint, progress=progress, desc=desc)


def _train_head(x: np.ndarray, y: np.ndarray, config: HeadTrainConfig, *, encoder: Any, checkpoint: Path | None,
                progress: bool, desc: str) -> nn.Module:
    seed_everything(config.seed)
    head = create_head(config.head, x.shape[1], x.shape[2], encoder=encoder, **config.head_params)
    if not TEMPORAL_HEADS.get(config.head).trainable:
        return head.eval()
    batches = math.ceil(len(x) / config.batch_size)
    total_steps = max(1, math.ceil(config.epochs * batches / config.accumulation))
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    criterion = nn.CrossEntropyLoss(weight=class_weights(y))
    generator = torch.Generator().manual_seed(config.seed)
    start_epoch, micro = 0, 0
    key = stable_hash(dataclasses.asdict(config), x.shape, float(x.sum()), y.tolist())
    if checkpoint is not None and checkpoint.is_file():
        state = safe_torch_load(checkpoint, "video head checkpoint", f"delete {checkpoint} to start over")
        if state.get("key") == key:
            head.load_state_dict(state["head"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])  # dropout masks continue as if never interrupted
            for parameter, grad in zip(head.parameters(), state["grads"]):  # a partial accumulation
                parameter.grad = grad
            start_epoch, micro = int(state["epoch"]), int(state["micro"])
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    bar = tqdm(range(start_epoch, config.epochs), desc=desc, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        head.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), config.batch_size):
            index = order[start:start + config.batch_size]
            loss = criterion(head(inputs[index]), targets[index]) / config.accumulation
            loss.backward()
            micro += 1
            if micro % config.accumulation == 0:
                optimizer.step()
                optimizer.zero_grad()
                schedule.step()
        bar.set_postfix(loss=f"{loss.item() * config.accumulation:.3f}", lr=f"{schedule.get_last_lr()[0]:.1e}")
        if checkpoint is not None:
            save_training(checkpoint, {"key": key, "epoch": epoch + 1, "micro": micro, "head": head.state_dict(),
                                       "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                                       "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                                       "grads": [None if p.grad is None else p.grad.clone() for p in head.parameters()]})
    if micro % config.accumulation:  # gradients of the last partial accumulation still count
        optimizer.step()
        optimizer.zero_grad()
    return head.eval()


def predictor(head: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    @torch.no_grad()
    def predict(x: np.ndarray) -> np.ndarray:
        return torch.softmax(head(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))), dim=-1)[:, 1].numpy()

    return predict


def stream_records(dataset: WindowDataset, clips: list[int], predict, hop: int) -> list[dict[str, Any]]:
    records = []
    for clip in clips:
        ends, probabilities = stream_probabilities(dataset, clip, predict, hop)
        records.append({"clip": dataset.entries[clip].name, "label": dataset.entries[clip].label,
                        "onset": dataset.onset(clip), "gap": dataset.gap_frames(clip), "fps": dataset.infos[clip].fps,
                        "frames": ends, "probabilities": [round(p, 4) for p in probabilities]})
    return records


def cross_validate(dataset: WindowDataset, config: HeadTrainConfig, run_dir: Path, *, encoder: Any = None,
                   progress: bool = True) -> dict[str, Any]:
    """k-fold by clip; returns pooled out-of-fold window metrics, per-fold metrics and alert metrics."""
    folds = clip_folds(dataset, config.folds, config.seed)
    labels, clips = dataset.labels, dataset.clips
    out_of_fold = np.full(len(labels), np.nan)
    per_fold, streams = [], []
    hop = dataset.sampling.stride or 1
    # A finished fold is reused only for the same settings and windows (a resumed or re-run benchmark).
    key = stable_hash(dataclasses.asdict(config), dataset.sampling.to_dict(),
                      [(w.clip, w.end, w.label) for w in dataset.windows], [i.identity for i in dataset.infos],
                      [round(float(f.astype(np.float64).sum()), 4) for f in dataset.features])  # the encoder's features
    for k, test_clips in enumerate(folds):
        fold_file = run_dir / "folds" / f"fold-{k}.json"
        test = np.flatnonzero(np.isin(clips, test_clips))
        train = np.flatnonzero(~np.isin(clips, test_clips))
        assert_disjoint_clips(dataset, train, test)
        if fold_file.is_file() and read_json(fold_file).get("key") == key:
            record = read_json(fold_file)  # finished before an interruption: not trained again
        else:
            head = train_head(dataset.window_features(train), labels[train], config, encoder=encoder,
                              checkpoint=run_dir / "checkpoints" / f"fold-{k}.pt", progress=progress,
                              desc=f"fold {k + 1}/{len(folds)}")
            predict = predictor(head)
            probabilities = predict(dataset.window_features(test)) if len(test) else np.zeros(0)
            record = {"fold": k, "key": key, "test_clips": test_clips, "test_windows": test.tolist(),
                      "probabilities": probabilities.tolist(),
                      "metrics": window_metrics(labels[test], probabilities, config.threshold),
                      "streams": stream_records(dataset, test_clips, predict, hop)}
            write_json(fold_file, record)
        out_of_fold[record["test_windows"]] = record["probabilities"]
        per_fold.append({"fold": k, "clips": [dataset.entries[c].name for c in test_clips], **record["metrics"]})
        streams.extend(record["streams"])
    return {"folds": len(folds), "by": "clip", "pooled": window_metrics(labels, out_of_fold, config.threshold),
            "per_fold": per_fold, "alerts": alert_metrics(streams, config.threshold), "streams": streams,
            "out_of_fold_probabilities": [round(float(p), 4) for p in out_of_fold]}


def fit_and_evaluate(dataset: WindowDataset, config: HeadTrainConfig, run_dir: Path, *, encoder: Any = None,
                     progress: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Cross-validate (when folds >= 2), then train the deployed head on every window."""
    config.validate()
    started = time.perf_counter()
    results: dict[str, Any] = {"cross_validation": None}
    if config.folds >= 2:
        results["cross_validation"] = cross_validate(dataset, config, run_dir, encoder=encoder, progress=progress)
    head = train_head(dataset.window_features(), dataset.labels, config, encoder=encoder,
                      checkpoint=run_dir / "checkpoints" / "final.pt", progress=progress, desc="final head")
    results["train_fit"] = window_metrics(dataset.labels, predictor(head)(dataset.window_features()), config.threshold)
    results["train_seconds"] = round(time.perf_counter() - started, 1)
    return head, results
