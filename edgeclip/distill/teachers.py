"""Turn a `--teacher` spec into a classifier teacher whose outputs are computed once per image.

Specs:
- a CLIP spec (`proxy-digits`, `ARCH:TAG`, `ARCH:/path`, an edgeclip teacher checkpoint file):
  frozen CLIP + the head chosen by `distill.teacher_head` — `finetuned` (MLP trained here on the
  training images, paper 000 §3.2.2) or `zero_shot` (prompt-ensemble head, "raw CLIP");
- `cnn:ARCH[@WIDTH]` (e.g. `cnn:resnet34@0.5`): a timm ResNet trained here with cross-entropy;
- `cnn:ARCH[@WIDTH]:/dir` or `/dir`: a teacher saved by an earlier run (`runs/<id>/teacher`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence

import torch

from edgeclip.config import Recipe
from edgeclip.data.base import ImageDataset
from edgeclip.data.preprocess import Preprocess
from edgeclip.errors import UserError
from edgeclip.io_utils import read_json
from edgeclip.teacher.cnn import CNN_KIND, CnnTeacher, build_cnn, parse_cnn_spec
from edgeclip.teacher.finetuned import FINETUNED_KIND, META_NAME, FinetunedClipTeacher, clip_features
from edgeclip.utils import count_params

ZERO_SHOT_KIND = "clip_zero_shot"
TEACHER_HEADS = ("finetuned", "zero_shot")


class ClassifierTeacher(Protocol):
    """What the KD trainer and the capacity-gap analysis need from any teacher."""

    name: str
    kind: str
    class_names: list[str]

    @property
    def num_params(self) -> int: ...

    def logits(self, dataset: Any) -> torch.Tensor: ...

    def forward_images(self, images: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]: ...

    def save(self, directory: str | Path) -> Path: ...


class ZeroShotClipTeacher:
    """Raw CLIP: prompt-ensemble zero-shot head on cached image features (no training)."""

    kind = ZERO_SHOT_KIND

    def __init__(self, clip: Any, class_names: Sequence[str], templates: str, clip_spec: str) -> None:
        from edgeclip.teacher.templates import get_templates

        self.clip = clip
        self.class_names = list(class_names)
        self.clip_spec = clip_spec
        self.templates = templates
        self.head = clip.zero_shot_head(self.class_names, get_templates(templates))
        self.name = f"{getattr(clip, 'name', clip_spec)}+zero-shot"

    @property
    def num_params(self) -> int:
        visual = getattr(getattr(self.clip, "model", None), "visual", None)
        return count_params(visual) if visual is not None else count_params(self.clip)

    @torch.no_grad()
    def logits(self, dataset: Any) -> torch.Tensor:
        return self.head(clip_features(self.clip, dataset))

    @torch.no_grad()
    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.clip.encode_image(images))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "clip": self.clip_spec, "templates": self.templates, "params": self.num_params}

    def save(self, directory: str | Path) -> Path:
        # Nothing was trained: the spec alone rebuilds it, so record that instead of weights.
        from edgeclip.io_utils import atomic_dir, write_json

        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            write_json(tmp / META_NAME, {"kind": self.kind, "clip": self.clip_spec, "class_names": self.class_names,
                                         "templates": self.templates})
        return directory


def load_saved_teacher(directory: Path, expect_arch: str | None = None) -> ClassifierTeacher:
    """A teacher directory written by an earlier run (`teacher.json` says which kind)."""
    meta_path = directory / META_NAME
    if not meta_path.is_file():
        if (directory / "spec.json").is_file():
            raise UserError(f"{directory} is a student checkpoint, not a teacher; pass a teacher (e.g. runs/<id>/teacher, cnn:resnet18, proxy-digits)")
        raise UserError(f"{directory} has no {META_NAME}; pass a teacher directory written by `edgeclip distill` (runs/<id>/teacher)")
    kind = read_json(meta_path).get("kind")
    if kind == CNN_KIND:
        return CnnTeacher.load(directory, expect_arch=expect_arch)
    if expect_arch is not None:
        raise UserError(f"teacher checkpoint {directory} is a '{kind}' teacher, not a CNN {expect_arch}; pass it as --teacher {directory}")
    if kind == FINETUNED_KIND:
        return FinetunedClipTeacher.load(directory)
    if kind == ZERO_SHOT_KIND:
        meta = read_json(meta_path)
        return ZeroShotClipTeacher(_load_clip(meta["clip"]), meta["class_names"], meta["templates"], meta["clip"])
    raise UserError(f"{directory} holds an unknown teacher kind '{kind}'; re-create it with `edgeclip distill`")


def _load_clip(spec: str) -> Any:
    import edgeclip.teacher.proxy  # noqa: F401  (registers proxy-digits)
    from edgeclip.teacher.clip_teacher import ClipTeacher

    return ClipTeacher.load(spec)


def open_teacher(spec: str) -> tuple[str, Any]:
    """Resolve what can be resolved without training: ("saved", teacher) | ("cnn", (arch, width)) | ("clip", ClipTeacher).

    Used first so that a bad teacher spec or checkpoint fails before anything is written.
    """
    spec = spec.strip()
    if spec.startswith("cnn:"):
        arch, width, path = parse_cnn_spec(spec)
        if path:
            directory = Path(path).expanduser()
            if not directory.is_dir():
                raise UserError(f"teacher checkpoint {directory} does not exist; check the path or train one with --teacher cnn:{arch}")
            return "saved", load_saved_teacher(directory, expect_arch=arch)
        build_cnn(arch, 2, width)  # validates the width now
        return "cnn", (arch, width)
    path = Path(spec).expanduser()
    if path.is_dir():
        return "saved", load_saved_teacher(path)
    return "clip", _load_clip(spec)


def prepare_teacher(
    teacher: str | Any,
    recipe: Recipe,
    train: ImageDataset,
    *,
    student_preprocess: Preprocess,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> ClassifierTeacher:
    """Build or load the teacher and fit whatever it needs on `train` (head or whole CNN)."""
    from edgeclip.teacher.clip_teacher import ClipTeacher

    cfg = recipe.distill
    if isinstance(teacher, str):
        how, value = open_teacher(teacher)
        spec = teacher
    elif isinstance(teacher, ClipTeacher):
        how, value, spec = "clip", teacher, getattr(teacher, "name", "clip")
    elif isinstance(teacher, tuple) and len(teacher) == 2:  # an already opened (how, value) pair
        how, value = teacher
        spec = getattr(value, "name", str(value))
    else:
        how, value, spec = "saved", teacher, getattr(teacher, "name", "teacher")

    if how == "saved":
        result = value
    elif how == "cnn":
        arch, width = value
        result = train_cnn_teacher(arch, width, recipe, train, student_preprocess, checkpoint_dir=checkpoint_dir, resume=resume, progress=progress)
    else:
        if cfg.teacher_head not in TEACHER_HEADS:
            raise UserError(f"unknown distill.teacher_head '{cfg.teacher_head}'; use one of {', '.join(TEACHER_HEADS)}")
        if cfg.teacher_head == "zero_shot":
            result = ZeroShotClipTeacher(value, train.class_names, recipe.data.templates, spec)
        else:
            result = FinetunedClipTeacher.train(value, spec, train, templates=recipe.data.templates, head_input=cfg.head_input,
                                                hidden=cfg.head_hidden, dropout=cfg.head_dropout, epochs=cfg.head_epochs,
                                                lr=cfg.head_lr, seed=recipe.seed, progress=progress)
    check_teacher_classes(result, train.class_names)
    return result


def check_teacher_classes(teacher: ClassifierTeacher, class_names: Sequence[str]) -> None:
    if list(teacher.class_names) != list(class_names):
        raise UserError(f"teacher '{teacher.name}' predicts {len(teacher.class_names)} classes {teacher.class_names[:5]}... but the data has "
                        f"{len(class_names)} {list(class_names)[:5]}...; use a teacher trained on the same class folders")


def train_cnn_teacher(arch: str, width: float, recipe: Recipe, train: ImageDataset, preprocess: Preprocess, *,
                      checkpoint_dir: Path | None = None, resume: bool = False, progress: bool = True) -> CnnTeacher:
    """Cross-entropy training of a CNN teacher on `train` with the recipe's schedule."""
    from edgeclip.distill.augment import training_view
    from edgeclip.distill.losses import cross_entropy_criterion
    from edgeclip.distill.trainer import train_classifier
    from edgeclip.utils import seed_everything

    cfg = recipe.distill
    seed_everything(recipe.seed)
    model = build_cnn(arch, len(train.class_names), width)
    train_set, batch_augment = training_view(train, preprocess, cfg.augment)
    train_classifier(model, train_set, criterion=cross_entropy_criterion(), config=cfg, seed=recipe.seed,
                     epochs=cfg.teacher_epochs or cfg.epochs, checkpoint_dir=checkpoint_dir,
                     resume=resume, progress=progress, desc=f"teacher {arch}", batch_transform=batch_augment)
    return CnnTeacher(model, arch, width, train.class_names, preprocess)
