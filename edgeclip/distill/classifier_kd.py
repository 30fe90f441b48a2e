"""Hinton KD from a (fine-tuned CLIP or CNN) teacher into a registered classifier student.

`distill_classifier` is the library entry point behind `edgeclip distill` and `edgeclip build`:
validate everything (data classes, student classes, teacher checkpoint) before writing anything,
prepare the teacher, compute its outputs once per image, train the student (and optionally the
same student from scratch), evaluate on the untouched test split, and write the run directory:

    runs/<id>/student/       save_checkpoint output (edgeclip export --model runs/<id>/student)
    runs/<id>/teacher/       the teacher's head / CNN weights + teacher.json
    runs/<id>/checkpoints/   resumable last.pt per training phase
    runs/<id>/result.json    written last: its presence means the run finished
    runs/<id>/result.md
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeclip.bench.metrics import agreement, overconfidence_probability, retention, top1_accuracy
from edgeclip.config import Recipe
from edgeclip.distill.augment import eval_view, training_view
from edgeclip.distill.data_setup import DistillData, open_distill_data
from edgeclip.distill.losses import criterion_from_config, cross_entropy_criterion
from edgeclip.distill.results import RESULT_JSON, clear_result, write_run_result
from edgeclip.distill.teachers import ClassifierTeacher, ZeroShotClipTeacher, open_teacher, prepare_teacher
from edgeclip.distill.trainer import check_schedule, history_summary, predict_logits, train_classifier
from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_dir
from edgeclip.students.checkpoint import load_checkpoint, save_checkpoint
from edgeclip.students.registry import create_student
from edgeclip.students.spec import Deployable, ModelSpec
from edgeclip.teacher.proxy import check_proxy_pool_held_out
from edgeclip.utils import count_params, seed_everything


@dataclass
class DistillResult:
    """What `distill_classifier` produced; `metrics` is also in `run_dir/result.json`."""

    model: nn.Module
    spec: ModelSpec
    checkpoint_dir: Path
    run_dir: Path
    teacher: ClassifierTeacher
    metrics: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)

    def deployables(self) -> list[Deployable]:
        """What `edgeclip build` exports: the classifier student."""
        return [Deployable(self.model, self.spec, self.checkpoint_dir)]


def build_student(recipe: Recipe, class_names: list[str]) -> tuple[nn.Module, ModelSpec, str, dict[str, Any]]:
    """A fresh registered student, or `student.checkpoint` — which must predict the data's classes."""
    if recipe.student.checkpoint:
        model, spec, info = load_checkpoint(recipe.student.checkpoint)
        if spec.kind != "classifier":
            raise UserError(f"student checkpoint {recipe.student.checkpoint} is a {spec.kind}, not a classifier; pass a classifier checkpoint")
        if list(spec.class_names) != list(class_names):
            raise UserError(
                f"student checkpoint {recipe.student.checkpoint} predicts {spec.num_classes} classes but the data has {len(class_names)} "
                f"({', '.join(class_names[:6])}{', ...' if len(class_names) > 6 else ''}); use a student built for these classes "
                "or drop student.checkpoint to train a new one"
            )
        return model.train(), spec, info["student_name"], dict(info.get("build_kwargs", {}))
    model, spec = create_student(recipe.student.name, class_names=class_names, image_size=recipe.student.image_size)
    if spec.kind != "classifier":
        raise UserError(f"student '{recipe.student.name}' is a {spec.kind}; classifier KD needs a classifier student (see `edgeclip list students`)")
    return model, spec, recipe.student.name, dict(spec.extra.get("build_kwargs", {}))


def evaluate_logits(teacher_logits: torch.Tensor, student_logits: torch.Tensor, labels: list[int], gamma: float) -> dict[str, Any]:
    """Top-1 of both, retention, agreement and the teacher's over-confidence probability p."""
    teacher_acc = top1_accuracy(teacher_logits, labels)
    student_acc = top1_accuracy(student_logits, labels)
    return {
        "teacher_accuracy": teacher_acc,
        "student_accuracy": student_acc,
        "retention": retention(student_acc, teacher_acc),
        "agreement": agreement(student_logits, teacher_logits),
        "teacher_overconfidence_p": overconfidence_probability(teacher_logits.softmax(dim=1), labels, gamma),
        "overconfidence_gamma": gamma,
    }


def scratch_baseline(recipe: Recipe, class_names: list[str], train_set: Any, test_set: Any, labels: list[int],
                     batch_augment: Any, *, checkpoint_dir: Path, resume: bool, progress: bool) -> dict[str, Any]:
    """The same student from the same seed trained with cross-entropy only, under the same schedule."""
    seed_everything(recipe.seed)
    model, _, student_name, _ = build_student(recipe, class_names)
    history = train_classifier(model, train_set, criterion=cross_entropy_criterion(), config=recipe.distill, seed=recipe.seed,
                               checkpoint_dir=checkpoint_dir, resume=resume, progress=progress,
                               desc=f"scratch {student_name}", batch_transform=batch_augment)
    return {"accuracy": top1_accuracy(predict_logits(model, test_set), labels), "training": history_summary(history)}


