"""DistillCLIP loss terms (paper 001 §3.2) and the CLIP-KD options, registered in `LOSSES`.

Batch entries a dual-encoder trainer provides (all on the *global* batch under torchrun: the
trainer all-gathers embeddings before the criterion runs, see `distillclip.ddp`):
- `student_image`, `student_text` (b, d_s): the student's embeddings (normalized here again);
- `teacher_image`, `teacher_text` (b, d_t): the teacher's L2-normalized embeddings (cached);
- `student_image_projected`, `student_text_projected` (b, d_t): the student's embeddings through
  the learned feature projections (only when a `feature` term is in the loss);
- `student_logit_scale`: the student's learned exp(logit_scale) (for `contrastive`).

Similarity maps are b×b, so the student's and the teacher's embedding widths never need to match
for `inter`/`intra_*`. `reduction: sum` is the paper's squared L2 norm ‖·‖²; `mean` divides it by b².
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeclip.distill.losses import register_loss
from edgeclip.errors import UserError

DUAL_ENCODER_INPUTS = frozenset({
    "student_image", "student_text", "teacher_image", "teacher_text",
    "student_image_projected", "student_text_projected", "student_logit_scale",
})
REDUCTIONS = ("sum", "mean")


def similarity_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity map ã b̃ᵀ (rows L2-normalized)."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def _map_distance(teacher_map: torch.Tensor, student_map: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in REDUCTIONS:
        raise UserError(f"loss reduction must be one of {', '.join(REDUCTIONS)}, got '{reduction}'")
    squared = (teacher_map.detach().float() - student_map.float()) ** 2
    return squared.sum() if reduction == "sum" else squared.mean()


def _need(teacher: torch.Tensor | None, term: str) -> torch.Tensor:
    if teacher is None:
        raise UserError(f"loss term '{term}' needs the teacher's embeddings; give a CLIP teacher")
    return teacher


@register_loss("inter", needs_teacher=True)
def inter_modal(student_image: torch.Tensor, student_text: torch.Tensor, teacher_image: torch.Tensor | None,
                teacher_text: torch.Tensor | None, *, reduction: str = "sum") -> torch.Tensor:
    """‖z̃ᵀᵛz̃ᵀᵗᵀ − z̃ˢᵛz̃ˢᵗᵀ‖²: image–text similarity maps (DistillCLIP eq. 3.1)."""
    teacher_map = similarity_map(_need(teacher_image, "inter"), _need(teacher_text, "inter"))
    return _map_distance(teacher_map, similarity_map(student_image, student_text), reduction)


@register_loss("intra_image", needs_teacher=True)
def intra_image(student_image: torch.Tensor, teacher_image: torch.Tensor | None, *, reduction: str = "sum") -> torch.Tensor:
    """‖z̃ᵀᵛz̃ᵀᵛᵀ − z̃ˢᵛz̃ˢᵛᵀ‖²: image–image similarity maps (first half of eq. 3.2)."""
    teacher = _need(teacher_image, "intra_image")
    return _map_distance(similarity_map(teacher, teacher), similarity_map(student_image, student_image), reduction)


@register_loss("intra_text", needs_teacher=True)
def intra_text(student_text: torch.Tensor, teacher_text: torch.Tensor | None, *, reduction: str = "sum") -> torch.Tensor:
    """‖z̃ᵀᵗz̃ᵀᵗᵀ − z̃ˢᵗz̃ˢᵗᵀ‖²: text–text similarity maps (second half of eq. 3.2)."""
    teacher = _need(teacher_text, "intra_text")
    return _map_distance(similarity_map(teacher, teacher), similarity_map(student_text, student_text), reduction)


@register_loss("contrastive", needs_teacher=False)
def contrastive(student_image: torch.Tensor, student_text: torch.Tensor, student_logit_scale: torch.Tensor | None,
                *, logit_scale: float = 0.0) -> torch.Tensor:
    """The student's own CLIP InfoNCE on its pairs: mean of image→text and text→image cross-entropy.

    `logit_scale` > 0 fixes the scale; 0 (default) uses the student's learned exp(logit_scale).
    """
    if logit_scale > 0:
        scale: torch.Tensor | float = logit_scale
    elif student_logit_scale is not None:
        scale = student_logit_scale
    else:
        raise UserError("loss term 'contrastive' needs a logit scale: set params.logit_scale (e.g. 100)")
    logits = scale * similarity_map(student_image, student_text)
    targets = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


@register_loss("feature", needs_teacher=True)
def feature(student_image_projected: torch.Tensor | None, student_text_projected: torch.Tensor | None,
            teacher_image: torch.Tensor | None, teacher_text: torch.Tensor | None) -> torch.Tensor:
    """CLIP-KD feature distillation: ‖z̃ᵀ − norm(P zˢ)‖² per sample (mean), image + text.

    P is a learned linear projection from the student's width to the teacher's (identity when the
    widths match); it is trained with the student and dropped from the exported model.
    """
    if student_image_projected is None or student_text_projected is None:
        raise UserError("loss term 'feature' needs the projected student embeddings; use the distillclip trainer")
    total = torch.zeros((), device=student_image_projected.device)
    for projected, teacher in ((student_image_projected, teacher_image), (student_text_projected, teacher_text)):
        teacher = _need(teacher, "feature")
        if projected.shape[-1] != teacher.shape[-1]:
            raise ValueError(f"projected student width {projected.shape[-1]} != teacher width {teacher.shape[-1]}")
        total = total + ((F.normalize(teacher.detach().float(), dim=-1) - F.normalize(projected, dim=-1)) ** 2).sum(-1).mean()
    return total
