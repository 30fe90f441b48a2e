"""The trainable student of DistillCLIP: the student CLIP plus what only training needs.

`DistillStudent.forward(images, tokens)` returns the batch entries the loss terms read. The
`feature` term's projections (student width → teacher width, CLIP-KD) live here, next to the
CLIP they project: they are in the optimizer, in DDP's gradient averaging and in the resumable
checkpoint, and `save_checkpoint` writes only `.clip`, so the exported student never carries them.
"""

from __future__ import annotations

import torch
from torch import nn


def embed_dim_of(clip: nn.Module) -> int:
    projection = getattr(clip, "text_projection", None)
    if isinstance(projection, nn.Linear):
        return projection.out_features
    if isinstance(projection, torch.Tensor):
        return int(projection.shape[1])
    return int(clip.visual.output_dim)


class DistillStudent(nn.Module):
    """Student CLIP + optional learned feature projections (identity when the widths match)."""

    def __init__(self, clip: nn.Module, *, teacher_dim: int | None = None, feature_projection: bool = False) -> None:
        super().__init__()
        self.clip = clip
        student_dim = embed_dim_of(clip)
        self.feature_projection = feature_projection
        if feature_projection and teacher_dim is not None and teacher_dim != student_dim:
            self.image_projection: nn.Module = nn.Linear(student_dim, teacher_dim, bias=False)
            self.text_projection: nn.Module = nn.Linear(student_dim, teacher_dim, bias=False)
        else:
            self.image_projection = nn.Identity()
            self.text_projection = nn.Identity()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        image = self.clip.encode_image(images)
        text = self.clip.encode_text(tokens)
        out = {"student_image": image, "student_text": text}
        if self.feature_projection:
            out["student_image_projected"] = self.image_projection(image)
            out["student_text_projected"] = self.text_projection(text)
        return out

    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp().clamp(max=100)


def parameter_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """open_clip's split: no weight decay on gains, biases, norms, embeddings' scales and logit_scale."""
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        exclude = param.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(param)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]
