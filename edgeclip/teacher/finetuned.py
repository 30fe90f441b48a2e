"""Fine-tuned CLIP teacher (paper 000 §3.2.2): frozen CLIP + an MLP trained with cross-entropy.

The MLP reads CLIP's contrastive output y — the image–class similarity vector of the zero-shot
head, logit_scale·cosine — (`head_input="similarity"`, the paper), or the image features
themselves (`"features"`, an MLP probe). CLIP stays frozen, so the head trains on cached image
features in seconds; the image tower runs once per image (`teacher.cache`).

Saved as a directory: `head.pt` (MLP + class embeddings) and `teacher.json` (which CLIP, its
identity, classes, head shape); `load` refuses a CLIP other than the one the head was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from edgeclip.data.base import Subset
from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_dir, read_json, safe_torch_load, write_json
from edgeclip.teacher.cache import cached_image_features
from edgeclip.teacher.clip_teacher import ClipTeacher
from edgeclip.teacher.templates import get_templates
from edgeclip.utils import count_params, seed_everything

HEAD_INPUTS = ("similarity", "features")
META_NAME = "teacher.json"
FINETUNED_KIND = "clip_finetuned"


class SimilarityMLP(nn.Module):
    """features (N, D) → [similarity y = s·f·Eᵀ (N, C)] → FC, BatchNorm, Dropout, ReLU → FC → logits."""

    def __init__(self, class_embeddings: torch.Tensor, logit_scale: float, *, head_input: str = "similarity",
                 hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        if head_input not in HEAD_INPUTS:
            raise UserError(f"unknown fine-tuned head input '{head_input}'; set distill.head_input to one of {', '.join(HEAD_INPUTS)}")
        if hidden < 1:
            raise UserError(f"distill.head_hidden must be >= 1, got {hidden}")
        num_classes, embed_dim = class_embeddings.shape
        self.head_input = head_input
        self.hidden = hidden
        self.dropout = dropout
        # Frozen zero-shot class embeddings (buffers, not parameters: only the MLP learns).
        self.register_buffer("class_embeddings", F.normalize(class_embeddings.float(), dim=-1))
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))
        in_dim = num_classes if head_input == "similarity" else embed_dim
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.Dropout(dropout), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)
        )

    @property
    def num_classes(self) -> int:
        return int(self.class_embeddings.shape[0])

    @property
    def embed_dim(self) -> int:
        return int(self.class_embeddings.shape[1])

    def similarity(self, features: torch.Tensor) -> torch.Tensor:
        """CLIP's contrastive output: logit_scale · cosine(image, class text embedding)."""
        return self.logit_scale * F.normalize(features.float(), dim=-1) @ self.class_embeddings.t()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.similarity(features) if self.head_input == "similarity" else F.normalize(features.float(), dim=-1)
        return self.mlp(x)


