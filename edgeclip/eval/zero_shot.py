"""Zero-shot top-1 with a prompt ensemble (paper 001 §3.3.2, DESIGN §4.1)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from edgeclip.errors import UserError


def zero_shot_predictions(image_features: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
    """argmax cosine: (N,) class indices."""
    return (image_features @ class_embeddings.T).argmax(dim=1)


def zero_shot_top1(encoder: Any, dataset: Any, templates: Sequence[str], *, features: torch.Tensor | None = None) -> float:
    """Top-1 of `encoder` on `dataset` (labels, class_names) with the `templates` prompt ensemble."""
    if not dataset.class_names:
        raise UserError("zero-shot needs class names; the dataset has none")
    features = encoder.image_features(dataset) if features is None else features
    predictions = zero_shot_predictions(features, encoder.class_embeddings(dataset.class_names, templates))
    return float((predictions == torch.tensor(dataset.labels)).float().mean())
