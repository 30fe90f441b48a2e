"""ClipTeacher: an open_clip CLIP model behind one small interface.

Teacher specs (`--teacher`):
- `ARCH:TAG`    open_clip architecture + pretrained tag, e.g. `ViT-B-32:openai` (hub or local cache)
- `ARCH:PATH`   open_clip architecture + a local checkpoint file (open_clip or state-dict format)
- `ARCH:random` random initialisation (for latency/size measurements only; it knows nothing)
- `PATH`        an edgeclip teacher checkpoint (records its architecture and config)
- `proxy-digits` a registered proxy teacher, trained here on first use (see teacher/proxy.py)
"""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from edgeclip.clip_models import build_clip_from_config, preprocess_from_open_clip
from edgeclip.data.preprocess import Preprocess
from edgeclip.errors import UserError, close_matches, unknown_name_error
from edgeclip.io_utils import atomic_path, safe_torch_load
from edgeclip.prompt_ensemble import class_embeddings_torch
from edgeclip.registry import Registry
from edgeclip.utils import stable_hash

CHECKPOINT_FORMAT = "edgeclip-teacher-v1"
HUB_HOST = "huggingface.co"

# Registered teachers that edgeclip can produce itself (name → loader returning a ClipTeacher).
PROXY_TEACHERS: Registry[Callable[[], "ClipTeacher"]] = Registry("teacher", "edgeclip list teachers")
# One line per proxy teacher for `edgeclip list teachers` (where its weights come from).
PROXY_DESCRIPTIONS: dict[str, str] = {}


class ZeroShotHead(nn.Module):
    """Image features → logits = logit_scale · cos(image, class embedding) (DESIGN §4.1)."""

    def __init__(self, class_embeddings: torch.Tensor, logit_scale: float, class_names: Sequence[str]) -> None:
        super().__init__()
        self.register_buffer("class_embeddings", class_embeddings.detach().clone())
        self.logit_scale = float(logit_scale)
        self.class_names = list(class_names)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        image_features = nn.functional.normalize(image_features, dim=-1)
        return self.logit_scale * image_features @ self.class_embeddings.T


