"""CE-trained CNN teachers (paper 000 §4.2–4.5): the non-CLIP side of the capacity-gap table.

ResNets (students/resnet.py: ResNet10/18/34 BasicBlock, ResNet50 Bottleneck, optionally with fewer
filters) trained here with plain cross-entropy on the same (possibly low-shot) training images as
the student. At digit scale (32×32 input) the ImageNet stem (7×7/2 conv + 3×3/2 pool) brings the
map to 8×8 — exactly the 8×8 digits' native resolution — so nothing is lost while the teacher
stays cheap on a CPU. On 32×32 photos (CIFAR-10) that stem throws away 15/16 of the pixels before
the first block, so `cifar_resnet*` are the same nets with the CIFAR stem (3×3/1 conv, no pool) that
the ResNet students use at this size — teachers that can be stronger than the student.

Saved as a directory: `model.pt` (state dict) + `teacher.json` (arch, width, classes, preprocess).
Loading checks that the weights really belong to the recorded (or requested) architecture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from edgeclip.data.preprocess import Preprocess
from edgeclip.errors import UserError, unknown_name_error
from edgeclip.io_utils import atomic_dir, read_json, safe_torch_load, write_json
from edgeclip.students.resnet import ResNet
from edgeclip.teacher.finetuned import META_NAME, load_weights
from edgeclip.utils import count_params

CNN_KIND = "cnn_ce"
# name → (bottleneck blocks?, blocks per stage); widths scale (64, 128, 256, 512).
IMAGENET_STEM_ARCHS: dict[str, tuple[bool, tuple[int, int, int, int]]] = {
    "resnet10": (False, (1, 1, 1, 1)),
    "resnet18": (False, (2, 2, 2, 2)),
    "resnet34": (False, (3, 4, 6, 3)),
    "resnet50": (True, (3, 4, 6, 3)),
}
CIFAR_STEM_PREFIX = "cifar_"
CNN_ARCHS = {**IMAGENET_STEM_ARCHS, **{CIFAR_STEM_PREFIX + name: spec for name, spec in IMAGENET_STEM_ARCHS.items()}}


def build_cnn(arch: str, num_classes: int, width: float = 1.0) -> ResNet:
    """A randomly initialised ResNet `arch` with `width` × the standard filters; the ImageNet stem, or the
    CIFAR stem for `cifar_*` archs."""
    if arch not in CNN_ARCHS:
        raise unknown_name_error("CNN teacher", arch, CNN_ARCHS, "use e.g. --teacher cnn:resnet18 or cnn:resnet34@0.5")
    if not 0 < width <= 4:
        raise UserError(f"CNN teacher width must be in (0, 4], got {width}; write e.g. cnn:resnet34@0.5")
    bottleneck, blocks = CNN_ARCHS[arch]
    return ResNet(num_classes, width=width, blocks=blocks, bottleneck=bottleneck,
                  small_input=arch.startswith(CIFAR_STEM_PREFIX))


class CnnTeacher:
    """A trained CNN classifier used as a KD teacher; outputs computed once per dataset."""

    kind = CNN_KIND

    def __init__(self, model: nn.Module, arch: str, width: float, class_names: Sequence[str], preprocess: Preprocess) -> None:
        self.model = model.eval()
        self.arch = arch
        self.width = width
        self.class_names = list(class_names)
        self.preprocess = preprocess
        self.name = f"{arch}" + ("" if width == 1 else f"@{width:g}") + "-ce"
        self.training: dict[str, Any] | None = None  # set by train_cnn_teacher: accuracy in train vs eval mode

    @property
    def num_params(self) -> int:
        return count_params(self.model)

    @torch.no_grad()
    def logits(self, dataset: Any, batch_size: int = 256) -> torch.Tensor:
        """Eval-mode logits (N, C) over an ImageDataset, in index order."""
        import numpy as np

        self.model.eval()
        outputs = []
        for start in range(0, len(dataset), batch_size):  # streamed: a big folder never sits in memory whole
            batch = np.stack([self.preprocess(dataset.load(i)) for i in range(start, min(start + batch_size, len(dataset)))])
            outputs.append(self.model(torch.from_numpy(batch)))
        return torch.cat(outputs) if outputs else torch.empty(0)

    @torch.no_grad()
    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.eval()(images)

    def describe(self) -> dict[str, Any]:
        described = {"kind": self.kind, "name": self.name, "arch": self.arch, "width": self.width, "params": self.num_params}
        if self.training:
            described["training"] = self.training
        return described

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            torch.save(self.model.state_dict(), tmp / "model.pt")
            write_json(tmp / META_NAME, {"kind": self.kind, "arch": self.arch, "width": self.width,
                                         "class_names": self.class_names, "preprocess": self.preprocess.to_dict()})
        return directory

    @classmethod
    def load(cls, directory: str | Path, expect_arch: str | None = None) -> "CnnTeacher":
        """Reload a saved teacher; `expect_arch` (from `cnn:ARCH:/path`) must match what it is."""
        directory = Path(directory)
        meta = read_json(directory / META_NAME)
        if meta.get("kind") != CNN_KIND:
            raise UserError(f"{directory} is a '{meta.get('kind')}' teacher, not a CE-trained CNN; pass it as --teacher {directory}")
        if expect_arch is not None and expect_arch != meta["arch"]:
            raise UserError(f"teacher checkpoint {directory} is a {meta['arch']}, not a {expect_arch}; "
                            f"use --teacher cnn:{meta['arch']}:{directory} or a {expect_arch} checkpoint")
        model = build_cnn(meta["arch"], len(meta["class_names"]), float(meta["width"]))
        state = safe_torch_load(directory / "model.pt", "CNN teacher weights", "re-train the teacher (--teacher cnn:ARCH)")
        load_weights(model, state, directory, f"{meta['arch']} (width {meta['width']:g})")
        return cls(model, meta["arch"], float(meta["width"]), meta["class_names"], Preprocess.from_dict(meta["preprocess"]))


def parse_cnn_spec(spec: str) -> tuple[str, float, str | None]:
    """`cnn:ARCH[@WIDTH][:/path]` → (arch, width, checkpoint path or None)."""
    body = spec.split(":", 1)[1] if spec.startswith("cnn:") else spec
    name, _, path = body.partition(":")
    arch, _, width_text = name.partition("@")
    try:
        width = float(width_text) if width_text else 1.0
    except ValueError:
        raise UserError(f"teacher '{spec}': width '{width_text}' is not a number; write e.g. cnn:resnet34@0.5") from None
    if arch not in CNN_ARCHS:
        raise unknown_name_error("CNN teacher", arch, CNN_ARCHS, "write e.g. --teacher cnn:resnet18")
    return arch, width, path or None
