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
    scores = image_features @ text_features.T
    # One top-k per direction at the largest k: sorting whole rows of 10,000 × 10,000 scores per k is wasted work.
    top_texts = torch.topk(scores, min(max(ks), scores.shape[1]), dim=1).indices.numpy()
    top_images = torch.topk(scores.T, min(max(ks), scores.shape[0]), dim=1).indices.numpy()
    text_hit = np.take_along_axis(relevant, top_texts, axis=1)  # (N_images, k): is the i-th ranked text relevant
    image_hit = np.take_along_axis(relevant.T, top_images, axis=1)
    out: dict[str, float] = {}
    for k in ks:
        out[f"image_to_text_R@{k}"] = float(text_hit[:, :k].any(axis=1).mean())
        out[f"text_to_image_R@{k}"] = float(image_hit[:, :k].any(axis=1).mean())
    return out
