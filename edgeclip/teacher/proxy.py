"""The proxy teacher: a tiny CLIP trained here, contrastively, on real digits with text captions.

No pretrained CLIP can be downloaded on an offline machine, yet accuracy and retention need a
teacher that actually knows something. This one does: its zero-shot accuracy on held-out digits
is real, so a student's retention against it is a real measurement. It is trained on first use
(about a minute on 2 cores), cached under `cache_dir()/teachers/`, and reused.

Captions come from the label and a template ("a photo of the digit seven", "a handwritten 7").
The loss is CLIP's symmetric image–text cross-entropy, with every caption of the image's class
counted as a positive (a batch of 10 classes has many same-class pairs, which plain CLIP would
push apart as negatives).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edgeclip.data import CIFAR10_CLASSES, DIGIT_WORDS, check_disjoint, open_image_dataset
from edgeclip.data.captions import DIGIT_NUMERALS, DIGITS_TEMPLATES, digits_caption_bank
from edgeclip.data.preprocess import Preprocess
from edgeclip.io_utils import write_json
from edgeclip.paths import cache_dir
from edgeclip.teacher.clip_teacher import PROXY_DESCRIPTIONS, PROXY_TEACHERS, ClipTeacher
from edgeclip.teacher.contrastive import class_aware_clip_loss, pick_captions
from edgeclip.utils import seed_everything, torch_threads

# Small enough to train in a minute or two on 2 CPU cores: 16 patches of 8×8 pixels (each covers
# 2×2 pixels of the original 8×8 digit), 16-token captions.
PROXY_DIGITS_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 4, "head_width": 32, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 2.0},
}
# 8×8 digits are stretched to 32×32: the images are already square and centred.
PROXY_DIGITS_PREPROCESS = Preprocess(size=32, resize_mode="stretch", interpolation="bicubic")


@dataclass
class ProxyTrainConfig:
    epochs: int = 80  # 6 steps per epoch on the 719-image pool; 40 epochs reached 0.905, 80 reach 0.975
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    seed: int = 0
    threads: int = 2  # fixed: the cached teacher is the same bit for bit whoever trains it (CLI, tests, benchmarks)


def random_affine(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-image small rotation, scale and shift (digits must not be flipped)."""
    n = images.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * math.radians(24)
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    # Pad with the normalized value of black so shifted-in borders look like background.
    background = images.amin(dim=(2, 3), keepdim=True)
    return nn.functional.grid_sample(images - background, grid, align_corners=False) + background


def _preprocess_dataset(dataset, preprocess: Preprocess) -> tuple[torch.Tensor, torch.Tensor]:
    images = np.stack([preprocess(dataset.load(i)) for i in range(len(dataset))])
    return torch.from_numpy(images), torch.tensor(dataset.labels, dtype=torch.long)


def train_proxy_teacher(config: ProxyTrainConfig | None = None, progress: bool = True, *,
                        name: str = "proxy-digits", model_config: dict | None = None) -> tuple[ClipTeacher, dict]:
    """Train a digits proxy CLIP (default: `proxy-digits`); returns the teacher and its measured
    zero-shot accuracy. `name`/`model_config` train another size on the same pool and recipe."""
    config = config or ProxyTrainConfig()
    with torch_threads(config.threads):
        return _train_proxy_teacher(config, progress, name, model_config or PROXY_DIGITS_CONFIG)


def _train_proxy_teacher(config: ProxyTrainConfig, progress: bool, name: str, model_config: dict) -> tuple[ClipTeacher, dict]:
    seed_everything(config.seed)
    # The proxy's own pool: students train on digits "train" and everyone is tested on "test".
    train = open_image_dataset("digits", split="pretrain")
    test = open_image_dataset("digits", split="test")
    check_disjoint(train, test, "proxy teacher pool vs test split")
    check_disjoint(train, open_image_dataset("digits", split="train"), "proxy teacher pool vs task train split")
    images, labels = _preprocess_dataset(train, PROXY_DIGITS_PREPROCESS)

    teacher = ClipTeacher.from_config(name, model_config, PROXY_DIGITS_PREPROCESS, source="trained-here")
    model = teacher.model.train()
    captions, caption_labels = digits_caption_bank(train.class_names)
    caption_tokens = teacher.tokenize(captions)
    caption_labels = torch.tensor(caption_labels)
    by_class = [torch.nonzero(caption_labels == c).flatten() for c in range(len(train.class_names))]

    # The 49,408-row token table stays at its random init: updating 4.7M mostly unused rows every
    # step would dominate the step time, and random word vectors are distinct enough to learn from.
    model.token_embedding.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    total = config.epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / config.warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    generator = torch.Generator().manual_seed(config.seed)
    started = time.perf_counter()
    bar = tqdm(range(config.epochs), desc=name, unit="epoch", disable=not progress)
    for _ in bar:
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), config.batch_size):
            index = order[start:start + config.batch_size]
            batch_labels = labels[index]
            picks = pick_captions(by_class, batch_labels, generator)
            loss = class_aware_clip_loss(model, random_affine(images[index], generator), caption_tokens[picks], batch_labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    accuracy = zero_shot_accuracy(teacher, test)
    info = {
        "teacher": name,
        "zero_shot_accuracy_test": accuracy,
        "test_images": len(test),
        "train_images": len(train),
        "train_split": train.identity,
        "train_seconds": round(time.perf_counter() - started, 1),
        "templates": "digits",
        "config": asdict(config),
        "model_config": model_config,
        "torch": str(torch.__version__),
    }
    return teacher, info


@torch.no_grad()
def zero_shot_accuracy(teacher: ClipTeacher, dataset, templates: list[str] | None = None,  # noqa: ANN001
                       batch_size: int = 500) -> float:
    """Top-1 zero-shot accuracy of `teacher` on `dataset` with a prompt-ensemble head, in batches
    (10,000 CIFAR-10 photos at once would hold GBs of activations; the 359 test digits are one batch)."""
    head = teacher.zero_shot_head(list(dataset.class_names), templates or DIGITS_TEMPLATES)
    labels = torch.tensor(dataset.labels)
    correct = 0
    for start in range(0, len(dataset), batch_size):
        stop = min(len(dataset), start + batch_size)
        batch = torch.from_numpy(np.stack([teacher.preprocess(dataset.load(i)) for i in range(start, stop)]))
        correct += int((head(teacher.encode_image(batch)).argmax(dim=1) == labels[start:stop]).sum())
    return correct / len(dataset)


# Bump when the proxy's training data or recipe changes, so a stale cached teacher is not reused.
PROXY_VERSION = "v2-pretrain-pool"

# A larger proxy for DistillCLIP (paper 001) on digits: distilling `proxy-digits` (the smallest
# CLIP here) would grow the model, so a real compression needs a bigger teacher. 64 patches of
# 4x4 (one original digit pixel each), a 6-layer 128-wide image tower and a 4-layer 128-wide text
# tower; trained on the same `pretrain` pool with the same recipe (a few minutes on 2 cores).
PROXY_DIGITS_LARGE_CONFIG = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 128, "layers": 6, "head_width": 32, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 4, "mlp_ratio": 2.0},
}
PROXY_CONFIGS = {"proxy-digits": PROXY_DIGITS_CONFIG, "proxy-digits-large": PROXY_DIGITS_LARGE_CONFIG}
# Training recipes per proxy (the large one converges in fewer epochs; each epoch costs ~6x more).
PROXY_TRAIN = {"proxy-digits": ProxyTrainConfig(), "proxy-digits-large": ProxyTrainConfig(epochs=60, lr=1e-3)}


