"""Compression inside `edgeclip build`: the int8 options of its exports.

The build exports every deployable for every planned (backend, precision) and its verdict picks
the fastest row that passed; compression plugs into exactly that:
- `int8_options`: how int8 artifacts are made (recipe `int8:`), with validation images for the
  sensitivity search taken from the train split and disjoint from the calibration sample.
- the pruned and QAT candidates (`<student>+pruned50` / `<student>+qat`) are build/compression.py's.
Whether an int8 row ships instead of fp32 is decided by compress/ship_rule.py (the one rule for the
build's verdict, its report and the benchmarks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeclip.compress.int8 import Int8Options
from edgeclip.data import Subset
from edgeclip.data.sampling import sample_images, sample_indices


def int8_options(recipe: Any, validation: np.ndarray | None, target: Any = None) -> Any:
    """The recipe's int8 options for `target`: the int8 format is chosen for the target's CPU
    architecture, and the export-time int8-vs-fp32 speed check runs only where this machine is the
    target (an x86 timing says nothing about an arm64 board)."""
    cfg = recipe.int8
    here = target is None or target.measurable_here
    options = Int8Options(mode=cfg.mode, calibration_method=cfg.calibration_method, percentile=cfg.percentile,
                          weights=cfg.weights, ignored_scope=list(cfg.ignored_scope), mixed=cfg.mixed,
                          target_agreement=cfg.target_agreement, max_float_fraction=cfg.max_float_fraction,
                          smoothquant_alpha=cfg.smoothquant_alpha, validation=validation if cfg.mixed else None,
                          speed_check=here, arch=None if here else target_arch(target),
                          target=None if target is None else target.name)
    options.check()
    return options


def target_arch(target: Any) -> str | None:
    """The CPU architecture int8 kernels will run on for `target` (its profile's first arch), or None
    when the profile names none (any CPU: this machine's then decides)."""
    return target.arch[0] if target is not None and target.arch else None


def options_for(options: Any, deployable: Any) -> Any:
    """The int8 options for one deployable: a QAT copy's record goes into its manifest."""
    import dataclasses
    import json

    # lazy: defers torch
    from edgeclip.compress.qat import COMPRESS_JSON

    record = Path(deployable.checkpoint) / COMPRESS_JSON
    qat = json.loads(record.read_text()).get("qat") if record.is_file() else None
    return dataclasses.replace(options, qat=qat) if qat else options


def validation_images(recipe: Any, train: Any, preprocess: Any) -> np.ndarray | None:
    """Train images for the int8 sensitivity search, disjoint from the calibration sample."""
    if recipe.int8.mode == "classic" or not recipe.int8.mixed or recipe.int8.validation_count <= 0:
        return None
    used = set() if recipe.data.calibration else set(sample_indices(len(train), recipe.data.calibration_count, recipe.seed).tolist())
    rest = [i for i in range(len(train)) if i not in used]
    if not rest:
        return None
    keep = sample_indices(len(rest), recipe.int8.validation_count, recipe.seed + 1)
    return sample_images(Subset(train, [rest[int(i)] for i in keep]), preprocess, 0)
