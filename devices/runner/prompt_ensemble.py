"""Prompt-ensemble class embeddings: the one definition edgeclip, its demo and this runner share.

A class becomes the L2-normalized mean of the L2-normalized embeddings of its prompts (one per
template, CLIP's prompt ensemble). The class name goes into each template through `prompt_name`
(`_` → space, runs of spaces collapsed), so "golden_retriever" is prompted as "golden retriever"
everywhere: in edgeclip's zero-shot heads and exports (torch, `edgeclip/prompt_ensemble.py`), the
demo page and the device runner (numpy, this file). numpy only, Python 3.8+: it ships with the
runner, and edgeclip loads this very file by path instead of keeping a copy that could drift.
"""

from typing import Callable, List, Sequence

import numpy as np

DEFAULT_BATCH = 256  # prompts per call of the text tower


def prompt_name(name: str) -> str:
    """A class name as it goes into a prompt template: '_' → ' ', whitespace runs → one space."""
    return " ".join(str(name).replace("_", " ").split())


def class_prompts(class_names: Sequence[str], templates: Sequence[str]) -> List[List[str]]:
    """Per class, its prompts: every template filled with the class's prompt name."""
    templates = list(templates) or ["{}"]
    return [[template.format(prompt_name(name)) for template in templates] for name in class_names]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def ensemble_class_embeddings(encode: Callable[[List[str]], np.ndarray], class_names: Sequence[str],
                              templates: Sequence[str], batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """(C, D) float32 class embeddings; `encode(prompts)` returns one embedding row per prompt (normalized or not)."""
    if not class_names:
        raise ValueError("no class names to embed")
    per_class = class_prompts(class_names, templates)
    flat = [prompt for prompts in per_class for prompt in prompts]
    rows = [np.asarray(encode(flat[i:i + batch_size]), dtype=np.float32) for i in range(0, len(flat), batch_size)]
    embeddings = l2_normalize(np.concatenate(rows).reshape(len(per_class), len(per_class[0]), -1))
    return l2_normalize(embeddings.mean(axis=1)).astype(np.float32)
