"""Image–caption pairs in webdataset tar shards (the format open_clip trains from).

A shard is a tar of samples grouped by key: `<key>.png` (or `.jpg`/`.jpeg`/`.webp`), `<key>.txt`
(the caption) and an optional `<key>.json` (metadata; `sample_id` names the source image so two
pair sets can be checked for shared images). Shards are named with open_clip's brace notation,
`pairs/shard-{000000..000009}.tar`, given as a directory of `.tar` files, or as `a.tar::b.tar`.

Reading uses the `webdataset` package (`WebDataset` with an explicit shard list, as open_clip's
`get_wds_dataset`): each torchrun rank reads only its own shards (`shards[rank::world_size]`,
what `wds.split_by_node` does), so a rank never decodes another rank's data. Within a rank the
samples are kept as their encoded bytes (PNG/JPEG, compressed) so the trainer can index them,
shuffle per epoch, cache the teacher's embeddings per pair, and resume mid-epoch; DataLoader
workers then split the rank's samples by index. A rank's shards must fit in its RAM as
compressed bytes; beyond that, shard more and use more ranks.
"""

from __future__ import annotations

import glob
import io
import json
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_dir
from edgeclip.utils import stable_hash

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
SHARD_FORMS = "a .tar shard, a brace pattern like pairs/shard-{000000..000009}.tar, a folder of .tar shards, or a::b.tar"


def expand_shards(spec: str) -> list[Path]:
    """The shard files named by `spec` (see SHARD_FORMS); every one must exist."""
    from braceexpand import braceexpand

    spec = str(spec).strip()
    if not spec:
        raise UserError(f"empty shard spec; give {SHARD_FORMS}")
    path = Path(spec).expanduser()
    if path.is_dir():
        shards = sorted(path.glob("*.tar"))
        if not shards:
            raise UserError(f"folder {path} has no .tar shards; write them with edgeclip.data.shards.write_pair_shards")
        return shards
    names = [name for part in spec.split("::") for name in braceexpand(part)]
    shards = []
    for name in names:
        matches = sorted(glob.glob(str(Path(name).expanduser()))) if any(c in name for c in "*?[") else [name]
        shards += [Path(m) for m in matches]
    missing = [str(s) for s in shards if not s.is_file()]
    if missing or not shards:
        raise UserError(f"shard {missing[0] if missing else spec} does not exist ({len(missing)} of {len(names)} missing); "
                        f"fix the path or pattern ({SHARD_FORMS})")
    return shards


def shards_for_rank(shards: Sequence[Path], rank: int, world_size: int) -> list[Path]:
    """This rank's shards (`shards[rank::world_size]`); more ranks than shards is a UserError."""
    if world_size > len(shards):
        raise UserError(f"world size {world_size} is larger than the number of shards ({len(shards)}): some ranks would get "
                        f"no data; write at least {world_size} shards (write_pair_shards shard_size=) or run fewer processes")
    return list(shards[rank::world_size])


