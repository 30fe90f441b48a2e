"""Per-frame features from any image encoder, cached per (encoder, clip, frames).

`--encoder SPEC` is one of:
- a CLIP teacher spec (`proxy-digits`, `ARCH:TAG`, `ARCH:/path/ckpt`, `ARCH:random`, a teacher
  checkpoint file): its image tower; it has a text tower, so the zero-shot head works;
- a student checkpoint directory (`runs/<id>/student`): a DistillCLIP dual encoder's image tower
  (text tower too) or a classifier's backbone (pooled features before the classifier);
- a registered student name (`distillclip_mobilenetv3`, `mobilenetv3_small`, ...): random
  weights — for latency only, it knows nothing;
- an exported artifact directory (`manifest.json`, kind image_encoder): run through
  `edgeclip.runtimes` (ONNX Runtime, OpenVINO, TensorRT), exactly what a device would run.
Every frame is letterboxed (shrink + pad) to the encoder's input, never centre-cropped. Features
are L2-normalized.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edgeclip.data.preprocess import Preprocess
from edgeclip.errors import UserError, unknown_name_error
from edgeclip.exporters.towers import ImageTower
from edgeclip.io_utils import atomic_path
from edgeclip.paths import cache_dir
from edgeclip.runtimes import load_runtime
from edgeclip.students.checkpoint import load_checkpoint
from edgeclip.students.registry import STUDENTS, create_student
from edgeclip.teacher.clip_teacher import PROXY_TEACHERS, ClipTeacher, _weights_fingerprint
from edgeclip.utils import count_params, disable_mha_fastpath, stable_hash
from edgeclip.video.io import ClipInfo, read_frames
import edgeclip.teacher.proxy  # noqa: F401 - registers the proxy teachers

BATCH = 32


def letterboxed(preprocess: Preprocess) -> Preprocess:
    return dataclasses.replace(preprocess, resize_mode="letterbox")


class ClassifierBackbone(nn.Module):
    """A classifier without its last layer: image → L2-normalized pooled features (timm or edgeclip ResNet)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.model.forward_features(image)
        if hasattr(self.model, "forward_head"):  # timm: pool (+ conv head) without the classifier
            features = self.model.forward_head(features, pre_logits=True)
        return nn.functional.normalize(features.flatten(1), dim=-1)


