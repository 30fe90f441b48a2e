"""The dual-encoder shift suite on photos: corruptions × severities, mean per severity, same pixels for both models."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from distillclip_helpers import tiny_teacher
from edgeclip.data import Subset, open_image_dataset
from edgeclip.data.base import ImageDataset
from edgeclip.data.cifar10 import CIFAR10_CLASSES, Cifar10Dataset, decode_tarball
from edgeclip.data.corruptions import CORRUPTIONS, SEVERITIES, CorruptedDataset
from edgeclip.errors import UserError
from edgeclip.eval.corruption_shift import shift_family, shift_subset
from edgeclip.eval.encoders import DualEncoder, teacher_encoder
from edgeclip.eval.retrieval import recall_at_k
from edgeclip.eval.suite import render_markdown, run_suite
from edgeclip.teacher.templates import get_templates
from test_cifar10 import make_tarball


class TarballSlice(ImageDataset):
    """The test split of a small CIFAR-layout tarball (2 photos per class) as a photo dataset."""

    kind = "cifar10"
    mirror_invariant = Cifar10Dataset.mirror_invariant

    def __init__(self, tarball: Path) -> None:
        arrays = decode_tarball(tarball, progress=False, expected=(10, 20))
        self._pixels = arrays["test_pixels"]
        self.labels = arrays["test_labels"].tolist()
        self.class_names = list(CIFAR10_CLASSES)
        self.skipped = []
        self.identity = f"cifar10-slice:{tarball.name}"

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(self._pixels[self._check_index(index)])

    def sample_ids(self) -> list[str]:
        return [f"slice:{i}" for i in range(len(self))]


class RecordingEncoder(DualEncoder):
    """A DualEncoder that keeps every preprocessed batch it encoded."""

    def __init__(self, base: DualEncoder) -> None:
        super().__init__(**{k: getattr(base, k) for k in ("name", "role", "model", "preprocess", "tokenize", "logit_scale")})
        self.role = "student"
        self.batches: list[torch.Tensor] = []

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        self.batches.append(images.clone())
        return super().encode_images(images)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> TarballSlice:
    root = tmp_path_factory.mktemp("slice")
    return TarballSlice(make_tarball(root / "c.tar.gz", per_class={"train": 1, "test": 2}))


def test_photos_get_corruptions_and_digits_keep_synthetic_shifts(photos: TarballSlice) -> None:
    assert Cifar10Dataset.mirror_invariant, "CIFAR-10 must count as photos"
    assert shift_family("auto", photos) == "corruptions" and shift_family("auto", Subset(photos, [0, 1])) == "corruptions"
    assert shift_family("auto", open_image_dataset("digits", "test")) == "synthetic"
    assert shift_family("corruptions", open_image_dataset("digits", "test")) == "corruptions"
    with pytest.raises(UserError, match="unknown shift set 'weather'"):
        shift_family("weather", photos)


def test_shift_subset_is_seeded_and_class_stratified(photos: TarballSlice) -> None:
    subset, indices = shift_subset(photos, 10, seed=3)
    assert indices == shift_subset(photos, 10, seed=3)[1] and indices != shift_subset(photos, 10, seed=4)[1]
    assert sorted(subset.labels) == list(range(10))  # one per class
    assert shift_subset(photos, 0, seed=3)[1] is None and shift_subset(photos, 20, seed=3)[0] is photos


def test_corruption_suite_means_per_severity_and_feeds_both_models_the_same_pixels(photos: TarballSlice) -> None:
    teacher = teacher_encoder(tiny_teacher())
    student = RecordingEncoder(teacher)  # the same model: every retention must be exactly 1
    suite = run_suite(teacher, student, test=photos, train=photos, templates=get_templates("cifar"), suites=["shift"],
                      shift_images=10, seed=0)
    rows, details = suite["rows"], suite["details"]["shift"]
    grid = [f"shift {c} s{k} top-1" for c in CORRUPTIONS for k in SEVERITIES]
    assert set(grid) <= set(rows) and len(CORRUPTIONS) == 10
    for k in SEVERITIES:
        for role in ("teacher", "student"):
            assert rows[f"shift mean s{k} top-1"][role] == pytest.approx(np.mean([rows[f"shift {c} s{k} top-1"][role] for c in CORRUPTIONS]))
    assert rows["shift mean top-1"]["teacher"] == pytest.approx(np.mean([rows[f"shift mean s{k} top-1"]["teacher"] for k in SEVERITIES]))
    assert all(r["retention"] == 1.0 for r in rows.values() if r["teacher"]), "teacher and student saw different images"
    assert details["images"] == 10 and details["subset"].startswith("10 of 20") and "shift clean top-1" in rows

    # What the student encoded for gaussian_noise s5: the subset's images as a fresh CorruptedDataset of the whole
    # test split makes them (draws keyed by seed and test index), so every run evaluates the same corrupted set.
    _, indices = shift_subset(photos, 10, seed=0)
    expected = np.stack([student.preprocess(CorruptedDataset(photos, "gaussian_noise", 5).load(i)) for i in indices])
    clean = np.stack([student.preprocess(photos.load(i)) for i in indices])
    assert any(np.array_equal(batch.numpy(), expected) for batch in student.batches)
    assert np.abs(expected - clean).mean() > 0.1
    # the full test split once, its subset clean once, then one batch per corruption and severity
    assert len(student.batches) == 2 + len(CORRUPTIONS) * len(SEVERITIES)

    report = {"student": "s", "teacher": "t", "data": photos.identity, "templates": "cifar", "suite": suite}
    markdown = render_markdown(report)
    assert "| shift mean s5 top-1 |" in markdown and "| jpeg_compression | " in markdown and "CIFAR-10-C-style" in markdown
    assert "| shift fog s3 top-1 |" not in markdown  # each corruption lives in the grid, not the main table


def test_shift_images_is_refused_where_it_does_not_apply() -> None:
    from edgeclip.eval.command import check_shift_arguments

    digits = open_image_dataset("digits", "test")
    with pytest.raises(UserError, match="synthetic shifts"):
        check_shift_arguments(argparse.Namespace(shift_set="auto", shift_images=100, suite=None), ["shift"], digits)
    with pytest.raises(UserError, match="add 'shift'"):
        check_shift_arguments(argparse.Namespace(shift_set="corruptions", shift_images=100, suite="zero-shot"), ["zero-shot"], digits)
    with pytest.raises(UserError, match="positive"):
        check_shift_arguments(argparse.Namespace(shift_set="corruptions", shift_images=0, suite=None), ["shift"], digits)
    check_shift_arguments(argparse.Namespace(shift_set="corruptions", shift_images=100, suite=None), ["shift"], digits)


def test_recall_at_k_matches_a_brute_force_count() -> None:
    generator = torch.Generator().manual_seed(0)
    images, texts = torch.randn(40, 8, generator=generator), torch.randn(30, 8, generator=generator)
    relevant = np.random.default_rng(0).random((40, 30)) < 0.1
    scores = (images @ texts.T).numpy()
    got = recall_at_k(images, texts, relevant, ks=(1, 5))
    for k in (1, 5):
        by_image = np.mean([relevant[i, np.argsort(-scores[i])[:k]].any() for i in range(40)])
        by_text = np.mean([relevant[np.argsort(-scores[:, j])[:k], j].any() for j in range(30)])
        assert got[f"image_to_text_R@{k}"] == pytest.approx(by_image) and got[f"text_to_image_R@{k}"] == pytest.approx(by_text)
