"""Typed recipes: dataclasses loaded from YAML, overridable with `--set key=value`.

A recipe is a YAML file shipped in `edgeclip/recipes/` (referred to by name) or any path. Unknown
keys and badly typed values are rejected with a close-match hint. No code runs from YAML.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeclip.errors import UserError, close_matches, unknown_name_error
from edgeclip.io_utils import read_yaml_mapping

RECIPES_DIR = Path(__file__).parent / "recipes"


class RecipeYamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false are booleans. YAML 1.1 also reads
    yes/no/on/off as booleans, which turned documented string values such as
    `distill.text_init: off` into False; bool-typed keys still accept them (see `_coerce`)."""


RecipeYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
RecipeYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))

# Words a bool-typed recipe key accepts besides true/false (YAML 1.1 habits keep working there).
_BOOL_WORDS = {"yes": True, "on": True, "y": True, "no": False, "off": False, "n": False}


def parse_recipe_value(text: str, where: str) -> Any:
    """One `--set` value, read as the recipe file would read it; bad YAML is a one-line UserError."""
    try:
        return yaml.load(text, Loader=RecipeYamlLoader)
    except yaml.YAMLError as exc:
        problem = str(getattr(exc, "problem", "") or str(exc).splitlines()[0])
        raise UserError(f"--set {where}: '{text}' is not a valid YAML value ({problem}); quote it or fix it, e.g. "
                        "--set distill.milestones=[60,90] or --set \"data.test=''\"") from None


@dataclass
class DataConfig:
    """Where images come from. Specs are `digits`, `synthetic:N`, or a folder (see data.open_image_dataset)."""

    train: str = "digits"
    test: str = "digits"
    calibration: str = ""  # defaults to the train data
    calibration_count: int = 64
    shots: int = 0  # k images per class from the train split; 0 = all
    skip_corrupt: bool = False
    templates: str = "digits"  # prompt template set for the zero-shot head
    # Folder name → class name (also the prompt name), for folders named otherwise than the classes:
    # a YAML/JSON file or 'a=b,c=d' (e.g. 0=zero,1=one); data/class_match.py. Eval/bench take --class-map.
    classname_map: str = ""
    # Image–caption pairs for dual-encoder distillation (distillclip): digits[:K] (train split +
    # caption templates), a path,caption CSV, or webdataset shards (.tar, {a..b} pattern, folder).
    pairs: str = "digits"


@dataclass
class StudentConfig:
    name: str = "mobilenetv3_small"
    image_size: int = 32
    checkpoint: str = ""  # use this trained student instead of distilling one


@dataclass
class LossTermConfig:
    """One named, weighted loss term (see `edgeclip list losses`); `params` are the term's options."""

    name: str = ""
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DistillConfig:
    """Distillation and its training schedule. Defaults are paper 000's Hinton KD:
    L = alpha·tau²·KL + beta·CE, SGD lr 0.1 momentum 0.9 wd 1e-4, batch 128, 100 epochs."""

    method: str = "classifier_kd"
    # Named, weighted terms; empty = alpha·kd(tau) + beta·ce (paper 000), so recipes can omit it.
    loss: list[LossTermConfig] = field(default_factory=list)
    teacher_head: str = "finetuned"  # finetuned | zero_shot
    epochs: int = 100
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: list[int] = field(default_factory=lambda: [60, 90])
    gamma: float = 0.1
    alpha: float = 0.5
    beta: float = 0.5
    tau: float = 1.0
    augment: bool = True
    head_epochs: int = 30  # fine-tuned teacher MLP head
    head_lr: float = 1e-3
    head_hidden: int = 256
    head_dropout: float = 0.1
    head_input: str = "similarity"  # similarity (paper) | features (MLP probe)
    num_workers: int = 0
    # torch threads while training; 0 = torch's default (all cores). A fixed count makes the float
    # reductions, hence the trained weights, the same from run to run on a machine.
    threads: int = 0
    teacher_epochs: int = 0  # CE epochs for CNN teachers trained here; 0 = same as epochs
    scratch_baseline: bool = False  # also train the student with CE only, same budget, for comparison
    overconfidence_gamma: float = 0.5  # paper 000 §3.3.2 threshold for the over-confidence probability p
    # distillclip (paper 001) only: AdamW betas/eps, linear warm-up steps then cosine decay.
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    adam_eps: float = 1e-6
    warmup_steps: int = 10000
    teacher_cache: bool = True  # teacher embeddings once per pair on disk; false = run the teacher every step
    text_init: str = "strict"  # student text layer i <- teacher 2i: strict (exit 2 if impossible) | skip | off
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes kept frozen (e.g. clip.token_embedding)
    checkpoint_every: int = 0  # resumable checkpoint every N steps (0 = at the end of each epoch)
    ddp_backend: str = "auto"  # under torchrun: auto (nccl on GPU, gloo on CPU) | gloo | nccl


