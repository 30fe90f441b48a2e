"""CIFAR-10 (60,000 real 32×32 photos, 10 classes) as an `ImageDataset`, read from the JPEG tarball.

The tarball (`cifar10-jpg.tar.gz`: `train/<class>/NNNN.jpg` ×50,000, `test/<class>/NNNN.jpg`
×10,000, CIFAR-10's own split) is decoded once into a pixel cache under `cache_dir()/data/`
(uint8 arrays, ~180 MB, keyed by the tarball's size and mtime and written atomically), so every
later open costs a memory map instead of 60,000 JPEG decodes.

Partition (fixed, seed 0, never a run's seed):
- `test`: CIFAR-10's 10,000 test images, held out from every teacher and student;
- `pretrain`: half of CIFAR-10's train split, stratified (25,000, 2,500 per class): the only images
  the `proxy-cifar10` CLIP teacher is trained on;
- `train`: the other half (25,000): what students and teacher heads learn from;
- `all`: all 60,000.

Where the tarball is: `cifar10:/path/to/cifar10-jpg.tar.gz`, else `$EDGECLIP_CIFAR10`, else
`../shared/data/cifar10/cifar10-jpg.tar.gz` beside the checkout or the working directory.
"""

from __future__ import annotations

import functools
import io
import os
import tarfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from edgeclip.data.base import PARTITION_SEED, ImageDataset, check_split
from edgeclip.data.sampling import stratified_split
from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_path
from edgeclip.paths import cache_dir

CIFAR10_CLASSES: list[str] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TRAIN_IMAGES, TEST_IMAGES, IMAGE_SIZE = 50_000, 10_000, 32
PRETRAIN_FRACTION = 0.5  # of CIFAR-10's train split
PARTITION_VERSION = "cifar-test10k-pretrain25k-train25k"
TARBALL_NAME = "cifar10-jpg.tar.gz"
ENV_VAR = "EDGECLIP_CIFAR10"
# Bump when decoding changes, so an old pixel cache is not reused.
CACHE_VERSION = "v1"


def default_tarball_candidates() -> list[Path]:
    """Where the tarball is looked for when no path is given, in order."""
    relative = Path("..") / "shared" / "data" / "cifar10" / TARBALL_NAME
    checkout = Path(__file__).resolve().parents[2]
    candidates = [Path(os.environ[ENV_VAR]).expanduser()] if os.environ.get(ENV_VAR) else []
    return candidates + [checkout / relative, Path.cwd() / relative]


def find_tarball(path: str | None = None) -> Path:
    """The CIFAR-10 tarball: `path` if given, else the first default candidate that exists."""
    if path:
        tarball = Path(path).expanduser()
        if not tarball.is_file():
            raise UserError(f"CIFAR-10 tarball {tarball} does not exist; fix the path in 'cifar10:PATH' "
                            f"(expected {TARBALL_NAME}, see ../shared/data/cifar10/PROVENANCE.md)")
        return tarball
    candidates = default_tarball_candidates()
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError(f"CIFAR-10 tarball not found (looked for {', '.join(str(c) for c in candidates)}); "
                    f"put {TARBALL_NAME} there, set ${ENV_VAR}, or use 'cifar10:/path/to/{TARBALL_NAME}'")


def _member_label(name: str) -> tuple[str, int] | None:
    """(split, class index) of a tar member `train/<class>/x.jpg`, None for folders and other files."""
    parts = Path(name).parts
    if len(parts) >= 3 and parts[-3] in ("train", "test") and not parts[-1].startswith("."):
        if parts[-2] not in CIFAR10_CLASSES:
            raise UserError(f"unexpected class folder '{parts[-2]}' in the CIFAR-10 tarball ({name}); "
                            f"expected one of {', '.join(CIFAR10_CLASSES)} — use an unmodified {TARBALL_NAME}")
        return parts[-3], CIFAR10_CLASSES.index(parts[-2])
    return None


