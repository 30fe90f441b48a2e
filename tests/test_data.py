"""Data layer: preprocessing geometry, built-in datasets, folders, corrupt files, pairs, sampling."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgeclip.data import (
    DIGIT_WORDS,
    DigitsDataset,
    FolderDataset,
    Preprocess,
    Preprocessed,
    Subset,
    SyntheticDataset,
    center_crop,
    check_same_classes,
    default_augment,
    letterbox,
    load_image,
    open_image_dataset,
    open_pair_dataset,
    preprocess_all,
    sample_per_class,
    stratified_split,
)
from edgeclip.data.base import DefaultAugment, shared_samples
from edgeclip.errors import UserError

# shared/ lies beside the checkout (CI clones it there too); the test skips where it is absent.
DASHCAM_FRAME = Path(__file__).resolve().parents[2] / "shared" / "data" / "dad-demo" / "000478" / "100.jpg"


def _marker_frame() -> Image.Image:
    """A dark 640×360 frame with a bright marker near the right edge (where crops cut)."""
    array = np.full((360, 640, 3), 30, np.uint8)
    array[160:200, 600:630] = 255
    return Image.fromarray(array)


def _write_image(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (12, 10), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)
    return path


def _class_tree(root: Path, classes: dict[str, int], ext: str = ".png") -> Path:
    for index, (name, count) in enumerate(classes.items()):
        for i in range(count):
            _write_image(root / name / f"img{i}{ext}", (40 * index, 10 * i, 200))
    return root


def _truncated_jpeg(path: Path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, format="JPEG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# --- preprocess geometry ---------------------------------------------------------------------

def test_letterbox_keeps_edge_marker_that_center_crop_loses() -> None:
    frame = _marker_frame()
    boxed = np.asarray(letterbox(frame, 224))
    cropped = np.asarray(center_crop(frame, 224))
    assert boxed.shape == (224, 224, 3) and cropped.shape == (224, 224, 3)
    # 640→224 scales by 0.35: the marker lands around x 210..220 in the letterboxed image.
    assert boxed[:, 200:, :].max() > 200
    assert cropped.max() < 100  # the crop keeps only the middle 360 columns: marker gone


def test_letterbox_pads_top_and_bottom_only() -> None:
    boxed = np.asarray(letterbox(_marker_frame(), 224, pad_value=(0, 0, 0)))
    # 360·0.35 = 126 rows of content, centred: 49 rows of padding above and below.
    assert (boxed[:49] == 0).all() and (boxed[175:] == 0).all()
    assert (boxed[49:175] >= 15).all()  # content (30, minus bicubic ringing) fills every row and column


def test_center_crop_sizes() -> None:
    assert center_crop(_marker_frame(), 224).size == (224, 224)
    assert center_crop(Image.new("RGB", (8, 8)), 32).size == (32, 32)  # upsamples tiny digits
    assert center_crop(Image.new("RGB", (100, 300)), 64).size == (64, 64)


def test_preprocess_letterbox_tensor_shape() -> None:
    out = Preprocess(size=32, resize_mode="letterbox")(_marker_frame())
    assert out.shape == (3, 32, 32) and out.dtype == np.float32


@pytest.mark.skipif(not DASHCAM_FRAME.exists(), reason=f"real dashcam frame {DASHCAM_FRAME} not present")
def test_real_dashcam_frame_letterbox() -> None:
    frame = load_image(DASHCAM_FRAME)
    assert frame.size == (640, 360)
    boxed = np.asarray(letterbox(frame, 224))
    assert boxed.shape == (224, 224, 3)
    assert (boxed[:49] == 0).all() and (boxed[175:] == 0).all()
    assert boxed[49:175].mean() > 10  # the road scene is there, not padding
    assert boxed[49:175].std(axis=(0, 1)).min() > 5


# --- digits ----------------------------------------------------------------------------------

def test_digits_partition_is_fixed_stratified_and_disjoint() -> None:
    train, test, pretrain = DigitsDataset("train"), DigitsDataset("test"), DigitsDataset("pretrain")
    assert (len(test), len(pretrain), len(train)) == (359, 719, 719)
    assert len(train) + len(test) + len(pretrain) == 1797 and len(DigitsDataset("all")) == 1797
    for first, second in ((train, test), (train, pretrain), (pretrain, test)):
        assert shared_samples(first, second) == 0
    all_counts = np.bincount(DigitsDataset("all").labels, minlength=10)
    test_counts = np.bincount(test.labels, minlength=10)
    assert np.array_equal(test_counts, np.round(all_counts * 0.2).astype(int))
    assert len({test.identity, train.identity, pretrain.identity}) == 3


def test_test_split_does_not_depend_on_the_recipe_seed() -> None:
    """The audit case: with seed 1, 288 of 359 test digits used to be in the teacher's training set."""
    from edgeclip.config import DataConfig
    from edgeclip.distill.data_setup import open_distill_data

    first, second = open_distill_data(DataConfig(), seed=0), open_distill_data(DataConfig(), seed=1)
    assert first.test.sample_ids() == second.test.sample_ids()
    assert shared_samples(second.test, DigitsDataset("pretrain")) == 0
    low_shot = open_distill_data(DataConfig(shots=5), seed=1)
    assert shared_samples(low_shot.train, first.test) == 0 and len(low_shot.train) == 50


