"""Pair data for DistillCLIP: digits captions (train split only), CSV rows, webdataset shards per rank."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
from PIL import Image

from edgeclip.data import check_disjoint, open_image_dataset
from edgeclip.data.pair_sources import DigitsCaptionPairs, open_pairs
from edgeclip.data.shards import ShardPairDataset, expand_shards, write_pair_shards
from edgeclip.errors import UserError
from edgeclip.data.captions import digits_caption_bank


def test_digits_pairs_use_train_split_and_caption_bank() -> None:
    pairs = open_pairs("digits:2")
    assert len(pairs) == 2 * 719
    bank, labels = digits_caption_bank(pairs.class_names)
    by_caption = dict(zip(bank, labels))
    assert all(by_caption[c] == label for c, label in zip(pairs.captions, pairs.labels))
    for split in ("test", "pretrain"):
        check_disjoint(pairs, open_image_dataset("digits", split), f"pairs vs {split}")
    with pytest.raises(UserError, match="train' split only"):
        DigitsCaptionPairs("test")
    assert open_pairs("digits:2").captions == pairs.captions  # fixed seed: the same pairs every time


def test_shards_roundtrip_and_split_per_rank(tmp_path) -> None:
    pairs = open_pairs("digits")
    paths = write_pair_shards(_First(pairs, 25), tmp_path / "shards", shard_size=10)
    assert [p.name for p in paths] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    whole = ShardPairDataset(str(tmp_path / "shards" / "shard-{000000..000002}.tar"))
    assert whole.captions == pairs.captions[:25]
    assert np.array_equal(np.asarray(whole.load(7)), np.asarray(pairs.load(7)))
    assert whole.sample_ids() == pairs.sample_ids()[:25]
    rank0 = open_pairs(str(tmp_path / "shards"), rank=0, world_size=2)
    rank1 = open_pairs(str(tmp_path / "shards"), rank=1, world_size=2)
    assert len(rank0) == 15 and len(rank1) == 10  # shards 0, 2 vs shard 1
    assert not set(rank0.sample_ids()) & set(rank1.sample_ids())
    assert rank0.identity != rank1.identity
    with pytest.raises(UserError, match="world size 4 is larger than the number of shards \\(3\\)"):
        open_pairs(str(tmp_path / "shards"), rank=0, world_size=4)


def test_missing_shards_and_bad_samples(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        expand_shards(str(tmp_path / "shard-{000000..000003}.tar"))
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        _add(tar, "0001.png", _png())
        _add(tar, "0001.txt", b"   ")
    with pytest.raises(UserError, match="sample '0001' has an empty caption"):
        ShardPairDataset(str(bad))
    no_image = tmp_path / "noimage.tar"
    with tarfile.open(no_image, "w") as tar:
        _add(tar, "0002.txt", b"a digit")
    with pytest.raises(UserError, match="sample '0002' has no image"):
        ShardPairDataset(str(no_image))


def test_csv_rows_are_named_on_errors(tmp_path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    csv = tmp_path / "pairs.csv"
    csv.write_text("path,caption\na.png,a black square\nmissing.png,a cat\n")
    with pytest.raises(UserError, match="line 3: image missing.png not found"):
        open_pairs(str(csv))
    csv.write_text("path,caption\na.png,\n")
    with pytest.raises(UserError, match="line 2: empty caption for a.png"):
        open_pairs(str(csv))
    csv.write_text("path,caption\na.png,one\na.png,two\na.png,three\n")
    assert open_pairs(str(csv), rank=1, world_size=2).captions == ["two"]


def _png() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


class _First:
    def __init__(self, pairs, n: int) -> None:
        self.pairs, self.n, self.captions = pairs, n, pairs.captions[:n]

    def __len__(self) -> int:
        return self.n

    def load(self, i):
        return self.pairs.load(i)

    def sample_ids(self):
        return self.pairs.sample_ids()[: self.n]
