"""Tiny models and structured inputs for exporter/runtime/quantization tests (timm-style test models).

Real but tiny: a small open_clip CLIP built from a config dict, and a small CNN trained for a few
seconds on images with an unambiguous signal, so that int8 agreement is a meaningful measurement
(logits of an untrained network are near-ties that any rounding flips).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeclip.data.preprocess import Preprocess
from edgeclip.students.spec import ModelSpec

TINY_IMAGE_SIZE = 32
TINY_CONTEXT = 16


def tiny_clip(seed: int = 0) -> nn.Module:
    """A random-init open_clip CLIP: 32×32 images, 16-token context, embed dim 32."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.CLIP(
        embed_dim=32,
        vision_cfg={"image_size": TINY_IMAGE_SIZE, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
        text_cfg={"context_length": TINY_CONTEXT, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    )
    return model.eval()


def tiny_tokens(lengths: list[int], context: int = TINY_CONTEXT, seed: int = 0) -> np.ndarray:
    """Token batch with prompts of the given lengths (SOT … EOT, zero padded), like open_clip.tokenize."""
    rng = np.random.default_rng(seed)
    tokens = np.zeros((len(lengths), context), dtype=np.int64)
    for row, length in enumerate(lengths):
        tokens[row, :length] = rng.integers(1, 49000, size=length)
        tokens[row, 0], tokens[row, length - 1] = 49406, 49407
    return tokens


def structured_images(n: int, num_classes: int = 4, size: int = TINY_IMAGE_SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is the bright quadrant (plus noise), normalized-ish float32 (N,3,size,size)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=n)
    images = rng.normal(0.0, 0.3, size=(n, 3, size, size)).astype(np.float32)
    half = size // 2
    for i, label in enumerate(labels):
        top, left = (label // 2) * half, (label % 2) * half
        images[i, :, top:top + half, left:left + half] += 1.5
    return images, labels


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.head = nn.Linear(64, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image).flatten(1))


def trained_tiny_cnn(steps: int = 30, num_classes: int = 4, seed: int = 0) -> nn.Module:
    """TinyCNN trained briefly on `structured_images` (≈1 s on 2 cores): confident, stable argmax."""
    torch.manual_seed(seed)
    model = TinyCNN(num_classes)
    images, labels = structured_images(256, num_classes, seed=seed + 1)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for step in range(steps):
        idx = torch.arange(step * 32, step * 32 + 32) % len(x)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def tiny_cnn_spec(num_classes: int = 4) -> ModelSpec:
    return ModelSpec(
        name="tiny-cnn",
        kind="classifier",
        preprocess=Preprocess(size=TINY_IMAGE_SIZE, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
        class_names=[f"quadrant_{i}" for i in range(num_classes)],
    )
