"""`distill_clip`: the `distillclip` method (paper 001) — CLIP teacher → small dual encoder.

Run directory (the same layout as classifier KD):

    runs/<id>/student/       save_checkpoint output: the student CLIP only (edgeclip export / eval --suite)
    runs/<id>/teacher/       teacher.json: which teacher, so `edgeclip eval --model runs/<id>/student` finds it
    runs/<id>/checkpoints/   resumable last.pt (student, feature projections, optimizer, schedule, position)
    runs/<id>/result.json    written last: its presence means the run finished
    runs/<id>/result.md

Under torchrun every rank trains on its own shards; only rank 0 writes files.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeclip.config import Recipe
from edgeclip.data import check_disjoint, open_image_dataset
from edgeclip.data.pair_sources import open_pairs
from edgeclip.distill.distillclip import ddp
from edgeclip.distill.distillclip.embeddings import cached_pair_embeddings
from edgeclip.distill.distillclip.loop import LoopSettings, train_dual_encoder
from edgeclip.distill.distillclip.setup import build_student_clip, loss_for, open_clip_teacher
from edgeclip.distill.distillclip.student import DistillStudent, embed_dim_of
from edgeclip.distill.results import RESULT_JSON, RESULT_MD, clear_result, fmt, machine_info
from edgeclip.errors import UserError
from edgeclip.eval.encoders import student_encoder, teacher_encoder
from edgeclip.eval.zero_shot import zero_shot_top1
from edgeclip.io_utils import atomic_dir, atomic_path, write_json
from edgeclip.students.checkpoint import save_checkpoint
from edgeclip.students.spec import ModelSpec
from edgeclip.teacher.clip_teacher import PROXY_TEACHERS
from edgeclip.teacher.proxy import check_proxy_pool_held_out, random_affine
from edgeclip.teacher.proxy_cifar10 import random_crop_flip
from edgeclip.teacher.templates import get_templates
from edgeclip.utils import count_params, seed_everything


@dataclass
class DistillClipResult:
    model: nn.Module
    spec: ModelSpec
    checkpoint_dir: Path
    run_dir: Path
    teacher: Any
    teacher_spec: str
    metrics: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)


def check_held_out(pairs: Any, recipe: Recipe, teacher_spec: str) -> Any:
    """The test split the run is evaluated on, checked disjoint from the pairs and the teacher's pool."""
    test = open_image_dataset(recipe.data.test, "test", skip_corrupt=recipe.data.skip_corrupt)
    if hasattr(pairs, "sample_ids"):
        check_disjoint(pairs, test, "distillclip pairs vs test split")

    check_proxy_pool_held_out(teacher_spec, {"test split": test})
    return test