class ShardPairDataset:
    """Pairs from this rank's shards: `len`, `load(i) -> PIL RGB`, `captions`, `sample_ids()`, `identity`."""

    kind = "shards"

    def __init__(self, spec: str, *, rank: int = 0, world_size: int = 1) -> None:
        import webdataset as wds

        all_shards = expand_shards(spec)
        self.shards = shards_for_rank(all_shards, rank, world_size)
        self.rank, self.world_size = rank, world_size
        self.keys: list[str] = []
        self.captions: list[str] = []
        self._images: list[bytes] = []
        self._ids: list[str] = []
        self.skipped: list[str] = []
        urls = [str(s) for s in self.shards]
        # shardshuffle=False: the order is the trainer's business (seeded per epoch); nodesplitter
        # None: the rank split is done above, explicitly, so it does not depend on torch.distributed state.
        pipeline = wds.WebDataset(urls, shardshuffle=False, nodesplitter=None, workersplitter=None, empty_check=False)
        try:
            for sample in pipeline:
                self._add(sample)
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - a truncated or non-tar file is a user data problem
            raise UserError(f"cannot read shards {urls[0]}..: {type(err).__name__}: {str(err).splitlines()[0][:160]}; "
                            "re-write the shards (each a tar of <key>.png + <key>.txt)") from None
        if not self.keys:
            raise UserError(f"shards {urls[0]}.. hold no image+caption samples; each sample needs <key>.png|jpg and <key>.txt")
        stats = [(str(s.resolve()), s.stat().st_size, s.stat().st_mtime_ns) for s in self.shards]
        self.identity = f"shards:n={len(self.keys)}:rank={rank}/{world_size}:files={stable_hash(stats)}"

    def _add(self, sample: dict[str, Any]) -> None:
        key = sample.get("__key__", "?")
        shard = sample.get("__url__", "?")
        image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in sample), None)
        if image_ext is None:
            raise UserError(f"shard {shard} sample '{key}' has no image (.{'/.'.join(IMAGE_EXTENSIONS)}); "
                            "add the image or remove the sample")
        caption = sample.get("txt", b"")
        caption = (caption.decode("utf-8") if isinstance(caption, bytes) else str(caption)).strip()
        if not caption:
            raise UserError(f"shard {shard} sample '{key}' has an empty caption; write a caption in {key}.txt or remove the sample")
        meta = {}
        if "json" in sample:
            try:
                meta = json.loads(sample["json"])
            except ValueError:
                meta = {}
        self.keys.append(str(key))
        self.captions.append(caption)
        self._images.append(bytes(sample[image_ext]))
        self._ids.append(str(meta.get("sample_id") or f"{shard}:{key}"))

    def __len__(self) -> int:
        return len(self.keys)

    def load(self, index: int) -> Image.Image:
        try:
            with Image.open(io.BytesIO(self._images[index])) as image:
                return image.convert("RGB")
        except (OSError, ValueError) as err:
            raise UserError(f"shard sample '{self.keys[index]}' has an unreadable image ({err}); re-write that shard") from None

    def sample_ids(self) -> list[str]:
        return list(self._ids)

    def __repr__(self) -> str:
        return f"ShardPairDataset({self.identity!r}, pairs={len(self)})"


def write_pair_shards(pairs: Any, out_dir: str | Path, *, shard_size: int = 1000, prefix: str = "shard",
                      image_format: str = "png") -> list[Path]:
    """Write `pairs` (`len`, `load(i)`, `captions`, optional `sample_ids()`) as webdataset shards.

    The folder is written atomically (temp sibling, then renamed): a crash leaves no partial set.
    Returns the shard paths; pass the folder (or `prefix-{000000..N}.tar`) to ShardPairDataset.
    """
    import webdataset as wds

    if shard_size < 1:
        raise UserError(f"shard_size must be >= 1, got {shard_size}")
    out_dir = Path(out_dir)
    ids = pairs.sample_ids() if hasattr(pairs, "sample_ids") else [None] * len(pairs)
    count = (len(pairs) + shard_size - 1) // shard_size
    with atomic_dir(out_dir) as tmp:
        for shard in range(count):
            with wds.TarWriter(str(tmp / f"{prefix}-{shard:06d}.tar")) as sink:
                for i in range(shard * shard_size, min((shard + 1) * shard_size, len(pairs))):
                    buffer = io.BytesIO()
                    pairs.load(i).save(buffer, format=image_format.upper())
                    sample = {"__key__": f"{i:09d}", image_format: buffer.getvalue(), "txt": pairs.captions[i]}
                    if ids[i] is not None:
                        sample["json"] = json.dumps({"sample_id": ids[i]}).encode()
                    sink.write(sample)
    return [out_dir / f"{prefix}-{shard:06d}.tar" for shard in range(count)]
