"""Task classifiers (papers 000 and 002): MobileNetV3-S/L and MobileNetV4-conv-small from timm,
width-scaled ResNet18 and RepVGG-style re-parameterisable students (repvgg.py).

Every classifier maps (N,3,H,W) → logits (N,C) and starts from random weights (no hub offline).
"""

from __future__ import annotations

from functools import partial

import timm
from torch import nn

from edgeclip.students.registry import clip_preprocess, register_student
from edgeclip.students.repvgg import REPVGG_A_DEPTHS, RepVGG, repvgg_widths
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

def _mobilenetv4_classifier(
    student: str, timm_name: str, default_size: int, *, class_names: list[str], image_size: int | None = None
) -> tuple[nn.Module, ModelSpec]:
    """timm's MobileNetV4-conv; at CIFAR sizes (<= SMALL_INPUT_MAX) the stem and the first stage do
    not stride (total stride 8, not 32), so a 32×32 input reaches the last stage at 4×4 instead of
    1×1 — the same idea as the ResNets' CIFAR stem."""
    size = image_size or default_size
    model = timm.create_model(timm_name, pretrained=False, num_classes=len(class_names))
    small_input = size <= SMALL_INPUT_MAX
    if small_input:
        model.conv_stem.stride = (1, 1)
        model.blocks[0][0].conv.stride = (1, 1)
    stem = "cifar (stride 8)" if small_input else "imagenet (stride 32)"
    return model, classifier_spec(student, class_names, size, f"timm:{timm_name}(stem={stem})")


def _repvgg_classifier(
    student: str, width: float, default_size: int, *, class_names: list[str], image_size: int | None = None
) -> tuple[nn.Module, ModelSpec]:
    size = image_size or default_size
    small_input = size <= SMALL_INPUT_MAX
    model = RepVGG(len(class_names), widths=repvgg_widths(width), depths=REPVGG_A_DEPTHS, small_input=small_input)
    stem = "cifar" if small_input else "imagenet"
    return model, classifier_spec(student, class_names, size, f"repvgg_a(width={width:g}, stem={stem})")


_MOBILENETV4 = {
    "mobilenetv4_conv_small": ("mobilenetv4_conv_small", DEFAULT_IMAGE_SIZE,
                               "MobileNetV4-conv-small (timm); stride 8 at CIFAR sizes"),
    "mobilenetv4_conv_small_050": ("mobilenetv4_conv_small_050", DEFAULT_IMAGE_SIZE,
                                   "MobileNetV4-conv-small 0.5 (timm); stride 8 at CIFAR sizes"),
    "test_mobilenetv4": ("mobilenetv4_conv_small_035", TEST_IMAGE_SIZE,
                         "tiny MobileNetV4-conv-small 0.35 for tests (32x32 by default)"),
}

# RepVGG-A layout (1, 2, 4, 14, 1 blocks), widths scaled from A0's; deployed folded to plain 3×3 convs.
_REPVGGS = {
    "repvgg_a0_w4": (1 / 4, DEFAULT_IMAGE_SIZE, "RepVGG-A0 with 1/4 of the filters (3x3+1x1+identity, folded on export)"),
    "repvgg_a0_w8": (1 / 8, DEFAULT_IMAGE_SIZE, "RepVGG-A0 with 1/8 of the filters (3x3+1x1+identity, folded on export)"),
    "test_repvgg": (1 / 16, TEST_IMAGE_SIZE, "tiny RepVGG-A0 with 1/16 of the filters for tests (32x32 by default)"),
}

_RESNETS = {
    "resnet18": (1.0, DEFAULT_IMAGE_SIZE, "ResNet18, full width (64-512 filters)"),
    "resnet18_w2": (1 / 2, DEFAULT_IMAGE_SIZE, "ResNet18 with 1/2 of the filters"),
    "resnet18_w4": (1 / 4, DEFAULT_IMAGE_SIZE, "ResNet18 with 1/4 of the filters"),
    "resnet18_w8": (1 / 8, DEFAULT_IMAGE_SIZE, "ResNet18 with 1/8 of the filters (paper 000's tiny student)"),
    "resnet18_w16": (1 / 16, DEFAULT_IMAGE_SIZE, "ResNet18 with 1/16 of the filters (4-32): at 32x32 under 1/10 of proxy-cifar10's tower FLOPs"),
    "test_resnet": (1 / 16, TEST_IMAGE_SIZE, "tiny ResNet18 with 1/16 of the filters for tests (32x32 by default)"),
}

for _name, (_timm_name, _size, _description) in _TIMM_CLASSIFIERS.items():
    register_student(_name, "classifier", _description)(partial(_timm_classifier, _name, _timm_name, _size))

for _name, (_width, _size, _description) in _RESNETS.items():
    register_student(_name, "classifier", _description)(partial(_resnet18_classifier, _name, _width, _size))

for _name, (_timm_name, _size, _description) in _MOBILENETV4.items():
    register_student(_name, "classifier", _description)(partial(_mobilenetv4_classifier, _name, _timm_name, _size))

for _name, (_width, _size, _description) in _REPVGGS.items():
    register_student(_name, "classifier", _description)(partial(_repvgg_classifier, _name, _width, _size))
