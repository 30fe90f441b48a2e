"""One interface over CLIP-like dual encoders (a ClipTeacher or a student open_clip model).

Everything the suites need: `encode_images(tensor)` and `encode_texts(list[str])` (L2-normalized,
no grad, eval mode), `preprocess`, `logit_scale`, and `model` (for sizes and exports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from edgeclip.data.preprocess import Preprocess
from edgeclip.prompt_ensemble import class_embeddings_torch


@dataclass
class DualEncoder:
    name: str
    role: str  # teacher | student
    model: nn.Module  # the open_clip model (encode_image / encode_text)
    preprocess: Preprocess
    tokenize: Callable[[Sequence[str]], torch.Tensor]
    logit_scale: float

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return F.normalize(self.model.encode_image(images).float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        self.model.eval()
        out = [F.normalize(self.model.encode_text(self.tokenize(list(texts[i:i + batch_size]))).float(), dim=-1)
               for i in range(0, len(texts), batch_size)]
        return torch.cat(out)

    @torch.no_grad()
    def class_embeddings(self, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """(C, D) prompt-ensemble class embeddings (DESIGN §4.1)."""
        return class_embeddings_torch(self.encode_texts, class_names, templates)

    @torch.no_grad()
    def image_features(self, dataset: Any, *, transform: Callable[[Image.Image], Image.Image] | None = None,
                       batch_size: int = 256) -> torch.Tensor:
        """(N, D) normalized embeddings of every image of `dataset` (optionally transformed first)."""
        out = []
        for start in range(0, len(dataset), batch_size):
            stop = min(start + batch_size, len(dataset))
            images = [dataset.load(i) for i in range(start, stop)]
            if transform is not None:
                images = [transform(image) for image in images]
            batch = torch.from_numpy(np.stack([self.preprocess(image) for image in images]))
            out.append(self.encode_images(batch))
        return torch.cat(out)


def teacher_encoder(teacher: Any) -> DualEncoder:
    """A ClipTeacher (or anything with .model/.preprocess/.tokenize/.logit_scale) as a DualEncoder."""
    return DualEncoder(name=getattr(teacher, "name", "teacher"), role="teacher", model=teacher.model,
                       preprocess=teacher.preprocess, tokenize=teacher.tokenize, logit_scale=float(teacher.logit_scale))


def student_encoder(model: nn.Module, spec: Any, name: str | None = None) -> DualEncoder:
    """A student open_clip model + its ModelSpec as a DualEncoder (open_clip's own tokenizer)."""
    import open_clip

    tokenizer = open_clip.SimpleTokenizer(context_length=int(spec.context_length or 77))
    scale = float(spec.extra.get("logit_scale") or model.logit_scale.exp().item())
    return DualEncoder(name=name or spec.name, role="student", model=model.eval(), preprocess=spec.preprocess,
                       tokenize=lambda texts: tokenizer(list(texts)), logit_scale=scale)
