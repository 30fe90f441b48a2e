"""A small CIFAR-style ConvNet registered in timm, so open_clip can use it as a CLIP image tower.

open_clip builds timm towers by name (`vision_cfg.timm_model_name`, as MobileCLIP does with
FastViT); timm's ImageNet models downsample 4× in their stem, which leaves 8×8 feature maps of a
32×32 photo after one layer. This one keeps full resolution in its stem and halves it three times
(airbench-style: conv → max-pool → BN → GELU → conv → BN → GELU per stage), which is what makes
a ~0.1 GFLOP network reach CIFAR-10 accuracy in minutes of CPU time.

Registered names: `edgeclip_convnet_xs` (16/32/64), `edgeclip_convnet_s` (32/64/128), `edgeclip_convnet_m` (48/96/192),
`edgeclip_convnet_l` (64/128/256). Importing this module registers them (clip_models does).
"""

from __future__ import annotations

import torch
from torch import nn

STEM_WIDTH = 24
WIDTHS = {"xs": (16, 32, 64), "s": (32, 64, 128), "m": (48, 96, 192), "l": (64, 128, 256)}


def _stage(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.MaxPool2d(2),
        nn.BatchNorm2d(out_channels), nn.GELU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.GELU(),
    )


class ConvNetTower(nn.Module):
    """Stem + three stages + global pooling (+ an optional classifier, timm's interface)."""

    def __init__(self, widths: tuple[int, int, int] = WIDTHS["m"], num_classes: int = 0, global_pool: str = "max",
                 in_chans: int = 3, **_: object) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, STEM_WIDTH, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(STEM_WIDTH), nn.GELU())
        channels = (STEM_WIDTH, *widths)
        self.stages = nn.Sequential(*[_stage(channels[i], channels[i + 1]) for i in range(3)])
        self.num_features = widths[-1]
        # timm reads these: no pretrained weights, and 4×4 maps before pooling at 32×32.
        self.default_cfg = {"pool_size": None, "num_classes": num_classes, "input_size": (3, 32, 32)}
        self.pretrained_cfg = self.default_cfg
        self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool:
            if global_pool not in ("avg", "max"):
                raise ValueError(f"edgeclip_convnet pools with 'avg' or 'max', not {global_pool!r}")
            self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(x)
        pooled = features.amax(dim=(2, 3)) if self.global_pool == "max" else features.mean(dim=(2, 3))
        return self.head(pooled)


def _register() -> None:
    from timm.models import is_model, register_model

    for size, widths in WIDTHS.items():
        name = f"edgeclip_convnet_{size}"
        if is_model(name):
            continue

        def factory(pretrained: bool = False, _widths: tuple[int, int, int] = widths, **kwargs: object) -> ConvNetTower:
            if pretrained:
                raise ValueError("edgeclip_convnet towers have no pretrained weights; train them (edgeclip's proxy teachers do)")
            return ConvNetTower(_widths, **kwargs)

        factory.__name__ = name  # timm registers under the function's name
        register_model(factory)


_register()
