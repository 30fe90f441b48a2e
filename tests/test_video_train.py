"""Temporal-head training: learning, cross-validation by clip (never a clip on both sides), resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgeclip.video.clips import ClipEntry, LabelProtocol, Window
from edgeclip.video.dataset import WindowDataset
from edgeclip.video.io import ClipInfo
from edgeclip.video.sampling import WindowSampling
from edgeclip.video.train import (
    HeadTrainConfig, assert_disjoint_clips, clip_folds, cross_validate, fit_and_evaluate, train_head,
)


def signal_dataset(clips: int = 8, frames: int = 30, dim: int = 6, seed: int = 0) -> WindowDataset:
    """Half the clips have an "accident" from frame 20: feature 0 jumps there. Windows: 4 frames, stride 2."""
    rng = np.random.default_rng(seed)
    sampling, protocol = WindowSampling(frames=4, stride=2), LabelProtocol(gap_s=0.5, hop=2)
    entries, infos, windows, features = [], [], [], []
    for clip in range(clips):
        accident = clip % 2 == 0
        entries.append(ClipEntry(Path(f"clip{clip}"), int(accident), 21 if accident else None, f"list:{clip + 1}"))
        infos.append(ClipInfo(Path(f"clip{clip}"), frames, 10.0, f"clip{clip}"))
        values = rng.normal(0, 0.3, (frames, dim)).astype(np.float32)
        if accident:
            values[20:, 0] += 2.0
            windows += [Window(clip, end, 0) for end in (6, 10, 14)] + [Window(clip, end, 1) for end in (21, 25, 29)]
        else:
            windows += [Window(clip, end, 0) for end in (6, 12, 18, 24, 29)]
        features.append(values)
    return WindowDataset(entries, infos, windows, features, sampling, protocol)


FAST = dict(head="mean-mlp", epochs=30, batch_size=8, accumulation=2, lr=1e-2, folds=4)


def test_folds_are_by_clip_and_cover_every_clip():
    dataset = signal_dataset()
    folds = clip_folds(dataset, 4, seed=0)
    assert sorted(c for fold in folds for c in fold) == list(range(8))
    assert all(any(dataset.entries[c].label for c in fold) for fold in folds)  # accident clips dealt round-robin
    clips = dataset.clips
    for fold in folds:
        test, train = np.flatnonzero(np.isin(clips, fold)), np.flatnonzero(~np.isin(clips, fold))
        assert_disjoint_clips(dataset, train, test)
    leaky_train = np.flatnonzero(clips != 0)
    leaky_test = np.r_[np.flatnonzero(clips == 0), leaky_train[:1]]  # one window of clip 1 on both sides
    with pytest.raises(AssertionError, match="clip1"):
        assert_disjoint_clips(dataset, leaky_train, leaky_test)
    from edgeclip.errors import UserError

    with pytest.raises(UserError, match="needs at least 9 clips"):
        clip_folds(dataset, 9, seed=0)


def test_cross_validation_learns_a_real_signal(tmp_path):
    dataset = signal_dataset()
    result = cross_validate(dataset, HeadTrainConfig(**FAST), tmp_path, progress=False)
    assert result["by"] == "clip" and result["folds"] == 4
    assert result["pooled"]["windows"] == len(dataset.windows)
    assert result["pooled"]["roc_auc"] > 0.95 and result["pooled"]["accuracy"] > 0.85
    assert result["alerts"]["positive_clips"] == 4 and result["alerts"]["detected"] >= 3
    shuffled = signal_dataset()
    rng = np.random.default_rng(5)
    shuffled.windows = [Window(w.clip, w.end, int(rng.integers(0, 2))) for w in shuffled.windows]  # labels carry no signal
    chance = cross_validate(shuffled, HeadTrainConfig(**FAST), tmp_path / "chance", progress=False)
    assert chance["pooled"]["roc_auc"] < 0.8


def test_paper_recipe_defaults():
    config = HeadTrainConfig()
    assert (config.lr, config.weight_decay, config.batch_size, config.accumulation) == (4e-4, 5e-2, 8, 16)


def test_training_resumes_where_it_stopped(tmp_path, monkeypatch):
    dataset = signal_dataset()
    x, y = dataset.window_features(), dataset.labels
    config = HeadTrainConfig(head="evl", head_params={"width": 16, "heads": 2, "layers": 1}, epochs=6,
                             batch_size=8, accumulation=2)
    reference = train_head(x, y, config, progress=False)
    checkpoint = tmp_path / "head.pt"
    calls = {"n": 0}
    original = torch.optim.AdamW.step

    def failing_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:  # in epoch 4 of 6
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", failing_step)
    with pytest.raises(KeyboardInterrupt):
        train_head(x, y, config, checkpoint=checkpoint, progress=False)
    monkeypatch.setattr(torch.optim.AdamW, "step", original)
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 3
    resumed = train_head(x, y, config, checkpoint=checkpoint, progress=False)
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_zero_shot_head_is_evaluated_without_training(tmp_path):
    class TextEncoder:
        logit_scale = 50.0

        def text_embeddings(self, prompts):  # accident prompts point along feature 0
            accident = "crash" in prompts[0] or "accident" in prompts[0]
            return np.eye(6, dtype=np.float32)[[0 if accident else 1] * len(prompts)]

    dataset = signal_dataset()
    head, results = fit_and_evaluate(dataset, HeadTrainConfig(head="zero-shot", folds=2), tmp_path,
                                     encoder=TextEncoder(), progress=False)
    assert not any(p.requires_grad and p.grad is not None for p in head.parameters())
    # By hand: per frame cosine to e1 (normal) and e0 (accident), mean over the window, x50, softmax.
    x = dataset.window_features()
    unit = x / np.linalg.norm(x, axis=2, keepdims=True)
    logits = 50.0 * np.stack([unit[..., 1].mean(1), unit[..., 0].mean(1)], axis=1)
    expected = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    assert np.allclose(results["cross_validation"]["out_of_fold_probabilities"], expected, atol=1e-3)
    assert results["cross_validation"]["pooled"]["roc_auc"] > 0.75  # feature 0 is what the "prompts" point at


def test_head_training_takes_the_recipe_video_section_and_seed() -> None:
    from edgeclip.config import VideoConfig
    from edgeclip.video.train import HeadTrainConfig

    # One source of the head-training defaults (config.VideoHeadConfig): a recipe value is carried
    # over, the seed is the recipe's, and head_params is a copy (training never edits the recipe).
    video = VideoConfig(epochs=7, lr=1e-3, head_params={"width": 16})
    config = HeadTrainConfig.from_recipe(video, seed=3)
    assert (config.epochs, config.lr, config.seed, config.head_params) == (7, 1e-3, 3, {"width": 16})
    config.head_params["width"] = 8
    assert video.head_params == {"width": 16}
    assert HeadTrainConfig.from_recipe(VideoConfig(), seed=0) == HeadTrainConfig()