@dataclass
class DataFreeConfig:
    """Data-free KD from class names (paper 002, `distill.method: data-free`). Defaults are the
    paper's; see edgeclip/distill/datafree/ and the `digits-datafree` / `datafree-paper` recipes."""

    classes: list[str] = field(default_factory=list)  # the class names (or classes_file)
    classes_file: str = ""  # one class name per line
    prompt: str = "contrastive"  # plain | mix | random | contrastive
    template: str = "a photo of a {}"  # plain prompt
    style_template: str = "{} in the style of {}"  # [CLS] in the style of [STYLE] (mix, random, contrastive)
    styles_file: str = ""  # style dictionary YAML; "" = edgeclip/data/styles.yaml (paper Table 8)
    exclude_domains: list[str] = field(default_factory=list)  # test_domains entries whose words drop styles
    mix_alpha: float = 1.0  # lambda ~ Beta(alpha, alpha)
    random_scale: float = 10.0  # e in V* = mu + e * eps * sigma
    contrastive_epochs: int = 100
    contrastive_lr: float = 0.1
    contrastive_batch: int = 256
    contrastive_bank: int = 2048
    contrastive_tau: float = 0.1
    generator: str = "fourier"  # pixel | fourier | a registered user generator
    generator_params: dict[str, Any] = field(default_factory=dict)
    image_size: int = 0  # 0 = the teacher's input size
    images_per_class: int = 3000
    steps: int = 500
    lr: float = 0.15
    batch_size: int = 8
    views: int = 8  # augmented views of each image per step
    augment_translate: float = 0.1  # jitter, fraction of the image
    augment_scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    augment_degrees: float = 0.0
    augment_flip: bool = True
    augment_noise: float = 0.0  # std of Gaussian pixel noise on [0, 1] images
    tv_weight: float = 0.0  # total-variation prior on the image
    online_teacher: bool = False  # KD targets from the teacher on each augmented batch (paper: once per synthetic image)
    warmup_epochs: int = 150  # head only, lr = distill.lr; then distill.epochs of full fine-tuning
    finetune_lr_factor: float = 0.1
    shifts: list[str] = field(default_factory=list)  # also evaluate under these distribution shifts
    fewshot_shots: list[int] = field(default_factory=list)  # e.g. [1, 2, 4, 8, 16] real images per class
    fewshot_seeds: int = 5
    fewshot_steps: int = 100
    fewshot_lr: float = 0.01
    fewshot_batch_size: int = 32


@dataclass
class ExportConfig:
    """Empty lists mean "what the target profile asks for"; non-empty ones narrow it."""

    backends: list[str] = field(default_factory=list)
    precisions: list[str] = field(default_factory=list)
    opset: int = 18
    parity_samples: int = 64  # real test images compared against PyTorch: enough that one miss is not the verdict
    # "HxW" (e.g. 720x1280): image artifacts take raw uint8 frames of the camera's size and preprocess them in
    # their graph (exporters/fused_preprocess.py); "" = the host preprocesses. fp32/fp16 only.
    fused_preprocess: str = ""


PRUNE_IMPORTANCE = ("l2", "l1", "random")


