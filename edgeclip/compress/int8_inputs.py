"""What one int8 export is given — the same for `edgeclip build`, `edgeclip export --precision int8`
and `edgeclip compress int8`, so the three write identical `quantization` options for one recipe.

- `int8_options(settings, validation, target)`: the recipe's `int8:` settings (config.Int8Config)
  for one export: the int8 format is chosen for the target's CPU architecture, and the export-time
  int8-vs-fp32 speed check runs only where this machine is the target (an x86 timing says nothing
  about an arm64 board).
- `int8_images(...)`: the one rule for the images: calibration is a seeded sample of
  `data.calibration_count` images of the calibration data (the train split unless
  `data.calibration` names other data); validation images for the sensitivity search are
  `int8.validation_count` further train images, disjoint from that calibration sample (another
  seed); test images are never used (they judge the result).
- `qat_record(checkpoint)`: the QAT fine-tune a checkpoint went through, recorded in its manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeclip.compress.int8 import Int8Options
from edgeclip.config import Int8Config
from edgeclip.data.base import Subset
from edgeclip.data.sampling import sample_images, sample_indices


def int8_options(settings: Int8Config, validation: np.ndarray | None, target: Any = None, qat: dict[str, Any] | None = None) -> Any:
    """compress.int8.Int8Options for one export of `settings` (see the module doc); `target` is a
    targets.Target or None (this machine)."""
    here = target is None or target.measurable_here
    options = Int8Options.from_config(settings, validation=validation if settings.mixed else None, speed_check=here,
                                      arch=None if here else target_arch(target),
                                      target=None if target is None else target.name, qat=qat)
    options.check()
    return options


def target_arch(target: Any) -> str | None:
    """The CPU architecture int8 kernels will run on for `target` (its profile's first arch), or None
    when the profile names none (any CPU: this machine's then decides)."""
    return target.arch[0] if target is not None and target.arch else None


def int8_images(train: Any, preprocess: Any, settings: Int8Config, *, calibration_count: int, seed: int,
                calibration_data: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(calibration, validation or None) preprocessed images, by the one rule of the module doc.
    `train`/`calibration_data` are image datasets (data.open_image_dataset)."""
    calibration = sample_images(calibration_data if calibration_data is not None else train, preprocess,
                                calibration_count, seed)
    return calibration, validation_images(train, preprocess, settings, calibration_count=calibration_count, seed=seed,
                                          calibration_from_train=calibration_data is None)


def validation_images(train: Any, preprocess: Any, settings: Int8Config, *, calibration_count: int, seed: int,
                      calibration_from_train: bool = True) -> np.ndarray | None:
    """Train images for the int8 sensitivity search, disjoint from the calibration sample; None when
    the settings run no search (classic mode, `mixed: false`, `validation_count: 0`) or no train image
    is left."""
    if settings.mode == "classic" or not settings.mixed or settings.validation_count <= 0:
        return None
    used = set(sample_indices(len(train), calibration_count, seed).tolist()) if calibration_from_train else set()
    rest = [i for i in range(len(train)) if i not in used]
    if not rest:
        return None
    keep = sample_indices(len(rest), settings.validation_count, seed + 1)
    return sample_images(Subset(train, [rest[int(i)] for i in keep]), preprocess, 0)


def qat_record(checkpoint: str | Path) -> dict[str, Any] | None:
    """The QAT fine-tune record of a checkpoint made by `compress qat` / the build (its compress.json)."""
    # lazy: defers torch
    from edgeclip.compress.qat import COMPRESS_JSON

    record = Path(checkpoint) / COMPRESS_JSON
    return json.loads(record.read_text()).get("qat") if record.is_file() else None
