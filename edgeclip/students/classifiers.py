"""Task classifiers (papers 000 and 002): MobileNetV3-S/L from timm and width-scaled ResNet18.

Every classifier maps (N,3,H,W) → logits (N,C) and starts from random weights (no hub offline).
"""

from __future__ import annotations

from functools import partial

import timm
from torch import nn

from edgeclip.students.registry import clip_preprocess, register_student
from edgeclip.students.resnet import resnet18
from edgeclip.students.spec import ModelSpec

DEFAULT_IMAGE_SIZE = 224
TEST_IMAGE_SIZE = 32
# ResNets switch to the CIFAR stem (3×3, no max-pool) at or below this input size.
SMALL_INPUT_MAX = 64


def classifier_spec(name: str, class_names: list[str], image_size: int, architecture: str) -> ModelSpec:
    """Spec for an (N,3,S,S) → (N,C) classifier with a dynamic batch axis."""
    return ModelSpec(
        name=name,
        kind="classifier",
        preprocess=clip_preprocess(image_size),
        class_names=list(class_names),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        extra={"architecture": architecture},
    )


def _timm_classifier(
    student: str, timm_name: str, default_size: int, *, class_names: list[str], image_size: int | None = None
) -> tuple[nn.Module, ModelSpec]:
    size = image_size or default_size
    model = timm.create_model(timm_name, pretrained=False, num_classes=len(class_names))
    return model, classifier_spec(student, class_names, size, f"timm:{timm_name}")


def _resnet18_classifier(
    student: str, width: float, default_size: int, *, class_names: list[str], image_size: int | None = None
) -> tuple[nn.Module, ModelSpec]:
    size = image_size or default_size
    small_input = size <= SMALL_INPUT_MAX
    model = resnet18(len(class_names), width=width, small_input=small_input)
    stem = "cifar" if small_input else "imagenet"
    return model, classifier_spec(student, class_names, size, f"resnet18(width={width:g}, stem={stem})")


_TIMM_CLASSIFIERS = {
    "mobilenetv3_small": ("mobilenetv3_small_100", DEFAULT_IMAGE_SIZE, "MobileNetV3-Small 1.0 (timm), paper 000's small student"),
    "mobilenetv3_large": ("mobilenetv3_large_100", DEFAULT_IMAGE_SIZE, "MobileNetV3-Large 1.0 (timm), paper 000's large student"),
    "test_mobilenetv3": ("mobilenetv3_small_050", TEST_IMAGE_SIZE, "tiny MobileNetV3-Small 0.5 for tests (32x32 by default)"),
}

_RESNETS = {
    "resnet18": (1.0, DEFAULT_IMAGE_SIZE, "ResNet18, full width (64-512 filters)"),
    "resnet18_w2": (1 / 2, DEFAULT_IMAGE_SIZE, "ResNet18 with 1/2 of the filters"),
    "resnet18_w4": (1 / 4, DEFAULT_IMAGE_SIZE, "ResNet18 with 1/4 of the filters"),
    "resnet18_w8": (1 / 8, DEFAULT_IMAGE_SIZE, "ResNet18 with 1/8 of the filters (paper 000's tiny student)"),
    "test_resnet": (1 / 16, TEST_IMAGE_SIZE, "tiny ResNet18 with 1/16 of the filters for tests (32x32 by default)"),
}

for _name, (_timm_name, _size, _description) in _TIMM_CLASSIFIERS.items():
    register_student(_name, "classifier", _description)(partial(_timm_classifier, _name, _timm_name, _size))

for _name, (_width, _size, _description) in _RESNETS.items():
    register_student(_name, "classifier", _description)(partial(_resnet18_classifier, _name, _width, _size))