@dataclass
class PruneConfig:
    """Structured pruning + KD recovery: the recipe's `prune:` section (`ratio: 0` = off) and the
    settings of `edgeclip compress prune` alike (its flag defaults are these; compress/prune.py).

    `ratio`: fraction of channels (CNN) / MLP hidden units (ViT) removed; `head_ratio`: fraction of
    attention heads removed (null = same as ratio). `teacher`: "" = the run's teacher (the CLI: the
    checkpoint's teacher if saved beside it, else self), "self" = the unpruned student as the KD teacher.
    """

    ratio: float = 0.0
    head_ratio: float | None = None
    recover_epochs: int = 10
    recover_lr: float = 0.05  # SGD for classifiers; towers recover with AdamW at lr/100
    importance: str = "l2"  # l2 | l1 | random
    round_to: int = 1  # keep channel counts multiples of this (8 helps some int8 kernels)
    ignore: list[str] = field(default_factory=list)  # module paths never pruned (their outputs keep their size)
    teacher: str = ""

    def check(self) -> None:
        """A pruning that can run (called before anything is loaded)."""
        if not isinstance(self.ratio, (int, float)) or not 0.0 < float(self.ratio) < 1.0:
            raise UserError(f"pruning ratio must be between 0 and 1 (exclusive), got {self.ratio}; e.g. --ratio 0.5 removes half the channels")
        if self.head_ratio is not None and not 0.0 <= float(self.head_ratio) < 1.0:
            raise UserError(f"head pruning ratio must be in [0, 1), got {self.head_ratio}")
        if self.importance not in PRUNE_IMPORTANCE:
            raise UserError(f"unknown pruning importance '{self.importance}'; use one of {', '.join(PRUNE_IMPORTANCE)}")
        if self.round_to < 1:
            raise UserError(f"round_to must be >= 1, got {self.round_to}")
        if self.recover_epochs < 0:
            raise UserError(f"prune recover_epochs must be >= 0, got {self.recover_epochs}")

    def cut(self) -> dict[str, Any]:
        """The settings that decide what is removed (recorded with the pruned checkpoint)."""
        return {"ratio": self.ratio, "head_ratio": self.head_ratio, "importance": self.importance,
                "round_to": self.round_to, "ignore": list(self.ignore)}


INT8_MODES = ("classic", "auto")
INT8_CALIBRATION_METHODS = ("auto", "minmax", "entropy", "percentile")


@dataclass
class Int8Config:
    """How int8 artifacts are made: the recipe's `int8:` section, and the one source of the int8
    defaults of `edgeclip export`, `edgeclip compress int8` and `edgeclip build` (compress/int8.py's
    Int8Options adds only what one export knows: target, validation images, QAT record).
    mode: auto (CPU-aware, calibration choice, sensitivity-driven mixed precision, speed check) |
    classic (the original fixed methods)."""

    mode: str = "auto"
    # auto = each backend's own default estimator (onnxruntime: min-max; NNCF: its defaults) | minmax | entropy | percentile
    calibration_method: str = "auto"
    percentile: float = 99.999
    weights: str = "auto"  # onnxruntime static int8 weights: auto (by the CPU it runs on) | int8 | uint8
    ignored_scope: list[str] = field(default_factory=list)  # layers kept in float, named as in the graph
    mixed: bool = True  # run the sensitivity search (needs validation images)
    # Top-1 agreement with fp32 (classifiers) / mean cosine (embeddings) on the validation images. 0.995,
    # not 0.99: the bar is 0.99 on held-out images, and validation and test differ by a few images.
    target_agreement: float = 0.995
    max_float_fraction: float = 0.25  # at most this share of the quantized layers may go back to float
    validation_count: int = 256  # train images (not calibration, not test) for the sensitivity search
    smoothquant_alpha: float | None = None  # transformers: migrate activation outliers into weights first
    qat_epochs: int = 0  # > 0: also build a QAT + KD int8 candidate
    qat_lr: float = 0.01
    qat_self_weight: float = 0.5

    def check(self) -> None:
        """Settings that can run (called before anything is loaded)."""
        if self.mode not in INT8_MODES:
            raise UserError(f"unknown int8 mode '{self.mode}'; use one of {', '.join(INT8_MODES)}")
        if self.calibration_method not in INT8_CALIBRATION_METHODS:
            raise UserError(f"unknown calibration method '{self.calibration_method}'; use one of {', '.join(INT8_CALIBRATION_METHODS)}")
        if self.weights not in ("auto", "int8", "uint8"):
            raise UserError(f"int8 weights must be auto, int8 or uint8, got '{self.weights}'")
        if not 0.0 < self.target_agreement <= 1.0:
            raise UserError(f"target agreement must be in (0, 1], got {self.target_agreement}")
        if not 0.0 <= self.max_float_fraction <= 1.0:
            raise UserError(f"max_float_fraction must be in [0, 1], got {self.max_float_fraction}")
        if not 50.0 < self.percentile < 100.0:
            raise UserError(f"calibration percentile must be in (50, 100), got {self.percentile}")
        if self.validation_count < 0:
            raise UserError(f"int8 validation_count must be >= 0, got {self.validation_count}")


