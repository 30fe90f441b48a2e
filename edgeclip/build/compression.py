"""Compression inside `edgeclip build`: the pruned and QAT copies of the distilled student, built as
extra deployables (`<student>+pruned50` / `<student>+qat` in the report) by the KD-recovery workflow
(distill/compression.py), and the cheap recipe checks that run before anything is written. How int8
artifacts are made is compress/int8_inputs.py; whether int8 ships, compress/ship_rule.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeclip.errors import UserError
from edgeclip.students.spec import Deployable


def check_compression(recipe: Any) -> None:
    """Cheap checks of the recipe's prune:/int8: sections (before any file or training)."""
    # lazy: defers torch
    from edgeclip.compress.qat import QatConfig

    recipe.int8.check()
    if recipe.prune.ratio:
        recipe.prune.check()
    if recipe.int8.qat_epochs < 0:
        raise UserError(f"int8.qat_epochs must be >= 0, got {recipe.int8.qat_epochs}")
    if recipe.int8.qat_epochs:
        QatConfig(epochs=recipe.int8.qat_epochs, lr=recipe.int8.qat_lr, self_weight=recipe.int8.qat_self_weight).check()


def _deployable(directory: Path, suffix: str, name_suffix: str, precisions: tuple[str, ...] | None = None) -> Any:
    # lazy: defers torch
    from edgeclip.students.checkpoint import load_checkpoint

    model, spec, _ = load_checkpoint(directory)
    spec.name = f"{spec.name}{name_suffix}"
    return Deployable(model, spec, directory, suffix, precisions)


def compressed_deployables(plan: Any, distilled: Any, progress: bool, log: Any = print) -> list[Any]:
    """Pruned and QAT candidates of the distilled student, per the recipe (see module doc)."""
    # lazy: defers torch
    from edgeclip.compress.qat import QatConfig
    from edgeclip.distill.compression import prune_checkpoint, qat_checkpoint

    recipe = plan.recipe
    if distilled.spec.kind != "classifier" or not (recipe.prune.ratio or recipe.int8.qat_epochs):
        return []
    source = Path(distilled.checkpoint_dir)
    found = []
    if recipe.prune.ratio:
        percent = round(recipe.prune.ratio * 100)
        out = plan.run_dir / f"student-pruned{percent}"
        log(f"pruning {distilled.spec.name} at {recipe.prune.ratio:g} + {recipe.prune.recover_epochs} epochs of KD recovery")
        record = prune_checkpoint(source, out, recipe.prune, data=recipe.data.train, resume=(out.parent / f"{out.name}.recovery").is_dir(), progress=progress)
        log(f"  params {record['params_before']:,} -> {record['params_after']:,}; test {record['after']}")
        found.append(_deployable(out, f"-pruned{percent}", f"+pruned{percent}"))
    if recipe.int8.qat_epochs and any(precision == "int8" for _, precision in plan.exports):
        out = plan.run_dir / "student-qat"
        log(f"QAT + KD of {distilled.spec.name} for {recipe.int8.qat_epochs} epochs")
        qat_checkpoint(source, out, QatConfig(epochs=recipe.int8.qat_epochs, lr=recipe.int8.qat_lr,
                                              self_weight=recipe.int8.qat_self_weight),
                       teacher="", data=recipe.data.train, progress=progress)
        found.append(_deployable(out, "-qat", "+qat", precisions=("int8",)))
    return found
