"""Students: the registry of small models edgeclip distills CLIP into, their specs and checkpoints.

- `create_student(name, class_names=..., image_size=..., teacher_model=...) -> (model, spec)`,
  `list_students()`, `STUDENTS` (students/registry.py);
- classifiers: MobileNetV3-S/L (timm), ResNet18 at widths 1, 1/2, 1/4, 1/8 (classifiers.py, resnet.py);
- DistillCLIP dual encoders from open_clip JSON configs in edgeclip/model_configs/, with text-tower
  initialisation from a teacher (dual_encoder.py);
- `save_checkpoint` / `load_checkpoint` (checkpoint.py); `ModelSpec` (spec.py).

Names are imported lazily so that `edgeclip.students.spec` stays light (no timm/open_clip import).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "STUDENTS": "edgeclip.students.registry",
    "create_student": "edgeclip.students.registry",
    "list_students": "edgeclip.students.registry",
    "init_text_from_teacher": "edgeclip.students.dual_encoder",
    "save_checkpoint": "edgeclip.students.checkpoint",
    "load_checkpoint": "edgeclip.students.checkpoint",
    "ModelSpec": "edgeclip.students.spec",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeclip.students' has no attribute {name!r}")
