"""Prompt-ensemble class embeddings for edgeclip: numpy (demo, runtimes) and torch (teachers, exports, eval).

The definition lives once, in the device runner's `devices/runner/prompt_ensemble.py` (numpy only,
Python 3.8+, shipped with the runner); this module loads that file by path and adds the torch form,
which builds the same prompts with the same `prompt_name`. Importing this module imports no torch.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from edgeclip import paths

if TYPE_CHECKING:
    import torch


def runner_module() -> ModuleType:
    """devices/runner/prompt_ensemble.py, the definition the device runner uses."""
    return paths.runner_module("prompt_ensemble.py")


def prompt_name(name: str) -> str:
    return runner_module().prompt_name(name)


def class_prompts(class_names: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    return runner_module().class_prompts(class_names, templates)


def class_embeddings_numpy(encode: Callable[[list[str]], np.ndarray], class_names: Sequence[str],
                           templates: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """(C, D) float32; `encode(prompts)` → one embedding per prompt (an exported text tower + tokenizer)."""
    return runner_module().ensemble_class_embeddings(encode, class_names, templates, batch_size)


def class_embeddings_torch(encode: Callable[[list[str]], "torch.Tensor"], class_names: Sequence[str],
                           templates: Sequence[str], batch_size: int = 256) -> "torch.Tensor":
    """(C, D) float32 tensor, the same computation as `class_embeddings_numpy` on a torch text encoder."""
    import torch
    from torch.nn import functional as F

    if not class_names:
        raise ValueError("no class names to embed")
    per_class = class_prompts(class_names, templates)
    flat = [prompt for prompts in per_class for prompt in prompts]
    with torch.no_grad():
        rows = torch.cat([encode(flat[i:i + batch_size]).float() for i in range(0, len(flat), batch_size)])
        embeddings = F.normalize(rows.reshape(len(per_class), len(per_class[0]), -1), dim=-1)
        return F.normalize(embeddings.mean(dim=1), dim=-1)