def decode_tarball(tarball: Path, progress: bool = True,
                   expected: tuple[int, int] = (TRAIN_IMAGES, TEST_IMAGES)) -> dict[str, np.ndarray]:
    """Every image of the tarball as uint8 (N, 32, 32, 3) + int64 labels + member names, per split,
    sorted by member name so the order never depends on how the archive was packed."""
    found: dict[str, list[tuple[str, int, np.ndarray]]] = {"train": [], "test": []}
    try:
        with tarfile.open(tarball, "r:*") as archive:
            bar = tqdm(desc="decoding CIFAR-10 (once)", total=sum(expected), unit="img", disable=not progress)
            for member in archive:
                if not member.isfile():
                    continue
                where = _member_label(member.name)
                if where is None:
                    continue
                data = archive.extractfile(member).read()
                try:
                    with Image.open(io.BytesIO(data)) as image:
                        image.load()
                        pixels = np.asarray(image.convert("RGB"))
                except (OSError, ValueError, SyntaxError) as err:
                    raise UserError(f"{member.name} in {tarball} is not a readable image ({err}); "
                                    f"replace the tarball with an intact {TARBALL_NAME}") from err
                if pixels.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
                    raise UserError(f"{member.name} in {tarball} is {pixels.shape[1]}x{pixels.shape[0]}, not 32x32; "
                                    f"use an unmodified {TARBALL_NAME}")
                found[where[0]].append((member.name, where[1], pixels))
                bar.update(1)
            bar.close()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise UserError(f"{tarball} is not a readable CIFAR-10 tarball ({err or type(err).__name__}); "
                        f"replace it with an intact {TARBALL_NAME} (see its PROVENANCE.md for the sha256)") from err
    arrays: dict[str, np.ndarray] = {}
    for split, count in zip(("train", "test"), expected):
        rows = sorted(found[split], key=lambda row: row[0])
        missing = [name for i, name in enumerate(CIFAR10_CLASSES) if not any(row[1] == i for row in rows)]
        if missing:
            raise UserError(f"the {split} split of {tarball} has no images of {', '.join(missing)}; "
                            f"use an intact {TARBALL_NAME}")
        if len(rows) != count:
            raise UserError(f"the {split} split of {tarball} has {len(rows)} images, not {count}; "
                            f"the tarball is truncated or modified — use an intact {TARBALL_NAME}")
        arrays[f"{split}_pixels"] = np.stack([row[2] for row in rows])
        arrays[f"{split}_labels"] = np.array([row[1] for row in rows], dtype=np.int64)
        arrays[f"{split}_names"] = np.array([row[0] for row in rows])
    return arrays


def _cache_path(tarball: Path) -> Path:
    stat = tarball.stat()
    return cache_dir() / "data" / f"cifar10-{CACHE_VERSION}-{stat.st_size}-{int(stat.st_mtime)}.npz"


@functools.lru_cache(maxsize=2)
def cifar10_arrays(tarball: Path, progress: bool = True) -> dict[str, np.ndarray]:
    """Pixels, labels and member names of all 60,000 photos (CIFAR's train split first, then its
    test split; `train_count` says where test starts), decoded once and cached on disk."""
    cache = _cache_path(tarball)
    if not cache.is_file():
        arrays = decode_tarball(tarball, progress=progress)
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as handle:  # np.savez on a path would append '.npz' to the temp name
                np.savez(handle, **arrays)
    with np.load(cache, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    # Indices of every split run over [train (50,000) ; test (10,000)]: join once here, not per split opened.
    arrays["train_count"] = np.array(len(arrays["train_labels"]))
    for key in ("pixels", "labels", "names"):
        arrays[key] = np.concatenate([arrays.pop(f"train_{key}"), arrays.pop(f"test_{key}")])
    for value in arrays.values():
        value.setflags(write=False)
    return arrays


@functools.lru_cache(maxsize=2)
def cifar10_partition(tarball: Path) -> dict[str, list[int]]:
    """Indices of each split into the concatenation [train (50,000) ; test (10,000)]."""
    arrays = cifar10_arrays(tarball)
    offset, total = int(arrays["train_count"]), len(arrays["labels"])
    train_pos, pretrain_pos = stratified_split(arrays["labels"][:offset].tolist(), PRETRAIN_FRACTION, PARTITION_SEED)
    parts = {
        "test": list(range(offset, total)),
        "pretrain": sorted(pretrain_pos),
        "train": sorted(train_pos),
    }
    names = list(parts)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            # A teacher that saw test or train images would make every retention figure a lie.
            assert not set(parts[first]) & set(parts[second]), f"cifar10 {first} and {second} overlap"
    assert sum(len(v) for v in parts.values()) == total
    parts["all"] = list(range(total))
    return parts


class Cifar10Dataset(ImageDataset):
    """One split of the fixed CIFAR-10 partition: train, test, pretrain or all."""

    kind = "cifar10"
    mirror_invariant = True

    def __init__(self, split: str = "train", tarball: str | None = None, progress: bool = True) -> None:
        check_split(split, "cifar10")
        self.tarball = find_tarball(tarball).resolve()
        arrays = cifar10_arrays(self.tarball, progress)
        self._pixels, self._names, labels = arrays["pixels"], arrays["names"], arrays["labels"]
        self.split = split
        self.indices = cifar10_partition(self.tarball)[split]
        self.labels = [int(labels[i]) for i in self.indices]
        self.class_names = list(CIFAR10_CLASSES)
        self.skipped = []
        stat = self.tarball.stat()
        self.identity = f"cifar10:jpg:{stat.st_size}:{PARTITION_VERSION}:split={split}:n={len(self.indices)}"

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(self._pixels[self.indices[self._check_index(index)]]))

    def sample_ids(self) -> list[str]:
        return [f"cifar10:{self._names[i]}" for i in self.indices]

    def array(self, index: int) -> np.ndarray:
        """The raw uint8 (32, 32, 3) image."""
        return np.array(self._pixels[self.indices[self._check_index(index)]])

    def pixels(self) -> np.ndarray:
        """All images of the split as one uint8 (N, 32, 32, 3) array (fast batch preprocessing)."""
        return self._pixels[self.indices]
