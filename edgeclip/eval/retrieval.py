"""Image↔text retrieval recall@k on held-out pairs (CLIP_benchmark's zero-shot retrieval).

A query counts as a hit at k when one of its top-k results is relevant. Relevance: for pairs with
class labels (digits captions describe a class, so every caption of an image's class describes
it), same label; otherwise only the pair's own caption/image (and identical captions).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def relevance(labels: Sequence[int] | None, captions: Sequence[str]) -> np.ndarray:
    """(N_images, N_texts) bool: is text j a true description of image i (pairs i ↔ i)?"""
    n = len(captions)
    if labels is not None:
        labels = np.asarray(labels)
        return labels[:, None] == labels[None, :]
    same = np.array([[a == b for b in captions] for a in captions])
    return same | np.eye(n, dtype=bool)


def recall_at_k(image_features: torch.Tensor, text_features: torch.Tensor, relevant: np.ndarray,
                ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """{"image_to_text_R@k", "text_to_image_R@k"} for each k."""
    scores = (image_features @ text_features.T).numpy()
    out: dict[str, float] = {}
    for k in ks:
        top_texts = np.argsort(-scores, axis=1)[:, :k]
        out[f"image_to_text_R@{k}"] = float(np.mean([relevant[i, top_texts[i]].any() for i in range(len(scores))]))
        top_images = np.argsort(-scores.T, axis=1)[:, :k]
        out[f"text_to_image_R@{k}"] = float(np.mean([relevant[top_images[j], j].any() for j in range(scores.shape[1])]))
    return out
