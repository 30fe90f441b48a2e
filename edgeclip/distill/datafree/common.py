"""Small shared pieces of the data-free method: the synthesis distance, frozen teachers, names."""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

import torch
from torch import nn


def squared_spherical_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """D(x, y) = 2·arcsin(‖x̂ − ŷ‖ / 2)² for unit-normalised x̂, ŷ (VQGAN-CLIP; paper 002 eq. 3).

    It is half the squared great-circle angle between the two directions: 0 for equal
    directions, π²/2 for opposite ones. Broadcasts over leading dimensions.
    """
    x = nn.functional.normalize(x, dim=-1)
    y = nn.functional.normalize(y, dim=-1)
    # Rounding can push the chord a hair past 2 for opposite vectors; arcsin needs <= 1.
    half_chord = ((x - y).norm(dim=-1) / 2).clamp(max=1.0)
    return 2 * torch.arcsin(half_chord) ** 2


@contextlib.contextmanager
def frozen_weights(module: nn.Module) -> Iterator[nn.Module]:
    """Gradients flow through `module` to its inputs but never into its weights (restored after)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def slug(name: str) -> str:
    """A file-system-safe version of a class name ('traffic light/red' → 'traffic-light-red')."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.")
    return cleaned or "class"
