"""Structured pruning with torch-pruning: channels of CNN students, MLP width and heads of ViT towers.

What is pruned (the rest keeps its size, so the model's inputs and outputs do not change):
- CNN classifiers (timm MobileNetV3, edgeclip's ResNet18): output channels of every Conv/Linear
  except the classifier layer; torch-pruning's dependency graph carries each cut to the
  BatchNorm, depthwise conv, squeeze-excite and residual add that share those channels.
- ViT towers (open_clip VisionTransformer): whole attention heads (`head_ratio`) and the hidden
  width of each MLP (`ratio`). `nn.MultiheadAttention` hides its heads in one fused op that
  torch-pruning cannot split, so it is first swapped for the equivalent timm-style
  `SplitQKVAttention` (students/structure.py). The residual stream (patch embedding, attention
  and MLP output projections, the final projection) is never narrowed.
- Dual encoders: the image tower only (the text tower runs once per class, offline). Its embedding
  width is shared with the text tower, so the layer that writes the embedding (a timm/CNN tower's
  head projection, the last Linear/Conv of the tower) keeps its output width.

Every cut is checked before it is applied: a ratio that would remove all channels of a layer (or
all heads of an attention) is a UserError naming the layer and the largest ratio that keeps it.
Importance is the L2 norm of each channel's weights in its dependency group (torch-pruning's
GroupMagnitudeImportance), the usual choice when no gradient pass is wanted.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from edgeclip.config import PruneConfig
from edgeclip.errors import UserError
from edgeclip.students.structure import SplitQKVAttention, describe_structure, split_attention
from edgeclip.utils import count_params

def _importance(name: str) -> Any:
    import torch_pruning as tp

    if name == "random":
        return tp.importance.RandomImportance()
    return tp.importance.GroupMagnitudeImportance(p=1 if name == "l1" else 2)


def prunable_part(model: nn.Module, spec: Any) -> tuple[nn.Module, str]:
    """(the module to prune, its dotted path in `model`): the image tower of a dual encoder, else the model."""
    if spec.kind == "dual_encoder":
        visual = getattr(model, "visual", None)
        if not isinstance(visual, nn.Module):
            raise UserError(f"dual encoder '{spec.name}' has no .visual image tower to prune")
        return visual, "visual"
    if spec.kind != "classifier":
        raise UserError(f"pruning supports classifier and dual-encoder students, not '{spec.kind}'")
    return model, ""


def _output_layers(part: nn.Module, spec: Any) -> list[nn.Module]:
    """Layers whose output width is the model's output contract (never pruned)."""
    if spec.kind == "classifier":
        classifier = part.get_classifier() if hasattr(part, "get_classifier") else getattr(part, "fc", None)
        if isinstance(classifier, nn.Module):
            return [classifier]
    # Any other classifier, or a dual encoder's image tower (its embedding width is the text tower's too):
    # the last Linear/Conv in registration order writes the output.
    weighted = [m for m in part.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return weighted[-1:]


def _residual_layers(part: nn.Module) -> list[nn.Module]:
    """ViT layers that write the residual stream: pruning them would narrow the whole tower."""
    keep: list[nn.Module] = []
    for name, module in part.named_modules():
        if isinstance(module, SplitQKVAttention):
            keep.append(module.proj)
        elif name.endswith("mlp") and hasattr(module, "c_proj"):
            keep.append(module.c_proj)
        elif name.endswith("mlp") and hasattr(module, "fc2"):
            keep.append(module.fc2)
    for attr in ("conv1", "patch_embed"):
        if isinstance(getattr(part, attr, None), nn.Module):
            keep.append(getattr(part, attr))
    head = getattr(part, "head", None)
    if isinstance(head, nn.Linear):
        keep.append(head)
    return keep


def _unwrapped_parameters(part: nn.Module) -> list[tuple[nn.Parameter, int]]:
    """Bare nn.Parameters of a ViT (class token, position embedding, output projection) and the dim that
    follows the residual width; torch-pruning would otherwise guess the last dim."""
    found = []
    for attr, dim in (("class_embedding", 0), ("positional_embedding", 1), ("proj", 0), ("cls_token", 2), ("pos_embed", 2)):
        value = getattr(part, attr, None)
        if isinstance(value, nn.Parameter):
            found.append((value, dim if value.ndim > dim else value.ndim - 1))
    return found


def _example(spec: Any) -> torch.Tensor:
    size = spec.preprocess.size
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))


