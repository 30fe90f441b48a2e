"""SmoothQuant (Xiao et al., 2023) for ViT towers, in PyTorch before export (so both backends get it).

A few channels of a transformer's LayerNorm outputs carry values far larger than the rest; one
per-tensor int8 scale for the whole activation then wastes most of its levels on them. SmoothQuant
divides each such channel by s_j and multiplies the matching input column of the next Linear by
s_j — the same function in float — with s_j = max|X_j|^α / max|W_j|^(1−α), moving quantization
difficulty from activations into weights (which are quantized per channel). The division is folded
into the LayerNorm's affine parameters, so the exported graph has no extra op.

Pairs handled: open_clip ResidualAttentionBlock (ln_1 → attention input projection, ln_2 →
mlp.c_fc) with nn.MultiheadAttention or SplitQKVAttention, and timm ViT Blocks (norm1 → attn.qkv,
norm2 → mlp.fc1).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeclip.students.structure import SplitQKVAttention


def _input_weight(module: nn.Module) -> torch.Tensor | None:
    """The (out, in) weight whose input columns read the LayerNorm's output."""
    if isinstance(module, nn.MultiheadAttention):
        return module.in_proj_weight if module._qkv_same_embed_dim else None
    if isinstance(module, SplitQKVAttention):
        return module.qkv.weight
    if isinstance(module, nn.Linear):
        return module.weight
    qkv = getattr(module, "qkv", None)  # timm Attention
    return qkv.weight if isinstance(qkv, nn.Linear) else None


def smoothing_pairs(model: nn.Module) -> list[tuple[str, nn.LayerNorm, nn.Parameter]]:
    """(name, LayerNorm, weight of the layer that reads it) for every transformer block found."""
    pairs = []
    for name, block in model.named_modules():
        candidates = []
        if hasattr(block, "ln_1") and hasattr(block, "attn") and hasattr(block, "mlp"):
            candidates = [("ln_1", block.ln_1, block.attn), ("ln_2", block.ln_2, getattr(block.mlp, "c_fc", None))]
        elif hasattr(block, "norm1") and hasattr(block, "attn") and hasattr(block, "mlp"):
            candidates = [("norm1", block.norm1, block.attn), ("norm2", block.norm2, getattr(block.mlp, "fc1", None))]
        for label, norm, consumer in candidates:
            weight = _input_weight(consumer) if consumer is not None else None
            if isinstance(norm, nn.LayerNorm) and norm.elementwise_affine and weight is not None:
                pairs.append((f"{name}.{label}", norm, weight))
    return pairs


@torch.no_grad()
def smooth_quant(model: nn.Module, calibration: np.ndarray, alpha: float = 0.5, batch_size: int = 16) -> dict[str, Any]:
    """Apply SmoothQuant in place using activation maxima over `calibration`; returns a record."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"SmoothQuant alpha must be in [0, 1], got {alpha}")
    pairs = smoothing_pairs(model)
    if not pairs:
        return {"applied": False, "reason": "no LayerNorm → Linear pairs found", "alpha": alpha}
    maxima: dict[str, torch.Tensor] = {}
    hooks = []
    for name, norm, _weight in pairs:
        def record(_module: nn.Module, _args: Any, out: torch.Tensor, name: str = name) -> None:
            peak = out.detach().abs().reshape(-1, out.shape[-1]).amax(dim=0).float()
            maxima[name] = torch.maximum(maxima[name], peak) if name in maxima else peak
        hooks.append(norm.register_forward_hook(record))
    try:
        model.eval()
        for start in range(0, len(calibration), batch_size):
            model(torch.from_numpy(np.ascontiguousarray(calibration[start:start + batch_size])))
    finally:
        for hook in hooks:
            hook.remove()
    ratios = []
    used = [(name, norm, weight) for name, norm, weight in pairs if name in maxima]  # e.g. a text tower the images never reach
    for name, norm, weight in used:
        act = maxima[name].clamp(min=1e-5)
        w = weight.detach().abs().amax(dim=0).float().clamp(min=1e-5)
        scale = (act.pow(alpha) / w.pow(1 - alpha)).clamp(min=1e-5)
        norm.weight.div_(scale.to(norm.weight.dtype))
        if norm.bias is not None:
            norm.bias.div_(scale.to(norm.bias.dtype))
        weight.mul_(scale.to(weight.dtype)[None, :])
        ratios.append(float(act.max() / act.median()))
    return {"applied": bool(used), "alpha": alpha, "pairs": len(used), "calibration_count": int(len(calibration)),
            "max_outlier_ratio_before": round(max(ratios), 2) if ratios else None}


def has_transformer_blocks(model: nn.Module) -> bool:
    return bool(smoothing_pairs(model))


def smooth_quant_if_transformer(model: nn.Module, calibration: np.ndarray, alpha: float) -> tuple[nn.Module, dict[str, Any]]:
    """A smoothed copy of `model` when it has transformer blocks; the model itself otherwise."""
    if not has_transformer_blocks(model):
        return model, {"applied": False, "reason": "not a transformer (no LayerNorm → Linear pairs)", "alpha": alpha}
    smoothed = copy.deepcopy(model)
    record = smooth_quant(smoothed, calibration, alpha)
    return smoothed, record