def test_overlapping_train_and_test_folders_are_refused(tmp_path: Path) -> None:
    from edgeclip.config import DataConfig
    from edgeclip.distill.data_setup import open_distill_data

    root = tmp_path / "split"
    for name in ("cat", "dog"):
        (root / "train" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(root / "train" / name / f"{i}.png")
    (root / "test").symlink_to(root / "train")  # "test" is the training images again
    with pytest.raises(UserError, match="overlap"):
        open_distill_data(DataConfig(train=str(root), test=str(root)), seed=0)


def test_digits_images_and_word_class_names() -> None:
    ds = open_image_dataset("digits", "test")
    assert ds.class_names == DIGIT_WORDS == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    assert all(name.isalpha() for name in ds.class_names)
    image = ds.load(0)
    assert image.mode == "RGB" and image.size == (8, 8)
    pixels = np.asarray(image)
    assert (pixels[..., 0] == pixels[..., 1]).all()  # grey replicated
    assert pixels[0, 0, 0] > 200 and pixels.min() < 100  # ink on white: light corner, dark strokes


# --- synthetic -------------------------------------------------------------------------------

def test_synthetic_deterministic_and_learnable() -> None:
    train = open_image_dataset("synthetic:12", "train")
    test = open_image_dataset("synthetic:6", "test")
    assert len(train) == 12 * 5 and train.labels == sorted(train.labels)
    again = SyntheticDataset(12, split="train", seed=0)
    assert np.array_equal(np.asarray(train.load(7)), np.asarray(again.load(7)))
    assert not np.array_equal(np.asarray(train.load(0)), np.asarray(test.load(0)))
    assert open_image_dataset("synthetic").identity != train.identity

    from sklearn.linear_model import LogisticRegression

    def features(ds: SyntheticDataset) -> np.ndarray:
        return np.stack([np.asarray(ds.load(i).resize((8, 8)), np.float32).ravel() / 255 for i in range(len(ds))])

    clf = LogisticRegression(max_iter=500).fit(features(train), train.labels)
    assert clf.score(features(test), test.labels) >= 0.9  # the label is really in the pixels


# --- folders ---------------------------------------------------------------------------------

def test_folder_dataset_classes_labels_and_extensions(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "data", {"zebra": 2, "ant": 3})
    _write_image(root / "ant" / "nested" / "deep.JPG", (1, 2, 3), fmt="JPEG")
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    ds = open_image_dataset(str(root), "all")
    assert isinstance(ds, FolderDataset)
    assert ds.class_names == ["ant", "zebra"]
    assert ds.labels == [0, 0, 0, 0, 1, 1]
    assert ds.load(5).mode == "RGB" and ds.split == "all"


def test_flat_folder_train_and_test_never_share_images(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "flat", {"cat": 10, "dog": 5})
    train, test = open_image_dataset(str(root), "train"), open_image_dataset(str(root), "test")
    train_paths = {str(train.dataset.paths[i]) for i in train.indices}
    test_paths = {str(test.dataset.paths[i]) for i in test.indices}
    assert not train_paths & test_paths and len(train_paths | test_paths) == 15
    assert sorted(test.labels) == [0, 0, 1]  # 20% of each class, stratified
    assert train.identity != test.identity


def test_folder_train_test_layout_and_class_check(tmp_path: Path) -> None:
    root = tmp_path / "split"
    _class_tree(root / "train", {"cat": 2, "dog": 2})
    _class_tree(root / "test", {"cat": 1, "dog": 1})
    train, test = open_image_dataset(str(root), "train"), open_image_dataset(str(root), "test")
    assert (len(train), len(test)) == (4, 2) and train.identity != test.identity
    check_same_classes(train, test)

    _class_tree(root / "train", {"emu": 1})
    with pytest.raises(UserError, match="missing in test: emu"):
        check_same_classes(open_image_dataset(str(root), "train"), test)


def test_folder_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no class folders"):
        _write_image(tmp_path / "flat" / "a.png", (0, 0, 0))
        open_image_dataset(str(tmp_path / "flat"))
    (tmp_path / "empty_class" / "cat").mkdir(parents=True)
    _class_tree(tmp_path / "empty_class", {"dog": 1})
    with pytest.raises(UserError, match=r"empty_class/cat has no images"):
        open_image_dataset(str(tmp_path / "empty_class"))
    _class_tree(tmp_path / "half" / "train", {"dog": 1})
    with pytest.raises(UserError, match="no test/"):
        open_image_dataset(str(tmp_path / "half"), "test")
    with pytest.raises(UserError, match="does not exist"):
        open_image_dataset(str(tmp_path / "missing"))


def test_corrupt_jpeg_errors_or_is_skipped(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "data", {"a": 2, "b": 2})
    bad = _truncated_jpeg(root / "b" / "broken.jpg")
    ds = open_image_dataset(str(root), "all")
    index = [str(p) for p in ds.paths].index(str(bad))
    with pytest.raises(UserError, match=r"broken\.jpg is not a readable image .*skip_corrupt=true"):
        ds.load(index)

    skipping = open_image_dataset(str(root), "all", skip_corrupt=True)
    assert len(skipping) == len(ds) - 1 and skipping.skipped == [str(bad)]
    assert all(skipping.load(i).mode == "RGB" for i in range(len(skipping)))
    assert skipping.describe()["skipped"] == [str(bad)]


def test_load_image_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope.png does not exist"):
        load_image(tmp_path / "nope.png")
    fake = tmp_path / "fake.jpg"
    fake.write_text("hello")
    with pytest.raises(UserError, match="fake.jpg is not a readable image"):
        load_image(fake)
    rgba = tmp_path / "alpha.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(rgba)
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)  # transparent → white, not black


