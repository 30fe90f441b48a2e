"""CIFAR-10-C-style corruptions: hand-computed values, independent references, severity and seeding."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from PIL import Image

from edgeclip.data.corruptions import (
    CORRUPTIONS, CorruptedDataset, _disk, _gaussian_filter, brightness, contrast, corrupt, impulse_noise,
)
from edgeclip.data.synthetic import SyntheticDataset
from edgeclip.errors import UserError

RNG = np.random.default_rng(0)


def smooth_image(seed: int) -> Image.Image:
    """A 32×32 photo-like image: smooth gradients plus texture, so every corruption changes it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    base = np.stack([xx, yy, 1 - xx * yy], axis=2) * 0.6 + 0.2
    texture = rng.normal(0, 0.08, (8, 8, 3)).repeat(4, 0).repeat(4, 1)
    return Image.fromarray(np.round(np.clip(base + texture, 0, 1) * 255).astype(np.uint8))


def test_contrast_by_hand() -> None:
    x = np.array([[[0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0]]])  # mean 0.5 per channel
    np.testing.assert_allclose(contrast(x, 2, RNG)[:, 0, 0], [0.25, 0.75])  # c = 0.5: (x - 0.5) * 0.5 + 0.5


def test_brightness_matches_hsv_from_the_standard_library() -> None:
    x = np.random.default_rng(1).random((4, 4, 3))
    x[0, 0] = 0.0  # black: V 0 -> c, grey
    out = brightness(x, 3, RNG)  # c = 0.15
    for row, col in [(0, 0), (1, 2), (3, 3)]:
        h, s, v = colorsys.rgb_to_hsv(*x[row, col])
        np.testing.assert_allclose(out[row, col], colorsys.hsv_to_rgb(h, s, min(1.0, v + 0.15)), atol=1e-12)


def test_gaussian_blur_matches_scipy() -> None:
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy (scikit-learn's dependency) is the reference")
    x = np.random.default_rng(2).random((32, 32, 3))
    expected = np.stack([ndimage.gaussian_filter(x[:, :, c], 0.7, mode="nearest", truncate=4.0) for c in range(3)], axis=2)
    np.testing.assert_allclose(_gaussian_filter(x, 0.7), expected, atol=1e-12)


def test_defocus_kernel_is_a_normalised_blurred_disk() -> None:
    kernel = _disk(1.5, 0.1)
    assert kernel.shape == (17, 17) and kernel.sum() == pytest.approx(1.0)
    assert kernel[8, 8] == kernel.max() and kernel[0, 0] == 0.0


def test_impulse_noise_hits_about_c_of_the_values_with_salt_and_pepper() -> None:
    x = np.full((100, 100, 3), 0.5)
    out = impulse_noise(x, 5, np.random.default_rng(3))  # c = 0.07
    hit = out != 0.5
    assert 0.06 < hit.mean() < 0.08 and set(np.unique(out[hit])) == {0.0, 1.0}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_every_corruption_changes_the_image_more_at_severity_5_than_at_1(name: str) -> None:
    images = [smooth_image(seed) for seed in range(4)]

    def damage(severity: int) -> float:
        return float(np.mean([np.abs(np.asarray(corrupt(im, name, severity, np.random.default_rng(i)), float)
                                     - np.asarray(im, float)).mean() for i, im in enumerate(images)]))

    mild, strong = damage(1), damage(5)
    assert 0 < mild < strong, f"{name}: severity 1 changed {mild:.2f}, severity 5 {strong:.2f} (grey levels)"


def test_corrupted_dataset_is_seeded_per_image_and_keeps_labels() -> None:
    base = SyntheticDataset(2, split="test")
    shifted = CorruptedDataset(base, "gaussian_noise", 3)
    assert shifted.labels == base.labels and shifted.sample_ids() == base.sample_ids()
    assert np.array_equal(np.asarray(shifted.load(0)), np.asarray(CorruptedDataset(base, "gaussian_noise", 3).load(0)))
    assert not np.array_equal(np.asarray(shifted.load(0)), np.asarray(CorruptedDataset(base, "gaussian_noise", 3, seed=1).load(0)))
    assert "corruption=gaussian_noise:s3" in shifted.identity and shifted.describe()["category"] == "noise"


def test_unknown_corruption_or_severity_is_one_clear_error() -> None:
    base = SyntheticDataset(1, split="test")
    with pytest.raises(UserError, match="did you mean 'gaussian_noise'"):
        CorruptedDataset(base, "gaussian_nois", 1)
    with pytest.raises(UserError, match="severity must be 1..5, got 6"):
        CorruptedDataset(base, "fog", 6)