def train_head(
    head: SimilarityMLP,
    features: torch.Tensor,
    labels: Sequence[int],
    *,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 128,
    weight_decay: float = 1e-4,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Cross-entropy training of the MLP on cached CLIP features; returns the loss per epoch."""
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows for {len(labels)} labels")
    if features.shape[1] != head.embed_dim:
        raise UserError(f"cached features have dim {features.shape[1]} but the head expects {head.embed_dim}; the head belongs to another CLIP")
    seed_everything(seed)
    targets = torch.as_tensor(list(labels), dtype=torch.long)
    optimizer = torch.optim.AdamW(head.mlp.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    n = len(targets)
    head.train()
    for _ in tqdm(range(epochs), desc="fine-tune CLIP head", disable=not progress, leave=False):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            if len(batch) < 2:  # BatchNorm needs two samples in train mode
                continue
            loss = F.cross_entropy(head(features[batch]), targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        scheduler.step()
        losses.append(total / n)
    head.eval()
    return losses


class FinetunedClipTeacher:
    """A frozen `ClipTeacher` plus a trained `SimilarityMLP`: images → class logits."""

    kind = FINETUNED_KIND

    def __init__(self, clip: Any, head: SimilarityMLP, class_names: Sequence[str], *, clip_spec: str, templates: str = "") -> None:
        if head.num_classes != len(class_names):
            raise UserError(f"the fine-tuned head predicts {head.num_classes} classes but {len(class_names)} class names were given")
        self.clip = clip
        self.head = head.eval()
        self.class_names = list(class_names)
        self.clip_spec = clip_spec
        self.templates = templates
        self.name = f"{getattr(clip, 'name', clip_spec)}+mlp({head.head_input})"

    @classmethod
    def train(cls, clip: Any, clip_spec: str, train_dataset: Any, *, templates: str, head_input: str = "similarity",
              hidden: int = 256, dropout: float = 0.1, epochs: int = 30, lr: float = 1e-3, seed: int = 0,
              progress: bool = False) -> "FinetunedClipTeacher":
        """Build the zero-shot head from prompts, then fit the MLP on the cached train features."""
        class_names = list(train_dataset.class_names)
        seed_everything(seed)  # the head's init must not depend on what ran before (e.g. which student was built)
        zero_shot = clip.zero_shot_head(class_names, get_templates(templates))
        head = SimilarityMLP(zero_shot.class_embeddings, _scale(zero_shot.logit_scale), head_input=head_input, hidden=hidden, dropout=dropout)
        train_head(head, clip_features(clip, train_dataset), train_dataset.labels, epochs=epochs, lr=lr, seed=seed, progress=progress)
        return cls(clip, head, class_names, clip_spec=clip_spec, templates=templates)

    @property
    def num_params(self) -> int:
        """What runs per image: the image tower plus the MLP (the class embeddings are fixed)."""
        visual = getattr(getattr(self.clip, "model", None), "visual", None)
        return (count_params(visual) if visual is not None else count_params(self.clip)) + count_params(self.head.mlp)

    @torch.no_grad()
    def logits(self, dataset: Any) -> torch.Tensor:
        """Teacher logits (N, C) for every image of `dataset`, from cached CLIP features."""
        return self.head.eval()(clip_features(self.clip, dataset))

    @torch.no_grad()
    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        """Logits from preprocessed images (runs the image tower; for cost comparisons)."""
        return self.head.eval()(self.clip.encode_image(images))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "clip": self.clip_spec, "clip_identity": getattr(self.clip, "identity", ""),
                "head_input": self.head.head_input, "params": self.num_params}

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            torch.save(self.head.state_dict(), tmp / "head.pt")
            write_json(tmp / META_NAME, {
                "kind": self.kind, "clip": self.clip_spec, "clip_identity": getattr(self.clip, "identity", ""),
                "class_names": self.class_names, "templates": self.templates, "head_input": self.head.head_input,
                "hidden": self.head.hidden, "dropout": self.head.dropout, "embed_dim": self.head.embed_dim,
            })
        return directory

    @classmethod
    def load(cls, directory: str | Path, clip: Any | None = None) -> "FinetunedClipTeacher":
        """Reload a saved head; loads its CLIP from the recorded spec unless `clip` is given."""
        directory = Path(directory)
        meta = read_json(directory / META_NAME)
        if meta.get("kind") != FINETUNED_KIND:
            raise UserError(f"{directory} is a '{meta.get('kind')}' teacher, not a fine-tuned CLIP head; pass it as its own --teacher")
        if clip is None:
            clip = ClipTeacher.load(meta["clip"])
        identity = getattr(clip, "identity", "")
        if meta.get("clip_identity") and identity and identity != meta["clip_identity"]:
            raise UserError(f"fine-tuned head {directory} was trained on CLIP '{meta['clip']}' ({meta['clip_identity']}), not on the "
                            f"loaded CLIP ({identity}); use the CLIP it was trained with or fine-tune a new head")
        state = safe_torch_load(directory / "head.pt", "fine-tuned head", "re-create the teacher (fine-tune it again)")
        if not isinstance(state, dict) or not {"class_embeddings", "logit_scale"} <= set(state):
            raise UserError(f"{directory / 'head.pt'} is not a fine-tuned head (no class_embeddings/logit_scale); "
                            "re-create the teacher (fine-tune it again)")
        class_embeddings = state["class_embeddings"]
        head = SimilarityMLP(class_embeddings, float(state["logit_scale"]), head_input=meta["head_input"], hidden=meta["hidden"], dropout=meta["dropout"])
        load_weights(head, state, directory, f"fine-tuned head ({meta['head_input']}, hidden {meta['hidden']})")
        return cls(clip, head, meta["class_names"], clip_spec=meta["clip"], templates=meta.get("templates", ""))


def clip_features(clip: Any, dataset: Any) -> torch.Tensor:
    """Cached CLIP image features (N, D); a Subset reuses its parent's cache, so low-shot runs
    with different k share one teacher pass over the training images."""
    if isinstance(dataset, Subset):
        return clip_features(clip, dataset.dataset)[dataset.indices]
    return cached_image_features(clip, dataset, progress=False)


def _scale(value: Any) -> float:
    # ZeroShotHead.logit_scale is the multiplier itself (100 for OpenAI CLIP), as a float or buffer.
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], where: Path, what: str) -> None:
    """load_state_dict with a one-line UserError instead of a shape-mismatch traceback."""
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {where} holds a {type(state).__name__}, not the weights of {what}; retrain the teacher")
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise UserError(f"checkpoint {where} does not hold weights for {what} ({first}); it was saved for another architecture — "
                        "retrain the teacher or pass the architecture it was trained as") from None
