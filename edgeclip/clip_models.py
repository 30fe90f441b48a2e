"""open_clip models from config dicts, and the preprocessing an open_clip model expects.

The one place that decides CLIP vs CustomTextCLIP and reads open_clip's preprocessing config, used
by teachers (teacher/clip_teacher.py), dual-encoder students (students/dual_encoder.py) and the
export wrappers (exporters/towers.py).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from edgeclip.data.preprocess import Preprocess
import edgeclip.convnet_tower  # noqa: F401 - registers the edgeclip_convnet_* timm towers configs may name


def build_clip_from_config(model_cfg: dict[str, Any]) -> nn.Module:
    """An open_clip CLIP from a config dict; CustomTextCLIP when the config says `custom_text`
    (open_clip's JSON key) or the text tower is a Hugging Face model."""
    import open_clip

    cfg = dict(model_cfg)
    custom = bool(cfg.pop("custom_text", False)) or "hf_model_name" in cfg.get("text_cfg", {})
    return (open_clip.CustomTextCLIP if custom else open_clip.CLIP)(**cfg)


def preprocess_from_open_clip(model: nn.Module) -> Preprocess:
    """The image preprocessing of an open_clip model (its visual tower's preprocess_cfg / image size)."""
    visual = getattr(model, "visual", None)
    cfg = getattr(visual, "preprocess_cfg", {}) or {}
    size = cfg.get("size", getattr(visual, "image_size", 224))
    size = size[0] if isinstance(size, (tuple, list)) else size
    resize_mode = {"shortest": "center_crop", "squash": "stretch", "longest": "letterbox"}.get(cfg.get("resize_mode", "shortest"), "center_crop")
    mean = cfg.get("mean") or getattr(visual, "image_mean", None) or Preprocess().mean
    std = cfg.get("std") or getattr(visual, "image_std", None) or Preprocess().std
    interpolation = cfg.get("interpolation") if cfg.get("interpolation") in ("bicubic", "bilinear") else "bicubic"
    return Preprocess(size=int(size), mean=tuple(mean), std=tuple(std), resize_mode=resize_mode, interpolation=interpolation)
