"""FLOP counting that sees attention (DESIGN §5 FLOP trap).

`FlopCounterMode` only counts ops it recognises. The fused multi-head-attention fast path and the
flash/memory-efficient SDPA kernels are invisible to it, so a ViT is under-counted by a third.
Counting under the MATH SDPA kernel with the MHA fast path off decomposes attention into
matmuls it counts. FLOPs here are FlopCounterMode's: 2 x multiply-accumulates.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


@contextlib.contextmanager
def countable_attention() -> Iterator[None]:
    """MATH SDPA kernel and MHA fast path off for the duration; the previous fast-path setting is restored."""
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def count_flops(module: torch.nn.Module | Callable[..., Any], example_inputs: Sequence[Any] | torch.Tensor) -> int:
    """FLOPs (2 x MACs) of one forward of `module(*example_inputs)`; a bound method works too."""
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    was_training = getattr(module, "training", None)
    if isinstance(module, torch.nn.Module):
        module.eval()  # dropout/batch-norm in train mode add no matmuls but change code paths
    try:
        with countable_attention(), torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(*inputs)
    finally:
        if isinstance(module, torch.nn.Module) and was_training:
            module.train()
    return int(counter.get_total_flops())


def _image_size(model: torch.nn.Module) -> int:
    size = getattr(getattr(model, "visual", None), "image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def count_tower_flops(model: torch.nn.Module, image_size: int | None = None, context_length: int | None = None) -> dict[str, int]:
    """Per-tower FLOPs of an open_clip dual encoder: {"image": ..., "text": ...} at batch 1.

    Image tower: `encode_image` on (1, 3, S, S); text tower: `encode_text` on (1, context) int64.
    A model without a text tower (an image-only encoder) reports only "image".
    """
    size = image_size or _image_size(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        flops = {"image": count_flops(model.encode_image, (torch.zeros(1, 3, size, size, device=device),))}
        if hasattr(model, "encode_text"):
            context = context_length or int(getattr(model, "context_length", 77))
            # Token ids 1..n keep any "argmax = end of text" pooling well defined.
            tokens = torch.arange(1, context + 1, dtype=torch.int64, device=device).unsqueeze(0)
            flops["text"] = count_flops(model.encode_text, (tokens,))
    finally:
        model.train(was_training)
    return flops


def conv_flops_by_kind(model: torch.nn.Module, example: torch.Tensor) -> dict[str, int]:
    """FLOPs (2 x MACs) of one forward's convolutions by kind, named as bench/ort_profile.conv_kinds
    names them ("depthwise conv", "1x1 conv", "3x3 conv", ...), so a profile's time per kind becomes
    GFLOP/s per kind."""
    totals: dict[str, int] = {}

    def hook(module: torch.nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        kernel = tuple(module.kernel_size)
        if module.groups > 1:
            kind = "depthwise conv"
        elif all(k == 1 for k in kernel):
            kind = "1x1 conv"
        else:
            kind = f"{'x'.join(map(str, kernel))} conv"
        macs = output.numel() * (module.in_channels // module.groups) * math.prod(kernel)
        totals[kind] = totals.get(kind, 0) + 2 * macs

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for handle in handles:
            handle.remove()
    return totals