class FrameEncoder:
    """One image encoder for video frames: `encode(batch) -> (N, D)`, optionally a text tower."""

    def __init__(self, *, name: str, spec: str, kind: str, identity: str, preprocess: Preprocess,
                 encode: Callable[[np.ndarray], np.ndarray], module: nn.Module | None = None,
                 text: Callable[[list[str]], np.ndarray] | None = None, params: int | None = None,
                 logit_scale: float = 100.0, knows: str = "") -> None:
        self.name, self.spec, self.kind, self.identity = name, spec, kind, identity
        self.preprocess = letterboxed(preprocess)
        self._encode, self.module, self._text = encode, module, text
        self.params, self.logit_scale, self.knows = params, logit_scale, knows
        self._dim: int | None = None

    @property
    def embed_dim(self) -> int:
        if self._dim is None:
            size = self.preprocess.size
            self._dim = int(self.encode(np.zeros((1, 3, size, size), np.float32)).shape[1])
        return self._dim

    @property
    def has_text(self) -> bool:
        return self._text is not None

    def encode(self, batch: np.ndarray) -> np.ndarray:
        out = np.asarray(self._encode(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def text_embeddings(self, prompts: Sequence[str]) -> np.ndarray:
        if self._text is None:
            raise UserError(f"encoder '{self.spec}' has no text tower, so the zero-shot head cannot use it; "
                            "pick a CLIP teacher or a DistillCLIP student, or another head (evl, mean-mlp)")
        out = np.asarray(self._text(list(prompts)), dtype=np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.spec, "kind": self.kind, "identity": self.identity,
                "embed_dim": self.embed_dim, "params": self.params, "preprocessing": self.preprocess.to_dict(),
                "has_text_tower": self.has_text, "knows": self.knows}


def _torch_encoder(module: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    module = module.eval()

    @torch.no_grad()
    def encode(batch: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(batch)).float().numpy()

    return encode


def _text_fn(clip: nn.Module, context_length: int) -> Callable[[list[str]], np.ndarray]:
    import open_clip

    tokenizer = open_clip.SimpleTokenizer(context_length=context_length)

    @torch.no_grad()
    def encode(prompts: list[str]) -> np.ndarray:
        return clip.encode_text(tokenizer(prompts), normalize=True).float().numpy()

    return encode


def _fingerprint(module: nn.Module) -> str:
    return _weights_fingerprint(module)


def load_encoder(spec: str) -> FrameEncoder:
    """Resolve `--encoder SPEC` (see the module doc); bad specs are a UserError."""
    disable_mha_fastpath()
    spec = spec.strip()
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "manifest.json").is_file():
            return _artifact_encoder(path)
        if (path / "model.pt").is_file() and (path / "spec.json").is_file():
            return _student_encoder(path)
        raise UserError(f"{path} is neither an exported artifact (manifest.json) nor a student checkpoint "
                        "(model.pt + spec.json); pass one of those, a teacher spec, or a student name")
    name = spec.removeprefix("student:")
    if name in STUDENTS:
        return _random_student_encoder(name)

    if ":" not in spec and spec not in PROXY_TEACHERS and not path.exists():
        raise unknown_name_error("encoder", spec, STUDENTS.names() + PROXY_TEACHERS.names(),
                                 "pass a teacher spec (proxy-digits, ARCH:TAG, ARCH:/ckpt), a student name or "
                                 "checkpoint dir, or an exported artifact dir")
    teacher = ClipTeacher.load(spec)
    tower = ImageTower(teacher.model)
    knows = "nothing (random weights)" if teacher.source == "random" else (
        "digits only (proxy CLIP trained here on handwritten digits)" if teacher.name == "proxy-digits" else "its pretraining")
    return FrameEncoder(name=f"{teacher.name} image tower", spec=spec, kind="clip_teacher",
                        identity=f"teacher-{teacher.identity}", preprocess=teacher.preprocess,
                        encode=_torch_encoder(tower), module=tower, text=_text_fn(teacher.model, teacher.context_length),
                        params=count_params(teacher.model.visual), logit_scale=teacher.logit_scale, knows=knows)


def _student_module(model: nn.Module, spec) -> tuple[nn.Module, Callable | None, int]:
    if spec.kind == "dual_encoder":
        return ImageTower(model), _text_fn(model, int(spec.context_length or 77)), count_params(model.visual)
    if spec.kind == "classifier":
        backbone = ClassifierBackbone(model)
        return backbone, None, count_params(model)
    raise UserError(f"student kind '{spec.kind}' has no image features; pass a classifier or a dual-encoder checkpoint")


def _student_encoder(path: Path) -> FrameEncoder:
    model, spec, info = load_checkpoint(path)
    module, text, params = _student_module(model, spec)
    what = "image tower" if spec.kind == "dual_encoder" else "backbone"
    teacher = (info.get("extra") or {}).get("teacher") or "its training run"
    scale = float(model.logit_scale.detach().exp()) if hasattr(model, "logit_scale") else 100.0
    return FrameEncoder(name=f"{spec.name} {what} ({path.name})", spec=str(path), kind=f"student_{spec.kind}",
                        identity=f"student-{spec.name}-{_fingerprint(model)}", preprocess=spec.preprocess,
                        encode=_torch_encoder(module), module=module, text=text, params=params, logit_scale=scale,
                        knows=f"what it learned from {teacher}")


def _random_student_encoder(name: str) -> FrameEncoder:
    torch.manual_seed(0)  # the same "random" tower every time, so its cache key is stable
    kind = STUDENTS.get(name).kind
    model, spec = create_student(name, class_names=[f"class_{i}" for i in range(10)] if kind == "classifier" else None)
    module, text, params = _student_module(model, spec)
    return FrameEncoder(name=f"{name} (random weights)", spec=name, kind=f"random_{kind}",
                        identity=f"random-{name}-{_fingerprint(model)}", preprocess=spec.preprocess,
                        encode=_torch_encoder(module), module=module, text=text, params=params,
                        knows="nothing (random weights): latency only")


def _artifact_encoder(path: Path) -> FrameEncoder:
    runtime = load_runtime(path)
    manifest = runtime.manifest
    if manifest.get("kind") != "image_encoder":
        raise UserError(f"artifact {path} is a {manifest.get('kind')}, not an image encoder; export the encoder with "
                        "`edgeclip video export` (or `edgeclip export --tower image`)")
    source = (manifest.get("source_checkpoint") or {}).get("sha256") or stable_hash(manifest.get("parity"))
    identity = f"artifact-{manifest.get('name')}-{manifest['backend']}-{manifest['precision']}-{source[:16]}"
    return FrameEncoder(name=f"{manifest.get('name')} ({manifest['backend']} {manifest['precision']})", spec=str(path),
                        kind="artifact", identity=identity, preprocess=runtime.preprocess, encode=runtime.run,
                        params=manifest.get("params"), knows=manifest.get("knows", "what its source model knew"))


# -- cached features ---------------------------------------------------------------------------------
def _cache_file(encoder: FrameEncoder, info: ClipInfo, frames_key: str) -> Path:
    key = stable_hash(encoder.identity, info.identity, encoder.preprocess.to_dict(), frames_key, length=24)
    return cache_dir() / "video-features" / f"{info.path.name}-{key}.npz"


def _load(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return data["indices"], data["features"]
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache file is recomputed, not trusted


def _encode_frames(encoder: FrameEncoder, info: ClipInfo, indices: list[int], progress: bool) -> np.ndarray:
    frames = read_frames(info.path, indices, info.fps)
    out = []
    for start in tqdm(range(0, len(indices), BATCH), desc=f"encode {info.path.name}", unit="batch",
                      disable=not progress, leave=False):
        chunk = indices[start:start + BATCH]
        out.append(encoder.encode(np.stack([encoder.preprocess(frames[i]) for i in chunk])))
    return np.concatenate(out)


def clip_features(encoder: FrameEncoder, info: ClipInfo, indices: Sequence[int] | None = None, *,
                  progress: bool = False) -> np.ndarray:
    """Features (len(indices), D) of the clip's frames at `indices` (None: every frame), cached on disk.

    A cache of every frame also serves any subset, so heads and windows can change without
    re-encoding.
    """
    everything = list(range(info.num_frames))
    wanted = everything if indices is None else [int(i) for i in indices]
    if any(i < 0 or i >= info.num_frames for i in wanted):
        raise UserError(f"frame indices {min(wanted)}..{max(wanted)} are outside clip {info.path} "
                        f"({info.num_frames} frames)")
    full = _load(_cache_file(encoder, info, "all"))
    if full is not None:
        return full[1][wanted]
    key = "all" if indices is None else stable_hash(sorted(set(wanted)))
    path = _cache_file(encoder, info, key)
    cached = _load(path)
    if cached is None:
        unique = sorted(set(wanted))
        features = _encode_frames(encoder, info, unique, progress)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, indices=np.asarray(unique), features=features)
        cached = (np.asarray(unique), features)
    position = {int(i): row for row, i in enumerate(cached[0])}
    return cached[1][[position[i] for i in wanted]]