def test_folder_identity_tracks_file_changes(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "data", {"a": 2, "b": 1})
    first = open_image_dataset(str(root)).identity
    assert open_image_dataset(str(root)).identity == first  # stable when nothing changed
    target = root / "a" / "img0.png"
    _write_image(target, (9, 9, 9), size=(20, 20))
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert open_image_dataset(str(root)).identity != first


# --- subsets, torch wrappers, augmentation -------------------------------------------------

def test_subset_preprocessed_and_preprocess_all() -> None:
    ds = SyntheticDataset(4, split="train", seed=0)
    sub = Subset(ds, [1, 6, 11])
    assert sub.class_names == ds.class_names and sub.labels == [0, 1, 2]
    assert sub.identity != ds.identity and sub.identity != Subset(ds, [1, 6, 12]).identity
    assert np.array_equal(np.asarray(sub.load(1)), np.asarray(ds.load(6)))

    preprocess = Preprocess(size=16, resize_mode="center_crop")
    tensor, label = Preprocessed(sub, preprocess)[2]
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 16, 16) and label == 2
    batch_x, batch_y = next(iter(torch.utils.data.DataLoader(Preprocessed(sub, preprocess), batch_size=3)))
    assert batch_x.shape == (3, 3, 16, 16) and batch_y.tolist() == [0, 1, 2]
    stacked = preprocess_all(sub, preprocess)
    assert stacked.shape == (3, 3, 16, 16) and torch.equal(stacked[2], tensor)


