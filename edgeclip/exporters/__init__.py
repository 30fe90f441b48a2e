"""edgeclip.exporters: one module per backend, export orchestration and the parity check.

Public entry points (imported lazily so `edgeclip.manifest` stays torch-free for runtimes):
- `export_model(model, spec, backend, precision, out_dir, ...) -> Artifact` (exporters/export.py)
- `Artifact`, `read_manifest` (edgeclip/manifest.py); the backend table is edgeclip/backends.py
- `ImageTower`, `TextTower`, `FusedZeroShotClassifier` (+ `*_spec` helpers) (exporters/towers.py)
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "export_model": "edgeclip.exporters.export",
    "Artifact": "edgeclip.manifest",
    "read_manifest": "edgeclip.manifest",
    "ImageTower": "edgeclip.exporters.towers",
    "TextTower": "edgeclip.exporters.towers",
    "FusedZeroShotClassifier": "edgeclip.exporters.towers",
    "image_tower_spec": "edgeclip.exporters.towers",
    "text_tower_spec": "edgeclip.exporters.towers",
    "zero_shot_classifier_spec": "edgeclip.exporters.towers",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeclip.exporters' has no attribute '{name}'")


__all__ = sorted(_LAZY)
