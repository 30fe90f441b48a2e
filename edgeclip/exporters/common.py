"""Pieces every backend exporter shares: example inputs, calibration checks, I/O description."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from edgeclip.errors import UserError
from edgeclip.students.spec import ModelSpec
# Token ids of open_clip's tokenizer: start/end-of-text. EOT is the largest id, which is what
# argmax pooling relies on.
SOT_TOKEN, EOT_TOKEN = 49406, 49407


@dataclass
class ExportResult:
    """What a backend exporter hands back to `export_model` to go into the manifest."""

    model_file: str
    exporter: str
    quantization: dict[str, Any] | None = None
    status: str = "ready"  # or "needs_target_build", or "failed" (next_step says why: e.g. TensorRT would refuse it)
    next_step: str = ""
    runtime_hints: dict[str, Any] = field(default_factory=dict)
    # How parity is checked: "runtime" (load this artifact's runtime), "simulated" (call
    # `parity_runner`, which runs what the target will run as closely as this machine can: TensorRT
    # without an engine), or "skipped:<reason>".
    parity_mode: str = "runtime"
    parity_runner: Callable[[np.ndarray], np.ndarray] | None = None
    parity_scope: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def example_input(spec: ModelSpec, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Example for tracing. Batch ≥ 2 so no exporter can specialise the batch dim to 1 (DESIGN §5)."""
    generator = torch.Generator().manual_seed(seed)
    if spec.is_text:
        context = int(spec.context_length or 77)
        tokens = torch.zeros(batch, context, dtype=torch.long)
        for row in range(batch):
            # Different prompt lengths per row, so EOT-position pooling is traced as data-dependent.
            length = max(2, context - 1 - 3 * row) if context > 2 else context
            tokens[row, :length] = torch.randint(1, SOT_TOKEN, (length,), generator=generator)
            tokens[row, 0], tokens[row, length - 1] = SOT_TOKEN, EOT_TOKEN
        return tokens
    if spec.kind == "temporal_head":
        return torch.randn(batch, *spec.input_shape()[1:], generator=generator)
    if spec.input_dtype == "uint8":  # fused preprocessing: raw RGB frames
        return torch.randint(0, 256, (batch, *spec.input_shape()[1:]), generator=generator, dtype=torch.uint8)
    size = spec.preprocess.size
    return torch.randn(batch, 3, size, size, generator=generator)


def check_inputs(spec: ModelSpec, array: np.ndarray | None, what: str) -> np.ndarray | None:
    """Validate calibration/parity inputs against the model's input shape; None stays None."""
    if array is None:
        return None
    array = np.asarray(array)
    if array.size == 0 or len(array) == 0:
        raise UserError(f"the {what} set is empty; give at least one image (e.g. --calibration-count 64)")
    expected = spec.input_shape()[1:]
    if list(array.shape[1:]) != expected:
        raise UserError(
            f"{what} inputs have shape {list(array.shape)} but model '{spec.name}' takes (N, {', '.join(map(str, expected))}); "
            "preprocess them with the model's spec.preprocess"
        )
    if spec.input_dtype == "uint8":
        if array.dtype != np.uint8:  # a float tensor here is a preprocessed image: the wrong input, not a cast away
            raise UserError(f"{what} inputs are {array.dtype} but '{spec.name}' takes uint8 RGB frames (fused "
                            "preprocessing); pass raw frames (e.g. spec.preprocess.to_frame(image))")
        return array
    return array.astype(np.int64) if spec.is_text else array.astype(np.float32)


def require_calibration(spec: ModelSpec, calibration: np.ndarray | None, backend: str, method: str) -> np.ndarray:
    if calibration is None:
        raise UserError(
            f"{backend} int8 ({method}) needs calibration inputs; pass real images "
            "(edgeclip export --calibration DATA) — the calibration set is empty or missing"
        )
    return calibration


@torch.no_grad()
def reference_outputs(model: nn.Module, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The unexported fp32 PyTorch model's first output (the parity reference)."""
    outputs = []
    for start in range(0, len(inputs), batch_size):
        out = model(torch.from_numpy(np.ascontiguousarray(inputs[start:start + batch_size])))
        out = out[0] if isinstance(out, (tuple, list)) else out
        outputs.append(out.float().cpu().numpy())
    return np.concatenate(outputs)


@torch.no_grad()
def output_shape(model: nn.Module, spec: ModelSpec) -> list[Any]:
    out = model(example_input(spec))
    out = out[0] if isinstance(out, (tuple, list)) else out
    return ["batch", *[int(d) for d in out.shape[1:]]]


def is_transformer(model: nn.Module) -> bool:
    """Attention anywhere → transformer (dynamic int8 suits it); otherwise treat as a CNN (static QDQ)."""
    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention) or "attention" in type(module).__name__.lower():
            return True
    return False
