"""Width-scaled ResNets: the students (paper 000's "ResNet18 with 1/8 of the filters") and the
CE-trained CNN teachers of the capacity-gap table (ResNet10/18/34/50) are built here.

Written out instead of taken from torchvision because torchvision's ResNet has no width
multiplier for BasicBlock nets and always uses the ImageNet stem, which throws away 3/4 of the
pixels of a 32×32 input before the first block.
"""

from __future__ import annotations

import torch
from torch import nn

BASE_CHANNELS = (64, 128, 256, 512)


def scaled_channels(width: float) -> tuple[int, int, int, int]:
    """Stage widths for a multiplier: 64·w, 128·w, 256·w, 512·w (at least 1 channel each)."""
    return tuple(max(1, round(c * width)) for c in BASE_CHANNELS)  # type: ignore[return-value]


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual; a 1×1 projection on the shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3, 1×1 expand (×4) with a residual; a projection shortcut when the shape changes."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
        )
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """BasicBlock ResNet: (N,3,H,W) → logits (N,num_classes).

    `small_input=True` uses the CIFAR stem (3×3 conv, stride 1, no max-pool) so 32×32 inputs keep
    their resolution into the first stage; otherwise the ImageNet stem (7×7/2 conv + 3×3/2 pool).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        width: float = 1.0,
        blocks: tuple[int, int, int, int] = (2, 2, 2, 2),
        small_input: bool = False,
        bottleneck: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        channels = scaled_channels(width)
        self.width = width
        self.small_input = small_input
        if small_input:
            stem = [nn.Conv2d(3, channels[0], 3, stride=1, padding=1, bias=False)]
        else:
            stem = [nn.Conv2d(3, channels[0], 7, stride=2, padding=3, bias=False)]
        stem += [nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)]
        if not small_input:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)

        stages = []
        in_channels = channels[0]
        block = Bottleneck if bottleneck else BasicBlock
        for index, (planes, count) in enumerate(zip(channels, blocks)):
            stride = 1 if index == 0 else 2
            layers = [block(in_channels, planes, stride)]
            in_channels = planes * (Bottleneck.expansion if bottleneck else 1)
            layers += [block(in_channels, planes) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, 512·w) before the classifier (for probes and feature KD)."""
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def resnet18(num_classes: int, *, width: float = 1.0, small_input: bool = False) -> ResNet:
    """ResNet18 ([2,2,2,2] BasicBlocks) with `width` times the filters of the original."""
    return ResNet(num_classes, width=width, blocks=(2, 2, 2, 2), small_input=small_input)
