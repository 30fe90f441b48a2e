"""Classifier teachers by kind (a registry), and turning a `--teacher` spec into one whose outputs
are computed once per image.

Kinds (`TEACHER_KINDS`): `clip_finetuned`, `clip_zero_shot`, `cnn_ce`. Each opens a spec string
without training (`open`) and loads a directory it saved (`load`); `prepare` then fits what the
kind needs on the training images. Adding a teacher kind = one registered row.

Specs:
- a CLIP spec (`proxy-digits`, `ARCH:TAG`, `ARCH:/path`, an edgeclip teacher checkpoint file):
  frozen CLIP + the head chosen by `distill.teacher_head` — `finetuned` (MLP trained here on the
  training images, paper 000 §3.2.2) or `zero_shot` (prompt-ensemble head, "raw CLIP");
- `cnn:ARCH[@WIDTH]` (e.g. `cnn:resnet34@0.5`): a timm ResNet trained here with cross-entropy;
- `cnn:ARCH[@WIDTH]:/dir` or `/dir`: a teacher saved by an earlier run (`runs/<id>/teacher`).
"""

from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import torch

from edgeclip.config import Recipe
from edgeclip.data.base import ImageDataset
from edgeclip.data.preprocess import Preprocess
from edgeclip.distill.augment import eval_view, training_view
from edgeclip.distill.batchnorm import accuracy_in_both_modes, recalibrate_batchnorm
from edgeclip.distill.losses import cross_entropy_criterion
from edgeclip.distill.trainer import train_classifier
from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_dir, read_json, read_json_object, write_json
from edgeclip.registry import Registry
from edgeclip.teacher.clip_teacher import ClipTeacher
from edgeclip.teacher.cnn import CNN_KIND, CnnTeacher, build_cnn, parse_cnn_spec
from edgeclip.teacher.finetuned import FINETUNED_KIND, META_NAME, FinetunedClipTeacher, clip_features
from edgeclip.teacher.templates import get_templates
from edgeclip.utils import count_params, seed_everything
import edgeclip.teacher.proxy  # noqa: F401 - registers the proxy teachers

ZERO_SHOT_KIND = "clip_zero_shot"


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

        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            write_json(tmp / META_NAME, {"kind": self.kind, "clip": self.clip_spec, "class_names": self.class_names,
                                         "templates": self.templates})
        return directory


    @classmethod
    def load(cls, directory: str | Path) -> "ZeroShotClipTeacher":
        """Rebuild from a saved teacher directory: nothing was trained, the CLIP spec and classes suffice."""
        meta = read_json(Path(directory) / META_NAME)
        return cls(load_clip(meta["clip"]), meta["class_names"], meta["templates"], meta["clip"])


def load_clip(spec: str) -> Any:
    """A ClipTeacher from a CLIP spec (proxy names, ARCH:TAG, ARCH:/path, checkpoint file)."""
    return ClipTeacher.load(spec)


# ---- teacher kinds ---------------------------------------------------------------------------

class TeacherSource(Protocol):
    """A teacher spec resolved without training anything: `prepare` fits what it needs on `train`."""

    name: str
    needs_training: bool

    def prepare(self, recipe: Recipe, train: ImageDataset, *, student_preprocess: Preprocess,
                checkpoint_dir: Path | None, resume: bool, progress: bool) -> ClassifierTeacher: ...


@dataclass
class ReadyTeacher:
    """A teacher that is already trained (loaded from a directory, or built in memory)."""

    teacher: ClassifierTeacher
    needs_training: bool = False

    @property
    def name(self) -> str:
        return self.teacher.name

    def prepare(self, recipe: Recipe, train: ImageDataset, **_: Any) -> ClassifierTeacher:
        return self.teacher


