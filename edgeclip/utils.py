"""Small helpers shared across stages. No torch at import: the on-device paths import this."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch so CPU runs are repeatable."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A short hex digest of JSON-serializable parts (for cache keys and run ids)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_sha256(path: str, length: int = 16) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def count_params(module: "torch.nn.Module") -> int:  # noqa: F821 - torch imported lazily (devices lack it)
    return sum(p.numel() for p in module.parameters())
