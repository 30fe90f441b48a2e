"""The class-aware CLIP step both proxy teachers train with (teacher/proxy.py, teacher/proxy_cifar10.py).

CLIP's symmetric image–text cross-entropy, except that every caption of the image's class counts
as a positive: a batch of 10 classes has many same-class pairs, which plain CLIP would push apart.
"""

from __future__ import annotations

import torch
from torch import nn


def soft_cross_entropy(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    targets = positives / positives.sum(dim=1, keepdim=True)
    return -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()


def pick_captions(by_class: list[torch.Tensor], labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random caption index of the right class per image (`by_class[c]`: caption indices of class c)."""
    return torch.stack([by_class[int(c)][torch.randint(len(by_class[int(c)]), (1,), generator=generator)][0]
                        for c in labels])


def class_aware_clip_loss(model: nn.Module, images: torch.Tensor, caption_tokens: torch.Tensor,
                          labels: torch.Tensor) -> torch.Tensor:
    """The loss of one batch: `images` and one caption per image (`caption_tokens`), both of `labels`."""
    image_features = model.encode_image(images, normalize=True)
    text_features = model.encode_text(caption_tokens, normalize=True)
    logits = model.logit_scale.exp().clamp(max=100) * image_features @ text_features.T
    positives = (labels[:, None] == labels[None, :]).float()
    return 0.5 * (soft_cross_entropy(logits, positives) + soft_cross_entropy(logits.T, positives.T))