def distill_clip(recipe: Recipe, *, teacher: Any = None, out_dir: str | Path, progress: bool = True, resume: bool = False,
                 stop_after_steps: int | None = None, log: Any = print, **_: Any) -> DistillClipResult:
    """Distill `teacher` (spec or ClipTeacher-like object; default `recipe.teacher`) into `recipe.student`."""
    started = time.perf_counter()
    cfg = recipe.distill
    if cfg.method != "distillclip":
        raise UserError(f"distill.method is '{cfg.method}' but this trainer does distillclip; set distill.method=distillclip")
    if cfg.epochs < 1 or cfg.lr <= 0 or cfg.warmup_steps < 0:
        raise UserError(f"distillclip needs distill.epochs >= 1, lr > 0, warmup_steps >= 0 (got {cfg.epochs}, {cfg.lr}, {cfg.warmup_steps})")
    if len(cfg.adam_betas) != 2:
        raise UserError(f"distill.adam_betas needs two numbers, e.g. [0.9, 0.98]; got {cfg.adam_betas}")
    env = ddp.env_from_torchrun()
    # 1. Validate everything before the first byte is written (every rank does, so all fail alike).
    criterion = loss_for(recipe)
    pairs = open_pairs(recipe.data.pairs, rank=env.rank, world_size=env.world_size, skip_corrupt=recipe.data.skip_corrupt,
                       seed=recipe.seed)
    clip_teacher, teacher_spec = open_clip_teacher(teacher, recipe)
    test = check_held_out(pairs, recipe, teacher_spec)
    seed_everything(recipe.seed)
    clip, spec, text_init = build_student_clip(recipe, clip_teacher, log=log if env.is_main else (lambda _m: None))
    if getattr(clip_teacher, "preprocess", None) is not None and clip_teacher.preprocess.size == spec.preprocess.size:
        spec.preprocess = clip_teacher.preprocess  # the student sees exactly what the teacher saw
    teacher_scale = float(getattr(clip_teacher, "logit_scale", 100.0))
    with torch.no_grad():
        clip.logit_scale.fill_(torch.log(torch.tensor(teacher_scale)))
    term_names = {t.name for t in criterion.terms}
    clip.logit_scale.requires_grad_("contrastive" in term_names)  # unused otherwise (DDP needs every param used)
    student = DistillStudent(clip, teacher_dim=_teacher_dim(clip_teacher), feature_projection="feature" in term_names)
    frozen = _freeze(student, cfg.freeze)
    import open_clip

    tokens = open_clip.SimpleTokenizer(context_length=int(spec.context_length or 77))(pairs.captions)

    device = ddp.setup_distributed(env, cfg.ddp_backend)
    run_dir = Path(out_dir)
    try:
        if env.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            clear_result(run_dir)  # a re-run must not leave the previous result looking like this one's
        student.to(device)
        # 2. Teacher embeddings once per pair (cached on disk), unless the recipe asks for an online teacher.
        t0 = time.perf_counter()
        cached = cached_pair_embeddings(clip_teacher, pairs, progress=progress and env.is_main) if cfg.teacher_cache else None
        teacher_seconds = time.perf_counter() - t0
        # 3. Train.
        # Photos (CIFAR-10) get crops and flips, digits small affine jitter (a mirrored digit is another thing).
        augment_fn = ((lambda images, generator: random_crop_flip(images, 4, generator))
                      if getattr(pairs, "mirror_invariant", False) else random_affine)

        settings = LoopSettings(epochs=cfg.epochs, global_batch=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                betas=(float(cfg.adam_betas[0]), float(cfg.adam_betas[1])), eps=cfg.adam_eps,
                                warmup_steps=cfg.warmup_steps, seed=recipe.seed, augment=cfg.augment,
                                checkpoint_every=cfg.checkpoint_every)
        history = train_dual_encoder(student, pairs, tokens, criterion=criterion, settings=settings, teacher_embeddings=cached,
                                     online_teacher=None if cfg.teacher_cache else clip_teacher, preprocess=spec.preprocess,
                                     env=env, device=device, checkpoint_dir=run_dir / "checkpoints", resume=resume,
                                     progress=progress, num_workers=cfg.num_workers, augment_fn=augment_fn,
                                     stop_after_steps=stop_after_steps)
        clip = student.clip.cpu().eval()
        if not env.is_main:
            ddp.barrier()
            return DistillClipResult(clip, spec, run_dir / "student", run_dir, clip_teacher, teacher_spec)
        # 4. Quick zero-shot check on the held-out test split (the full suite is `edgeclip eval --suite`).
        templates = get_templates(recipe.data.templates)
        teacher_acc = zero_shot_top1(teacher_encoder(clip_teacher), test, templates)
        student_acc = zero_shot_top1(student_encoder(clip, spec), test, templates)
        metrics = {"teacher_zero_shot": teacher_acc, "student_zero_shot": student_acc,
                   "zero_shot_retention": student_acc / teacher_acc if teacher_acc else None, "test_images": len(test)}
        # 5. Outputs: teacher record, student checkpoint (atomic), result.json last.
        teacher_record = {"kind": "clip", "spec": teacher_spec, "name": getattr(clip_teacher, "name", teacher_spec)}
        if not _loadable(teacher_spec) and hasattr(clip_teacher, "save"):
            clip_teacher.save(run_dir / "teacher" / "teacher.pt")
            teacher_record["spec"] = str((run_dir / "teacher" / "teacher.pt").resolve())
        write_json(run_dir / "teacher" / "clip_teacher.json", teacher_record)
        spec.extra.update({"data": recipe.data.test, "templates": recipe.data.templates, "teacher": teacher_record["spec"],
                           "logit_scale": teacher_scale, "pairs": recipe.data.pairs, "text_init": text_init})
        student_dir = run_dir / "student"
        student_name = recipe.student.name
        with atomic_dir(student_dir) as tmp:
            save_checkpoint(tmp, clip, spec, student_name=student_name,
                            extra={"teacher": teacher_record["spec"], "recipe": recipe.name, "method": "distillclip",
                                   "zero_shot_accuracy": student_acc, "zero_shot_retention": metrics["zero_shot_retention"]})
        result = {
            "schema": "edgeclip.distillclip.result/1",
            "recipe": recipe.to_dict(),
            "method": "distillclip",
            "pairs": {"spec": recipe.data.pairs, "identity": pairs.identity, "count_rank0": len(pairs), "world_size": env.world_size},
            "teacher": {**teacher_record, "params": _params(clip_teacher), "embedding_seconds": teacher_seconds,
                        "cached": cfg.teacher_cache},
            "student": {"name": student_name, "params": count_params(clip), "checkpoint": str(student_dir),
                        "image_size": spec.preprocess.size, "text_init": text_init, "frozen": frozen,
                        "feature_projection_params": count_params(student) - count_params(clip)},
            "loss": criterion.describe(),
            "metrics": metrics,
            "training": {"epochs": len(history), "seconds": sum(h.seconds for h in history),
                         "per_epoch": [asdict(h) for h in history]},
            "seconds": time.perf_counter() - started,
            "machine": machine_info(),
        }
        with atomic_path(run_dir / RESULT_MD) as tmp_md:
            tmp_md.write_text(render_markdown(result))
        write_json(run_dir / RESULT_JSON, result)
        ddp.barrier()
        return DistillClipResult(clip, spec, student_dir, run_dir, clip_teacher, teacher_spec, metrics, result)
    finally:
        ddp.cleanup_distributed()


