"""Export-ready wrappers around an open_clip model (or anything with encode_image/encode_text).

Each wrapper has one tensor in and one tensor out, so ONNX/OpenVINO/CoreML see a plain graph:
- `ImageTower`: image (N,3,H,W) → L2-normalized `embedding` (N,D).
- `TextTower`: int64 tokens (N,context) → L2-normalized `embedding` (N,D). open_clip pools at the
  end-of-text token (argmax of token ids); that gather is traced with a dynamic batch, so prompts
  of different lengths in one batch stay correct after export.
- `FusedZeroShotClassifier`: image → `logits` = logit_scale · normalize(image_emb) @ class_embᵀ,
  a fixed-class deployment that needs no text encoder on the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeclip.clip_models import preprocess_from_open_clip
from edgeclip.data.preprocess import Preprocess
from edgeclip.students.spec import ModelSpec


def _open_clip_model(clip: nn.Module) -> nn.Module:
    """The open_clip model itself, also when wrapped (ClipTeacher keeps it in `.model`)."""
    if not hasattr(clip, "visual") and isinstance(getattr(clip, "model", None), nn.Module):
        return clip.model
    return clip


def _clip_preprocess(clip: nn.Module) -> Preprocess:
    if isinstance(getattr(clip, "preprocess", None), Preprocess):
        return clip.preprocess  # ClipTeacher already knows its preprocessing
    return preprocess_from_open_clip(_open_clip_model(clip))


def _embed_dim(clip: nn.Module) -> int:
    if isinstance(getattr(clip, "embed_dim", None), int):
        return clip.embed_dim
    clip = _open_clip_model(clip)
    proj = getattr(clip, "text_projection", None)
    if isinstance(proj, nn.Linear):
        return proj.out_features
    if isinstance(proj, torch.Tensor):
        return int(proj.shape[1])
    return int(getattr(clip.visual, "output_dim"))


class ImageTower(nn.Module):
    """image (N,3,H,W) float → normalized embedding (N,D)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.clip.encode_image(image), dim=-1)


class TextTower(nn.Module):
    """int64 tokens (N,context) → normalized embedding (N,D), pooled at each row's end-of-text token."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.clip.encode_text(text), dim=-1)


class FusedZeroShotClassifier(nn.Module):
    """image → logits over fixed classes: logit_scale · cos(image_emb, class_embeddings)."""

    def __init__(self, clip: nn.Module, class_embeddings: torch.Tensor, logit_scale: float) -> None:
        super().__init__()
        self.image_tower = ImageTower(clip)
        # Re-normalize defensively: a head built from un-normalized means would silently rescale logits.
        self.register_buffer("class_embeddings", F.normalize(class_embeddings.detach().float(), dim=-1))
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * self.image_tower(image) @ self.class_embeddings.T


def image_tower_spec(clip: nn.Module, name: str, preprocess: Preprocess | None = None) -> ModelSpec:
    return ModelSpec(
        name=name,
        kind="image_encoder",
        preprocess=preprocess or _clip_preprocess(clip),
        embed_dim=_embed_dim(clip),
        input_names=["image"],
        output_names=["embedding"],
        dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}},
    )


def text_tower_spec(clip: nn.Module, name: str, preprocess: Preprocess | None = None) -> ModelSpec:
    context = int(getattr(clip, "context_length", None) or getattr(_open_clip_model(clip), "context_length", 77))
    return ModelSpec(
        name=name,
        kind="text_encoder",
        preprocess=preprocess or _clip_preprocess(clip),
        embed_dim=_embed_dim(clip),
        context_length=context,
        input_names=["text"],
        output_names=["embedding"],
        dynamic_axes={"text": {0: "batch"}, "embedding": {0: "batch"}},
    )


def zero_shot_classifier_spec(
    clip: nn.Module, name: str, class_names: list[str], preprocess: Preprocess | None = None
) -> ModelSpec:
    return ModelSpec(
        name=name,
        kind="zero_shot_classifier",
        preprocess=preprocess or _clip_preprocess(clip),
        class_names=list(class_names),
        embed_dim=_embed_dim(clip),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
