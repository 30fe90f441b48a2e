"""The spec every student (and teacher tower) travels with; saved next to its checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgeclip.data.preprocess import Preprocess
from edgeclip.errors import UserError
from edgeclip.io_utils import read_json, write_json

ModelKind = Literal["classifier", "dual_encoder", "image_encoder", "text_encoder", "zero_shot_classifier", "temporal_head"]
IMAGE_KINDS = ("classifier", "image_encoder", "zero_shot_classifier")
# temporal_head: frame features (N, T, D) → logits (N, 2), the video accident head (edgeclip.video).
EXPORTABLE_KINDS = IMAGE_KINDS + ("text_encoder", "temporal_head")
LOGIT_KINDS = ("classifier", "zero_shot_classifier")  # outputs are class logits (accuracy, top-1 agreement)


@dataclass
class ModelSpec:
    """What an exporter, runtime or benchmark needs to know about a model, besides its weights.

    - classifier / zero_shot_classifier: input `image` → output `logits` (N, len(class_names)).
    - image_encoder: `image` → `embedding` (N, embed_dim). text_encoder: `text` (N, context) int64 → `embedding`.
    - dual_encoder: both towers; exported per tower.
    - temporal_head: `features` (N, extra["frames"], embed_dim) → `logits` (N, 2) (video accident head).
    """

    name: str
    kind: ModelKind
    preprocess: Preprocess = field(default_factory=Preprocess)
    class_names: list[str] = field(default_factory=list)
    embed_dim: int | None = None
    context_length: int | None = None
    input_names: list[str] = field(default_factory=lambda: ["image"])
    output_names: list[str] = field(default_factory=lambda: ["logits"])
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=lambda: {"image": {0: "batch"}, "logits": {0: "batch"}})
    parity_atol: float = 1e-3
    parity_rtol: float = 1e-3
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_text(self) -> bool:
        return self.kind == "text_encoder"

    @property
    def input_dtype(self) -> str:
        """numpy dtype name of the input: token ids, raw frames (fused preprocessing) or preprocessed floats."""
        if self.is_text:
            return "int64"
        return "uint8" if self.kind in IMAGE_KINDS and self.preprocess.fused else "float32"

    def input_shape(self) -> list[Any]:
        """Input shape with the dynamic batch dim as a string (manifest convention)."""
        if self.kind in IMAGE_KINDS and self.preprocess.fused_frame is not None:  # uint8 RGB frames, NHWC
            return ["batch", *self.preprocess.fused_frame, 3]
        if self.is_text:
            return ["batch", int(self.context_length or 77)]
        if self.kind == "temporal_head":
            return ["batch", int(self.extra["frames"]), int(self.embed_dim or 0)]
        return ["batch", 3, self.preprocess.size, self.preprocess.size]

    def check_exportable(self) -> None:
        """UserError unless this is one exported graph (a dual encoder goes tower by tower)."""
        if self.kind == "dual_encoder":
            raise UserError(
                f"model '{self.name}' is a dual encoder; export one tower at a time "
                "(`edgeclip export --tower image|text`, or wrap it with edgeclip.exporters.towers.ImageTower/TextTower)"
            )
        if self.kind not in EXPORTABLE_KINDS:
            raise UserError(f"model kind '{self.kind}' cannot be exported; expected one of {', '.join(EXPORTABLE_KINDS)}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        data = dict(data)
        data["preprocess"] = Preprocess.from_dict(data.get("preprocess", {}))
        # JSON turns int keys into strings.
        data["dynamic_axes"] = {k: {int(a): n for a, n in v.items()} for k, v in data.get("dynamic_axes", {}).items()}
        return cls(**data)

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "ModelSpec":
        return cls.from_dict(read_json(path))


@dataclass
class Deployable:
    """One exportable model a distillation run hands to the build: a single-input, single-output
    module, its spec, the checkpoint it comes from (hashed into every manifest) and the suffix of its
    artifact directories (`artifacts/<backend>-<precision><suffix>`; "" for a classifier, "-text"
    for a text tower, ...)."""

    model: Any  # torch.nn.Module (typed loosely: this module imports no torch)
    spec: ModelSpec
    checkpoint: Path
    suffix: str = ""
    precisions: tuple[str, ...] | None = None  # only these of the plan's precisions (None = all); a QAT copy is int8 only
