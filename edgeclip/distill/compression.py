"""Checkpoint → compressed checkpoint: prune + KD recovery, and QAT + KD. Behind `edgeclip compress`.

Both read a student checkpoint directory and write another one that `edgeclip export` takes (a
normal `save_checkpoint` dir, atomically, with what was done in `extra` and in `compress.json`).
Everything that can be wrong with the input is checked before the first byte is written.

KD signal: `teacher=""` takes the run's own teacher (`<model>/../teacher`, written by
`edgeclip distill`) when there is one, else the unpruned / fp32 student itself ("self");
`teacher="self"` forces that; a directory path names a saved teacher.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeclip.compress.prune import prune_model
from edgeclip.config import DistillConfig, PruneConfig
from edgeclip.compress.qat import COMPRESS_JSON, QatConfig, quantization_aware_finetune
from edgeclip.data import check_disjoint, open_image_dataset, preprocess_all
from edgeclip.distill.augment import BatchAugment, TensorImages
from edgeclip.distill.losses import hinton_criterion
from edgeclip.distill.teachers import check_teacher_classes, load_saved_teacher
from edgeclip.distill.trainer import history_summary, train_classifier
from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_dir, write_json
from edgeclip.students.checkpoint import load_checkpoint, save_checkpoint
from edgeclip.students.registry import create_student

DEFAULT_DATA = "digits"


@dataclass
class CompressData:
    """Preprocessed train/test tensors at the student's input size."""

    train: Any  # the ImageDataset (teacher caches key on it)
    test: Any
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str


def open_compress_data(data: str, preprocess: Any, class_names: list[str] | None, what: str) -> CompressData:
    train = open_image_dataset(data, "train")
    test = open_image_dataset(data, "test")
    if len(train) == 0:
        raise UserError(f"{what} needs real training/calibration images, and '{data}' has none; pass --data with images")
    check_disjoint(train, test, f"{what}: the train and test images of '{data}' overlap")
    if class_names is not None and list(train.class_names) != list(class_names):
        raise UserError(f"data '{data}' has classes {train.class_names[:5]}... but the student predicts {class_names[:5]}...; "
                        "pass the data the student was trained on (--data)")
    return CompressData(train, test, preprocess_all(train, preprocess), torch.as_tensor(list(train.labels)),
                        preprocess_all(test, preprocess), torch.as_tensor(list(test.labels)), data)


@torch.no_grad()
def _outputs(model: nn.Module, images: torch.Tensor, spec: Any, batch: int = 256) -> torch.Tensor:
    model.eval()
    forward = model.encode_image if spec.kind == "dual_encoder" else model
    return torch.cat([forward(images[i:i + batch]) for i in range(0, len(images), batch)])


def kd_signal(teacher: str, model_dir: Path, reference: nn.Module, spec: Any, data: CompressData) -> dict[str, Any]:
    """{"name", "train_logits", "test_logits", "accuracy"} of the KD teacher (see module doc)."""
    directory = None
    if teacher not in ("", "self"):
        directory = Path(teacher).expanduser()
        if not directory.is_dir():
            raise UserError(f"teacher {teacher} is not a directory; pass 'self' or a teacher saved by edgeclip distill (runs/<id>/teacher)")
    elif teacher == "" and (model_dir.parent / "teacher").is_dir() and spec.kind == "classifier":
        directory = model_dir.parent / "teacher"
    if directory is None or spec.kind != "classifier":
        if directory is not None:
            raise UserError("a dual-encoder image tower recovers from its own unpruned outputs; use --teacher self")
        return {"name": "self (the uncompressed student)", "train_logits": _outputs(reference, data.train_images, spec),
                "test_logits": None, "accuracy": None}
    saved = load_saved_teacher(directory)
    check_teacher_classes(saved, spec.class_names)
    test_logits = saved.logits(data.test).float()
    accuracy = float((test_logits.argmax(1) == data.test_labels).float().mean())
    return {"name": f"{saved.name} ({directory})", "train_logits": saved.logits(data.train).float(),
            "test_logits": test_logits, "accuracy": accuracy}