def _ignored(part: nn.Module, spec: Any, settings: PruneConfig, transformer: bool) -> list[nn.Module]:
    modules = dict(part.named_modules())
    ignored = _output_layers(part, spec)
    if transformer:
        ignored += _residual_layers(part)
    for path in settings.ignore:
        if path not in modules:
            names = [n for n, m in part.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
            shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
            raise UserError(f"prune ignore '{path}' matches no layer; layers are: {shown}")
        ignored.append(modules[path])
    return ignored


def check_nothing_emptied(pruner: Any, ratio: float, head_ratio: float, names: dict[nn.Module, str],
                          attentions: list[SplitQKVAttention]) -> None:
    """Refuse a ratio that would empty a layer (or an attention's heads) before anything is cut.

    torch-pruning keeps int(n·(1-ratio)) channels per group; where that is 0 it silently leaves the
    whole group unpruned, so a too-large ratio would quietly prune *less*. Say so instead.
    """
    emptied: list[tuple[int, str]] = []
    narrowest = None
    for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers, root_module_types=pruner.root_module_types):
        root = group[0].dep.target.module
        channels = pruner.DG.get_out_channels(root)
        if not channels or any(root is a.qkv for a in attentions):
            continue  # attention widths are cut by whole heads (checked below)
        narrowest = channels if narrowest is None else min(narrowest, channels)
        if int(channels * (1 - ratio)) < 1:
            emptied.append((channels, names.get(root, type(root).__name__)))
    if emptied:
        channels, name = min(emptied)
        largest = math.floor((1 - 1 / narrowest) * 1000) / 1000
        more = f" (and {len(emptied) - 1} more layers)" if len(emptied) > 1 else ""
        raise UserError(f"pruning ratio {ratio:g} removes all {channels} channels of layer '{name}'{more}; "
                        f"use a ratio of at most {largest:g} or add those layers to prune.ignore")
    for attention in attentions:
        if head_ratio > 0 and int(attention.num_heads * (1 - head_ratio)) < 1:
            raise UserError(
                f"head ratio {head_ratio:g} removes all {attention.num_heads} heads of '{names.get(attention, 'attention')}'; "
                f"use a head ratio of at most {math.floor((1 - 1 / attention.num_heads) * 1000) / 1000:g} (or 0 to keep every head)"
            )


def prune_model(model: nn.Module, spec: Any, settings: PruneConfig, *,
                baseline: nn.Module | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A pruned copy of `model`; returns (pruned model, {"record", "structure"}).

    `baseline` is the registered, unpruned architecture the checkpoint's structure is written
    against (default: `model` itself — pass the fresh student when `model` was pruned before).
    """
    import torch_pruning as tp

    settings.check()
    original = model
    model = copy.deepcopy(model).eval()
    part, part_path = prunable_part(model, spec)
    split_attention(part)
    attentions = [m for m in part.modules() if isinstance(m, SplitQKVAttention)]
    transformer = bool(attentions)
    head_ratio = settings.ratio if settings.head_ratio is None else float(settings.head_ratio)
    names = {module: name for name, module in part.named_modules()}
    kwargs: dict[str, Any] = {}
    if attentions:
        kwargs = {"num_heads": {a.qkv: a.num_heads for a in attentions}, "prune_num_heads": head_ratio > 0,
                  "prune_head_dims": False, "head_pruning_ratio": head_ratio}
    before = count_params(part)
    pruner = tp.pruner.BasePruner(
        part, _example(spec), importance=_importance(settings.importance), pruning_ratio=float(settings.ratio),
        ignored_layers=_ignored(part, spec, settings, transformer), round_to=settings.round_to if settings.round_to > 1 else None,
        unwrapped_parameters=_unwrapped_parameters(part) if transformer else None,
        **kwargs,
    )
    check_nothing_emptied(pruner, float(settings.ratio), head_ratio, names, attentions)
    groups = list(pruner.step(interactive=True))
    if not groups:
        raise UserError(f"nothing to prune in '{spec.name}' at ratio {settings.ratio:g} (every layer is ignored or too small)")
    for group in groups:
        group.prune()
    for attention in attentions:  # torch-pruning narrows the Linear layers; the head bookkeeping is ours
        attention.num_heads = pruner.num_heads[attention.qkv]
        attention.head_dim = attention.qkv.out_features // (3 * attention.num_heads)
    structure = describe_structure(model, baseline if baseline is not None else original)
    after = count_params(part)
    record = {
        "method": "torch-pruning structured (GroupMagnitudeImportance)" if settings.importance != "random" else "torch-pruning random",
        "settings": settings.cut(),
        "pruned_part": part_path or "whole model",
        "architecture": "transformer" if transformer else "cnn",
        "heads": ({names[a.qkv].rsplit(".qkv", 1)[0]: a.num_heads for a in attentions} if attentions else None),
        "params_before": before,
        "params_after": after,
        "params_kept": after / before if before else None,
        "layers_changed": len(structure["attributes"]),
    }
    return model.eval(), {"record": record, "structure": structure}


def kept_channel_summary(model: nn.Module) -> dict[str, int]:
    """Output width of every Conv/Linear (for reports and tests)."""
    summary = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            summary[name] = module.out_channels
        elif isinstance(module, nn.Linear):
            summary[name] = module.out_features
    return summary
