"""Shared tiny set-up for the DistillCLIP tests: a teacher whose text tower can initialise test_distillclip."""

from __future__ import annotations

from typing import Any

import torch

from edgeclip.config import load_recipe
from edgeclip.teacher import ClipTeacher
from edgeclip.teacher.proxy import PROXY_DIGITS_PREPROCESS

# Text width 64 / 4 heads / 3 layers: test_distillclip's 2 text layers come from layers 0 and 2.
TINY_TEACHER = {"embed_dim": 48, "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
                "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 3}}
FAST = ["student.name=test_distillclip", "data.pairs=digits", "distill.epochs=1", "distill.batch_size=64",
        "distill.warmup_steps=3", "distill.lr=0.001"]


def tiny_teacher(seed: int = 0) -> ClipTeacher:
    torch.manual_seed(seed)
    return ClipTeacher.from_config("tiny-teacher", TINY_TEACHER, PROXY_DIGITS_PREPROCESS)


def recipe(*overrides: str):
    return load_recipe("distillclip-digits", FAST + list(overrides))


class CountingTeacher:
    """Delegates to a ClipTeacher and counts how many images and captions it encoded."""

    def __init__(self, teacher: ClipTeacher) -> None:
        self._teacher = teacher
        self.images = 0
        self.texts = 0

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        self.images += len(images)
        return self._teacher.encode_image(images, normalize)

    def encode_text(self, texts: Any, normalize: bool = True) -> torch.Tensor:
        self.texts += len(texts)
        return self._teacher.encode_text(texts, normalize)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._teacher, name)