def evaluate(model: nn.Module, reference: nn.Module, spec: Any, data: CompressData, teacher_accuracy: float | None) -> dict[str, Any]:
    """Accuracy / agreement with the uncompressed model (classifiers) or cosine to it (towers), on test."""
    out, ref = _outputs(model, data.test_images, spec), _outputs(reference, data.test_images, spec)
    if spec.kind != "classifier":
        cosine = torch.nn.functional.cosine_similarity(out, ref, dim=1)
        return {"mean_cosine_to_uncompressed": float(cosine.mean()), "test_images": len(out)}
    accuracy = float((out.argmax(1) == data.test_labels).float().mean())
    return {"accuracy": accuracy, "uncompressed_accuracy": float((ref.argmax(1) == data.test_labels).float().mean()),
            "agreement_with_uncompressed": float((out.argmax(1) == ref.argmax(1)).float().mean()),
            "teacher_accuracy": teacher_accuracy,
            "retention": accuracy / teacher_accuracy if teacher_accuracy else None, "test_images": len(out)}


def _recover_classifier(model: nn.Module, data: CompressData, targets: torch.Tensor, *, epochs: int, lr: float,
                        batch_size: int, checkpoint_dir: Path, resume: bool, progress: bool) -> dict[str, Any]:
    config = DistillConfig(epochs=epochs, lr=lr, batch_size=batch_size,
                           milestones=[max(1, int(epochs * 0.6)), max(1, int(epochs * 0.9))])
    history = train_classifier(model, TensorImages(data.train_images, data.train_labels), criterion=hinton_criterion(0.5, 0.5, 1.0),
                               config=config, teacher_logits=targets, checkpoint_dir=checkpoint_dir, resume=resume,
                               progress=progress, desc="recover", batch_transform=BatchAugment())
    summary = history_summary(history)
    summary.pop("per_epoch", None)
    return {"loss": "0.5·KD(τ=1) + 0.5·CE", "schedule": f"SGD lr {lr} momentum 0.9, ×0.1 at {config.milestones}", **summary}


def _recover_tower(model: nn.Module, reference: nn.Module, spec: Any, data: CompressData, *, epochs: int, lr: float,
                   batch_size: int, progress: bool) -> dict[str, Any]:
    """Feature KD for an image tower: match the unpruned tower's normalized embeddings (cosine)."""
    from tqdm.auto import tqdm

    targets = torch.nn.functional.normalize(_outputs(reference, data.train_images, spec), dim=1)
    parameters = [p for p in model.visual.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    started, losses = time.perf_counter(), []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(epoch))
        total = 0.0
        for start in tqdm(range(0, len(order), batch_size), desc=f"recover {epoch + 1}/{epochs}", disable=not progress, leave=False):
            index = order[start:start + batch_size]
            embedding = torch.nn.functional.normalize(model.encode_image(data.train_images[index]), dim=1)
            loss = (1 - (embedding * targets[index]).sum(1)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss) * len(index)
        losses.append(total / len(order))
    model.eval()
    return {"loss": "1 − cosine to the unpruned tower's embedding", "epochs": epochs, "final_loss": losses[-1] if losses else None,
            "seconds": time.perf_counter() - started}


def _baseline(info: dict[str, Any]) -> nn.Module:
    model, _ = create_student(info["student_name"], **info.get("build_kwargs", {}))
    return model


def _check_out(model_dir: Path, out_dir: Path) -> None:
    if out_dir.resolve() == model_dir.resolve():
        raise UserError(f"--out {out_dir} is the input checkpoint; write the compressed student somewhere else")
    if (out_dir / "model.pt").exists():
        raise UserError(f"{out_dir} already holds a student checkpoint; pass another --out or remove it")


