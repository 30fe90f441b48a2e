"""Pair data for dual-encoder distillation: one spec string → an indexable set of (image, caption).

Specs (`data.pairs` in a recipe, `--pairs` on the command line):
- `digits` / `cifar10` — the offline pairs: every image of the digits `train` split (never `test`, never
  `pretrain`, the proxy teachers' pool) with captions from the proxy's own caption source
  (`data.captions.CAPTION_BANKS`: the digits templates × the class word and numeral). Each image
  gets `digits:K` captions (default 1), picked by a fixed seed, so the pair list never changes.
- a `.csv` file of `path,caption` lines (`data/pairs.py`);
- webdataset shards: a `.tar`, a brace pattern, or a folder of `.tar` files (`data/shards.py`).

Every source has `len`, `load(i) -> PIL`, `captions`, `sample_ids()` and `identity`; with
several torchrun ranks each rank gets its own part (shards per rank; CSV/digits rows
`[rank::world_size]`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgeclip.data import open_image_dataset
from edgeclip.data.captions import CAPTION_BANKS
from edgeclip.data.pairs import PairDataset
from edgeclip.data.shards import ShardPairDataset
from edgeclip.errors import UserError
from edgeclip.utils import stable_hash

# Template pairs come from the task's training images only (see data/digits.py, data/cifar10.py).
DIGITS_PAIR_SPLITS = ("train",)


class TemplateCaptionPairs:
    """`data`'s `train` images, each with `captions_per_image` captions from its proxy's caption bank."""

    def __init__(self, data: str = "digits", split: str = "train", *, captions_per_image: int = 1, seed: int = 0) -> None:
        self.kind = f"{data}-pairs"
        if split not in DIGITS_PAIR_SPLITS:
            raise UserError(f"{data} pairs come from the 'train' split only, not '{split}' ('test' is held out from every "
                            f"model, 'pretrain' is the proxy teachers' pool); use data.pairs={data}")
        if captions_per_image < 1:
            raise UserError(f"{data}:K needs K >= 1 captions per image, got {captions_per_image}")
        self.images = open_image_dataset(data, split)
        self.mirror_invariant = self.images.mirror_invariant
        self.class_names = list(self.images.class_names)
        bank, bank_labels = CAPTION_BANKS[data](self.class_names)
        by_class = [[c for c, lab in zip(bank, bank_labels) if lab == label] for label in range(len(self.class_names))]
        rng = np.random.default_rng(seed)
        self.image_index: list[int] = []
        self.captions: list[str] = []
        self.labels: list[int] = []
        for i, label in enumerate(self.images.labels):
            choices = rng.choice(len(by_class[label]), size=min(captions_per_image, len(by_class[label])), replace=False)
            for c in choices:
                self.image_index.append(i)
                self.captions.append(by_class[label][int(c)])
                self.labels.append(label)
        self.skipped: list[str] = []
        self.identity = (f"{self.kind}:{self.images.identity}:k={captions_per_image}:seed={seed}"
                         f":captions={stable_hash(self.captions)}")

    def __len__(self) -> int:
        return len(self.captions)

    def load(self, index: int) -> Image.Image:
        return self.images.load(self.image_index[index])

    def sample_ids(self) -> list[str]:
        ids = self.images.sample_ids()
        return [ids[i] for i in self.image_index]


class DigitsCaptionPairs(TemplateCaptionPairs):
    """Digits `train` images, each with `captions_per_image` captions from the caption bank."""

    def __init__(self, split: str = "train", *, captions_per_image: int = 1, seed: int = 0) -> None:
        super().__init__("digits", split, captions_per_image=captions_per_image, seed=seed)


class RankSlice:
    """Rows `[rank::world_size]` of a pair source (CSV and digits pairs under torchrun)."""

    def __init__(self, base: Any, rank: int, world_size: int) -> None:
        if world_size > len(base):
            raise UserError(f"world size {world_size} is larger than the {len(base)} pairs; run fewer processes")
        self.base = base
        self.kind = getattr(base, "kind", "pairs")
        self.rows = list(range(rank, len(base), world_size))
        self.captions = [base.captions[i] for i in self.rows]
        if hasattr(base, "labels"):
            self.labels = [base.labels[i] for i in self.rows]
            self.class_names = base.class_names
        self.skipped = list(getattr(base, "skipped", []))
        self.identity = f"rank{rank}/{world_size}({base.identity})"

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, index: int) -> Image.Image:
        return self.base.load(self.rows[index])

    def sample_ids(self) -> list[str]:
        ids = self.base.sample_ids()
        return [ids[i] for i in self.rows]


def _csv_sample_ids(pairs: Any) -> list[str]:
    return [str(p) for p in pairs.paths]


def open_pairs(spec: str, *, rank: int = 0, world_size: int = 1, skip_corrupt: bool = False, seed: int = 0) -> Any:
    """This rank's pair source for `spec` (see the module docstring)."""
    spec = str(spec).strip()
    if not spec:
        raise UserError("no pair data given; set data.pairs (digits, cifar10, a path,caption CSV, or webdataset shards)")
    name, _, arg = spec.partition(":")
    if name in CAPTION_BANKS and not Path(spec).exists():
        try:
            per_image = int(arg) if arg else 1
        except ValueError:
            raise UserError(f"'{spec}': {name}:K takes a whole number of captions per image, e.g. {name}:2") from None
        pairs: Any = TemplateCaptionPairs(name, "train", captions_per_image=per_image, seed=seed)
    elif spec.lower().endswith(".csv"):
        pairs = PairDataset(spec, skip_corrupt=skip_corrupt)
        pairs.sample_ids = lambda p=pairs: _csv_sample_ids(p)  # type: ignore[attr-defined]
    elif spec.endswith(".tar") or "{" in spec or "::" in spec or Path(spec).expanduser().is_dir():
        return ShardPairDataset(spec, rank=rank, world_size=world_size)
    else:
        raise UserError(f"pair data '{spec}' is not digits[:K], cifar10[:K], a .csv of path,caption lines, or webdataset shards "
                        "(.tar, a {000000..000009} pattern, or a folder of .tar files)")
    return RankSlice(pairs, rank, world_size) if world_size > 1 else pairs