def proxy_dir(name: str = "proxy-digits") -> Path:
    return cache_dir() / "teachers" / f"{name}-{PROXY_VERSION}"


def load_proxy_teacher(progress: bool = True, name: str = "proxy-digits") -> ClipTeacher:
    """The cached proxy teacher `name`, trained first if it is not cached yet."""
    checkpoint = proxy_dir(name) / "teacher.pt"
    if not checkpoint.is_file():
        teacher, info = train_proxy_teacher(PROXY_TRAIN[name], progress=progress, name=name, model_config=PROXY_CONFIGS[name])
        teacher.save(checkpoint, extra=info)
        write_json(proxy_dir(name) / "info.json", info)
    return ClipTeacher.load_checkpoint(checkpoint)


def proxy_info(name: str = "proxy-digits") -> dict:
    """What was measured when the cached proxy teacher `name` was trained."""
    path = proxy_dir(name) / "info.json"
    return json.loads(path.read_text()) if path.is_file() else {}


# The data spec whose `pretrain` split each proxy teacher was trained on.
PROXY_POOLS = {"proxy-digits": "digits", "proxy-digits-large": "digits", "proxy-cifar10": "cifar10"}


def proxy_pool(name: str):
    """The images proxy teacher `name` was trained on (its data's `pretrain` split), for disjointness checks."""
    if name not in PROXY_POOLS:
        raise KeyError(name)
    return open_image_dataset(PROXY_POOLS[name], split="pretrain")


def check_proxy_pool_held_out(teacher_spec: object, datasets: dict[str, object]) -> None:
    """UserError when a proxy teacher's training pool shares images with a dataset of the same
    kind (`{"train split": ds, ...}`): a teacher that saw the test or train images would make
    every retention figure a lie."""
    if not isinstance(teacher_spec, str) or teacher_spec not in PROXY_POOLS:
        return
    kinds = {getattr(ds, "kind", None) for ds in datasets.values()}
    if PROXY_POOLS[teacher_spec] not in kinds:
        return
    pool = proxy_pool(teacher_spec)
    for what, dataset in datasets.items():
        if getattr(dataset, "kind", None) == pool.kind:
            check_disjoint(pool, dataset, f"{teacher_spec} pre-training pool vs {what}")


PROXY_DESCRIPTIONS["proxy-digits"] = "CLIP trained here on first use on digits' pretrain split (about a minute), cached"
PROXY_DESCRIPTIONS["proxy-digits-large"] = "larger digits CLIP (DistillCLIP's teacher), trained here on first use, cached"
# What each proxy's data shows, in words a page can show ("this proxy teacher only knows ...").
PROXY_KNOWS = {"digits": "handwritten digits (scikit-learn's 8x8 digits)",
               "cifar10": "small photos of the ten CIFAR-10 classes (32x32)"}


def proxy_domain(name: str) -> dict | None:
    """The domain and classes proxy teacher `name` was trained on; None when `name` is not a proxy."""
    if name not in PROXY_POOLS:
        return None
    data = PROXY_POOLS[name]
    # The digits proxies' captions also named each class by numeral (caption_bank).
    aliases = list(DIGIT_NUMERALS) if data == "digits" else []

    classes = DIGIT_WORDS if data == "digits" else CIFAR10_CLASSES  # without opening (or needing) the data
    return {"name": name, "knows": PROXY_KNOWS[data], "classes": list(classes),
            "aliases": aliases, "trained_on": f"{data} pretrain split"}


PROXY_TEACHERS.register("proxy-digits", load_proxy_teacher)
PROXY_TEACHERS.register("proxy-digits-large", lambda progress=True: load_proxy_teacher(progress, "proxy-digits-large"))
