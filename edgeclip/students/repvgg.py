"""RepVGG-style re-parameterisable students (Ding et al. 2021, "RepVGG: Making VGG-style ConvNets Great Again").

Trained as multi-branch blocks (3×3 conv+BN, 1×1 conv+BN and, where shapes allow, an identity BN,
summed, then ReLU) and deployed as a plain stack of 3×3 convs + ReLU: `reparameterize()` folds
every block's branches into one biased 3×3 conv with the same function. A plain chain of dense
3×3 convs is what CPU runtimes run closest to their GEMM roof (no depthwise convs, no SE, no
branching), so these students trade FLOPs for per-op overhead the way small CPU models should.

The exporter folds automatically (`fold_reparameterizable`, called by `exporters.export_model`);
checkpoints keep the training-time branches, so a saved student can still be fine-tuned or pruned.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

# RepVGG-A's layout (stages of 1, 2, 4, 14, 1 blocks) and base widths (64·a, 64·a, 128·a, 256·a, 512·b
# with a = 0.75, b = 2.5 in A0). The width multiplier scales them all.
REPVGG_A_DEPTHS = (1, 2, 4, 14, 1)
REPVGG_A0_WIDTHS = (48, 48, 96, 192, 1280)


def _fuse_conv_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(kernel, bias) of conv(kernel, no bias) followed by `bn` in eval mode."""
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class RepVGGBlock(nn.Module):
    """3×3 conv-BN + 1×1 conv-BN (+ identity BN when in == out and stride 1), summed, then ReLU.

    After `reparameterize()` the block is one 3×3 conv with bias + ReLU (`self.fused`), and the
    branches are gone; the function is unchanged up to float rounding.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        # Channel counts are read from the weights when folding, not stored: pruning narrows the convs.
        self.stride = stride
        self.conv3 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.identity = nn.BatchNorm2d(out_channels) if in_channels == out_channels and stride == 1 else None
        self.fused: nn.Conv2d | None = None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.act(self.fused(x))
        out = self.bn3(self.conv3(x)) + self.bn1(self.conv1(x))
        if self.identity is not None:
            out = out + self.identity(x)
        return self.act(out)

    def fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3×3 (kernel, bias) equal to the sum of the branches (BN in eval mode)."""
        kernel, bias = _fuse_conv_bn(self.conv3.weight, self.bn3)
        k1, b1 = _fuse_conv_bn(F.pad(self.conv1.weight, [1, 1, 1, 1]), self.bn1)  # 1×1 → centre of a 3×3
        kernel, bias = kernel + k1, bias + b1
        if self.identity is not None:  # identity = a 3×3 kernel with 1 at the centre of channel i → i
            eye = torch.zeros_like(self.conv3.weight)
            channels = torch.arange(eye.shape[0])
            eye[channels, channels, 1, 1] = 1.0
            ki, bi = _fuse_conv_bn(eye, self.identity)
            kernel, bias = kernel + ki, bias + bi
        return kernel, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by one biased 3×3 conv (in place; idempotent)."""
        if self.fused is not None:
            return
        kernel, bias = self.fused_kernel_bias()
        out_channels, in_channels = kernel.shape[:2]
        fused = nn.Conv2d(in_channels, out_channels, 3, stride=self.stride, padding=1, bias=True)
        fused.weight.copy_(kernel)
        fused.bias.copy_(bias)
        fused.to(self.conv3.weight.device)
        self.fused = fused
        for name in ("conv3", "bn3", "conv1", "bn1", "identity"):
            delattr(self, name)
        self.identity = None


class RepVGG(nn.Module):
    """A plain RepVGG classifier: (N,3,H,W) → logits (N,num_classes).

    Stage i has `depths[i]` blocks of `widths[i]` channels; the first block of every stage strides
    by 2 except the first stage's when `small_input` (CIFAR-size inputs keep their resolution, as
    the ResNet students' CIFAR stem does), so 32×32 inputs end at 2×2 instead of 1×1.
    """

    def __init__(self, num_classes: int, *, widths: tuple[int, ...], depths: tuple[int, ...],
                 small_input: bool = False) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths {widths} and depths {depths} must be non-empty and the same length")
        blocks: list[nn.Module] = []
        in_channels = 3
        for index, (width, depth) in enumerate(zip(widths, depths)):
            for block_index in range(depth):
                stride = 2 if block_index == 0 and not (index == 0 and small_input) else 1
                blocks.append(RepVGGBlock(in_channels, width, stride))
                in_channels = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))

    def reparameterize(self) -> "RepVGG":
        """Fold every block to a single 3×3 conv, in place; returns self."""
        for module in self.modules():
            if isinstance(module, RepVGGBlock):
                module.reparameterize()
        return self


def repvgg_widths(width: float) -> tuple[int, ...]:
    """RepVGG-A0's stage widths times `width` (at least 8 channels per stage)."""
    return tuple(max(8, round(c * width)) for c in REPVGG_A0_WIDTHS)


def _fold_method(module: nn.Module) -> Any:
    """`module.reparameterize` when it is a no-argument folding method (RepVGG blocks, timm's
    MobileOne/RepVGG/FastViT blocks), else None — a `reparameterize(mu, logvar)` of a VAE is not one."""
    method = getattr(module, "reparameterize", None)
    if not callable(method):
        return None
    try:
        required = [p for p in inspect.signature(method).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):
        return None
    return None if required else method


def has_reparameterizable(model: nn.Module) -> bool:
    """True when some module folds its training-time branches (`reparameterize()`)."""
    return any(_fold_method(module) is not None for module in model.modules())


def fold_reparameterizable(model: nn.Module) -> nn.Module:
    """A deployable copy of `model` with every re-parameterisable block folded (the model itself is
    left as trained); `model` unchanged when it has none. Works for edgeclip's RepVGG blocks and
    any module exposing `reparameterize()` (timm's RepVGG/MobileOne/FastViT blocks)."""
    if not has_reparameterizable(model):
        return model
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        fold = _fold_method(module)
        if fold is not None and not isinstance(module, RepVGG):  # RepVGG.reparameterize folds its blocks, visited here anyway
            fold()
    return folded