@dataclass
class BenchConfig:
    warmup: int = 10
    iterations: int = 100
    max_seconds: float = 10.0  # per measurement phase (interleaved latency gets this per backend)
    throughput_batch: int = 16
    threads: int = 0  # 0 = let the runtime decide
    accuracy_samples: int = 0  # 0 = the whole test split
    memory: bool = True  # peak memory in a fresh subprocess per artifact (onnx/openvino)
    roof: bool = True  # achieved GFLOP/s and % of this machine's GEMM roof per row (bench/roof.py; cached)
    # The teacher architecture timed beside the students (random weights, latency only): "auto" = the
    # recipe's open_clip teacher architecture, else ViT-B-32; "none"; or an open_clip architecture name.
    speed_reference: str = "auto"


@dataclass
class VideoHeadConfig:
    """How a temporal head is trained (edgeclip/video/train.py; the paper's schedule): the one source of
    these defaults — the recipe's `video:` section (VideoConfig extends this class), the run settings of
    video/train.HeadTrainConfig (this + the seed) and the flags of `edgeclip video train`."""

    head: str = "evl"
    head_params: dict[str, Any] = field(default_factory=dict)
    epochs: int = 60
    batch_size: int = 8
    accumulation: int = 16
    lr: float = 4e-4
    weight_decay: float = 5e-2
    folds: int = 5
    threshold: float = 0.5


@dataclass
class VideoConfig(VideoHeadConfig):
    """Dashcam accident recognition (DESIGN §4.6, edgeclip/video/). A recipe with `clips` builds
    encoder + temporal-head artifacts instead of distilling a classifier (edgeclip/build/accident.py).
    Defaults: the paper's training recipe (VideoHeadConfig); windows of 8 frames 2 apart; the
    labelled-window protocol of edgeclip/video/clips.py."""

    clips: list[str] = field(default_factory=list)  # clip lists / folders with labels.txt (relative: cwd, then repo)
    encoder: str = "proxy-digits"  # --encoder spec of `edgeclip video train`
    teacher_encoder: str = ""  # reference pipeline for retention (same head and folds); "" = none
    frames: int = 8
    stride: int = 2
    span: int = 0
    fps: float = 0.0  # frame rate of frame folders; 0 = 20 (DAD)
    gap_s: float = 1.0
    last_frames: int = 10
    hop: int = 2
    max_windows: int = 8
    bench_video: str = ""  # video the demo is timed on; "" = the first video clip of the lists
    bench_frames: int = 200
    min_fps: float = 30.0  # budget: decoded frames/s end to end with the model's hop
    min_fps_every_frame: float = 10.0  # budget: frames/s with every frame encoded


@dataclass
class SearchConfig:
    """Latency-aware student choice (`edgeclip build --latency-budget MS`; build/student_search.py).

    With a budget > 0 the build times every candidate (student × image size × pruning ratio) on the
    target's backend, distills the ones within the budget and ships the one with the best retention.
    Empty lists mean the recipe's own student / image size; ratio 0 is the unpruned student."""

    latency_budget_ms: float = 0.0  # p50 at batch 1 on the target; 0 = no search (the recipe's student)
    students: list[str] = field(default_factory=list)
    image_sizes: list[int] = field(default_factory=list)
    prune_ratios: list[float] = field(default_factory=lambda: [0.0])
    backend: str = ""  # "" = the target's first planned backend
    precision: str = "fp32"


@dataclass
class TargetConfig:
    """Per-build overrides of the target profile (`--set target.tensorrt=8.5`)."""

    # TensorRT on the device: 8.5 (JetPack 5.1.x), 8.6 (JetPack 6.0), 10.3 (JetPack 6.1/6.2); "" = the profile's.
    tensorrt: str = ""


