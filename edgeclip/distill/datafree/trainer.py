"""`distill_datafree`: class names → synthetic images → KD → student (paper 002), the trainer
behind `edgeclip distill --method data-free`.

Same contracts as classifier KD: everything is validated before the first byte is written; the
run directory holds

    runs/<id>/synthetic/<prompt>/    the synthetic set (images/<class>/, synthetic.json, contact sheets)
    runs/<id>/student/               save_checkpoint output (edgeclip export --model runs/<id>/student)
    runs/<id>/teacher/               the zero-shot teacher's description (teacher.json)
    runs/<id>/checkpoints/           resumable last.pt per phase (warmup, finetune, scratch-*), few-shot records
    runs/<id>/result.json            written last: its presence means the run finished
    runs/<id>/result.md

and `resume=True` continues: finished classes are not re-synthesized, training phases continue
from their `last.pt`, finished few-shot runs are kept. The student never sees a real image
except in the optional few-shot step; real test images only measure it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeclip.bench.metrics import agreement, retention, top1_accuracy
from edgeclip.config import Recipe
from edgeclip.data import check_disjoint, open_image_dataset
from edgeclip.data.shifts import ShiftedDataset, check_shift
from edgeclip.distill.augment import eval_view, training_view
from edgeclip.distill.classifier_kd import build_student
from edgeclip.distill.datafree.classes import resolve_class_names
from edgeclip.distill.datafree.fewshot import check_shots, fewshot_curves
from edgeclip.distill.datafree.generators import create_generator
from edgeclip.distill.datafree.prompts import build_prompt_plan, check_method
from edgeclip.distill.datafree.report import write_datafree_result
from edgeclip.distill.datafree.styles import styles_for
from edgeclip.distill.datafree.synthesis import (
    IMAGES_DIR,
    PROMPTS_FILE,
    OnlineTeacher,
    SynthesisSettings,
    clear_method_dir,
    load_plan,
    save_plan,
    synthesize_set,
)
from edgeclip.distill.datafree.synthetic_set import SyntheticImageSet
from edgeclip.distill.datafree.text_encoder import PseudoTokenEncoder
from edgeclip.distill.losses import WeightedLoss, WeightedTerm, criterion_from_config, cross_entropy_criterion
from edgeclip.distill.results import clear_result
from edgeclip.distill.teachers import ZeroShotClipTeacher, open_teacher
from edgeclip.distill.trainer import TRAINER_INPUTS, check_schedule, history_summary, predict_logits, train_classifier
from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_dir
from edgeclip.students.checkpoint import save_checkpoint
from edgeclip.students.spec import Deployable
from edgeclip.teacher.clip_teacher import ClipTeacher
from edgeclip.teacher.templates import get_templates
from edgeclip.utils import count_params, seed_everything, stable_hash

METHOD = "data-free"


@dataclass
class DataFreeResult:
    model: nn.Module
    spec: Any
    checkpoint_dir: Path
    run_dir: Path
    teacher: Any  # ZeroShotClipTeacher: the teacher's zero-shot classifier over the class names
    metrics: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)

    def deployables(self) -> list[Any]:
        """What `edgeclip build` exports: the classifier student."""
        return [Deployable(self.model, self.spec, self.checkpoint_dir)]


def open_clip_teacher(spec: Any) -> tuple[Any, str]:
    """A CLIP teacher with a text tower; anything else is a one-line UserError."""
    if isinstance(spec, ClipTeacher):
        return spec, spec.name
    source = open_teacher(str(spec), "zero_shot")
    # A CLIP spec opens with its CLIP; a saved CLIP-head teacher directory carries one too.
    clip = getattr(source, "clip", None) or getattr(getattr(source, "teacher", None), "clip", None)
    if not isinstance(clip, ClipTeacher) or not hasattr(clip.model, "encode_text"):
        raise UserError(f"teacher '{spec}' is a classifier without a text tower ({source.name}); data-free distillation "
                        "synthesizes images from text prompts and needs a CLIP teacher — use proxy-digits, ARCH:TAG or ARCH:/checkpoint")
    # The spec that rebuilds this CLIP (a saved teacher directory records its own).
    return clip, str(getattr(getattr(source, "teacher", None), "clip_spec", None) or spec)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The classifier's last layer (what the warm-up trains)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "fc", None)
    if not isinstance(head, nn.Module):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        head = linears[-1] if linears else None
    params = list(head.parameters()) if head is not None else []
    if not params:
        raise UserError(f"cannot find the classifier head of {type(model).__name__} for the warm-up; set datafree.warmup_epochs=0")
    return params


def _criterion(recipe: Recipe) -> Any:
    # Paper 002 eq. 5: L1 to the teacher's similarity vector, unless the recipe names its terms.
    criterion = criterion_from_config(recipe.distill) if recipe.distill.loss else WeightedLoss([WeightedTerm("l1", 1.0)])
    criterion.check_inputs(TRAINER_INPUTS, "data-free KD")
    return criterion


def _open_real(recipe: Recipe, class_names: list[str], data: Any = None) -> tuple[Any, Any]:
    """(test, train) real data for measuring and few-shot; classes must be the given names.
    `data` (a DistillData, as `edgeclip build` opens it) replaces opening the recipe's specs."""
    cfg = recipe.datafree
    if data is not None:
        test = data.test
    else:
        test = open_image_dataset(recipe.data.test, "test", skip_corrupt=recipe.data.skip_corrupt) if recipe.data.test else None
    train = None
    if cfg.fewshot_shots:
        if test is None:
            raise UserError("few-shot fine-tuning is measured on data.test; set data.test or drop datafree.fewshot_shots")
        train = data.train if data is not None else open_image_dataset(recipe.data.train, "train", skip_corrupt=recipe.data.skip_corrupt)
    for name, data in (("data.test", test), ("data.train", train)):
        if data is not None and list(data.class_names) != class_names:
            raise UserError(f"{name} '{getattr(recipe.data, name.split('.')[1])}' has classes {data.class_names[:6]}... but the "
                            f"class list is {class_names[:6]}...; give the same names in the same order, or set {name}=''")
    if test is not None and train is not None:
        check_disjoint(train, test, "few-shot train and test data overlap")
    if cfg.shifts and test is None:
        raise UserError("datafree.shifts are applied to data.test; set data.test or drop datafree.shifts")
    return test, train


