"""Named, weighted loss terms (torchdistill-style) for classifier distillation.

A criterion is a list of `(name, weight, params)` terms looked up in `LOSSES`; its forward returns
the weighted total and each term's unweighted value, so progress bars and logs can show both.
Hinton KD (paper 000 §3.1) is `kd` weighted by alpha plus `ce` weighted by beta.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgeclip.errors import UserError
from edgeclip.registry import Registry

# A term maps (student logits (N,C), teacher logits (N,C) or None, labels (N,)) to a scalar.
LossTerm = Callable[..., torch.Tensor]

LOSSES: Registry[LossTerm] = Registry("loss term")


@LOSSES.register("kd")
def hinton_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor, *, tau: float = 1.0) -> torch.Tensor:
    """τ²·KL(softmax(y_t/τ) ‖ softmax(y_s/τ)), averaged over the batch.

    The τ² factor keeps the gradient scale of the soft term independent of τ (Hinton et al.).
    """
    if teacher_logits is None:
        raise UserError("loss term 'kd' needs teacher outputs; give a teacher or drop the kd term (distill.alpha=0)")
    if teacher_logits.shape != student_logits.shape:
        raise UserError(
            f"teacher predicts {teacher_logits.shape[-1]} classes but the student {student_logits.shape[-1]}; "
            "use a teacher and student built for the same class list"
        )
    if tau <= 0:
        raise UserError(f"distillation temperature tau must be > 0, got {tau}; set distill.tau to e.g. 1 or 4")
    log_p_student = F.log_softmax(student_logits / tau, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / tau, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * tau * tau


@LOSSES.register("ce")
def cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against the integer labels (the hard-label term)."""
    return F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)


@dataclass
class WeightedTerm:
    name: str
    weight: float
    params: dict[str, Any] = field(default_factory=dict)


class WeightedLoss(nn.Module):
    """Sum of weighted registered terms; terms with weight 0 are skipped entirely."""

    def __init__(self, terms: list[WeightedTerm]) -> None:
        super().__init__()
        self.terms = [t for t in terms if t.weight != 0]
        if not self.terms:
            raise UserError("the distillation loss has no term with a non-zero weight; set distill.alpha or distill.beta > 0")
        self._fns = [LOSSES.get(t.name) for t in self.terms]

    @property
    def needs_teacher(self) -> bool:
        return any(t.name == "kd" for t in self.terms)

    def forward(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        total = student_logits.new_zeros(())
        parts: dict[str, float] = {}
        for term, fn in zip(self.terms, self._fns):
            value = fn(student_logits, teacher_logits, labels, **term.params)
            parts[term.name] = float(value.detach())
            total = total + term.weight * value
        return total, parts

    def describe(self) -> str:
        return " + ".join(f"{t.weight:g}·{t.name}" + (f"{t.params}" if t.params else "") for t in self.terms)


def hinton_criterion(alpha: float, beta: float, tau: float) -> WeightedLoss:
    """Paper 000: L = α·τ²·KL(softmax(y_t/τ) ‖ softmax(y_s/τ)) + β·CE(y, y_s)."""
    return WeightedLoss([WeightedTerm("kd", alpha, {"tau": tau}), WeightedTerm("ce", beta)])


def cross_entropy_criterion() -> WeightedLoss:
    """Plain supervised training (students from scratch, CNN teachers)."""
    return WeightedLoss([WeightedTerm("ce", 1.0)])