def test_default_augment_flag_and_determinism() -> None:
    image = Image.fromarray(np.tile(np.arange(16, dtype=np.uint8)[None, :, None] * 16, (16, 1, 3)))  # left→right ramp
    flip_only = DefaultAugment(16, hflip=True, scale=(1.0, 1.0), degrees=0.0, translate=0.0)
    random.seed(0)
    outs = [np.asarray(flip_only(image)) for _ in range(20)]
    flipped = [bool(o[:, 0].mean() > o[:, -1].mean()) for o in outs]
    assert any(flipped) and not all(flipped)
    no_flip = DefaultAugment(16, hflip=False, scale=(1.0, 1.0), degrees=0.0, translate=0.0)
    assert all(np.asarray(no_flip(image))[:, 0].mean() < np.asarray(no_flip(image))[:, -1].mean() for _ in range(10))

    digit = DigitsDataset("test").load(0)
    aug = default_augment(32)
    assert aug.hflip is False  # digits must not be mirrored by default
    random.seed(1)
    a = np.asarray(aug(digit))
    random.seed(1)
    assert a.shape == (32, 32, 3) and np.array_equal(a, np.asarray(aug(digit)))
    tensor, _ = Preprocessed(DigitsDataset("test"), Preprocess(size=32), augment=aug)[0]
    assert tensor.shape == (3, 32, 32)


# --- pairs -----------------------------------------------------------------------------------

def test_pair_csv_relative_paths_header_optional(tmp_path: Path) -> None:
    _write_image(tmp_path / "imgs" / "a.png", (255, 0, 0))
    _write_image(tmp_path / "imgs" / "b.jpg", (0, 255, 0), fmt="JPEG")
    with_header = tmp_path / "pairs.csv"
    with_header.write_text('path,caption\nimgs/a.png,a red square\nimgs/b.jpg,"green, bright"\n')
    pairs = open_pair_dataset(with_header)
    assert len(pairs) == 2 and pairs.captions == ["a red square", "green, bright"]
    assert pairs.load(0).getpixel((0, 0)) == (255, 0, 0)

    no_header = tmp_path / "sub" / "nohead.csv"
    no_header.parent.mkdir()
    no_header.write_text(f"../imgs/a.png,a red square, unquoted comma\n{tmp_path / 'imgs' / 'b.jpg'},green\n")
    pairs = open_pair_dataset(no_header)
    assert pairs.captions == ["a red square, unquoted comma", "green"] and pairs.paths[0] == (tmp_path / "imgs" / "a.png").resolve()


def test_pair_csv_errors_name_the_line(tmp_path: Path) -> None:
    _write_image(tmp_path / "a.png", (1, 1, 1))
    missing = tmp_path / "missing.csv"
    missing.write_text("path,caption\na.png,ok\nnot_there.png,gone\n")
    with pytest.raises(UserError, match=r"line 3: image not_there.png not found"):
        open_pair_dataset(missing)
    no_caption = tmp_path / "nocap.csv"
    no_caption.write_text("a.png,fine\na.png\n")
    with pytest.raises(UserError, match=r"line 2: missing the caption column"):
        open_pair_dataset(no_caption)


# --- sampling --------------------------------------------------------------------------------

