"""The deployable accident model: exported image encoder + exported temporal head + accident_model.json.

Layout of a model directory (the run directory of `edgeclip video train`):

    accident_model.json            what the device needs: window, threshold, preprocessing, labels
    head.pt, train_config.json     the PyTorch head and how it was trained (for re-export)
    artifacts/encoder-<backend>-<precision>/   image encoder (manifest.json + model), letterbox input
    artifacts/head-<backend>-fp32/             temporal head: features (N, T, D) → logits (N, 2)

Both artifacts go through `edgeclip.exporters.export_model`, so they carry manifests and a parity
check against PyTorch on real inputs (letterboxed dashcam frames; real window features).
`accident_model.json` is written last: a directory without it has no deployable head.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgeclip.backends import get_backend
from edgeclip.errors import UserError
from edgeclip.exporters import export_model
from edgeclip.manifest import Artifact
from edgeclip.io_utils import read_json, write_json
from edgeclip.students.spec import ModelSpec
from edgeclip.video import accident_demo as device
from edgeclip.video.features import FrameEncoder
from edgeclip.video.heads import LABELS
from edgeclip.video.sampling import WindowSampling

HEAD_PRECISION = "fp32"  # the head is ~0.1-1 ms; quantizing it buys nothing and costs agreement


def encoder_spec(encoder: FrameEncoder) -> ModelSpec:
    return ModelSpec(name=encoder.name.split(" (")[0].replace(" ", "_"), kind="image_encoder",
                     preprocess=encoder.preprocess, embed_dim=encoder.embed_dim, input_names=["image"],
                     output_names=["embedding"], dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}})


def head_spec(name: str, sampling: WindowSampling, encoder: FrameEncoder) -> ModelSpec:
    return ModelSpec(name=f"{name}_temporal_head", kind="temporal_head", preprocess=encoder.preprocess,
                     class_names=list(LABELS), embed_dim=encoder.embed_dim, input_names=["features"],
                     output_names=["logits"], dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
                     extra={"frames": sampling.frames})


def export_encoder(encoder: FrameEncoder, run_dir: Path, backend: str, precision: str, frames: np.ndarray) -> Artifact:
    """`artifacts/encoder-<backend>-<precision>`; an encoder that is already an artifact is copied as is."""
    out = run_dir / "artifacts" / f"encoder-{backend}-{precision}"
    if encoder.module is None:  # an exported artifact: the demo runs that very file
        manifest = read_json(Path(encoder.spec) / "manifest.json")
        if (manifest["backend"], manifest["precision"]) != (backend, precision):
            raise UserError(f"encoder {encoder.spec} is a {manifest['backend']}-{manifest['precision']} artifact and "
                            f"cannot be re-exported to {backend}-{precision}; train with the source model instead")
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(encoder.spec, out)
        return Artifact(out, read_json(out / "manifest.json"))
    return export_model(encoder.module, encoder_spec(encoder), backend, precision, out,
                        calibration=frames if precision == "int8" else None, parity_inputs=frames[:16])


def export_head(head: nn.Module, name: str, sampling: WindowSampling, encoder: FrameEncoder, run_dir: Path,
                backend: str, windows: np.ndarray) -> Artifact:
    out = run_dir / "artifacts" / f"head-{backend}-{HEAD_PRECISION}"
    return export_model(head.eval(), head_spec(name, sampling, encoder), backend, HEAD_PRECISION, out,
                        parity_inputs=windows[:32])


def write_model_config(run_dir: Path, encoder: FrameEncoder, head_name: str, head_params: dict[str, Any],
                       sampling: WindowSampling, threshold: float, protocol: str, fps: float) -> Path:
    config = {
        "format": device.MODEL_FORMAT, "version": 1,
        "encoder": encoder.describe(),
        "head": {"name": head_name, "params": head_params, "labels": list(LABELS), "checkpoint": "head.pt"},
        "window": {"frames": sampling.frames, "stride": sampling.stride, "span": sampling.span,
                   "length": sampling.length, "hop": sampling.stride or 1},
        "threshold": threshold,
        "fps_default": fps,
        "protocol": protocol,
    }
    path = run_dir / device.MODEL_FILE
    write_json(path, config)
    return path


def export_accident_model(run_dir: Path, encoder: FrameEncoder, head: nn.Module, head_name: str,
                          head_params: dict[str, Any], sampling: WindowSampling, threshold: float, protocol: str,
                          variants: list[tuple[str, str]], frames: np.ndarray, windows: np.ndarray,
                          fps: float = device.FOLDER_FPS) -> list[Artifact]:
    """Export the encoder (each backend-precision) and the head (each backend), then write accident_model.json."""
    if frames.ndim != 4 or not len(frames):
        raise UserError("no real frames to calibrate and check the encoder export with; the clips gave none")
    artifacts = []
    for backend, precision in variants:
        artifacts.append(export_encoder(encoder, run_dir, backend, precision, frames))
    for backend in dict.fromkeys(backend for backend, _ in variants):
        artifacts.append(export_head(head, head_name, sampling, encoder, run_dir, backend, windows))
    write_model_config(run_dir, encoder, head_name, head_params, sampling, threshold, protocol, fps)
    return artifacts


def parse_variants(backends: list[str], precisions: list[str]) -> list[tuple[str, str]]:
    """`--backend onnx,openvino --precision fp32,int8` → every pair, validated against the backend table."""
    variants = []
    for backend in backends:
        info = get_backend(backend)
        for precision in precisions:
            info.check_precision(precision)
            variants.append((backend, precision))
    return variants