@dataclass
class ClipHeadSource:
    """A frozen CLIP plus the head its kind puts on it: fine-tuned MLP (trained here) or zero-shot prompts."""

    clip: Any
    spec: str
    head: str  # "finetuned" | "zero_shot"

    @property
    def name(self) -> str:
        return getattr(self.clip, "name", self.spec)

    @property
    def needs_training(self) -> bool:
        return self.head == "finetuned"

    def prepare(self, recipe: Recipe, train: ImageDataset, *, progress: bool = True, **_: Any) -> ClassifierTeacher:
        if self.head == "zero_shot":
            return ZeroShotClipTeacher(self.clip, train.class_names, recipe.data.templates, self.spec)
        cfg = recipe.distill
        return FinetunedClipTeacher.train(self.clip, self.spec, train, templates=recipe.data.templates, head_input=cfg.head_input,
                                          hidden=cfg.head_hidden, dropout=cfg.head_dropout, epochs=cfg.head_epochs,
                                          lr=cfg.head_lr, seed=recipe.seed, progress=progress)


@dataclass
class CnnSource:
    """A CNN architecture to train here with cross-entropy on the student's training images."""

    arch: str
    width: float
    needs_training: bool = True

    @property
    def name(self) -> str:
        return f"cnn:{self.arch}@{self.width:g}"

    def prepare(self, recipe: Recipe, train: ImageDataset, *, student_preprocess: Preprocess,
                checkpoint_dir: Path | None = None, resume: bool = False, progress: bool = True) -> ClassifierTeacher:
        return train_cnn_teacher(self.arch, self.width, recipe, train, student_preprocess, checkpoint_dir=checkpoint_dir,
                                 resume=resume, progress=progress)


@dataclass(frozen=True)
class TeacherKind:
    """One kind of classifier teacher: how a spec string opens as it, how a saved directory loads."""

    name: str
    description: str
    open: Callable[[str], TeacherSource]
    load: Callable[[Path], ClassifierTeacher]


TEACHER_KINDS: Registry[TeacherKind] = Registry("teacher kind", "edgeclip list teachers")


def _open_cnn(spec: str) -> TeacherSource:
    arch, width, path = parse_cnn_spec(spec)
    if path:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise UserError(f"teacher checkpoint {directory} does not exist; check the path or train one with --teacher cnn:{arch}")
        return ReadyTeacher(CnnTeacher.load(directory, expect_arch=arch))
    build_cnn(arch, 2, width)  # validates the width now
    return CnnSource(arch, width)


for _kind in (
    TeacherKind(FINETUNED_KIND, "frozen CLIP + MLP head fine-tuned here with cross-entropy (paper 000 §3.2.2)",
                lambda spec: ClipHeadSource(load_clip(spec), spec, "finetuned"), FinetunedClipTeacher.load),
    TeacherKind(ZERO_SHOT_KIND, "frozen CLIP with its prompt-ensemble zero-shot head (no training)",
                lambda spec: ClipHeadSource(load_clip(spec), spec, "zero_shot"), ZeroShotClipTeacher.load),
    TeacherKind(CNN_KIND, "a CNN (ResNet) trained here with cross-entropy: cnn:ARCH[@WIDTH][:/saved/dir]",
                _open_cnn, CnnTeacher.load),
):
    TEACHER_KINDS.register(_kind.name, _kind)

# distill.teacher_head -> the CLIP teacher kind it selects.
HEAD_KINDS = {"finetuned": FINETUNED_KIND, "zero_shot": ZERO_SHOT_KIND}


def load_saved_teacher(directory: Path) -> ClassifierTeacher:
    """A teacher directory written by an earlier run; its `teacher.json` names the kind that loads it."""
    meta_path = directory / META_NAME
    if not meta_path.is_file():
        if (directory / "spec.json").is_file():
            raise UserError(f"{directory} is a student checkpoint, not a teacher; pass a teacher (e.g. runs/<id>/teacher, cnn:resnet18, proxy-digits)")
        raise UserError(f"{directory} has no {META_NAME}; pass a teacher directory written by `edgeclip distill` (runs/<id>/teacher)")
    kind = read_json_object(meta_path, "teacher record", "re-create the teacher with `edgeclip distill`").get("kind")
    if kind not in TEACHER_KINDS:
        raise UserError(f"{directory} holds an unknown teacher kind '{kind}' (known: {', '.join(TEACHER_KINDS.names())}); "
                        "re-create it with `edgeclip distill`")
    return TEACHER_KINDS.get(kind).load(directory)


