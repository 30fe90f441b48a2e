"""Small helpers shared across stages. No torch at import: the on-device paths import this."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from typing import Any, Iterator

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and ask torch for deterministic kernels, so CPU runs repeat.

    Together with a fixed thread count (`distill.threads`) the same recipe gives the same numbers
    on the same machine; kernels without a deterministic variant warn instead of failing.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` intra-op torch threads (0 = leave as is), then restore the previous count.

    Float reductions split differently across threads, so a training that must repeat bit for bit
    (a cached teacher, a benchmark) fixes its thread count rather than inheriting the caller's."""
    import torch

    previous = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A short hex digest of JSON-serializable parts (for cache keys and run ids)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def count_params(module: "torch.nn.Module") -> int:  # noqa: F821 - torch imported lazily (devices lack it)
    return sum(p.numel() for p in module.parameters())


def disable_mha_fastpath() -> None:
    """The fused MHA fast path breaks ONNX/CoreML/OpenVINO tracing and hides attention from FLOP
    counters (DESIGN §5); exporters, the PyTorch reference runtime and counters turn it off."""
    import torch

    torch.backends.mha.set_fastpath_enabled(False)


def fmt(value: Any, percent: bool = False) -> str:
    """Table cell: percentages with one decimal, ratios with three digits, '-' for missing."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{100 * value:.1f}" if percent else f"{value:.3f}"
    return str(value)
