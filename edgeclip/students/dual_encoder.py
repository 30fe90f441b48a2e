"""DistillCLIP students (paper 001): small open_clip dual encoders built from JSON configs.

The configs in `edgeclip/model_configs/` use open_clip's own format (`embed_dim`, `vision_cfg`,
`text_cfg`, optional `custom_text`, `quick_gelu`), so `open_clip.add_model_config(dir)` +
`open_clip.create_model(name)` builds the same architectures. Here they are constructed directly
(no global open_clip state, and overrides are validated).

Before tracing, exporting or counting FLOPs of these models call
`torch.backends.mha.set_fastpath_enabled(False)` (DESIGN §5): the fused attention op is invisible
to FLOP counters and breaks the TorchScript ONNX, coremltools and OpenVINO tracers.
"""

from __future__ import annotations

import copy
import dataclasses
from functools import partial
from pathlib import Path
from typing import Any

import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from open_clip.transformer import QuickGELU
from torch import nn

from edgeclip.clip_models import build_clip_from_config
from edgeclip.errors import UserError
from edgeclip.io_utils import read_json
from edgeclip.students.registry import clip_preprocess, register_student
from edgeclip.students.spec import ModelSpec

MODEL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"

_DUAL_ENCODERS = {
    "distillclip_vit_s16": "DistillCLIP as in paper 001: ViT-S/16 image tower, 6-layer 512-wide text tower, 256-d embeddings",
    "distillclip_vit_s32": "DistillCLIP with a ViT-S/32 image tower (~1/4 of ViT-S/16's FLOPs), 6-layer text tower",
    "distillclip_mobilenetv3": "DistillCLIP with a timm MobileNetV3-Large image tower (<1/4 of ViT-B/32's FLOPs), 6-layer text tower",
    "distillclip_digits": "DistillCLIP for the digits proxy-digits-large teacher: 4-layer 64-wide ViT (patch 8, 32x32), 2-layer 128-wide text",
    "distillclip_digits_2l": "distillclip_digits with a 2-layer image tower (~1/10 of proxy-digits-large's image FLOPs)",
    "distillclip_cifar10": "DistillCLIP for the proxy-cifar10 teacher: edgeclip_convnet_xs image tower (~1/4 of the teacher's FLOPs), 2-layer 128-wide text",
    "test_distillclip": "tiny dual encoder for tests: 32x32 ViT (patch 8, width 64, 2 layers), 2-layer 64-wide text, 32-d",
}

_VISION_KEYS = {f.name for f in dataclasses.fields(CLIPVisionCfg)}
_TEXT_KEYS = {f.name for f in dataclasses.fields(CLIPTextCfg)}


def load_model_config(name: str) -> dict[str, Any]:
    """The open_clip-style config dict of a dual-encoder student (a fresh copy)."""
    path = MODEL_CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in MODEL_CONFIG_DIR.glob("*.json"))
        raise UserError(f"no model config '{name}' in {MODEL_CONFIG_DIR} (known: {', '.join(known)}); add {path.name} there")
    return read_json(path)


def _with_overrides(
    name: str,
    config: dict[str, Any],
    *,
    image_size: int | None,
    embed_dim: int | None,
    vision_cfg: dict[str, Any] | None,
    text_cfg: dict[str, Any] | None,
    quick_gelu: bool,
) -> dict[str, Any]:
    config = copy.deepcopy(config)
    for label, overrides, allowed in (("vision_cfg", vision_cfg, _VISION_KEYS), ("text_cfg", text_cfg, _TEXT_KEYS)):
        unknown = sorted(set(overrides or {}) - allowed)
        if unknown:
            raise UserError(f"student '{name}': unknown {label} keys {unknown}; valid keys are open_clip's {sorted(allowed)}")
        config[label].update(overrides or {})
    if image_size is not None:
        config["vision_cfg"]["image_size"] = image_size
    if embed_dim is not None:
        config["embed_dim"] = embed_dim
    if quick_gelu:
        config["quick_gelu"] = True
    return config


