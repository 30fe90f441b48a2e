"""Preprocessing inside the exported graph: a raw uint8 RGB frame in, the model's output out.

`fuse_preprocessing(model, spec, frame)` wraps an image model (classifier, image tower, fused
zero-shot classifier) in `FusedPreprocess`, which does in the graph what `data.preprocess.Preprocess`
does on the host: cast, NHWC → NCHW, the artifact's resize geometry (letterbox / center_crop /
stretch; with a fixed frame size every offset is static), /255 and mean/std folded into one Mul and
one Add (letterbox: Mul, Pad with 0, Add), then the model. The host does no numpy work per frame.

The resize is an integer box pre-filter (the mean of kh×kw pixels: ReduceMean over rows, AveragePool
over columns) followed by a bilinear Resize (half-pixel centres, no antialias attribute) to PIL's
target size. Why not Resize's own
`antialias` (opset 18), measured here with torch 2.14 / onnxruntime 1.32 / OpenVINO 2026.4: the
TorchScript exporter cannot export it (`aten::_upsample_bilinear2d_aa` unsupported), the dynamo
exporter writes it and onnxruntime matches PyTorch (max |Δ| 5e-7 on a 360×640 → 32×57 resize), but
OpenVINO's ONNX frontend computes another result (max |Δ| 0.51 on [0,1] pixels; openvinotoolkit/openvino
issue #35893: its CPU plugin ignores `antialias`), and TensorRT's ONNX parser refuses antialiasing
(onnx-tensorrt operators.md, NVIDIA/TensorRT issue #3560). onnxruntime's CPU kernel implements it
the way PIL does (microsoft/onnxruntime PR #13890). The box mean + bilinear Resize run the same
on all three. The host path resizes with PIL bicubic (antialiased); what the difference costs is
measured at export (`classic_agreement` in the manifest) and in benchmarks/fused_preprocessing.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from edgeclip.data.preprocess import FrameGeometry, Preprocess, frame_geometry, parse_frame_size
from edgeclip.errors import UserError
from edgeclip.students.spec import IMAGE_KINDS, LOGIT_KINDS, ModelSpec

RESIZE_METHOD = "box pre-filter (mean of kh×kw pixels, integer factor) + bilinear (half-pixel, no antialias)"


class FusedPreprocess(nn.Module):
    """(N, H, W, 3) uint8 RGB frames → `model`'s output, with `preprocess` done in the graph."""

    def __init__(self, model: nn.Module, preprocess: Preprocess, frame: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.geometry: FrameGeometry = frame_geometry(preprocess, frame)
        mean = torch.tensor(preprocess.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(preprocess.std, dtype=torch.float32).view(1, 3, 1, 1)
        pad = torch.tensor(preprocess.pad_value if self.geometry.pad else (0, 0, 0), dtype=torch.float32).view(1, 3, 1, 1)
        # ((x - pad)/255 - mean)/std + (pad/255 - mean)/std ... folded: y = (x - pad)·scale + bias; the
        # padded border is 0 before the Add, so it becomes (pad/255 - mean)/std, PIL's pad pixel normalized.
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("bias", (pad / 255.0 - mean) / std)
        self.register_buffer("pad_pixel", pad)
        self.shift_pad = bool(self.geometry.pad) and any(v != 0 for v in preprocess.pad_value)
        self.size = preprocess.size

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        # To the buffers' dtype: float32 when exported, fp16 in the TensorRT fp16 parity simulation. The cast
        # comes first: TensorRT slices, reshapes and transposes no UINT8 tensor (its Cast takes UINT8 from 8.6).
        x = frames.to(self.scale.dtype)
        top, left, height, width = g.trim
        if (height, width) != g.frame:
            x = x[:, top:top + height, left:left + width, :]
        kh, kw = g.pool
        # The box pre-filter: rows as reshape + mean on the NHWC frame (whole contiguous rows), the transpose on the
        # row-reduced tensor, columns as AveragePool (1, kw). Measured on this CPU, 1 thread (benchmarks/results/
        # fused_preprocessing.md, and the variants tried before it): a 720p frame with k=5 takes 1.6 ms in onnxruntime /
        # 3.0 ms in OpenVINO against 4.0 / 6.6 ms for transpose-then-AveragePool; a reshape + mean over the columns too
        # was as fast in OpenVINO but 4.4 ms in onnxruntime for k=3 to 5.
        if kh > 1:
            x = x.reshape(-1, height // kh, kh, width * 3).mean(dim=2).reshape(-1, height // kh, width, 3)
        x = x.permute(0, 3, 1, 2)
        if kw > 1:
            x = F.avg_pool2d(x, kernel_size=(1, kw), stride=(1, kw))
        if (height // g.pool[0], width // g.pool[1]) != g.resized:
            x = F.interpolate(x, size=g.resized, mode="bilinear", align_corners=False)
        if g.crop is not None:
            x = x[:, :, g.crop[0]:g.crop[0] + self.size, g.crop[1]:g.crop[1] + self.size]
        if g.pad is not None:
            if self.shift_pad:
                x = x - self.pad_pixel
            x = F.pad(x * self.scale, (g.pad[2], g.pad[3], g.pad[0], g.pad[1]))
            return x + self.bias
        return x * self.scale + self.bias

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(frames))


def check_frame(frame: Any) -> tuple[int, int]:
    """(height, width) from '720x1280' or a pair; UserError with the fix otherwise."""
    if isinstance(frame, str):
        try:
            return parse_frame_size(frame)
        except ValueError as exc:
            raise UserError(f"--fused-preprocess: {exc}") from None
    try:
        height, width = (int(v) for v in frame)
    except (TypeError, ValueError):
        raise UserError(f"fused_preprocess={frame!r} is not a frame size; pass (height, width) or 'HxW' like 720x1280") from None
    try:
        return parse_frame_size(f"{height}x{width}")
    except ValueError as exc:
        raise UserError(f"fused_preprocess: {exc}") from None


def fuse_preprocessing(model: nn.Module, spec: ModelSpec, frame: Any) -> tuple[FusedPreprocess, ModelSpec]:
    """`model` wrapped to take uint8 (N, H, W, 3) frames of `frame`'s size, and its spec (input dtype uint8)."""
    if spec.kind not in IMAGE_KINDS:
        what = "a text encoder takes token ids" if spec.is_text else f"a {spec.kind} does not take images"
        raise UserError(f"fused preprocessing needs an image model, but '{spec.name}' is a {spec.kind} ({what}); "
                        "drop --fused-preprocess for it (dual encoders: --tower image or fused)")
    if spec.preprocess.fused:
        raise UserError(f"model '{spec.name}' already takes frames (fused preprocessing); export it without --fused-preprocess")
    height, width = check_frame(frame)
    try:
        wrapper = FusedPreprocess(model.eval(), spec.preprocess, (height, width))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    fused_spec = replace(spec, preprocess=replace(spec.preprocess, fused_frame=(height, width)),
                         extra={**spec.extra, "fused_preprocessing": describe(wrapper)})
    return wrapper.eval(), fused_spec


def describe(wrapper: FusedPreprocess) -> dict[str, Any]:
    """The manifest's `fused_preprocessing` block (what the graph does before the model)."""
    return {"frame": list(wrapper.geometry.frame), "input": "uint8 RGB (N, H, W, 3)", "resize": RESIZE_METHOD,
            "geometry": wrapper.geometry.to_dict(), "normalize": "one Mul and one Add (scale 1/(255·std), bias -mean/std)"}


def frames_from_images(images: Sequence[Image.Image], preprocess: Preprocess) -> np.ndarray:
    """uint8 (N, H, W, 3) frames of `preprocess.fused_frame`'s size (other sizes stretched, PIL bilinear)."""
    return np.stack([preprocess.to_frame(image) for image in images])


@torch.no_grad()
def classic_agreement(model: nn.Module, spec: ModelSpec, frames: np.ndarray, fused_outputs: np.ndarray) -> dict[str, Any]:
    """How the fused artifact's outputs on `frames` compare with the classic path on the same frames:
    PIL preprocessing on the host (`spec.preprocess.classic()`, bicubic) + the unfused PyTorch model."""
    classic = spec.preprocess.classic()
    batch = np.stack([classic(Image.fromarray(frame)) for frame in frames])
    reference = model.eval()(torch.from_numpy(batch))
    reference = (reference[0] if isinstance(reference, (tuple, list)) else reference).float().numpy()
    fused = np.asarray(fused_outputs, dtype=np.float64).reshape(len(frames), -1)
    ref = reference.astype(np.float64).reshape(len(frames), -1)
    cosine = (fused * ref).sum(1) / np.maximum(np.linalg.norm(fused, axis=1) * np.linalg.norm(ref, axis=1), 1e-12)
    record: dict[str, Any] = {
        "against": f"PIL {classic.interpolation} {classic.resize_mode} on the host + the unfused PyTorch model",
        "num_frames": int(len(frames)), "mean_cosine": float(cosine.mean()), "top1_agreement": None,
    }
    if spec.kind in LOGIT_KINDS:
        record["top1_agreement"] = float((fused.argmax(1) == ref.argmax(1)).mean())
    return record