def open_teacher(teacher: Any, teacher_head: str = "finetuned") -> TeacherSource:
    """Resolve a teacher without training anything, so a bad spec fails before a file is written.

    `teacher` is a spec string — `cnn:...`, a saved teacher directory, or a CLIP spec whose kind
    `teacher_head` picks — or an object: a TeacherSource, a trained teacher, or a ClipTeacher.
    """
    if teacher_head not in HEAD_KINDS:
        raise UserError(f"unknown distill.teacher_head '{teacher_head}'; use one of {', '.join(HEAD_KINDS)}")
    if not isinstance(teacher, str):
        if hasattr(teacher, "prepare"):
            return teacher
        if hasattr(teacher, "logits"):  # already a classifier teacher
            return ReadyTeacher(teacher)
        return ClipHeadSource(teacher, getattr(teacher, "name", "clip"), teacher_head)  # an in-memory CLIP
    spec = teacher.strip()
    if spec.startswith("cnn:"):
        return TEACHER_KINDS.get(CNN_KIND).open(spec)
    if Path(spec).expanduser().is_dir():
        return ReadyTeacher(load_saved_teacher(Path(spec).expanduser()))
    return TEACHER_KINDS.get(HEAD_KINDS[teacher_head]).open(spec)


def prepare_teacher(teacher: Any, recipe: Recipe, train: ImageDataset, *, student_preprocess: Preprocess,
                    checkpoint_dir: Path | None = None, resume: bool = False, progress: bool = True) -> ClassifierTeacher:
    """Open (if needed) and fit the teacher on `train`; its classes must be the data's."""
    source = open_teacher(teacher, recipe.distill.teacher_head)
    result = source.prepare(recipe, train, student_preprocess=student_preprocess, checkpoint_dir=checkpoint_dir,
                            resume=resume, progress=progress)
    check_teacher_classes(result, train.class_names)
    return result


def check_teacher_classes(teacher: ClassifierTeacher, class_names: Sequence[str]) -> None:
    if list(teacher.class_names) != list(class_names):
        raise UserError(f"teacher '{teacher.name}' predicts {len(teacher.class_names)} classes {teacher.class_names[:5]}... but the data has "
                        f"{len(class_names)} {list(class_names)[:5]}...; use a teacher trained on the same class folders")


def train_cnn_teacher(arch: str, width: float, recipe: Recipe, train: ImageDataset, preprocess: Preprocess, *,
                      checkpoint_dir: Path | None = None, resume: bool = False, progress: bool = True) -> CnnTeacher:
    """Cross-entropy training of a CNN teacher on `train` with the recipe's schedule."""
    cfg = recipe.distill
    seed_everything(recipe.seed)
    model = build_cnn(arch, len(train.class_names), width)
    train_set, batch_augment = training_view(train, preprocess, cfg.augment)
    history = train_classifier(model, train_set, criterion=cross_entropy_criterion(), config=cfg, seed=recipe.seed,
                               epochs=cfg.teacher_epochs or cfg.epochs, checkpoint_dir=checkpoint_dir,
                               resume=resume, progress=progress, desc=f"teacher {arch}", batch_transform=batch_augment)
    # The epoch accuracy above is train mode on augmented batches; evaluation is eval mode on clean
    # images. Re-estimate BatchNorm's running stats with the final weights (distill/batchnorm.py) so
    # the two agree, and record both on the clean training images.
    clean = train_set if not cfg.augment or batch_augment is not None else eval_view(train, preprocess)
    recalibrate_batchnorm(model, clean, cfg.batch_size)
    teacher = CnnTeacher(model, arch, width, train.class_names, preprocess)
    teacher.training = {"epochs": len(history), "final_epoch_accuracy_augmented": history[-1].train_accuracy if history else None,
                        "batchnorm": "running stats re-estimated on the clean training images after training",
                        **accuracy_in_both_modes(model, clean, cfg.batch_size)}
    if progress:
        print(f"teacher {arch}: clean training images, train mode {teacher.training['train_mode_accuracy']:.3f} / "
              f"eval mode {teacher.training['eval_mode_accuracy']:.3f}", flush=True)
    return teacher
