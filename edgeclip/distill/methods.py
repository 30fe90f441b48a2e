"""Distillation methods by name (`distill.method` in a recipe, `edgeclip distill --method`).

Each row points at its trainer by import path, imported only when used, so listing methods or
validating a recipe costs no torch import. A trainer is called as
`trainer(recipe, *, teacher=None, out_dir, progress=True, resume=False, data=None)` and returns its result
object (with at least `run_dir`); `edgeclip build` also passes `data=` (the opened DistillData) and
uses the result's `deployables()`, `teacher` and `metrics` (see edgeclip/build/steps.py). Adding a
method = one row here + its trainer module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from edgeclip.registry import Registry


@dataclass(frozen=True)
class DistillMethod:
    name: str
    trainer: str  # "package.module:function"
    description: str
    paper: str = ""
    default_recipe: str = ""  # what `edgeclip distill --method NAME` uses without --recipe ("" = quickstart)
    # How `edgeclip build` turns this method's result into report rows: a module with the step interface of
    # edgeclip/build/steps.py (distill, teacher_row, real_inputs, export_all, finish_rows).
    build_steps: str = "edgeclip.build.steps"

    def load(self) -> Callable[..., Any]:
        module_name, function = self.trainer.split(":")
        return getattr(importlib.import_module(module_name), function)

    def load_build_steps(self) -> Any:
        return importlib.import_module(self.build_steps)


DISTILL_METHODS: Registry[DistillMethod] = Registry("distillation method", "edgeclip list methods")

for _method in (
    DistillMethod("classifier_kd", "edgeclip.distill.classifier_kd:distill_classifier",
                  "Hinton KD from a fine-tuned CLIP (or CNN) teacher into a classifier", "000"),
    DistillMethod("data-free", "edgeclip.distill.datafree.trainer:distill_datafree",
                  "class names only: synthesize images from the CLIP teacher (prompt diversification), then KD", "002",
                  default_recipe="digits-datafree"),
    DistillMethod("distillclip", "edgeclip.distill.distillclip.trainer:distill_clip",
                  "CLIP teacher -> small dual encoder by inter/intra-modal similarity-map distillation (keeps zero-shot)", "001",
                  build_steps="edgeclip.build.distillclip_steps"),
):
    DISTILL_METHODS.register(_method.name, _method)


def get_method(name: str) -> DistillMethod:
    """The method row; an unknown name is a UserError with close matches."""
    return DISTILL_METHODS.get(name)


def run_distillation(recipe: Any, **kwargs: Any) -> Any:
    """Run the recipe's `distill.method` trainer with `kwargs` (teacher, out_dir, progress, resume)."""
    return get_method(recipe.distill.method).load()(recipe, **kwargs)