@dataclass
class Recipe:
    name: str = "custom"
    description: str = ""
    seed: int = 0
    teacher: str = "proxy-digits"
    data: DataConfig = field(default_factory=DataConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    datafree: DataFreeConfig = field(default_factory=DataFreeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    int8: Int8Config = field(default_factory=Int8Config)
    video: VideoConfig = field(default_factory=VideoConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def recipe_differences(run: dict[str, Any], today: dict[str, Any], default: dict[str, Any] | None = None,
                       prefix: str = "") -> list[str]:
    """Dotted recipe fields in which a finished run differs from today's recipe (its prose aside).
    A field the run's recipe lacks was added to the code after it ran: equal only while today's
    value is still the field's default (the run behaved as the default does)."""
    if default is None:
        default = dataclasses.asdict(Recipe())
    out = []
    for key in sorted(set(run) | set(today)):
        if key == "description" and not prefix:
            continue
        path = prefix + key
        if key not in run:
            if today[key] != default.get(key):
                out.append(path)
        elif key not in today:
            out.append(path)
        elif isinstance(run[key], dict) and isinstance(today[key], dict):
            out += recipe_differences(run[key], today[key], default.get(key) or {}, path + ".")
        elif run[key] != today[key]:
            out.append(path)
    return out


def list_recipes() -> list[tuple[str, str]]:
    """(name, description) of every shipped recipe."""
    rows = []
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        rows.append((path.stem, str(data.get("description", "")).strip()))
    return rows


def recipe_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserError(f"recipe file '{path}' does not exist; pass a shipped recipe name (see `edgeclip list recipes`) or an existing YAML path")
        return path
    shipped = RECIPES_DIR / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise unknown_name_error("recipe", name_or_path, [p.stem for p in RECIPES_DIR.glob("*.yaml")], "see `edgeclip list recipes` or pass a YAML path")
    return shipped


def load_recipe(name_or_path: str = "", overrides: list[str] | None = None) -> Recipe:
    """Load a recipe by shipped name or path, apply `key=value` overrides, validate."""
    data: dict[str, Any] = {}
    if name_or_path:
        path = recipe_path(name_or_path)
        data = read_yaml_mapping(path, "recipe", "of sections: teacher, data, student, ...", loader=RecipeYamlLoader)
        if not data:  # an empty file would silently train on every default
            raise UserError(f"recipe '{path}' is empty; give it sections (teacher, data, student, distill, ...) or pass a "
                            "shipped recipe name (edgeclip list recipes)")
        data.setdefault("name", Path(path).stem)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set '{item}' is not key=value; write e.g. --set distill.epochs=5")
        _set_dotted(data, key.strip(), parse_recipe_value(value, key.strip()))
    recipe = build_dataclass(Recipe, data, "")
    # Not a field (it is not part of what a run did): where relative data paths of a recipe given by
    # path are also looked for (edgeclip/build/accident.py data_roots).
    recipe.source_dir = str(path.resolve().parent) if name_or_path and path.parent != RECIPES_DIR else ""
    if recipe.source_dir:
        _resolve_data_paths(recipe.data, Path(recipe.source_dir))
    return recipe


# Data keys that may name files or folders; a relative one that is not found from the working
# directory is looked for beside the recipe file (a recipe and its data often travel together).
DATA_PATH_KEYS = ("train", "test", "calibration", "pairs", "classname_map", "templates")


def _resolve_data_paths(data: DataConfig, recipe_dir: Path) -> None:
    for key in DATA_PATH_KEYS:
        value = getattr(data, key)
        if not value or Path(value).expanduser().is_absolute() or Path(value).exists():
            continue
        beside = recipe_dir / value
        if beside.exists():
            setattr(data, key, str(beside))


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {key}: '{part}' is not a section; set a key inside a section, e.g. --set distill.epochs=5")
    node[parts[-1]] = value


def build_dataclass(cls: type, data: dict[str, Any], where: str) -> Any:
    """Construct dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise UserError(f"'{where or cls.__name__}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{where}.{key}" if where else key
        if key not in fields:
            hint = close_matches(key, fields)
            did = f"; did you mean '{where + '.' if where else ''}{hint[0]}'?" if hint else ""
            raise UserError(f"unknown recipe key '{dotted}'{did} (valid: {', '.join(fields)})")
        kwargs[key] = _coerce(hints[key], value, dotted)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value if value is not None else {}, where)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"recipe key '{where}' must be a mapping, got {value!r}")
        return dict(value)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            value = [value]
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    raise UserError(f"recipe key '{where}' must be {getattr(hint, '__name__', hint)}, got {value!r}; fix the value "
                    "(quote text that YAML would read as something else)")
