"""Teacher embeddings per pair (image and text, L2-normalized), computed once and cached on disk.

Keys follow `teacher.cache`: (teacher identity, pair-set identity, preprocessing, kind). Images
are cached as kind `image-features` through `cached_outputs` (the same files classifier KD
writes for the same images and teacher); captions as kind `text-features`, keyed on the pair
set and a hash of the caption list. After the first computation no epoch and no later run calls
the teacher for these pairs again.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from edgeclip.io_utils import atomic_path, safe_torch_load
from edgeclip.teacher.cache import cache_path, cached_outputs
from edgeclip.utils import stable_hash


def cached_image_embeddings(teacher: Any, pairs: Any, *, batch_size: int = 256, progress: bool = True) -> torch.Tensor:
    return cached_outputs(lambda x: teacher.encode_image(x, normalize=True), teacher.identity, pairs, teacher.preprocess,
                          kind="image-features", batch_size=batch_size, progress=progress)


@torch.no_grad()
def cached_text_embeddings(teacher: Any, captions: Sequence[str], source_identity: str, *, batch_size: int = 256,
                           progress: bool = True) -> torch.Tensor:
    identity = f"{source_identity}:captions={stable_hash(list(captions))}"
    path = cache_path(teacher.identity, identity, teacher.preprocess, "text-features")
    if path.is_file():
        return safe_torch_load(path, "cached teacher text embeddings", f"delete {path} to recompute them")
    outputs = []
    for start in tqdm(range(0, len(captions), batch_size), desc="teacher text", unit="batch", disable=not progress, leave=False):
        outputs.append(teacher.encode_text(list(captions[start:start + batch_size]), normalize=True).float().cpu())
    result = torch.cat(outputs) if outputs else torch.empty(0)
    with atomic_path(path) as tmp:
        torch.save(result, tmp)
    return result


def cached_pair_embeddings(teacher: Any, pairs: Any, *, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(image (N, D), text (N, D)) teacher embeddings for every pair of `pairs`."""
    images = cached_image_embeddings(teacher, pairs, progress=progress)
    texts = cached_text_embeddings(teacher, pairs.captions, pairs.identity, progress=progress)
    return images, texts