def build_dual_encoder(
    name: str,
    *,
    image_size: int | None = None,
    teacher_model: nn.Module | None = None,
    embed_dim: int | None = None,
    vision_cfg: dict[str, Any] | None = None,
    text_cfg: dict[str, Any] | None = None,
    quick_gelu: bool | None = None,
) -> tuple[nn.Module, ModelSpec]:
    """Build the open_clip model for config `name` (random init), then init text from the teacher.

    `quick_gelu=None` follows the teacher (OpenAI CLIP uses QuickGELU; copied layers must keep
    the activation they were trained with), else plain GELU.
    """
    if quick_gelu is None:
        quick_gelu = teacher_model is not None and uses_quick_gelu(teacher_model)
    config = _with_overrides(
        name,
        load_model_config(name),
        image_size=image_size,
        embed_dim=embed_dim,
        vision_cfg=vision_cfg,
        text_cfg=text_cfg,
        quick_gelu=quick_gelu,
    )
    model = build_clip_from_config(config)

    text_init = init_text_from_teacher(model, teacher_model) if teacher_model is not None else None
    size = config["vision_cfg"]["image_size"]
    spec = ModelSpec(
        name=name,
        kind="dual_encoder",
        preprocess=clip_preprocess(size if isinstance(size, int) else size[0]),
        embed_dim=int(config["embed_dim"]),
        context_length=int(config["text_cfg"].get("context_length", 77)),
        input_names=["image", "text"],
        output_names=["image_embedding", "text_embedding"],
        dynamic_axes={n: {0: "batch"} for n in ("image", "text", "image_embedding", "text_embedding")},
        # The resolved activation is a build option: a rebuild without the teacher must match.
        extra={"model_config": config, "text_init": text_init, "build_kwargs": {"quick_gelu": quick_gelu}},
    )
    return model, spec


def uses_quick_gelu(model: nn.Module) -> bool:
    """Whether the model's text tower uses OpenAI's QuickGELU activation."""
    text = _text_tower(model, "teacher_model")
    return any(isinstance(m, QuickGELU) for m in text.transformer.modules())


