"""Architecture edits a checkpoint can carry as data: timm-style attention and pruned layer sizes.

A pruned student is the registered architecture with some layers made narrower (and, for ViT
towers, `nn.MultiheadAttention` swapped for `SplitQKVAttention`, whose heads can be removed).
Pickling the pruned module would make loading run code, so a checkpoint stores the *edit* as
JSON-like data instead (`describe_structure`) and `apply_structure` replays it on a freshly built
student before the weights are loaded:

    {"version": 1,
     "split_attention": ["visual.transformer.resblocks.0.attn", ...],   # MHA → SplitQKVAttention
     "attributes": {"blocks.0.0.conv_dw": {"in_channels": 12, "out_channels": 12, "groups": 12}, ...}}

Parameter and buffer shapes are not stored twice: they come from the checkpoint's state_dict,
and every tensor whose shape differs from the fresh model is re-allocated at the stored shape.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from edgeclip.errors import UserError

STRUCTURE_VERSION = 1
# Size attributes that layers read in forward() (or that describe them); ints or int tuples only.
SIZE_ATTRIBUTES = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features",
                   "normalized_shape", "num_heads", "head_dim", "embed_dim")


class SplitQKVAttention(nn.Module):
    """Self-attention with a fused `qkv` Linear and an output `proj` Linear (timm layout).

    Same function as `nn.MultiheadAttention` in self-attention, but built from plain Linear layers
    and reshapes that torch-pruning can follow, so whole heads (or head dims) can be removed.
    Keeps MHA's call signature (`attn(q, k, v, need_weights=False, attn_mask=None)` → `(out, None)`)
    so it drops into open_clip's ResidualAttentionBlock unchanged.
    """

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int | None = None, *, batch_first: bool = True,
                 bias: bool = True) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = head_dim or embed_dim // num_heads
        self.batch_first = batch_first
        inner = self.num_heads * self.head_dim
        self.qkv = nn.Linear(embed_dim, 3 * inner, bias=bias)
        self.proj = nn.Linear(inner, embed_dim, bias=bias)

    @classmethod
    def from_multihead(cls, mha: nn.MultiheadAttention) -> "SplitQKVAttention":
        if not mha._qkv_same_embed_dim:
            raise UserError("cannot convert an nn.MultiheadAttention with separate k/v dims (kdim/vdim) to split-qkv attention")
        attention = cls(mha.embed_dim, mha.num_heads, batch_first=mha.batch_first, bias=mha.in_proj_bias is not None)
        with torch.no_grad():
            attention.qkv.weight.copy_(mha.in_proj_weight)
            attention.proj.weight.copy_(mha.out_proj.weight)
            if mha.in_proj_bias is not None:
                attention.qkv.bias.copy_(mha.in_proj_bias)
                attention.proj.bias.copy_(mha.out_proj.bias)
        return attention.to(mha.in_proj_weight.dtype)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                need_weights: bool = False, attn_mask: torch.Tensor | None = None, **_unused: Any) -> tuple[torch.Tensor, None]:
        if key is not None and key is not query or value is not None and value is not query:
            raise ValueError("SplitQKVAttention does self-attention only (query, key and value must be the same tensor)")
        x = query if self.batch_first else query.transpose(0, 1)
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # timm's layout: torch-pruning follows unbind, not indexing
        # Written out (no fused SDPA kernel) so ONNX, OpenVINO and FLOP counters all see the matmuls.
        scores = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1)
        if attn_mask is not None:
            scores = scores + attn_mask
        out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, tokens, self.num_heads * self.head_dim)
        out = self.proj(out)
        return (out if self.batch_first else out.transpose(0, 1)), None


def split_attention(model: nn.Module, paths: list[str] | None = None) -> list[str]:
    """Replace `nn.MultiheadAttention` modules (all, or those at `paths`) by SplitQKVAttention in place.

    Returns the dotted paths that were converted (what `describe_structure` records).
    """
    targets = paths if paths is not None else [n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
    for path in targets:
        parent_path, _, leaf = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        module = getattr(parent, leaf, None)
        if isinstance(module, SplitQKVAttention):
            continue
        if not isinstance(module, nn.MultiheadAttention):
            raise UserError(f"structure names {path} as multi-head attention but the model has {type(module).__name__} there; "
                            "the checkpoint does not belong to this student")
        setattr(parent, leaf, SplitQKVAttention.from_multihead(module))
    return list(targets)


def _size_attributes(module: nn.Module) -> dict[str, Any]:
    values = {}
    for name in SIZE_ATTRIBUTES:
        value = getattr(module, name, None)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, tuple) and all(isinstance(v, int) for v in value)):
            values[name] = list(value) if isinstance(value, tuple) else value
    return values


def describe_structure(model: nn.Module, original: nn.Module) -> dict[str, Any]:
    """The JSON edit that turns `original` (a freshly built, unpruned student) into `model`'s architecture."""
    split = [n for n, m in model.named_modules() if isinstance(m, SplitQKVAttention)]
    if split:
        original = _split_copy(original, split)
    reference = dict(original.named_modules())
    changed: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        now = _size_attributes(module)
        before = _size_attributes(reference[name]) if name in reference and type(reference[name]) is type(module) else {}
        diff = {k: v for k, v in now.items() if before.get(k) != v}
        if diff:
            changed[name] = diff
    return {"version": STRUCTURE_VERSION, "split_attention": list(split), "attributes": changed}


def _split_copy(model: nn.Module, split: list[str]) -> nn.Module:
    import copy

    fresh = copy.deepcopy(model)
    split_attention(fresh, split)
    return fresh


def apply_structure(model: nn.Module, structure: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Replay `structure` on a freshly built student so `state_dict` (pruned weights) loads into it."""
    if int(structure.get("version", 0)) > STRUCTURE_VERSION:
        raise UserError(f"checkpoint structure version {structure.get('version')} is newer than this edgeclip reads; upgrade edgeclip")
    split_attention(model, list(structure.get("split_attention", [])))
    modules = dict(model.named_modules())
    for name, attributes in dict(structure.get("attributes", {})).items():
        if name not in modules:
            raise UserError(f"checkpoint structure edits layer '{name}', which this student does not have; "
                            "the checkpoint's student name or build options are wrong")
        for attr, value in attributes.items():
            if attr not in SIZE_ATTRIBUTES:
                raise UserError(f"checkpoint structure sets '{name}.{attr}', which is not a layer size; refusing to load it")
            setattr(modules[name], attr, tuple(value) if isinstance(value, list) else int(value))
    # Tensors: re-allocate at the stored shapes (values come from load_state_dict right after).
    for key, tensor in state_dict.items():
        owner_path, _, leaf = key.rpartition(".")
        owner = modules.get(owner_path) if owner_path else model
        if owner is None:
            continue
        current = owner._parameters.get(leaf) if leaf in owner._parameters else owner._buffers.get(leaf)
        if current is None or tuple(current.shape) == tuple(tensor.shape):
            continue
        empty = torch.empty(tuple(tensor.shape), dtype=current.dtype)
        if leaf in owner._parameters:
            owner._parameters[leaf] = nn.Parameter(empty, requires_grad=current.requires_grad)
        else:
            owner._buffers[leaf] = empty
    return model