def save_student(student_dir: Path, model: nn.Module, spec: ModelSpec, recipe: Recipe, student_name: str,
                 build_kwargs: dict[str, Any], *, teacher_name: str, metrics: dict[str, Any], shots: Any) -> Path:
    """The student checkpoint directory, written atomically; `edgeclip export` calibrates and checks
    parity on the data recorded in its spec."""
    spec.extra["data"] = recipe.data.train
    with atomic_dir(student_dir) as tmp:
        save_checkpoint(tmp, model, spec, student_name=student_name, build_kwargs=build_kwargs,
                        extra={"teacher": teacher_name, "recipe": recipe.name, "test_accuracy": metrics["student_accuracy"],
                               "retention": metrics["retention"], "shots": shots})
    return student_dir


def distill_classifier(
    recipe: Recipe,
    *,
    teacher: Any = None,
    out_dir: str | Path,
    progress: bool = True,
    resume: bool = False,
    data: DistillData | None = None,
) -> DistillResult:
    """Distill `teacher` (spec string, ClipTeacher, or prepared teacher; default `recipe.teacher`)
    into `recipe.student` and write the run directory `out_dir`. See the module docstring."""
    started = time.perf_counter()
    cfg = recipe.distill
    if cfg.method != "classifier_kd":
        raise UserError(f"distill.method is '{cfg.method}' but this trainer does classifier_kd; set distill.method=classifier_kd")
    if cfg.alpha < 0 or cfg.beta < 0:
        raise UserError(f"distill.alpha and distill.beta must be >= 0, got {cfg.alpha} and {cfg.beta}")
    # 1. Validate everything before the first byte is written.
    data = data or open_distill_data(recipe.data, recipe.seed)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(recipe.seed)
    model, spec, student_name, build_kwargs = build_student(recipe, data.class_names)
    opened = open_teacher(recipe.teacher if teacher is None else teacher, cfg.teacher_head)
    check_proxy_pool_held_out(recipe.teacher if teacher is None else teacher, {"train split": data.train, "test split": data.test})
    check_schedule(cfg, cfg.epochs)
    criterion = criterion_from_config(cfg)

    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    clear_result(run_dir)  # a re-run must not leave the previous result looking like this one's
    ckpt_root = run_dir / "checkpoints"

    # 2. Teacher: fit head / CNN on the same (possibly low-shot) training images; outputs once per image.
    t0 = time.perf_counter()
    prepared = prepare_teacher(opened, recipe, data.train, student_preprocess=spec.preprocess,
                               checkpoint_dir=ckpt_root / "teacher", resume=resume, progress=progress)
    teacher_train_logits = prepared.logits(data.train).float()
    teacher_test_logits = prepared.logits(data.test).float()
    teacher_seconds = time.perf_counter() - t0

    # 3. Student with KD (cached teacher outputs), optionally the same student from scratch.
    train_set, batch_augment = training_view(data.train, spec.preprocess, cfg.augment)
    test_set = eval_view(data.test, spec.preprocess)
    history = train_classifier(model, train_set, criterion=criterion, config=cfg, seed=recipe.seed, teacher_logits=teacher_train_logits,
                               checkpoint_dir=ckpt_root / "student", resume=resume, progress=progress, desc=f"kd {student_name}",
                               batch_transform=batch_augment)
    student_test_logits = predict_logits(model, test_set)
    labels = list(data.test.labels)
    metrics = evaluate_logits(teacher_test_logits, student_test_logits, labels, cfg.overconfidence_gamma)
    metrics["teacher_train_accuracy"] = top1_accuracy(teacher_train_logits, data.train.labels)
    zero_shot = getattr(prepared, "clip", None)
    if zero_shot is not None and prepared.kind != "clip_zero_shot":
        metrics["teacher_zero_shot_accuracy"] = top1_accuracy(
            ZeroShotClipTeacher(zero_shot, data.class_names, recipe.data.templates, "").logits(data.test), labels)

    scratch = None
    if cfg.scratch_baseline:
        scratch = scratch_baseline(recipe, data.class_names, train_set, test_set, labels, batch_augment,
                                   checkpoint_dir=ckpt_root / "scratch", resume=resume, progress=progress)
        metrics["scratch_accuracy"] = scratch["accuracy"]
        metrics["scratch_retention"] = retention(scratch["accuracy"], metrics["teacher_accuracy"])
        metrics["kd_gain"] = metrics["student_accuracy"] - scratch["accuracy"]

    # 4. Outputs: teacher and student directories atomically, result.json last.
    prepared.save(run_dir / "teacher")
    student_params = count_params(model)
    student_dir = save_student(run_dir / "student", model, spec, recipe, student_name, build_kwargs,
                               teacher_name=prepared.name, metrics=metrics, shots=data.shots)
    teacher_params = prepared.num_params
    result = {
        "schema": "edgeclip.distill.result/1",
        "recipe": recipe.to_dict(),
        "data": data.describe(),
        "teacher": {**prepared.describe(), "params": teacher_params, "seconds": teacher_seconds},
        "student": {"name": student_name, "params": student_params, "checkpoint": str(student_dir), "image_size": spec.preprocess.size},
        "param_gap": teacher_params / student_params,
        "loss": criterion.describe(),
        "metrics": metrics,
        "training": history_summary(history),
        "scratch": scratch,
        "seconds": time.perf_counter() - started,
    }
    write_run_result(run_dir, result)
    return DistillResult(model=model.eval(), spec=spec, checkpoint_dir=student_dir, run_dir=run_dir, teacher=prepared,
                         metrics=metrics, result=result)


__all__ = ["DistillResult", "RESULT_JSON", "build_student", "distill_classifier", "evaluate_logits"]