def _teacher_dim(teacher: Any) -> int | None:
    model = getattr(teacher, "model", None)
    return embed_dim_of(model) if model is not None else None


def _params(teacher: Any) -> int | None:
    model = getattr(teacher, "model", None)
    return count_params(model) if model is not None else None


def _loadable(spec: str) -> bool:
    return spec in PROXY_TEACHERS or ":" in spec or Path(spec).is_file()


def _freeze(student: nn.Module, prefixes: list[str]) -> list[str]:
    frozen = []
    for name, param in student.named_parameters():
        if any(name.startswith(p) for p in prefixes):
            param.requires_grad_(False)
            frozen.append(name)
    unknown = [p for p in prefixes if not any(n.startswith(p) for n in frozen)]
    if unknown:
        raise UserError(f"distill.freeze: no parameter starts with {unknown}; names look like clip.token_embedding, clip.visual...")
    return frozen


def render_markdown(result: dict[str, Any]) -> str:
    m, t, s = result["metrics"], result["teacher"], result["student"]
    lines = [
        f"# DistillCLIP result: {result['recipe']['name']}", "",
        f"Pairs: `{result['pairs']['spec']}` ({result['pairs']['count_rank0']} on rank 0 of {result['pairs']['world_size']}). "
        f"Loss: {result['loss']}. Held-out test images: {m['test_images']}.", "",
        "| role | model | params | zero-shot top-1 (%) | retention |", "|---|---|---:|---:|---:|",
        f"| teacher | {t['name']} | {t['params'] or 0:,} | {fmt(m['teacher_zero_shot'], True)} | 1.000 |",
        f"| student | {s['name']} | {s['params']:,} | {fmt(m['student_zero_shot'], True)} | {fmt(m['zero_shot_retention'])} |",
        "", f"Student checkpoint: `{s['checkpoint']}` ({result['training']['epochs']} epochs, {result['training']['seconds']:.1f}s). "
        f"Text init: {s['text_init'].get('init_skipped') or ', '.join(s['text_init'].get('copied', [])) or s['text_init']['mode']}.",
        f"Full evaluation: `edgeclip eval --model {s['checkpoint']} --suite zero-shot,linear-probe,shift,retrieval`.",
    ]
    return "\n".join(lines) + "\n"