def synthesis_fingerprint(recipe: Recipe, teacher: Any, class_names: list[str], settings: Any) -> str:
    cfg = recipe.datafree
    prompt_keys = ["prompt", "template", "style_template", "styles_file", "exclude_domains", "mix_alpha", "random_scale",
                   "contrastive_epochs", "contrastive_lr", "contrastive_batch", "contrastive_bank", "contrastive_tau", "images_per_class"]
    styles = Path(cfg.styles_file).read_text() if cfg.styles_file and Path(cfg.styles_file).is_file() else ""
    return stable_hash(teacher.identity, class_names, {k: getattr(cfg, k) for k in prompt_keys}, styles, settings.describe(),
                       recipe.data.templates, recipe.seed)


def distill_datafree(recipe: Recipe, *, teacher: Any = None, out_dir: str | Path, progress: bool = True,
                     resume: bool = False, data: Any = None) -> DataFreeResult:
    """Synthesize, distill and measure; see the module docstring. `data` (a DistillData from
    `edgeclip build`) supplies the real test (and few-shot) images instead of the recipe's specs;
    the student still trains on synthetic images only."""
    started = time.perf_counter()
    cfg, dcfg = recipe.datafree, recipe.distill
    if dcfg.method != METHOD:
        raise UserError(f"distill.method is '{dcfg.method}' but this trainer does {METHOD}; set distill.method={METHOD}")
    # 1. Validate everything before the first byte is written.
    class_names = resolve_class_names(cfg.classes, cfg.classes_file)
    method = check_method(cfg.prompt)
    clip, teacher_spec = open_clip_teacher(teacher if teacher is not None else recipe.teacher)
    if cfg.images_per_class < 1:
        raise UserError(f"datafree.images_per_class must be >= 1, got {cfg.images_per_class}")
    if method in ("random", "contrastive"):
        PseudoTokenEncoder(clip)
    if method == "mix":
        styles_for(cfg.styles_file, cfg.exclude_domains)
    settings = SynthesisSettings.from_config(cfg, clip.preprocess.size)
    create_generator(settings.generator, settings.image_size, settings.generator_params)
    for shift in cfg.shifts:
        check_shift(shift)
    check_shots(cfg.fewshot_shots, cfg.fewshot_seeds, cfg.fewshot_steps, cfg.fewshot_lr, cfg.fewshot_batch_size)
    seed_everything(recipe.seed)
    model, spec, student_name, build_kwargs = build_student(recipe, class_names)
    check_schedule(dcfg, dcfg.epochs)
    if cfg.warmup_epochs < 0 or cfg.finetune_lr_factor <= 0:
        raise UserError("datafree.warmup_epochs must be >= 0 and datafree.finetune_lr_factor > 0")
    criterion = _criterion(recipe)
    test, train_real = _open_real(recipe, class_names, data)

    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    clear_result(run_dir)
    ckpt_root = run_dir / "checkpoints"

    # 2. Prompts and images.
    synthetic, synthesis, class_embeddings = _synthesize(recipe, clip, class_names, settings, method, run_dir, resume, progress)

    # 3. KD on the synthetic set: head warm-up, then everything at lr × factor.

    teacher_logits = synthetic.teacher_logits()
    train_set, augment = training_view(synthetic, spec.preprocess, dcfg.augment)
    online = None
    if cfg.online_teacher:
        online = OnlineTeacher(clip, class_embeddings, spec.preprocess)
    history = _two_phase(model, train_set, augment, criterion, recipe, teacher_logits, ckpt_root, "", resume, progress, online)
    scratch_model = None
    if dcfg.scratch_baseline:
        seed_everything(recipe.seed)
        scratch_model, _, _, _ = build_student(recipe, class_names)
        _two_phase(scratch_model, train_set, augment, cross_entropy_criterion(), recipe, None, ckpt_root, "scratch-", resume, progress)

    # 4. Measure on real images (never seen in training).

    zero_shot = ZeroShotClipTeacher(clip, class_names, recipe.data.templates, teacher_spec)
    metrics: dict[str, Any] = {"teacher_accuracy_on_synthetic": synthesis["teacher_agreement_on_synthetic"]}
    fewshot = None
    if test is not None:
        metrics.update(_measure(zero_shot, model, scratch_model, test, spec.preprocess))
        metrics["shifts"] = {}
        for shift in cfg.shifts:
            # Shifted at the larger of the two input sizes, as the DistillCLIP suite does.
            size = max(clip.preprocess.size, spec.preprocess.size)
            metrics["shifts"][shift] = _measure(zero_shot, model, scratch_model, ShiftedDataset(test, shift, size), spec.preprocess)
        if train_real is not None:
            test_view = eval_view(test, spec.preprocess)

            def fresh() -> nn.Module:
                return build_student(recipe, class_names)[0]

            fewshot = fewshot_curves(model, fresh, train_real, test_view, test.labels, spec.preprocess, dcfg,
                                     shots=cfg.fewshot_shots, seeds=cfg.fewshot_seeds, steps=cfg.fewshot_steps, lr=cfg.fewshot_lr,
                                     batch_size=cfg.fewshot_batch_size, checkpoint_dir=ckpt_root / "fewshot", resume=resume,
                                     progress=progress)

    # 5. Outputs: teacher and student directories atomically, result.json last.

    zero_shot.save(run_dir / "teacher")
    student_dir = run_dir / "student"
    # Where `edgeclip eval` / `export` find images by default: the real test data when the recipe
    # has it, else the synthetic images (a plain folder of class folders).

    spec.extra["data"] = recipe.data.test or str(run_dir / "synthetic" / method / IMAGES_DIR)
    with atomic_dir(student_dir) as tmp:
        save_checkpoint(tmp, model, spec, student_name=student_name, build_kwargs=build_kwargs,
                        extra={"teacher": zero_shot.name, "recipe": recipe.name, "method": METHOD, "prompt": method,
                               "test_accuracy": metrics.get("student_accuracy"), "retention": metrics.get("retention")})
    result = {
        "schema": "edgeclip.distill.result/1",
        "method": METHOD,
        "recipe": recipe.to_dict(),
        "classes": class_names,
        "data": {"train": str(run_dir / "synthetic" / method), "train_images": len(synthetic), "shots": 0,
                 "test": test.identity if test is not None else None, "test_images": len(test) if test is not None else 0},
        "teacher": {**zero_shot.describe(), "params": zero_shot.num_params},
        "student": {"name": student_name, "params": count_params(model), "checkpoint": str(student_dir), "image_size": spec.preprocess.size},
        "synthesis": {k: v for k, v in synthesis.items() if k != "images"},
        "loss": criterion.describe(),
        "metrics": metrics,
        "training": {"warmup": history_summary(history[0]), "finetune": history_summary(history[1])},
        "fewshot": fewshot,
        "seconds": time.perf_counter() - started,
    }
    write_datafree_result(run_dir, result)
    return DataFreeResult(model=model.eval(), spec=spec, checkpoint_dir=student_dir, run_dir=run_dir, teacher=zero_shot,
                          metrics=metrics, result=result)


