"""Temporal heads: frame features (B, T, D) → logits (B, 2) = [normal, accident].

Registered by name (`edgeclip list heads`):
- `evl`: EVL-style (paper 001 §3.3.5, Lin et al. 2022) on per-frame embeddings: temporal position
  embedding, a depthwise temporal convolution (zero-initialised, so it starts as the identity, as
  in EVL), then a small Transformer decoder whose learnable [CLS] query cross-attends to the
  frame tokens. The paper feeds multi-layer CLIP tokens; here each frame is one pooled token,
  which is what an exported image tower gives on a device.
- `mean-mlp`: mean of the frame features → MLP (the light baseline).
- `zero-shot`: no training. Per frame, cosine similarity to an "accident" and a "normal driving"
  prompt set (each the normalized mean of its prompt embeddings, DESIGN §4.1), averaged over the
  window, times the encoder's logit scale. Needs an encoder with a text tower.
Attention is written out with matmuls so every head exports to ONNX/OpenVINO/TensorRT as is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_path, safe_torch_load
from edgeclip.registry import Registry

LABELS = ["normal", "accident"]
ACCIDENT_PROMPTS = [
    "a dashcam video of a car crash", "a car accident on the road", "a collision between two cars",
    "a car crashing into another vehicle", "a traffic accident seen from a dashcam",
]
NORMAL_PROMPTS = [
    "normal driving on a road", "a dashcam video of normal traffic", "a car driving safely on a highway",
    "an empty road seen from a dashcam", "cars driving along a city street",
]
CHECKPOINT_FORMAT = "edgeclip-temporal-head"


@dataclass(frozen=True)
class HeadEntry:
    name: str
    description: str
    factory: Callable[..., nn.Module]
    trainable: bool = True
    needs_text: bool = False


TEMPORAL_HEADS: Registry[HeadEntry] = Registry("temporal head", "edgeclip list heads")


def register_head(name: str, description: str, *, trainable: bool = True, needs_text: bool = False):
    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        TEMPORAL_HEADS.register(name, HeadEntry(name, description, factory, trainable, needs_text))
        return factory

    return decorator


class CrossAttention(nn.Module):
    """Multi-head attention of queries (B, Q, W) over tokens (B, T, W), written with matmuls."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise UserError(f"head width {width} is not divisible by {heads} attention heads; change width or heads")
        self.heads, self.head_dim = heads, width // heads
        self.query, self.key_value, self.out = nn.Linear(width, width), nn.Linear(width, 2 * width), nn.Linear(width, width)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        batch, width = tokens.shape[0], tokens.shape[2]
        q = self.query(queries).reshape(batch, -1, self.heads, self.head_dim).transpose(1, 2)
        kv = self.key_value(tokens).reshape(batch, -1, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ kv[0].transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
        return self.out((weights @ kv[1]).transpose(1, 2).reshape(batch, -1, width))


class DecoderLayer(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm_query, self.norm_tokens, self.norm_mlp = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = CrossAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        query = query + self.dropout(self.attention(self.norm_query(query), self.norm_tokens(tokens)))
        return query + self.dropout(self.mlp(self.norm_mlp(query)))


@register_head("evl", "EVL-style: temporal position embedding + depthwise temporal conv + Transformer decoder with a [CLS] query")
class EVLHead(nn.Module):
    def __init__(self, frames: int, dim: int, *, width: int = 128, layers: int = 2, heads: int = 4,
                 kernel: int = 3, mlp_ratio: float = 2.0, dropout: float = 0.1) -> None:
        super().__init__()
        self.frames = frames
        self.project = nn.Linear(dim, width)
        self.position = nn.Parameter(torch.zeros(1, frames, width))
        self.temporal_conv = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=width)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.layers = nn.ModuleList(DecoderLayer(width, heads, mlp_ratio, dropout) for _ in range(layers))
        self.norm, self.classifier = nn.LayerNorm(width), nn.Linear(width, len(LABELS))
        nn.init.trunc_normal_(self.position, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        nn.init.zeros_(self.temporal_conv.weight)  # EVL: the local temporal module starts as the identity
        nn.init.zeros_(self.temporal_conv.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        tokens = self.project(features) + self.position
        tokens = tokens + self.temporal_conv(tokens.transpose(1, 2)).transpose(1, 2)
        query = self.cls.repeat(tokens.shape[0], 1, 1)  # not a view: a no-grad view of a parameter still "requires grad"
        for layer in self.layers:
            query = layer(query, tokens)
        return self.classifier(self.norm(query[:, 0]))


@register_head("mean-mlp", "mean of the frame features -> MLP (the light baseline)")
class MeanMLPHead(nn.Module):
    def __init__(self, frames: int, dim: int, *, hidden: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        self.frames = frames
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, len(LABELS)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features.mean(dim=1))


@register_head("zero-shot", "no training: per-frame similarity to accident / normal-driving prompt sets, averaged",
               trainable=False, needs_text=True)
class ZeroShotHead(nn.Module):
    def __init__(self, frames: int, dim: int, *, logit_scale: float = 100.0) -> None:
        super().__init__()
        self.frames = frames
        self.register_buffer("class_embeddings", torch.zeros(len(LABELS), dim))
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))

    def set_prompts(self, encoder: Any, normal: list[str] | None = None, accident: list[str] | None = None) -> None:
        """Class embedding = normalized mean of the normalized prompt embeddings (prompt ensemble)."""
        rows = []
        for prompts in (normal or NORMAL_PROMPTS, accident or ACCIDENT_PROMPTS):
            mean = torch.from_numpy(encoder.text_embeddings(prompts)).mean(dim=0)
            rows.append(nn.functional.normalize(mean, dim=-1))
        self.class_embeddings.copy_(torch.stack(rows))
        self.logit_scale.fill_(float(encoder.logit_scale))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        similarity = nn.functional.normalize(features, dim=-1) @ self.class_embeddings.T  # (B, T, 2)
        return self.logit_scale * similarity.mean(dim=1)


def create_head(name: str, frames: int, dim: int, encoder: Any = None, **params: Any) -> nn.Module:
    """A head with fresh weights; `zero-shot` takes its prompt embeddings from `encoder`'s text tower."""
    entry = TEMPORAL_HEADS.get(name)
    try:
        head = entry.factory(frames, dim, **params)
    except TypeError as exc:
        raise UserError(f"temporal head '{name}' does not take these options {sorted(params)} ({exc}); "
                        "see `edgeclip list heads`") from None
    if entry.needs_text and encoder is not None:
        head.set_prompts(encoder)
    return head


def save_head(path: str | Path, head: nn.Module, name: str, frames: int, dim: int, params: dict[str, Any]) -> None:
    payload = {"format": CHECKPOINT_FORMAT, "name": name, "frames": frames, "dim": dim, "params": params,
               "state_dict": {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_head(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    payload = safe_torch_load(path, "temporal head", "re-train it with `edgeclip video train`")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not an edgeclip temporal head; re-train it with `edgeclip video train`")
    head = create_head(payload["name"], int(payload["frames"]), int(payload["dim"]), **payload.get("params", {}))
    head.load_state_dict(payload["state_dict"])
    return head.eval(), {k: v for k, v in payload.items() if k != "state_dict"}


def list_heads() -> list[dict[str, Any]]:
    return [{"name": name, "trainable": entry.trainable, "needs_text_tower": entry.needs_text,
             "description": entry.description} for name, entry in TEMPORAL_HEADS.items()]