def prune_checkpoint(model_dir: str | Path, out_dir: str | Path, settings: PruneConfig, *, batch_size: int = 64,
                     data: str | None = None, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Prune a student checkpoint per `settings` (the cut, then `recover_epochs` of KD recovery at
    `recover_lr` from `teacher`), write a new checkpoint; returns the record."""
    started = time.perf_counter()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    settings.check()
    recover_epochs, lr, teacher = settings.recover_epochs, settings.recover_lr, settings.teacher
    _check_out(model_dir, out_dir)
    model, spec, info = load_checkpoint(model_dir)
    pruned, result = prune_model(model, spec, settings, baseline=_baseline(info))  # bad ratio → UserError here
    data_spec = data or (info.get("extra") or {}).get("data") or spec.extra.get("data") or DEFAULT_DATA
    compress_data = open_compress_data(data_spec, spec.preprocess, spec.class_names if spec.kind == "classifier" else None, "pruning recovery")
    signal = kd_signal(teacher, model_dir, model, spec, compress_data)
    before_recovery = evaluate(pruned, model, spec, compress_data, signal["accuracy"])
    work = out_dir.with_name(out_dir.name + ".recovery")  # resumable state lives beside the output
    recovery = None
    if recover_epochs > 0:
        if spec.kind == "classifier":
            recovery = _recover_classifier(pruned, compress_data, signal["train_logits"], epochs=recover_epochs, lr=lr,
                                           batch_size=batch_size, checkpoint_dir=work, resume=resume, progress=progress)
        else:
            recovery = _recover_tower(pruned, model, spec, compress_data, epochs=recover_epochs, lr=lr * 0.01, batch_size=batch_size,
                                      progress=progress)
    record = {**result["record"], "source_checkpoint": str(model_dir), "data": data_spec, "teacher": signal["name"],
              "before_recovery": before_recovery, "recovery": recovery,
              "after": evaluate(pruned, model, spec, compress_data, signal["accuracy"]),
              "seconds": round(time.perf_counter() - started, 1)}
    extra = {**(info.get("extra") or {}), "data": data_spec, "prune": record}
    spec.extra["data"] = data_spec
    with atomic_dir(out_dir) as tmp:
        save_checkpoint(tmp, pruned, spec, student_name=info["student_name"], build_kwargs=info["build_kwargs"],
                        extra=_json_safe(extra), structure=result["structure"])
        write_json(tmp / COMPRESS_JSON, _json_safe({"prune": record}))
    shutil.rmtree(work, ignore_errors=True)
    return record


def qat_checkpoint(model_dir: str | Path, out_dir: str | Path, config: QatConfig, *, teacher: str = "", data: str | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Quantization-aware KD fine-tune of a classifier checkpoint; writes the QAT-tuned float checkpoint."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    config.check()
    _check_out(model_dir, out_dir)
    model, spec, info = load_checkpoint(model_dir)
    if spec.kind != "classifier":
        raise UserError(f"QAT + KD is for classifier students; '{spec.name}' is a {spec.kind} (its int8 uses the PTQ methods)")
    data_spec = data or (info.get("extra") or {}).get("data") or spec.extra.get("data") or DEFAULT_DATA
    compress_data = open_compress_data(data_spec, spec.preprocess, spec.class_names, "QAT")
    signal = kd_signal(teacher, model_dir, model, spec, compress_data)
    teacher_logits = signal["train_logits"] if signal["test_logits"] is not None else None
    tuned, record = quantization_aware_finetune(model, compress_data.train_images, compress_data.train_labels,
                                                teacher_logits=teacher_logits, config=config, augment=BatchAugment(),
                                                progress=progress)
    record.update({"source_checkpoint": str(model_dir), "data": data_spec, "teacher": signal["name"],
                   "after": evaluate(tuned, model, spec, compress_data, signal["accuracy"])})
    extra = {**(info.get("extra") or {}), "data": data_spec, "qat": record}
    spec.extra["data"] = data_spec
    with atomic_dir(out_dir) as tmp:
        save_checkpoint(tmp, tuned, spec, student_name=info["student_name"], build_kwargs=info["build_kwargs"],
                        extra=_json_safe(extra), structure=info.get("structure"))
        write_json(tmp / COMPRESS_JSON, _json_safe({"qat": record}))
    return record


def _json_safe(value: Any) -> Any:
    """Records hold numpy/torch scalars and dataclasses here and there; make them plain JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return _json_safe(asdict(value))
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.item() if getattr(value, "ndim", 0) == 0 else value.tolist()
    return value
