"""CIFAR-10 from its JPEG tarball: the fixed partition, bad tarballs, and the proxy-cifar10 teacher."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgeclip.data import Subset, open_image_dataset
from edgeclip.data.cifar10 import CIFAR10_CLASSES, cifar10_arrays, decode_tarball, default_tarball_candidates
from edgeclip.errors import UserError

REAL_TARBALL = next((p for p in default_tarball_candidates() if p.is_file()), None)
needs_real = pytest.mark.skipif(REAL_TARBALL is None, reason="CIFAR-10 tarball not beside the checkout (../shared/data/cifar10)")


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_tarball(path: Path, *, per_class: dict[str, int] | None = None, extra: dict[str, bytes] | None = None,
                 skip_test_class: str | None = None) -> Path:
    """A CIFAR-layout tarball: train/<class>/NNNN.jpg and test/<class>/NNNN.jpg."""
    per_class = per_class or {"train": 2, "test": 1}
    with tarfile.open(path, "w:gz") as archive:
        members = dict(extra or {})
        seed = 0
        for split, count in per_class.items():
            for name in CIFAR10_CLASSES:
                if split == "test" and name == skip_test_class:
                    continue
                for i in range(count):
                    seed += 1
                    members[f"{split}/{name}/{i:04d}.jpg"] = _jpeg(seed)
        for name, data in sorted(members.items(), reverse=True):  # packing order must not matter
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_decode_reads_both_splits_sorted_by_member_name(tmp_path: Path) -> None:
    arrays = decode_tarball(make_tarball(tmp_path / "c.tar.gz"), progress=False, expected=(20, 10))
    assert arrays["train_pixels"].shape == (20, 32, 32, 3) and arrays["test_pixels"].shape == (10, 32, 32, 3)
    assert list(arrays["train_names"][:2]) == ["train/airplane/0000.jpg", "train/airplane/0001.jpg"]
    assert arrays["train_labels"].tolist() == [i // 2 for i in range(20)]
    assert arrays["test_labels"].tolist() == list(range(10))


def test_truncated_tarball_is_one_clear_error_and_leaves_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGECLIP_CACHE", str(tmp_path / "cache"))
    good = make_tarball(tmp_path / "c.tar.gz").read_bytes()
    bad = tmp_path / "truncated.tar.gz"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="not a readable CIFAR-10 tarball") as caught:
        cifar10_arrays(bad, progress=False)
    assert "\n" not in str(caught.value)
    assert not list((tmp_path / "cache").rglob("*.npz")), "a failed decode must not leave a cache behind"


def test_a_member_that_is_not_an_image_is_named(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "c.tar.gz", extra={"train/cat/9999.jpg": b"this is not a jpeg"})
    with pytest.raises(UserError, match=r"train/cat/9999\.jpg .*not a readable image"):
        decode_tarball(tarball, progress=False, expected=(21, 10))


def test_a_class_missing_from_the_test_split_is_named(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "c.tar.gz", skip_test_class="frog")
    with pytest.raises(UserError, match="test split .* has no images of frog"):
        decode_tarball(tarball, progress=False, expected=(20, 9))


def test_a_modified_tarball_with_other_counts_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGECLIP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="has 20 images, not 50000"):
        cifar10_arrays(make_tarball(tmp_path / "c.tar.gz"), progress=False)
    assert not list((tmp_path / "cache").rglob("*.npz"))


def test_missing_tarball_names_where_it_is_expected(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist.*cifar10-jpg.tar.gz"):
        open_image_dataset(f"cifar10:{tmp_path / 'nowhere.tar.gz'}", "test")


def test_cli_with_a_missing_tarball_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgeclip.cli import main

    code = main(["distill", "--recipe", "quickstart", "--data", f"cifar10:{tmp_path / 'none.tar.gz'}",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("edgeclip: error:") and "none.tar.gz" in err[0]
    assert not (tmp_path / "run" / "result.json").exists()


@needs_real
def test_real_partition_is_fixed_disjoint_and_keeps_cifars_own_test_split() -> None:
    splits = {s: open_image_dataset("cifar10", s) for s in ("train", "test", "pretrain")}
    assert [len(splits[s]) for s in ("train", "test", "pretrain")] == [25_000, 10_000, 25_000]
    assert splits["test"].class_counts() == [1000] * 10 and splits["pretrain"].class_counts() == [2500] * 10
    ids = {s: set(d.sample_ids()) for s, d in splits.items()}
    assert not ids["train"] & ids["pretrain"] and not ids["train"] & ids["test"] and not ids["pretrain"] & ids["test"]
    assert all(i.startswith("cifar10:test/") for i in ids["test"])
    assert all(i.startswith("cifar10:train/") for i in ids["train"] | ids["pretrain"])
    image = splits["test"].load(0)
    assert image.size == (32, 32) and image.mode == "RGB"


# -- the proxy-cifar10 teacher -------------------------------------------------------------------

def test_convnet_tower_builds_as_an_open_clip_timm_tower() -> None:
    from edgeclip.clip_models import build_clip_from_config
    from edgeclip.teacher.proxy_cifar10 import PROXY_CIFAR10_CONFIG

    model = build_clip_from_config(PROXY_CIFAR10_CONFIG).eval()
    assert type(model.visual).__name__ == "TimmModel"
    with torch.no_grad():
        assert model.encode_image(torch.zeros(2, 3, 32, 32)).shape == (2, PROXY_CIFAR10_CONFIG["embed_dim"])


def test_fast_pixel_normalization_matches_the_per_image_preprocess() -> None:
    from edgeclip.teacher.proxy_cifar10 import PROXY_CIFAR10_PREPROCESS, normalize_pixels

    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    fast = normalize_pixels(pixels).numpy()
    slow = np.stack([PROXY_CIFAR10_PREPROCESS(Image.fromarray(p)) for p in pixels])
    np.testing.assert_allclose(fast, slow, atol=1e-6)


def _tiny_pool_and_test(tmp_path: Path):
    from edgeclip.data.synthetic import SyntheticDataset

    return SyntheticDataset(8, split="pretrain"), SyntheticDataset(4, split="test")


def test_proxy_training_is_deterministic_resumes_and_round_trips_through_published_safetensors(tmp_path: Path) -> None:
    from edgeclip.teacher.proxy_cifar10 import Cifar10ProxyTrainConfig, load_published, publish, train_proxy_cifar10

    pool, test = _tiny_pool_and_test(tmp_path)
    config = Cifar10ProxyTrainConfig(epochs=2, batch_size=16)
    first, info = train_proxy_cifar10(config, work_dir=tmp_path / "a", progress=False, pool=pool, test=test)
    second, _ = train_proxy_cifar10(config, work_dir=tmp_path / "b", progress=False, pool=pool, test=test)
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs between two identical runs"
    # A finished run's checkpoint is resumed: nothing is retrained, same weights.
    again, _ = train_proxy_cifar10(config, work_dir=tmp_path / "a", progress=False, pool=pool, test=test)
    assert torch.equal(again.model.visual.head.proj.weight, first.model.visual.head.proj.weight)

    record = publish(first, info, tmp_path / "pub")
    weights = tmp_path / "pub" / record["file"]
    assert record["bytes"] < 8e6, "the token table must not be shipped"
    loaded = load_published(tmp_path / "pub")
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(images), first.encode_image(images))
        torch.testing.assert_close(loaded.encode_text(["a photo of a cat."]), first.encode_text(["a photo of a cat."]))
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    with pytest.raises(UserError, match="does not match its recorded sha256"):
        load_published(tmp_path / "pub")


def test_the_shipped_proxy_cifar10_weights_match_their_record() -> None:
    import json

    from edgeclip.teacher.proxy_cifar10 import file_sha256, load_published, published_paths

    weights, record_path = published_paths()
    assert weights.is_file() and record_path.is_file(), "proxy-cifar10's weights must ship with the package"
    record = json.loads(record_path.read_text())
    assert file_sha256(weights) == record["sha256"]
    assert load_published().name == "proxy-cifar10"
    assert record["measured"]["test_images"] == 10_000


@needs_real
def test_a_small_slice_of_real_cifar10_trains_the_student_path_quickly(tmp_path: Path) -> None:
    """Tests use a slice of the tarball: 20 train / 10 test photos per class through preprocessing."""
    from edgeclip.data import sample_per_class

    train = open_image_dataset("cifar10", "train")
    slice_ = Subset(train, sample_per_class(train.labels, 2, seed=0))
    assert len(slice_) == 20 and sorted(set(slice_.labels)) == list(range(10))


def test_a_proxy_teachers_pool_must_be_disjoint_from_the_students_data() -> None:
    from edgeclip.teacher.proxy import check_proxy_pool_held_out

    train, pool = open_image_dataset("digits", "train"), open_image_dataset("digits", "pretrain")
    check_proxy_pool_held_out("proxy-digits", {"train split": train})  # disjoint: fine
    check_proxy_pool_held_out("proxy-cifar10", {"train split": pool})  # another dataset kind: not compared
    with pytest.raises(UserError, match="proxy-digits pre-training pool vs train split: 719 images are in both"):
        check_proxy_pool_held_out("proxy-digits", {"train split": pool})


@needs_real
def test_cifar10_pairs_caption_train_photos_only_with_the_proxys_templates() -> None:
    from edgeclip.data.pair_sources import open_pairs
    from edgeclip.teacher.templates import CIFAR_TEMPLATES

    pairs = open_pairs("cifar10:1")
    assert len(pairs) == 25_000 and pairs.kind == "cifar10-pairs" and pairs.mirror_invariant
    assert all(i.startswith("cifar10:train/") for i in pairs.sample_ids()[:100])
    name = pairs.class_names[pairs.labels[0]]
    assert pairs.captions[0] in {t.format(name) for t in CIFAR_TEMPLATES}
    test_ids = set(open_image_dataset("cifar10", "test").sample_ids())
    assert not test_ids & set(pairs.sample_ids())


@pytest.mark.parametrize("name", ["cifar10-kd", "distillclip-cifar10", "cifar10-datafree"])
def test_cifar10_recipes_name_things_that_exist(name: str) -> None:
    from edgeclip.config import load_recipe
    from edgeclip.data import DATASETS
    from edgeclip.students.registry import STUDENTS
    from edgeclip.teacher import PROXY_TEACHERS

    recipe = load_recipe(name)
    assert recipe.teacher in PROXY_TEACHERS.names()
    assert recipe.student.name in STUDENTS.names()
    assert recipe.data.test == "cifar10" and "cifar10" in DATASETS.names()
    assert recipe.data.templates == "cifar"


def test_class_aware_clip_loss_golden_values_by_hand() -> None:
    import math

    from edgeclip.teacher.contrastive import class_aware_clip_loss

    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(2.0)))

        def encode_image(self, x: torch.Tensor, normalize: bool) -> torch.Tensor:
            return x

        def encode_text(self, x: torch.Tensor, normalize: bool) -> torch.Tensor:
            return x

    eye = torch.eye(2)
    # logits = 2·I; distinct labels: -log(e²/(e²+1)) = log(1+e⁻²) each way.
    assert class_aware_clip_loss(Fixed(), eye, eye, torch.tensor([0, 1])).item() == pytest.approx(math.log(1 + math.exp(-2)))
    # Same label: both captions are positives, target 1/2 each: -(log σ + log(1-σ))/2 with σ = e²/(e²+1).
    both = -0.5 * ((2 - math.log(math.exp(2) + 1)) + (0 - math.log(math.exp(2) + 1)))
    assert class_aware_clip_loss(Fixed(), eye, eye, torch.tensor([0, 0])).item() == pytest.approx(both)