def test_sample_per_class_exact_seeded_and_errors() -> None:
    labels = [i % 3 for i in range(30)] + [3, 3]
    picked = sample_per_class(labels[:30], 4, seed=0)
    assert picked == sorted(picked) and len(picked) == 12
    assert np.bincount([labels[i] for i in picked]).tolist() == [4, 4, 4]
    assert sample_per_class(labels[:30], 4, seed=0) == picked
    assert sample_per_class(labels[:30], 4, seed=1) != picked
    with pytest.raises(UserError, match=r"class 'dog' \(label 3\) has only 2 images"):
        sample_per_class(labels, 3, seed=0, class_names=["a", "b", "c", "dog"])
    with pytest.raises(UserError, match="'e' .* has only 0 images"):
        sample_per_class(labels, 1, seed=0, class_names=["a", "b", "c", "dog", "e"])
    with pytest.raises(UserError, match="positive"):
        sample_per_class(labels, 0, seed=0)


def test_stratified_split_keeps_every_class_on_both_sides() -> None:
    labels = [0] * 10 + [1] * 5 + [2] * 2
    train, test = stratified_split(labels, 0.2, seed=0)
    assert sorted(train + test) == list(range(17)) and not set(train) & set(test)
    assert [sum(labels[i] == c for i in test) for c in range(3)] == [2, 1, 1]
    assert stratified_split(labels, 0.2, seed=0) == (train, test)


def test_open_image_dataset_rejects_unknown_specs() -> None:
    with pytest.raises(UserError, match="did you mean 'digits'"):
        open_image_dataset("digit")
    with pytest.raises(UserError, match="synthetic:20"):
        open_image_dataset("synthetic:many")
    with pytest.raises(UserError, match="unknown split"):
        open_image_dataset("digits", "val")


# --- atomic writes ---------------------------------------------------------------------------

def test_atomic_dir_keeps_the_old_artifact_until_the_new_one_is_in_place(tmp_path, monkeypatch):
    from edgeclip.io_utils import atomic_dir

    target = tmp_path / "onnx-fp32"
    with atomic_dir(target) as work:
        (work / "model.onnx").write_text("old")
    real_replace = os.replace
    calls = []

    def failing_second_rename(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:  # old moved aside; now the new one cannot be moved in
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_second_rename)
    with pytest.raises(OSError, match="disk full"):
        with atomic_dir(target) as work:
            (work / "model.onnx").write_text("new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert (target / "model.onnx").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx-fp32"]  # nothing half-done left beside it


def test_leftovers_of_a_killed_export_are_cleaned_by_the_next_run(tmp_path):
    from edgeclip.io_utils import atomic_dir

    dead_pid = 4_000_000  # above pid_max: no such process
    (tmp_path / f".onnx-fp32.{dead_pid}.abc.tmp").mkdir()  # killed while exporting
    (tmp_path / f".other.{dead_pid}.x.tmp").mkdir()  # another artifact's leftover: not ours to touch
    with atomic_dir(tmp_path / "onnx-fp32") as work:
        (work / "manifest.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".other.{dead_pid}.x.tmp", "onnx-fp32"]
    # Killed between the two renames: the set-aside old directory is all there is; it comes back.
    (tmp_path / "onnx-fp32").rename(tmp_path / f".onnx-fp32.{dead_pid}.abc.old")
    with atomic_dir(tmp_path / "onnx-fp32") as work:
        assert (tmp_path / "onnx-fp32" / "manifest.json").is_file()  # restored before the new export started
        (work / "manifest.json").write_text('{"new": 1}')
    assert (tmp_path / "onnx-fp32" / "manifest.json").read_text() == '{"new": 1}'


def test_benchmark_result_files_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    import json

    import numpy as np

    from edgeclip import io_utils

    out = tmp_path / "results" / "bench"
    io_utils.write_result_files(out, {"ratio": np.float32(0.5), "where": tmp_path}, "# first\n")
    assert json.loads(out.with_suffix(".json").read_text()) == {"ratio": 0.5, "where": str(tmp_path)}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the run dies while serializing the new result

    monkeypatch.setattr(io_utils.json, "dumps", killed)
    with pytest.raises(KeyboardInterrupt):
        io_utils.write_result_files(out, {"ratio": 0.9}, "# second\n")
    assert json.loads(out.with_suffix(".json").read_text())["ratio"] == 0.5
    assert out.with_suffix(".md").read_text() == "# first\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["bench.json", "bench.md"]