class ClipTeacher(nn.Module):
    """A CLIP teacher: `encode_image`, `encode_text`, `logit_scale`, `zero_shot_head`."""

    def __init__(self, model: nn.Module, *, name: str, arch: str, model_cfg: dict[str, Any] | None,
                 preprocess: Preprocess, source: str) -> None:
        super().__init__()
        import open_clip

        self.model = model.eval()
        self.name = name
        self.arch = arch
        self.model_cfg = model_cfg
        self.preprocess = preprocess
        self.source = source
        self.context_length = int(getattr(model, "context_length", 77))
        self.tokenizer = open_clip.SimpleTokenizer(context_length=self.context_length)
        self._identity: str | None = None

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def load(cls, spec: str) -> "ClipTeacher":
        """Load a teacher from a spec string (see the module docstring)."""
        spec = spec.strip()
        if spec in PROXY_TEACHERS:
            return PROXY_TEACHERS.get(spec)()
        path = Path(spec).expanduser()
        if path.is_file():
            return cls.load_checkpoint(path)
        arch, sep, rest = spec.partition(":")
        if not sep:
            if spec.endswith((".pt", ".pth", ".bin", ".safetensors")) or "/" in spec:
                raise UserError(f"teacher checkpoint '{spec}' does not exist; check the path")
            known = PROXY_TEACHERS.names() + _open_clip_archs()
            raise UserError(
                f"unknown teacher '{spec}'"
                + (f"; did you mean {' or '.join(repr(h) for h in close_matches(spec, known))}?" if close_matches(spec, known) else "")
                + " — use ARCH:TAG (e.g. ViT-B-32:openai), ARCH:/path/to/checkpoint, a checkpoint path, or proxy-digits"
            )
        _check_arch(arch)
        if rest in ("random", "none", ""):
            return cls.from_arch(arch, pretrained=None)
        if "/" in rest or rest.endswith((".pt", ".pth", ".bin", ".safetensors")) or Path(rest).expanduser().exists():
            checkpoint = Path(rest).expanduser()
            if not checkpoint.is_file():
                raise UserError(f"teacher checkpoint '{checkpoint}' does not exist; check the path")
            return cls.from_arch(arch, pretrained=str(checkpoint))
        return cls.from_arch(arch, pretrained=rest)

    @classmethod
    def from_arch(cls, arch: str, pretrained: str | None) -> "ClipTeacher":
        """An open_clip architecture with a pretrained tag, a local checkpoint path, or random weights."""
        import open_clip

        if pretrained and not Path(pretrained).is_file():
            tags = open_clip.list_pretrained_tags_by_model(arch)
            if pretrained not in tags:
                raise unknown_name_error(f"pretrained tag for {arch}", pretrained, tags,
                                         "or pass a local checkpoint as ARCH:/path/to/checkpoint")
            model = _create_from_hub(arch, pretrained)
        elif pretrained:
            model = _create_from_file(arch, pretrained)
        else:
            model = open_clip.create_model(arch, pretrained=None)
        preprocess = preprocess_from_open_clip(model)
        source = pretrained or "random"
        return cls(model, name=f"{arch}:{Path(source).name if pretrained and Path(pretrained).is_file() else source}",
                   arch=arch, model_cfg=open_clip.get_model_config(arch), preprocess=preprocess, source=source)

    @classmethod
    def from_config(cls, name: str, model_cfg: dict[str, Any], preprocess: Preprocess,
                    state_dict: dict[str, torch.Tensor] | None = None, source: str = "config") -> "ClipTeacher":
        """A CLIP built from an open_clip-style config dict (custom or tiny models)."""
        model = build_clip_from_config(model_cfg)
        if state_dict is not None:
            _load_state(model, state_dict, f"teacher '{name}'")
        return cls(model, name=name, arch=name, model_cfg=model_cfg, preprocess=preprocess, source=source)

    @classmethod
    def load_checkpoint(cls, path: str | Path) -> "ClipTeacher":
        """An edgeclip teacher checkpoint written by `save`."""
        path = Path(path)
        payload = safe_torch_load(path, "teacher checkpoint", "check the file or re-create it with ClipTeacher.save")
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise UserError(
                f"'{path}' is not an edgeclip teacher checkpoint; for an open_clip state dict pass ARCH:{path} (e.g. ViT-B-32:{path})"
            )
        if payload.get("model_cfg") is None:
            raise UserError(f"teacher checkpoint '{path}' has no model config; re-save it with ClipTeacher.save")
        teacher = cls.from_config(payload["name"], payload["model_cfg"], Preprocess.from_dict(payload["preprocess"]),
                                  payload["state_dict"], source=str(path))
        teacher.arch = payload.get("arch", teacher.arch)
        return teacher

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write a self-describing checkpoint (architecture config + weights + preprocessing)."""
        if self.model_cfg is None:
            raise UserError(f"teacher '{self.name}' has no model config to save; it cannot be saved as an edgeclip checkpoint")
        payload = {
            "format": CHECKPOINT_FORMAT,
            "name": self.name,
            "arch": self.arch,
            "model_cfg": self.model_cfg,
            "preprocess": self.preprocess.to_dict(),
            "state_dict": self.model.state_dict(),
            "extra": extra or {},
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    # -- the teacher interface ----------------------------------------------------------------
    @property
    def identity(self) -> str:
        """Changes whenever the weights change (and only then: not with the path they came from); cache key."""
        if self._identity is None:
            digest = stable_hash(self.name, _weights_fingerprint(self.model))
            self._identity = f"{self.name.replace('/', '_').replace(':', '_')}-{digest}"
        return self._identity

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if getattr(self.model, "text_projection", None) is not None \
            else int(self.encode_text(["a"]).shape[-1])

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return self.model.encode_image(images, normalize=normalize)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str] | torch.Tensor, normalize: bool = True) -> torch.Tensor:
        tokens = texts if isinstance(texts, torch.Tensor) else self.tokenize(texts)
        return self.model.encode_text(tokens, normalize=normalize)

    @torch.no_grad()
    def class_embeddings(self, class_names: Sequence[str], templates: Sequence[str],
                         classname_map: dict[str, str] | None = None) -> torch.Tensor:
        """(C, D): per class, the L2-normalized mean of L2-normalized prompt embeddings."""
        if not class_names:
            raise UserError("no class names for the zero-shot head; the dataset has no classes")

        classname_map = classname_map or {}
        names = [classname_map.get(name, name) for name in class_names]
        return class_embeddings_torch(lambda prompts: self.encode_text(prompts, normalize=True), names, templates)

    def zero_shot_head(self, class_names: Sequence[str], templates: Sequence[str],
                       classname_map: dict[str, str] | None = None) -> ZeroShotHead:
        return ZeroShotHead(self.class_embeddings(class_names, templates, classname_map), self.logit_scale, class_names)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_image(images)


# -- helpers ----------------------------------------------------------------------------------
def _open_clip_archs() -> list[str]:
    import open_clip

    return open_clip.list_models()


def _check_arch(arch: str) -> None:
    archs = _open_clip_archs()
    if arch not in archs:
        raise unknown_name_error("teacher architecture", arch, archs, "open_clip names such as ViT-B-32, or proxy-digits")


def hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline() -> Any:
    """Make huggingface_hub answer from its local cache only (fails at once instead of retrying)."""
    import huggingface_hub.constants as hub_constants

    previous = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = previous


def _create_from_hub(arch: str, tag: str) -> nn.Module:
    import open_clip

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # open_clip logs a scary error before raising
    try:
        with _hub_offline():
            return open_clip.create_model(arch, pretrained=tag)
    except RuntimeError:
        pass  # not in the local cache: try the hub if it is reachable
    finally:
        logger.setLevel(level)
    fix = (f"pass a local checkpoint (--teacher {arch}:/path/to/open_clip_model.safetensors), "
           "or run once where the model hub is reachable so the weights are cached")
    if not hub_reachable():
        raise UserError(f"weights for {arch}:{tag} are not cached and the model hub ({HUB_HOST}) cannot be reached; {fix}")
    try:
        return open_clip.create_model(arch, pretrained=tag)
    except RuntimeError as exc:
        raise UserError(f"could not download weights for {arch}:{tag} ({str(exc).splitlines()[0][:160]}); {fix}") from None


def _create_from_file(arch: str, path: str) -> nn.Module:
    import open_clip

    try:
        return open_clip.create_model(arch, pretrained=path)
    except (RuntimeError, KeyError, ValueError, AssertionError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"checkpoint '{path}' does not fit teacher architecture {arch} ({first}); pass the architecture it was trained as"
        ) from None
    except Exception as exc:  # noqa: BLE001 - unpickling/IO errors of a user file
        raise UserError(f"checkpoint '{path}' cannot be read as a {arch} model ({type(exc).__name__}); check the file") from None


def _load_state(model: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise UserError(f"weights of {what} do not fit its architecture ({first}); the checkpoint was made for another model") from None


def _weights_fingerprint(model: nn.Module) -> str:
    """Hash of all weights: cheap for the small models, ~1 s for ViT-L."""
    import hashlib

    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
