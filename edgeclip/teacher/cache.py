"""Teacher outputs over a dataset, cached on disk so later epochs and runs skip the teacher.

Keyed by (model identity, dataset identity, preprocessing, output kind): change any of them and
the cache misses. Files live in `cache_dir()/teacher-outputs/<key>.pt`, written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from edgeclip.data.preprocess import Preprocess
from edgeclip.io_utils import atomic_path, safe_torch_load
from edgeclip.paths import cache_dir
from edgeclip.utils import stable_hash


def cache_path(model_identity: str, dataset_identity: str, preprocess: Preprocess, kind: str) -> Path:
    key = stable_hash(model_identity, dataset_identity, preprocess.to_dict(), kind, length=24)
    return cache_dir() / "teacher-outputs" / f"{kind}-{key}.pt"


@torch.no_grad()
def cached_outputs(
    forward: Callable[[torch.Tensor], torch.Tensor],
    model_identity: str,
    dataset,
    preprocess: Preprocess,
    *,
    kind: str,
    batch_size: int = 256,
    progress: bool = True,
) -> torch.Tensor:
    """`forward` over every image of `dataset` (preprocessed), stacked (N, ...); cached on disk."""
    path = cache_path(model_identity, dataset.identity, preprocess, kind)
    if path.is_file():
        return safe_torch_load(path, "cached teacher outputs", f"delete {path} to recompute them")
    outputs = []
    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, desc=f"teacher {kind}", unit="batch", disable=not progress, leave=False):
        stop = min(start + batch_size, len(dataset))
        batch = np.stack([preprocess(dataset.load(i)) for i in range(start, stop)])
        outputs.append(forward(torch.from_numpy(batch)).float().cpu())
    result = torch.cat(outputs) if outputs else torch.empty(0)
    with atomic_path(path) as tmp:
        torch.save(result, tmp)
    return result


def cached_image_features(teacher, dataset, preprocess: Preprocess | None = None, *,
                          batch_size: int = 256, progress: bool = True) -> torch.Tensor:
    """L2-normalized teacher image embeddings (N, D); the teacher runs once per image, ever."""
    preprocess = preprocess or teacher.preprocess
    return cached_outputs(lambda x: teacher.encode_image(x, normalize=True), teacher.identity, dataset, preprocess,
                          kind="image-features", batch_size=batch_size, progress=progress)