def init_text_from_teacher(student: nn.Module, teacher_model: nn.Module) -> dict[str, Any]:
    """Initialise the student's text tower from a wider-and-deeper teacher (DistillCLIP, paper 001).

    Copies the token embedding, the positional embedding (the teacher's first rows when the
    student's context is shorter; rows beyond the teacher's context stay random), the final
    LayerNorm, and student text layer i ← teacher text layer 2i. The text projection is copied
    only when its shape matches; when the student's embed dim differs from the teacher's (256 vs
    512 for DistillCLIP) it stays random, since no slice of the teacher's projection is right.
    Both models must have the same text width, head count and vocabulary, else `UserError`.
    `teacher_model` may be an open_clip CLIP/CustomTextCLIP or a wrapper with `.model` (ClipTeacher).
    Returns what was copied, for logs and the spec.
    """
    s_text = _text_tower(student, "student")
    t_text = _text_tower(teacher_model, "teacher_model")
    s_width, t_width = s_text.token_embedding.weight.shape[1], t_text.token_embedding.weight.shape[1]
    if s_width != t_width:
        raise UserError(
            f"cannot initialise the student's text tower (width {s_width}) from a teacher of width {t_width}; "
            f"set the student's text_cfg width to {t_width} or build it without the teacher"
        )
    s_vocab, t_vocab = s_text.token_embedding.weight.shape[0], t_text.token_embedding.weight.shape[0]
    if s_vocab != t_vocab:
        raise UserError(f"student vocabulary {s_vocab} != teacher vocabulary {t_vocab}; use the teacher's vocab_size")
    s_heads, t_heads = _heads(s_text), _heads(t_text)
    if s_heads is not None and t_heads is not None and s_heads != t_heads:
        raise UserError(f"student text heads {s_heads} != teacher's {t_heads}; set text_cfg heads to {t_heads}")
    s_blocks, t_blocks = s_text.transformer.resblocks, t_text.transformer.resblocks
    if 2 * (len(s_blocks) - 1) >= len(t_blocks):
        raise UserError(
            f"a {len(s_blocks)}-layer student text tower needs a teacher with at least {2 * len(s_blocks) - 1} "
            f"text layers (layer i <- 2i); the teacher has {len(t_blocks)}"
        )

    copied: list[str] = []
    skipped: dict[str, str] = {}
    with torch.no_grad():
        s_text.token_embedding.weight.copy_(t_text.token_embedding.weight)
        copied.append("token_embedding")
        rows = min(s_text.positional_embedding.shape[0], t_text.positional_embedding.shape[0])
        s_text.positional_embedding[:rows].copy_(t_text.positional_embedding[:rows])
        copied.append(f"positional_embedding[:{rows}]")
        s_text.ln_final.load_state_dict(t_text.ln_final.state_dict())
        copied.append("ln_final")
        layer_map = [(i, 2 * i) for i in range(len(s_blocks))]
        for s_index, t_index in layer_map:
            try:
                s_blocks[s_index].load_state_dict(t_blocks[t_index].state_dict())
            except RuntimeError as err:
                raise UserError(
                    f"teacher text layer {t_index} does not fit student layer {s_index} (different block type or "
                    f"mlp_ratio: {str(err).splitlines()[0]}); match the teacher's text_cfg"
                ) from None
        copied.append("transformer.resblocks")
        s_proj, t_proj = _projection_state(s_text), _projection_state(t_text)
        if s_proj is None or t_proj is None:
            skipped["text_projection"] = "one of the towers has no text projection"
        elif {k: v.shape for k, v in s_proj.items()} != {k: v.shape for k, v in t_proj.items()}:
            skipped["text_projection"] = "embed dims differ; left randomly initialised"
        else:
            for key, value in s_proj.items():
                value.copy_(t_proj[key])
            copied.append("text_projection")
    return {"layer_map": [list(pair) for pair in layer_map], "copied": copied, "skipped": skipped}


def _text_tower(model: nn.Module, role: str) -> nn.Module:
    """The module holding token_embedding/transformer/ln_final: CLIP itself, or CustomTextCLIP.text."""
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module) and not hasattr(model, "token_embedding") and not hasattr(model, "text"):
        model = inner  # a ClipTeacher-style wrapper
    text = getattr(model, "text", None)
    if isinstance(text, nn.Module) and hasattr(text, "token_embedding"):
        return text
    if hasattr(model, "token_embedding") and hasattr(model, "transformer") and hasattr(model, "ln_final"):
        return model
    raise UserError(
        f"{role} ({type(model).__name__}) has no open_clip text transformer (token_embedding/transformer/ln_final); "
        "text initialisation needs an open_clip CLIP model, not an HF text tower"
    )


def _heads(text: nn.Module) -> int | None:
    attn = getattr(text.transformer.resblocks[0], "attn", None)
    return getattr(attn, "num_heads", None)


def _projection_state(text: nn.Module) -> dict[str, torch.Tensor] | None:
    """The text projection's tensors (a bare Parameter or an nn.Linear), keyed by name."""
    projection = getattr(text, "text_projection", None)
    if projection is None:
        return None
    if isinstance(projection, nn.Linear):
        return dict(projection.named_parameters())
    return {"weight": projection}


def _register_builtin_dual_encoders() -> None:
    for name, description in _DUAL_ENCODERS.items():
        if not (MODEL_CONFIG_DIR / f"{name}.json").is_file():
            raise FileNotFoundError(f"missing model config {MODEL_CONFIG_DIR / name}.json (package data)")
        register_student(name, "dual_encoder", description)(partial(build_dual_encoder, name))


_register_builtin_dual_encoders()
