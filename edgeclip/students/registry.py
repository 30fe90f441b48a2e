"""The student registry: name → (kind, description, factory), timm-style.

Factories live next to the models they build (`classifiers.py`, `dual_encoder.py`) and register
themselves with `register_student`. Everyone else calls `create_student` / `list_students`.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import torch
from torch import nn

from edgeclip.data.preprocess import OPENAI_MEAN, OPENAI_STD, Preprocess
from edgeclip.errors import UserError
from edgeclip.registry import Registry
from edgeclip.students.spec import ModelSpec
from edgeclip.utils import count_params

StudentKind = Literal["classifier", "dual_encoder"]
StudentFactory = Callable[..., tuple[nn.Module, ModelSpec]]

# Class count used to build classifiers for `list_students` (their size barely depends on it).
DEFAULT_LIST_CLASSES = 10


@dataclass(frozen=True)
class StudentEntry:
    """One registered student.

    Classifier factories are called as `factory(class_names=[...], image_size=int, **kwargs)`;
    dual-encoder factories as `factory(image_size=int|None, teacher_model=..., **kwargs)`.
    Both return `(model, spec)`.
    """

    name: str
    kind: StudentKind
    description: str
    factory: StudentFactory


# Built-in students register themselves when their module is imported; the registry imports them
# on first lookup, so they can import `register_student` from here without a cycle.
STUDENTS: Registry[StudentEntry] = Registry("student", "edgeclip list students",
                                            builtins=("edgeclip.students.classifiers", "edgeclip.students.dual_encoder"))


def register_student(name: str, kind: StudentKind, description: str) -> Callable[[StudentFactory], StudentFactory]:
    """Decorator: register `factory` under `name`."""

    def decorator(factory: StudentFactory) -> StudentFactory:
        STUDENTS.register(name, StudentEntry(name, kind, description, factory))
        return factory

    return decorator


def clip_preprocess(image_size: int) -> Preprocess:
    """Students see what the CLIP teacher sees: CLIP mean/std, short-side resize + centre crop."""
    return Preprocess(size=int(image_size), mean=OPENAI_MEAN, std=OPENAI_STD, resize_mode="center_crop")


def create_student(
    name: str,
    *,
    class_names: Sequence[str] | None = None,
    image_size: int | None = None,
    teacher_model: nn.Module | None = None,
    **kwargs: Any,
) -> tuple[nn.Module, ModelSpec]:
    """Build a registered student with random weights; returns `(model, spec)`.

    - classifiers need `class_names` (their order defines the logit order);
    - dual encoders accept `teacher_model` (an open_clip CLIP or a ClipTeacher) to initialise
      their text tower from it (layer i ← teacher layer 2i), and config overrides
      (`embed_dim=`, `vision_cfg={...}`, `text_cfg={...}`).
    `spec.extra["build_kwargs"]` records what is needed to rebuild the same architecture
    (used by `save_checkpoint`).
    """
    entry = STUDENTS.get(name)
    if image_size is not None and (not isinstance(image_size, int) or image_size < 8):
        raise UserError(f"image_size must be an integer >= 8, got {image_size!r}; pass e.g. image_size=224")
    _check_kwargs(entry, kwargs)
    build_kwargs: dict[str, Any] = dict(kwargs)
    if image_size is not None:
        build_kwargs["image_size"] = image_size

    if entry.kind == "classifier":
        if teacher_model is not None:
            raise UserError(
                f"student '{name}' is a classifier; teacher_model only initialises dual encoders "
                "(pass the teacher to the KD trainer instead)"
            )
        names = _validate_class_names(name, class_names)
        model, spec = entry.factory(class_names=names, **build_kwargs)
        build_kwargs["class_names"] = names
    else:
        if class_names is not None:
            raise UserError(
                f"student '{name}' is a dual encoder and predicts embeddings, not classes; "
                "drop class_names (build a zero-shot head from the teacher's templates instead)"
            )
        model, spec = entry.factory(teacher_model=teacher_model, **build_kwargs)
    # A factory may add options it resolved itself (e.g. the teacher's activation) so a rebuild
    # without the teacher gives the same function.
    spec.extra["build_kwargs"] = {**build_kwargs, **spec.extra.get("build_kwargs", {})}
    return model, spec


def list_students() -> list[dict[str, Any]]:
    """One row per student: name, kind, params (at the default config), description."""
    return [
        {"name": entry.name, "kind": entry.kind, "params": _default_param_count(entry.name), "description": entry.description}
        for _, entry in STUDENTS.items()
    ]


@functools.lru_cache(maxsize=None)
def _default_param_count(name: str) -> int:
    entry = STUDENTS.get(name)
    kwargs: dict[str, Any] = {}
    if entry.kind == "classifier":
        kwargs["class_names"] = [f"class_{i}" for i in range(DEFAULT_LIST_CLASSES)]
    # Build on the meta device: shapes only, no memory and no random init, so listing is instant.
    with torch.device("meta"):
        model, _ = create_student(name, **kwargs)
    return count_params(model)


def _validate_class_names(student: str, class_names: Sequence[str] | None) -> list[str]:
    if class_names is None or isinstance(class_names, str) or len(class_names) == 0:
        raise UserError(
            f"student '{student}' is a classifier and needs class_names (a non-empty list, e.g. the "
            "dataset's class folders); pass class_names=dataset.class_names"
        )
    names = [str(c) for c in class_names]
    duplicates = sorted({c for c in names if names.count(c) > 1})
    if duplicates:
        raise UserError(f"class_names has duplicates {duplicates}; give every class a unique name")
    return names


def _check_kwargs(entry: StudentEntry, kwargs: dict[str, Any]) -> None:
    """Unknown options are a user mistake (a typo), not a TypeError deep inside a factory."""
    params = inspect.signature(entry.factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = {n for n in params if n not in ("class_names", "image_size", "teacher_model")}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        options = ", ".join(sorted(accepted)) or "none"
        raise UserError(f"student '{entry.name}' has no option {unknown}; its options are: {options}")
