"""Named, weighted loss terms (torchdistill-style), declared in recipes as `distill.loss`.

A term is a function registered with `register_loss(name, needs_teacher=...)`. Its positional
parameters name the batch entries it reads; keyword-only parameters are its `params` from the
recipe. A trainer hands the criterion one dict per batch with the entries it can provide:

- classifier KD / data-free KD: `student_logits` (N,C), `teacher_logits` (N,C) or None, `labels` (N,)
  (data-free KD's teacher logits are logit_scale × the teacher's similarity vector; term `l1`)
- dual-encoder distillation: `student_image`, `student_text`, `teacher_image`, `teacher_text`
  (L2-normalized embeddings), plus whatever its terms declare (e.g. raw features)

`WeightedLoss` returns the weighted total and each term's unweighted value, so progress bars and
logs show both. Adding a loss = one registered function; recipes name it:

    distill:
      loss:
        - {name: kd, weight: 0.5, params: {tau: 4}}
        - {name: ce, weight: 0.5}

With no `loss` list, a recipe's `alpha`, `beta`, `tau` give paper 000's Hinton KD: α·kd + β·ce.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from edgeclip.errors import UserError
from edgeclip.registry import Registry

LossFunction = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class LossTermInfo:
    """A registered term: the function, which batch entries it reads, whether it needs a teacher."""

    name: str
    fn: LossFunction
    needs_teacher: bool
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    description: str


# Dual-encoder terms (DistillCLIP, paper 001) live with their trainer and register on first lookup.
LOSSES: Registry[LossTermInfo] = Registry("loss term", "edgeclip list losses",
                                          builtins=("edgeclip.distill.distillclip.losses",))


def register_loss(name: str, *, needs_teacher: bool) -> Callable[[LossFunction], LossFunction]:
    """Register `fn` as loss term `name`; its positional parameters are the batch entries it reads."""

    def decorator(fn: LossFunction) -> LossFunction:
        parameters = inspect.signature(fn).parameters.values()
        inputs = tuple(p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        params = tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY)
        description = (inspect.getdoc(fn) or "").splitlines()[0] if inspect.getdoc(fn) else ""
        LOSSES.register(name, LossTermInfo(name, fn, needs_teacher, inputs, params, description))
        return fn

    return decorator


@register_loss("kd", needs_teacher=True)
def hinton_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, *, tau: float = 1.0) -> torch.Tensor:
    """τ²·KL(softmax(y_t/τ) ‖ softmax(y_s/τ)), averaged over the batch (Hinton KD, paper 000).

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


@register_loss("ce", needs_teacher=False)
def cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against the integer labels (the hard-label term)."""
    return F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)


@register_loss("l1", needs_teacher=True)
def l1_similarity(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None) -> torch.Tensor:
    """Mean |y_s − y_t| over batch and classes: the student regresses the teacher's similarity vector (paper 002 eq. 5)."""
    if teacher_logits is None:
        raise UserError("loss term 'l1' needs teacher outputs; give a teacher or drop the l1 term")
    if teacher_logits.shape != student_logits.shape:
        raise UserError(f"teacher gives {teacher_logits.shape[-1]} similarities but the student predicts {student_logits.shape[-1]} classes; "
                        "use a teacher and student built for the same class list")
    return F.l1_loss(student_logits, teacher_logits.float())


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
            raise UserError("the distillation loss has no term with a non-zero weight; give distill.loss a term "
                            "with weight > 0 (or set distill.alpha / distill.beta > 0)")
        self._infos = [LOSSES.get(t.name) for t in self.terms]
        for term, info in zip(self.terms, self._infos):
            unknown = sorted(set(term.params) - set(info.params))
            if unknown:
                raise UserError(f"loss term '{term.name}' has no parameter {unknown}; its parameters are: "
                                f"{', '.join(info.params) or 'none'}")

    @property
    def needs_teacher(self) -> bool:
        return any(info.needs_teacher for info in self._infos)

    @property
    def inputs(self) -> set[str]:
        """Every batch entry some term reads."""
        return {name for info in self._infos for name in info.inputs}

    def check_inputs(self, available: set[str] | frozenset[str], method: str) -> None:
        """UserError before training when a term reads an entry this trainer never provides."""
        for info in self._infos:
            missing = [name for name in info.inputs if name not in available]
            if missing:
                usable = [n for n, i in LOSSES.items() if set(i.inputs) <= set(available)]
                raise UserError(f"loss term '{info.name}' reads {', '.join(missing)}, which {method} does not provide; "
                                f"terms for {method}: {', '.join(usable)}")

    def forward(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        total: torch.Tensor | None = None
        parts: dict[str, float] = {}
        for term, info in zip(self.terms, self._infos):
            value = info.fn(*(batch.get(name) for name in info.inputs), **term.params)
            parts[term.name] = float(value.detach())
            total = term.weight * value if total is None else total + term.weight * value
        assert total is not None  # __init__ refuses an empty term list
        return total, parts

    def describe(self) -> str:
        return " + ".join(f"{t.weight:g}·{t.name}" + (f"{t.params}" if t.params else "") for t in self.terms)


def hinton_criterion(alpha: float, beta: float, tau: float) -> WeightedLoss:
    """Paper 000: L = α·τ²·KL(softmax(y_t/τ) ‖ softmax(y_s/τ)) + β·CE(y, y_s)."""
    return WeightedLoss([WeightedTerm("kd", alpha, {"tau": tau}), WeightedTerm("ce", beta)])


def cross_entropy_criterion() -> WeightedLoss:
    """Plain supervised training (students from scratch, CNN teachers)."""
    return WeightedLoss([WeightedTerm("ce", 1.0)])


def criterion_from_config(cfg: Any) -> WeightedLoss:
    """The recipe's `distill.loss` terms; without them, α·kd(τ) + β·ce from `alpha`, `beta`, `tau`."""
    if cfg.loss:
        return WeightedLoss([WeightedTerm(t.name, t.weight, dict(t.params)) for t in cfg.loss])
    return hinton_criterion(cfg.alpha, cfg.beta, cfg.tau)


def list_losses() -> list[dict[str, Any]]:
    """Rows for `edgeclip list losses`."""
    return [{"name": name, "needs_teacher": info.needs_teacher, "inputs": list(info.inputs), "params": list(info.params),
             "description": info.description} for name, info in LOSSES.items()]

