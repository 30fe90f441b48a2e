"""Quantization-aware training with KD: fine-tune a student under simulated int8, then export as usual.

What is simulated (torch's fake-quantize ops, straight-through gradients), chosen to match the
static QDQ int8 the exporters produce:
- weights of every Conv/Linear: per-output-channel int8 (symmetric by default; asymmetric uint8
  for onnxruntime's U8U8 scheme on x86 CPUs without VNNI). BatchNorm layers are frozen (eval
  mode) during QAT, so the exported graph's BN-folded weight is the simulated weight times a
  per-channel factor — and per-channel quantization is invariant to that factor, so the
  simulation of the folded weight is exact;
- activations: per-tensor uint8 with an EMA min/max observer at every Conv/Linear input and at
  the outputs of normalization and activation layers (the tensors onnxruntime/NNCF quantize).
Layers kept in float by mixed precision (`float_modules`) are not simulated.

After training the fake-quant hooks are removed and the student is an ordinary float model whose
weights have learned to survive int8 rounding. It then goes through the same calibrated
exporters as any student (ORT static QDQ / NNCF), which re-estimate activation ranges on the
calibration images: that keeps one export path (what ships is a normal QDQ ONNX or NNCF IR)
instead of a second, QAT-only exporter. The record says so.

KD signal: the teacher's logits (cached per image, as in classifier KD), mixed with the fp32
student's own outputs on the same augmented batch (`self_weight`): the teacher keeps accuracy,
the fp32 student keeps the int8 model's decisions where the fp32 model made them, which is what
"agreement with fp32" measures.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from edgeclip.errors import UserError

# What prune or QAT did, written beside a compressed checkpoint (distill/compression.py); the build
# reads its `qat` record into the int8 manifest (compress/int8_inputs.qat_record).
COMPRESS_JSON = "compress.json"
WEIGHTED_TYPES = (nn.Conv2d, nn.Conv1d, nn.Linear)
NORM_TYPES = (nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm)
ACTIVATION_TYPES = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.GELU, nn.SiLU, nn.Sigmoid)


@dataclass
class QatConfig:
    """Short fine-tune of the fake-quantized student (defaults: a few epochs, small lr)."""

    epochs: int = 4
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    tau: float = 1.0
    kd_weight: float = 0.9  # weight of the KD term; 1 - kd_weight goes to cross-entropy on labels
    self_weight: float = 0.5  # share of the fp32 student in the KD target (0 = teacher only)
    # Hard labels for the cross-entropy term: "truth" (dataset labels) or "fp32" (the fp32 student's
    # argmax on the same augmented batch, which trains the int8 model to keep the fp32 decisions).
    hard_labels: str = "truth"
    symmetric_weights: bool = True  # False = ORT U8U8 (uint8 asymmetric per-channel weights)
    observer_momentum: float = 0.1
    seed: int = 0

    def check(self) -> None:
        if self.epochs < 1:
            raise UserError(f"QAT epochs must be >= 1, got {self.epochs}")
        if self.lr <= 0:
            raise UserError(f"QAT lr must be > 0, got {self.lr}")
        if self.batch_size < 2:
            raise UserError(f"QAT batch_size must be >= 2, got {self.batch_size}")
        if self.hard_labels not in ("truth", "fp32"):
            raise UserError(f"QAT hard_labels must be 'truth' or 'fp32', got {self.hard_labels!r}")
        for name in ("kd_weight", "self_weight"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"QAT {name} must be in [0, 1], got {value}")


class ActivationFakeQuant(nn.Module):
    """uint8 per-tensor fake quantization with an exponential-moving-average min/max observer."""

    def __init__(self, momentum: float = 0.1) -> None:
        super().__init__()
        self.momentum = momentum
        self.observing = True
        self.register_buffer("min_val", torch.tensor(0.0))
        self.register_buffer("max_val", torch.tensor(0.0))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            with torch.no_grad():
                low, high = x.detach().min().float(), x.detach().max().float()
                if not bool(self.initialized):
                    self.min_val.copy_(low)
                    self.max_val.copy_(high)
                    self.initialized.fill_(True)
                else:
                    self.min_val.lerp_(low, self.momentum)
                    self.max_val.lerp_(high, self.momentum)
        if not bool(self.initialized):
            return x
        # The range always contains 0 (as onnxruntime's calibrator makes it), so 0 is exact.
        low = torch.clamp(self.min_val, max=0.0)
        high = torch.clamp(self.max_val, min=0.0)
        scale = float(torch.clamp((high - low) / 255.0, min=1e-8))
        zero_point = int(torch.clamp(torch.round(-low / scale), 0, 255))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


class WeightFakeQuant(nn.Module):
    """Per-output-channel int8 fake quantization of a weight (a torch parametrization)."""

    def __init__(self, symmetric: bool = True) -> None:
        super().__init__()
        self.symmetric = symmetric

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.detach().reshape(weight.shape[0], -1)
        zero = torch.zeros(weight.shape[0], dtype=torch.int32)
        if self.symmetric:
            scale = torch.clamp(flat.abs().amax(dim=1) / 127.0, min=1e-8)
            return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -128, 127)
        low = torch.clamp(flat.amin(dim=1), max=0.0)
        high = torch.clamp(flat.amax(dim=1), min=0.0)
        scale = torch.clamp((high - low) / 255.0, min=1e-8)
        zero = torch.clamp(torch.round(-low / scale), 0, 255).to(torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, 0, 255)


@dataclass
class FakeQuantHandle:
    """What `attach_fake_quant` added, so `detach_fake_quant` can remove exactly that."""

    hooks: list[Any] = field(default_factory=list)
    observers: dict[str, ActivationFakeQuant] = field(default_factory=dict)
    weights: list[str] = field(default_factory=list)


def _inside_norm(name: str, norm_names: set[str]) -> bool:
    return any(name.startswith(prefix + ".") for prefix in norm_names)


def attach_fake_quant(model: nn.Module, *, symmetric_weights: bool = True, float_modules: tuple[str, ...] = (),
                      momentum: float = 0.1) -> FakeQuantHandle:
    """Add weight parametrizations and activation observers in place (see module doc)."""
    handle = FakeQuantHandle()
    modules = dict(model.named_modules())
    norm_names = {n for n, m in modules.items() if isinstance(m, NORM_TYPES)}

    def observer(name: str) -> ActivationFakeQuant:
        fq = handle.observers.setdefault(name, ActivationFakeQuant(momentum))
        return fq

    for name, module in modules.items():
        if name in float_modules:
            continue
        if isinstance(module, WEIGHTED_TYPES):
            parametrize.register_parametrization(module, "weight", WeightFakeQuant(symmetric_weights))
            handle.weights.append(name)
            fq = observer(f"{name}:input")
            handle.hooks.append(module.register_forward_pre_hook(lambda _m, args, fq=fq: (fq(args[0]), *args[1:])))
        elif isinstance(module, NORM_TYPES) or (isinstance(module, ACTIVATION_TYPES) and not _inside_norm(name, norm_names)):
            fq = observer(f"{name}:output")
            handle.hooks.append(module.register_forward_hook(lambda _m, _args, out, fq=fq: fq(out)))
    if not handle.weights:
        raise UserError("QAT found no Conv/Linear layer to quantize in this model (or all are kept in float)")
    return handle


def detach_fake_quant(model: nn.Module, handle: FakeQuantHandle) -> nn.Module:
    """Remove every hook and parametrization; the model keeps its (trained) float weights."""
    for hook in handle.hooks:
        hook.remove()
    modules = dict(model.named_modules())
    for name in handle.weights:
        parametrize.remove_parametrizations(modules[name], "weight", leave_parametrized=False)
    return model


def set_observing(handle: FakeQuantHandle, observing: bool) -> None:
    for fq in handle.observers.values():
        fq.observing = observing


def _freeze_batchnorm(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.eval()


def kd_target(teacher_logits: torch.Tensor | None, fp32_logits: torch.Tensor, self_weight: float) -> torch.Tensor:
    """Logits of the mixture p = (1-w)·softmax(teacher) + w·softmax(fp32 student) (w = self_weight)."""
    if teacher_logits is None or self_weight >= 1.0:
        return fp32_logits
    if self_weight <= 0.0:
        return teacher_logits
    mixture = (1 - self_weight) * teacher_logits.softmax(1) + self_weight * fp32_logits.softmax(1)
    return torch.log(mixture.clamp_min(1e-12))


def _kd_loss(student: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    log_p = torch.log_softmax(student / tau, dim=1)
    q = torch.softmax(target / tau, dim=1)
    return torch.nn.functional.kl_div(log_p, q, reduction="batchmean") * tau * tau


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    stop = n - (n % batch_size) if n % batch_size == 1 else n  # a batch of one breaks nothing here, but is noise
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def quantization_aware_finetune(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    teacher_logits: torch.Tensor | None,
    config: QatConfig,
    float_modules: tuple[str, ...] = (),
    augment: Any = None,
    progress: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """Fine-tune a copy of `model` under simulated int8 with KD; returns (float model, record).

    `images`/`labels`: the (preprocessed) training images — QAT needs real data; `teacher_logits`
    are the teacher's outputs on them (row-aligned) or None for self-distillation only.
    `augment(images, generator)` is the batch augmentation of classifier KD (optional).
    """
    config.check()
    if images is None or len(images) == 0:
        raise UserError("QAT needs calibration/training images and got none; pass real images (e.g. --calibration digits)")
    if teacher_logits is not None and len(teacher_logits) != len(images):
        raise ValueError(f"{len(teacher_logits)} teacher outputs for {len(images)} images")
    started = time.perf_counter()
    reference = copy.deepcopy(model).eval()  # the fp32 student: KD target and the agreement reference
    student = copy.deepcopy(model)
    handle = attach_fake_quant(student, symmetric_weights=config.symmetric_weights, float_modules=float_modules,
                               momentum=config.observer_momentum)
    # Initialise the observers on clean images before any weight moves (like a calibration pass).
    student.eval()
    with torch.no_grad():
        for start in range(0, len(images), 128):
            student(images[start:start + 128])
    optimizer = torch.optim.SGD(student.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
    history = []
    for epoch in range(config.epochs):
        generator = torch.Generator().manual_seed(config.seed * 1009 + epoch)
        augment_generator = torch.Generator().manual_seed(config.seed * 1009 + epoch + 1)
        student.train()
        _freeze_batchnorm(student)
        # Observers settle during the first epoch, then ranges stay fixed as a deployment's would.
        set_observing(handle, epoch == 0)
        total, seen = 0.0, 0
        bar = tqdm(list(_batches(len(images), config.batch_size, generator)), desc=f"qat {epoch + 1}/{config.epochs}",
                   disable=not progress, leave=False, dynamic_ncols=True)
        for index in bar:
            batch = images[index]
            if augment is not None:
                batch = augment(batch, augment_generator)
            with torch.no_grad():
                fp32_logits = reference(batch)
            target = kd_target(None if teacher_logits is None else teacher_logits[index], fp32_logits, config.self_weight)
            logits = student(batch)
            loss = config.kd_weight * _kd_loss(logits, target, config.tau)
            if config.kd_weight < 1.0:
                hard = fp32_logits.argmax(1) if config.hard_labels == "fp32" else labels[index]
                loss = loss + (1 - config.kd_weight) * nn.functional.cross_entropy(logits, hard)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(index)
            seen += len(index)
            bar.set_postfix(loss=f"{total / max(seen, 1):.4f}")
        bar.close()
        history.append({"epoch": epoch + 1, "loss": total / max(seen, 1)})
    student.eval()
    detach_fake_quant(student, handle)
    record = {
        "method": "qat_kd",
        "simulated": "per-channel int8 weights ({}), uint8 per-tensor activations (EMA min/max)".format(
            "symmetric" if config.symmetric_weights else "asymmetric uint8"),
        "kd_target": ("teacher" if config.self_weight == 0 else "fp32 student" if config.self_weight == 1 or teacher_logits is None
                      else f"mixture: {1 - config.self_weight:g}·teacher + {config.self_weight:g}·fp32 student"),
        "export": "fake-quant removed after training; exported through the calibrated static int8 path",
        "config": asdict(config),
        "images": int(len(images)),
        "float_modules": list(float_modules),
        "history": history,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return student, record
