"""`proxy-cifar10`: a small open_clip CLIP trained here, contrastively, on real CIFAR-10 photos.

The natural-image counterpart of `proxy-digits` (teacher/proxy.py). Image tower: the CIFAR-style
ConvNet `edgeclip_convnet_s` as an open_clip timm tower (convnet_tower.py); text tower: a 3-layer
128-wide Transformer. Captions: OpenAI's 18 CIFAR templates with the class name ("a blurry photo
of a cat."); loss: CLIP's symmetric image–text cross-entropy with every caption of the image's
class counted as a positive (as for digits). It trains only on CIFAR-10's `pretrain` pool (25,000
images of the official train split); students learn from the other 25,000 (`train`) and every
model is measured on the official 10,000 `test` images, which the teacher never sees.

Weights: shipped with the package as safetensors (`teacher/weights/proxy-cifar10.safetensors`,
its sha256 in the JSON beside it), so a user gets the teacher without retraining. The 49,408-row
token table is never trained (as for digits): it is regenerated from a fixed seed on load and
checked against the hash recorded at publication, which keeps the file a few MB. Retrain with
`python benchmarks/proxy_cifar10.py --retrain` (resumable; ~an hour of 2 CPU cores).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from edgeclip.data import check_disjoint, open_image_dataset
from edgeclip.data.captions import CIFAR_TEMPLATES, cifar10_caption_bank
from edgeclip.data.preprocess import Preprocess
from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_path, safe_torch_load, write_json
from edgeclip.paths import cache_dir
from edgeclip.teacher.clip_teacher import PROXY_DESCRIPTIONS, PROXY_TEACHERS, ClipTeacher
from edgeclip.teacher.contrastive import class_aware_clip_loss, pick_captions
from edgeclip.teacher.proxy import zero_shot_accuracy
from edgeclip.utils import seed_everything, torch_threads

NAME = "proxy-cifar10"
VERSION = "v1"
PROXY_CIFAR10_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"timm_model_name": "edgeclip_convnet_s", "timm_pool": "max", "timm_proj": "linear", "image_size": 32},
    "text_cfg": {"context_length": 20, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3, "mlp_ratio": 2.0},
}
# CIFAR-10's channel statistics; the photos are already 32×32, so no resize happens.
PROXY_CIFAR10_PREPROCESS = Preprocess(size=32, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
                                      resize_mode="stretch", interpolation="bicubic")
TOKEN_TABLE_SEED = 49408
TOKEN_TABLE_KEY = "token_embedding.weight"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass
class Cifar10ProxyTrainConfig:
    epochs: int = 20
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    crop_padding: int = 4
    seed: int = 0
    threads: int = 2  # fixed: the teacher is the same bit for bit whoever trains it


def token_table(vocab_size: int, width: int) -> torch.Tensor:
    """The frozen token-embedding table, from a fixed seed (open_clip's init scale, std 0.02)."""
    generator = torch.Generator().manual_seed(TOKEN_TABLE_SEED)
    return torch.randn(vocab_size, width, generator=generator) * 0.02


def tensor_sha256(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().contiguous().numpy().tobytes()).hexdigest()


def normalize_pixels(pixels: np.ndarray, preprocess: Preprocess = PROXY_CIFAR10_PREPROCESS) -> torch.Tensor:
    """uint8 (N, 32, 32, 3) → normalized float (N, 3, 32, 32), as `preprocess` computes it per image."""
    array = pixels.astype(np.float32) / 255.0
    array = (array - np.asarray(preprocess.mean, np.float32)) / np.asarray(preprocess.std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """CIFAR's standard augmentation: a random 32×32 crop of the reflect-padded image, and a
    horizontal flip half the time (photos, unlike digits, may be mirrored)."""
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4, mode="reflect")
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(images)
    for i in range(n):
        top, left = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[i, :, top:top + height, left:left + width]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def new_teacher() -> ClipTeacher:
    teacher = ClipTeacher.from_config(NAME, PROXY_CIFAR10_CONFIG, PROXY_CIFAR10_PREPROCESS, source="trained-here")
    model = teacher.model
    with torch.no_grad():
        model.token_embedding.weight.copy_(token_table(*model.token_embedding.weight.shape))
    model.token_embedding.requires_grad_(False)
    return teacher


def train_proxy_cifar10(config: Cifar10ProxyTrainConfig | None = None, *, work_dir: Path | None = None,
                        progress: bool = True, pool=None, test=None) -> tuple[ClipTeacher, dict]:  # noqa: ANN001
    """Train `proxy-cifar10` (resumable: a checkpoint per epoch in `work_dir`); returns the teacher
    and what was measured. `pool`/`test` default to CIFAR-10's `pretrain`/`test` splits (tests pass
    small slices)."""
    config = config or Cifar10ProxyTrainConfig()
    work_dir = Path(work_dir or proxy_cifar10_dir() / "training")
    pool = pool if pool is not None else open_image_dataset("cifar10", split="pretrain")
    test = test if test is not None else open_image_dataset("cifar10", split="test")
    check_disjoint(pool, test, "proxy-cifar10 pool vs test split")
    if getattr(pool, "kind", "") == "cifar10":
        check_disjoint(pool, open_image_dataset("cifar10", split="train"), "proxy-cifar10 pool vs task train split")
    with torch_threads(config.threads):
        teacher, seconds = _train(config, work_dir, progress, pool)
        accuracy = zero_shot_accuracy(teacher, test, CIFAR_TEMPLATES)
    info = {
        "teacher": NAME, "version": VERSION,
        "zero_shot_accuracy_test": accuracy, "test_images": len(test), "test_split": test.identity,
        "train_images": len(pool), "train_split": pool.identity, "train_seconds": seconds,
        "templates": "cifar (OpenAI's 18)", "config": asdict(config), "model_config": PROXY_CIFAR10_CONFIG,
        "torch": str(torch.__version__),
    }
    return teacher, info


def _train(config: Cifar10ProxyTrainConfig, work_dir: Path, progress: bool, pool) -> tuple[ClipTeacher, float]:  # noqa: ANN001
    seed_everything(config.seed)
    teacher = new_teacher()
    model = teacher.model.train()
    model.visual.to(memory_format=torch.channels_last)
    pixels = pool.pixels() if hasattr(pool, "pixels") else np.stack([np.asarray(pool.load(i)) for i in range(len(pool))])
    images = normalize_pixels(pixels, teacher.preprocess)
    labels = torch.tensor(pool.labels, dtype=torch.long)
    captions, caption_labels = cifar10_caption_bank(list(pool.class_names))
    caption_tokens = teacher.tokenize(captions)
    caption_labels = torch.tensor(caption_labels)
    by_class = [torch.nonzero(caption_labels == c).flatten() for c in range(len(pool.class_names))]

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    total = config.epochs * steps_per_epoch
    warmup = max(1, round(config.warmup_epochs * steps_per_epoch))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    generator = torch.Generator().manual_seed(config.seed)
    start_epoch, seconds = 0, 0.0
    checkpoint = work_dir / "last.pt"
    fingerprint = {"config": asdict(config), "model_config": PROXY_CIFAR10_CONFIG, "pool": pool.identity}
    if checkpoint.is_file():
        state = safe_torch_load(checkpoint, "proxy-cifar10 training checkpoint", f"delete {work_dir} to start over")
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            generator.set_state(state["generator"])
            start_epoch, seconds = int(state["epoch"]), float(state["seconds"])
    bar = tqdm(range(start_epoch, config.epochs), desc=NAME, unit="epoch", disable=not progress,
               initial=start_epoch, total=config.epochs)
    for epoch in bar:
        started = time.perf_counter()
        order = torch.randperm(len(images), generator=generator)
        running = 0.0
        for step, start in enumerate(range(0, len(images), config.batch_size)):
            index = order[start:start + config.batch_size]
            batch_labels = labels[index]
            picks = pick_captions(by_class, batch_labels, generator)
            batch = random_crop_flip(images[index], config.crop_padding, generator).contiguous(memory_format=torch.channels_last)
            loss = class_aware_clip_loss(model, batch, caption_tokens[picks], batch_labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            running += loss.item()
            if progress and step % 10 == 0:
                bar.set_postfix(loss=f"{running / (step + 1):.3f}", step=f"{step}/{steps_per_epoch}")
        seconds += time.perf_counter() - started
        with atomic_path(checkpoint) as tmp:
            torch.save({"fingerprint": fingerprint, "epoch": epoch + 1, "seconds": seconds, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                        "generator": generator.get_state()}, tmp)
    model.eval()
    return teacher, round(seconds, 1)


# -- published weights ---------------------------------------------------------------------------

def proxy_cifar10_dir() -> Path:
    return cache_dir() / "teachers" / f"{NAME}-{VERSION}"


def published_paths(directory: Path = WEIGHTS_DIR) -> tuple[Path, Path]:
    return directory / f"{NAME}.safetensors", directory / f"{NAME}.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def publish(teacher: ClipTeacher, info: dict, directory: Path = WEIGHTS_DIR) -> dict:
    """Write the teacher's weights (without the seeded token table) as safetensors + a JSON record
    with the file's sha256, the token table's hash and what was measured."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in teacher.model.state_dict().items() if k != TOKEN_TABLE_KEY}
    weights, record_path = published_paths(directory)
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"name": NAME, "version": VERSION})
    record = {"name": NAME, "version": VERSION, "file": weights.name, "sha256": file_sha256(weights),
              "bytes": weights.stat().st_size, "token_table_seed": TOKEN_TABLE_SEED,
              "token_table_sha256": tensor_sha256(teacher.model.token_embedding.weight),
              "preprocess": teacher.preprocess.to_dict(), "model_config": PROXY_CIFAR10_CONFIG, "measured": info}
    write_json(record_path, record)
    return record


def load_published(directory: Path = WEIGHTS_DIR) -> ClipTeacher | None:
    """The shipped teacher, or None when no weights are shipped; a hash mismatch is an error."""
    from safetensors.torch import load_file

    weights, record_path = published_paths(directory)
    if not weights.is_file() or not record_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    if file_sha256(weights) != record["sha256"]:
        raise UserError(f"{weights} does not match its recorded sha256 (corrupt or modified); reinstall edgeclip "
                        f"or retrain with 'python benchmarks/proxy_cifar10.py --retrain'")
    state = load_file(str(weights))
    table = token_table(record["model_config"]["text_cfg"]["vocab_size"], record["model_config"]["text_cfg"]["width"])
    if tensor_sha256(table) != record["token_table_sha256"]:
        raise UserError("this torch version regenerates proxy-cifar10's token table differently from the one it was "
                        "trained with; retrain it with 'python benchmarks/proxy_cifar10.py --retrain'")
    state[TOKEN_TABLE_KEY] = table
    teacher = ClipTeacher.from_config(NAME, record["model_config"], Preprocess.from_dict(record["preprocess"]), state,
                                      source=f"{weights.name} sha256:{record['sha256'][:12]}")
    return teacher


def load_proxy_cifar10(progress: bool = True) -> ClipTeacher:
    """The cached `proxy-cifar10`: from the cache, else the shipped weights, else trained here."""
    checkpoint = proxy_cifar10_dir() / "teacher.pt"
    if checkpoint.is_file():
        return ClipTeacher.load_checkpoint(checkpoint)
    teacher = load_published()
    if teacher is not None:
        return teacher
    teacher, info = train_proxy_cifar10(progress=progress)
    teacher.save(checkpoint, extra=info)
    write_json(proxy_cifar10_dir() / "info.json", info)
    return ClipTeacher.load_checkpoint(checkpoint)


def proxy_cifar10_info() -> dict:
    """What was measured when `proxy-cifar10` was trained (shipped record, else the cache's)."""
    _, record_path = published_paths()
    if record_path.is_file():
        return json.loads(record_path.read_text()).get("measured", {})
    path = proxy_cifar10_dir() / "info.json"
    return json.loads(path.read_text()) if path.is_file() else {}


PROXY_DESCRIPTIONS[NAME] = ("CLIP trained on CIFAR-10's pretrain half; weights shipped (teacher/weights, sha256-checked), "
                           "retrain with python benchmarks/proxy_cifar10.py --retrain")
PROXY_TEACHERS.register(NAME, load_proxy_cifar10)
