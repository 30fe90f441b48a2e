"""What a build will do, decided and validated before anything is written or trained.

The target profile decides the backends and precisions; a recipe's `export.backends` /
`export.precisions` narrow them only when set (shipped recipes leave them empty), so
`edgeclip build --target jetson` plans the TensorRT kits and the onnx fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeclip.backends import get_backend
from edgeclip.build.compression import check_compression
from edgeclip.build.speed_reference import speed_reference_arch
from edgeclip.build.student_search import check_search
from edgeclip.config import Recipe
from edgeclip.data.preprocess import parse_frame_size
from edgeclip.distill.data_setup import open_distill_data
from edgeclip.distill.methods import get_method
from edgeclip.errors import UserError
from edgeclip.io_utils import check_output_dir
from edgeclip.paths import default_run_dir
from edgeclip.targets import load_target, with_overrides


@dataclass
class BuildPlan:
    recipe: Recipe
    target: Any  # edgeclip.targets.Target
    exports: list[tuple[str, str]]  # (backend, precision), in the target's preference order
    data: Any  # edgeclip.distill.data_setup.DistillData
    run_dir: Path

    @property
    def export_names(self) -> list[str]:
        return [f"{backend}-{precision}" for backend, precision in self.exports]


def export_plan(target: Any, recipe: Recipe) -> list[tuple[str, str]]:
    """(backend, precision) pairs: the target's backends × its precisions, as each backend allows."""
    backends = [b for b in target.backends if not recipe.export.backends or b in recipe.export.backends]
    precisions = [p for p in target.precisions if not recipe.export.precisions or p in recipe.export.precisions]
    if not backends or not precisions:
        raise UserError(f"the recipe's export.backends={recipe.export.backends} / export.precisions={recipe.export.precisions} "
                        f"leave nothing of target {target.name} ({', '.join(target.backends)}; {', '.join(target.precisions)}); "
                        "widen them or leave them empty to take the target's")
    plan = [(b, p) for b in backends for p in precisions if p in get_backend(b).precisions]
    if not plan:
        raise UserError(f"target {target.name} asks for {', '.join(precisions)} on {', '.join(backends)}, "
                        "which no backend supports; fix the profile's precisions")
    return plan


def check_fused_preprocess(recipe: Recipe, exports: list[tuple[str, str]]) -> tuple[int, int] | None:
    """export.fused_preprocess: a valid frame size, and no int8 in the plan (int8 calibrates on preprocessed floats)."""
    if not recipe.export.fused_preprocess:
        return None
    try:
        frame = parse_frame_size(recipe.export.fused_preprocess)
    except ValueError as exc:
        raise UserError(f"export.fused_preprocess: {exc}") from None
    if any(precision == "int8" for _backend, precision in exports):
        raise UserError("export.fused_preprocess cannot go with int8 in the plan (int8 calibrates on preprocessed floats); "
                        "add --set export.precisions=[fp32] or drop export.fused_preprocess")
    return frame


def plan_build(recipe: Recipe, target_name: str, out_dir: str | Path | None = None) -> BuildPlan:
    """Validate everything cheap — target, plan, data, student, method, speed reference — and pick
    the run directory. Nothing is written."""
    target = with_overrides(load_target(target_name), recipe.target)  # --set target.tensorrt=8.5
    exports = export_plan(target, recipe)
    get_method(recipe.distill.method)
    speed_reference_arch(recipe)  # an unknown architecture fails now, not after training

    check_compression(recipe)  # prune: / int8: sections

    check_search(recipe)  # search: (--latency-budget)
    if recipe.export.parity_samples < 1:
        raise UserError(f"export.parity_samples must be >= 1, got {recipe.export.parity_samples}; the default is 64")
    check_fused_preprocess(recipe, exports)
    data = open_distill_data(recipe.data, recipe.seed)
    if not recipe.student.checkpoint:
        # lazy: defers torch

        # lazy: defers torch
        from edgeclip.students.registry import STUDENTS

        STUDENTS.get(recipe.student.name)  # unknown student → close-match error now, not after the teacher
    run_dir = Path(out_dir) if out_dir else default_run_dir(recipe.name, target.name)
    check_output_dir(run_dir, "run directory")  # a default runs/ in an unwritable cwd fails now, not after training
    if (run_dir / "report.json").exists():
        raise UserError(f"{run_dir} already holds a finished build; pass another --out or remove it")
    return BuildPlan(recipe=recipe, target=target, exports=exports, data=data, run_dir=run_dir)
