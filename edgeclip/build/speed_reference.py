"""Speed-reference rows: the real teacher architecture, random weights, exported like the students.

Offline the accuracy teacher is a tiny proxy (faster than the students), so without this the
report could never say what deploying a student instead of CLIP saves. The reference is the
teacher architecture's image tower (ViT-B/32 by default, the recipe's open_clip architecture when
it names one) with random weights: correct for latency, size and FLOPs, meaningless for accuracy
(its rows carry none). It is exported once per (architecture, backend, precision, tool versions)
into the cache and reused by every later build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeclip.backends import get_backend
from edgeclip.bench.report import ReportRow
from edgeclip.config import Recipe
from edgeclip.errors import UserError, unknown_name_error
from edgeclip.exporters import export_model
from edgeclip.manifest import MANIFEST_NAME, tool_versions
from edgeclip.paths import cache_dir
from edgeclip.utils import stable_hash

DEFAULT_ARCH = "ViT-B-32"
ROLE = "speed_reference"
CALIBRATION_COUNT = 16  # random inputs: int8 scales of a random-weight tower only need to be plausible


def speed_reference_arch(recipe: Recipe) -> str | None:
    """The open_clip architecture to time, or None when `bench.speed_reference` is "none"."""
    import open_clip

    choice = recipe.bench.speed_reference
    if choice == "none":
        return None
    if choice == "auto":
        arch = recipe.teacher.split(":", 1)[0]
        return arch if arch in open_clip.list_models() else DEFAULT_ARCH
    if choice not in open_clip.list_models():
        raise unknown_name_error("speed-reference architecture", choice, open_clip.list_models(),
                                 "set bench.speed_reference to an open_clip architecture, auto or none")
    return choice


def image_tower(arch: str) -> tuple[Any, Any]:
    """(ImageTower module, spec) of `arch` with random weights; the seed makes the export reproducible."""
    # lazy: defers torch
    import open_clip
    import torch

    from edgeclip.exporters.towers import ImageTower, image_tower_spec

    torch.manual_seed(0)
    model = open_clip.create_model(arch, pretrained=None).eval()
    spec = image_tower_spec(model, f"{arch} image tower (speed reference)")
    spec.extra["role"] = ROLE
    return ImageTower(model).eval(), spec


def cache_key(arch: str, backend: str, precision: str, tensorrt: str | None = None) -> str:
    # A TensorRT kit is written for one TensorRT version (opset, LayerNorm form): one cache entry each.
    version = f"-trt{tensorrt or 'default'}" if get_backend(backend).version_key else ""
    return f"{arch}-{backend}-{precision}{version}-{stable_hash(tool_versions(), length=10)}"


def speed_reference_artifacts(arch: str, exports: list[tuple[str, str]], *, log: Callable[[str], None] = print,
                              tower_factory: Callable[[str], tuple[Any, Any]] | None = None,
                              tensorrt: str | None = None) -> tuple[list[Path], list[Any]]:
    """Artifact dirs of `arch`'s image tower for every (backend, precision); exported on first use.

    Returns (artifact dirs, failed ReportRows for exports that broke). Random inputs serve as
    calibration and parity inputs: the weights are random too, only speed is measured.
    """
    directories: list[Path] = []
    failed: list[Any] = []
    tower = None
    for backend, precision in exports:
        directory = cache_dir() / "speed-reference" / cache_key(arch, backend, precision, tensorrt)
        if not (directory / MANIFEST_NAME).is_file():
            if tower is None:
                tower = (tower_factory or image_tower)(arch)
            model, spec = tower
            size = spec.preprocess.size
            inputs = np.random.default_rng(0).standard_normal((CALIBRATION_COUNT, 3, size, size)).astype(np.float32)
            log(f"exporting the speed reference {arch} {backend}-{precision} (once; cached in {directory.parent})")
            try:
                export_model(model, spec, backend, precision, directory, calibration=inputs, parity_inputs=inputs[:4],
                             tensorrt=tensorrt)
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - a reference that cannot export is a failed row, not a crash
                failed.append(ReportRow.failed(spec.name, f"export: {type(exc).__name__}: {exc}", role=ROLE,
                                               backend=backend, precision=precision))
                continue
        directories.append(directory)
    return directories, failed