def _synthesize(recipe: Recipe, clip: Any, class_names: list[str], settings: Any, method: str, run_dir: Path,
                resume: bool, progress: bool) -> tuple[Any, dict[str, Any]]:
    cfg = recipe.datafree
    fingerprint = synthesis_fingerprint(recipe, clip, class_names, settings)
    method_dir = run_dir / "synthetic" / method
    if not resume:
        clear_method_dir(method_dir)
    plan = load_plan(method_dir / PROMPTS_FILE, fingerprint) if resume else None
    if plan is None:
        seed_everything(recipe.seed)
        plan = build_prompt_plan(method, clip, class_names, cfg.images_per_class, cfg, recipe.seed, progress=progress)
        save_plan(method_dir / PROMPTS_FILE, plan, fingerprint)
    class_embeddings = clip.class_embeddings(class_names, get_templates(recipe.data.templates))
    summary = synthesize_set(clip, plan, class_names, class_embeddings, settings, method_dir, fingerprint=fingerprint,
                             seed=recipe.seed, resume=resume, progress=progress)
    return SyntheticImageSet(method_dir), summary, class_embeddings


def _two_phase(model: nn.Module, train_set: Any, augment: Any, criterion: Any, recipe: Recipe, teacher_logits: torch.Tensor | None,
               ckpt_root: Path, prefix: str, resume: bool, progress: bool, online: Any = None) -> tuple[list[Any], list[Any]]:
    """Warm-up (head only, lr = distill.lr, constant) then fine-tune (all, lr × factor, distill.milestones)."""
    cfg, dcfg = recipe.datafree, recipe.distill
    warm: list[Any] = []
    if cfg.warmup_epochs > 0:
        warm = train_classifier(model, train_set, criterion=criterion, config=dataclasses.replace(dcfg, milestones=[]), seed=recipe.seed,
                                epochs=cfg.warmup_epochs, teacher_logits=teacher_logits, checkpoint_dir=ckpt_root / f"{prefix}warmup",
                                resume=resume, progress=progress, desc=f"{prefix}warm-up head", batch_transform=augment,
                                parameters=head_parameters(model), teacher_fn=online)
    fine = train_classifier(model, train_set, criterion=criterion, config=dataclasses.replace(dcfg, lr=dcfg.lr * cfg.finetune_lr_factor),
                            seed=recipe.seed + 1, teacher_logits=teacher_logits, checkpoint_dir=ckpt_root / f"{prefix}finetune",
                            resume=resume, progress=progress, desc=f"{prefix}fine-tune", batch_transform=augment, teacher_fn=online)
    return warm, fine


def _measure(zero_shot: Any, model: nn.Module, scratch: nn.Module | None, dataset: Any, preprocess: Any) -> dict[str, Any]:
    labels = list(dataset.labels)
    teacher_logits = zero_shot.logits(dataset).float()
    view = eval_view(dataset, preprocess)
    student_logits = predict_logits(model, view)
    teacher_acc, student_acc = top1_accuracy(teacher_logits, labels), top1_accuracy(student_logits, labels)
    out = {"teacher_accuracy": teacher_acc, "student_accuracy": student_acc, "retention": retention(student_acc, teacher_acc),
           "agreement": agreement(student_logits, teacher_logits)}
    if scratch is not None:
        scratch_acc = top1_accuracy(predict_logits(scratch, view), labels)
        out.update({"scratch_accuracy": scratch_acc, "scratch_retention": retention(scratch_acc, teacher_acc),
                    "kd_gain": student_acc - scratch_acc})
    return out
