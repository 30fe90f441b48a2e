"""Data-free KD (paper 002): generators, synthesis (files, resume), the L1 term, trainer extensions, shifts."""

from __future__ import annotations


import pytest
import torch

from edgeclip.errors import UserError


# -- generators -------------------------------------------------------------------------------
@pytest.mark.parametrize("name,params", [
    ("pixel", {}), ("pixel", {"base_size": 4, "grayscale": True, "init_mean": 0.9}),
    ("fourier", {}), ("fourier", {"grayscale": True, "decay": 1.5}),
])
def test_generators_sample_images_in_range_and_are_differentiable(name: str, params: dict) -> None:
    from edgeclip.distill.datafree.generators import create_generator

    generator = create_generator(name, 16, params)
    images = generator.sample(3, torch.Generator().manual_seed(0))
    assert images.shape == (3, 3, 16, 16) and float(images.detach().min()) >= 0 and float(images.detach().max()) <= 1
    assert list(generator.parameters())[0] is generator.latents
    images.mean().backward()
    assert generator.latents.grad is not None and float(generator.latents.grad.abs().sum()) > 0
    if params.get("grayscale"):
        assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 1], images[:, 2])
    again = create_generator(name, 16, params).sample(3, torch.Generator().manual_seed(0))
    assert torch.equal(again.detach(), images.detach())  # seeded


def test_pixel_generator_start_and_low_resolution_parameterisation() -> None:
    from edgeclip.distill.datafree.generators import PixelGenerator

    generator = PixelGenerator(32, base_size=8, grayscale=True, init_mean=0.95, init_std=0.0)
    images = generator.sample(2, torch.Generator().manual_seed(0))
    assert generator.latents.shape == (2, 1, 8, 8)
    assert torch.allclose(images, torch.full_like(images, 0.95), atol=1e-4)  # a blank white page
    with pytest.raises(UserError, match="base_size"):
        PixelGenerator(16, base_size=32)


def test_unknown_generator_and_option_are_user_errors() -> None:
    from edgeclip.distill.datafree.generators import create_generator

    with pytest.raises(UserError, match="unknown image generator 'pixl'; did you mean 'pixel'"):
        create_generator("pixl", 16)
    with pytest.raises(UserError, match="has no option \\['blocks'\\]"):
        create_generator("pixel", 16, {"blocks": 3})


def test_a_users_latent_decoder_plugs_in_through_the_registry(tiny_teacher, tmp_path) -> None:
    """The hook paper 002's VQGAN would use: a frozen decoder driven by optimisable latents."""
    from edgeclip.distill.datafree.generators import GENERATORS, DecoderGenerator, create_generator, register_generator

    decoder = torch.nn.Sequential(torch.nn.ConvTranspose2d(4, 3, 4, stride=4), torch.nn.Tanh())

    @register_generator("toy-decoder")
    def toy(image_size: int, latent_std: float = 1.0) -> DecoderGenerator:
        return DecoderGenerator(decoder, latent_shape=(4, 2, 2), image_size=image_size, output_range=(-1.0, 1.0), init_std=latent_std)

    try:
        generator = create_generator("toy-decoder", 16, {"latent_std": 0.5})
        before = [p.clone() for p in decoder.parameters()]
        plan = _plain_plan(tiny_teacher, ["cat", "dog"], 2)
        summary = _synthesize(tiny_teacher, plan, tmp_path, generator="toy-decoder", generator_params={"latent_std": 0.5}, steps=3)
        assert summary["images_total"] == 4 and isinstance(generator, DecoderGenerator)
        assert all(torch.equal(a, b) for a, b in zip(before, decoder.parameters()))  # the decoder stays frozen
    finally:
        GENERATORS._entries.pop("toy-decoder", None)


# -- synthesis --------------------------------------------------------------------------------
def _plain_plan(teacher, names, per_class):
    from edgeclip.config import DataFreeConfig
    from edgeclip.distill.datafree.prompts import build_prompt_plan

    return build_prompt_plan("plain", teacher, names, per_class, DataFreeConfig(), seed=0)


def _settings(**changes):
    from edgeclip.distill.datafree.synthesis import SynthesisSettings

    base = dict(generator="pixel", generator_params={}, image_size=16, steps=5, lr=0.1, batch_size=2, views=2, translate=0.1,
                scale=(0.9, 1.1), degrees=5.0, flip=True, noise=0.01, tv_weight=0.01)
    base.update(changes)
    return SynthesisSettings(**base)


def _synthesize(teacher, plan, out, resume=False, **changes):
    from edgeclip.distill.datafree.synthesis import synthesize_set

    names = sorted({r["class"] for r in plan.rows}, key=lambda n: [r["class"] for r in plan.rows].index(n))
    embeddings = teacher.class_embeddings(names, ["a photo of a {}"])
    return synthesize_set(teacher, plan, names, embeddings, _settings(**changes), out, fingerprint="f1", seed=0, resume=resume,
                          progress=False)


def test_optimising_an_image_brings_the_teacher_closer_to_the_prompt(tiny_teacher) -> None:
    from edgeclip.distill.datafree.common import frozen_weights, squared_spherical_distance
    from edgeclip.distill.datafree.generators import create_generator
    from edgeclip.distill.datafree.synthesis import TeacherImageInput, optimise_batch

    target = tiny_teacher.encode_text(["a photo of a cat"])
    to_input = TeacherImageInput(tiny_teacher)

    def distance(images: torch.Tensor) -> float:
        features = tiny_teacher.encode_image(to_input(images.float() / 255))
        return float(squared_spherical_distance(features, target).mean())

    start = (create_generator("pixel", 16).sample(2, torch.Generator().manual_seed(0)).detach() * 255).round()
    with frozen_weights(tiny_teacher.model):
        final = optimise_batch(tiny_teacher, create_generator("pixel", 16), target.expand(2, -1),
                               _settings(steps=30, noise=0.0, tv_weight=0.0), torch.Generator().manual_seed(0), to_input)
    assert final.dtype == torch.uint8 and final.shape == (2, 3, 16, 16)
    assert distance(final) < distance(start) - 0.01


def test_synthesis_writes_the_set_and_resume_skips_finished_classes(tiny_teacher, tmp_path) -> None:
    from PIL import Image

    from edgeclip.distill.datafree.synthetic_set import SyntheticImageSet
    from edgeclip.io_utils import read_json

    plan = _plain_plan(tiny_teacher, ["cat", "dog"], 3)
    summary = _synthesize(tiny_teacher, plan, tmp_path)
    data = read_json(tmp_path / "synthetic.json")
    assert data["images_total"] == 6 and data["method"] == "plain" and data["settings"]["steps"] == 5
    row = data["images"][4]
    assert row["class"] == "dog" and row["label"] == 1 and row["prompt"] == "a photo of a dog" and row["file"].startswith("images/001-dog/")
    assert len(row["teacher_similarity"]) == 2 and -1 <= row["target_similarity"] <= 1 and row["teacher_top1"] in ("cat", "dog")
    assert Image.open(tmp_path / row["file"]).size == (16, 16)
    for sheet in ("contact_sheet.png", "contact_sheets/000-cat.png", "contact_sheets/001-dog.png"):
        assert (tmp_path / sheet).is_file()
    assert summary["seconds_per_image"] > 0
    # The dataset view and its KD targets (logit_scale × recorded cosines).
    dataset = SyntheticImageSet(tmp_path)
    assert len(dataset) == 6 and dataset.class_names == ["cat", "dog"] and dataset.labels == [0, 0, 0, 1, 1, 1]
    assert torch.allclose(dataset.teacher_logits()[4], tiny_teacher.logit_scale * torch.tensor(row["teacher_similarity"]))
    # The recorded similarity is the teacher's on the saved 8-bit file.
    pixels = torch.from_numpy(__import__("numpy").array(dataset.load(4))).permute(2, 0, 1)[None].float() / 255
    from edgeclip.distill.datafree.synthesis import TeacherImageInput

    features = tiny_teacher.encode_image(TeacherImageInput(tiny_teacher)(pixels))
    embeddings = tiny_teacher.class_embeddings(["cat", "dog"], ["a photo of a {}"])
    assert torch.allclose(features @ embeddings.T, torch.tensor([row["teacher_similarity"]]), atol=1e-4)

    # Resume: only the class whose folder is missing is synthesized again; the other is kept as it was.
    import shutil

    kept = tmp_path / "images" / "000-cat" / "00000.png"
    stamp = kept.stat().st_mtime_ns
    shutil.rmtree(tmp_path / "images" / "001-dog")
    again = _synthesize(tiny_teacher, plan, tmp_path, resume=True)
    assert kept.stat().st_mtime_ns == stamp and (tmp_path / "images" / "001-dog" / "00002.png").is_file()
    assert [r["file"] for r in again["images"]] == [r["file"] for r in data["images"]]
    # A resumed class made with other settings is refused rather than mixed in.
    records = tmp_path / "images" / "000-cat" / "records.json"
    records.write_text(records.read_text().replace('"fingerprint": "f1"', '"fingerprint": "other"'))
    with pytest.raises(UserError, match="different recipe"):
        _synthesize(tiny_teacher, plan, tmp_path, resume=True)


@pytest.mark.parametrize("changes,message", [
    ({"steps": 0}, "datafree.steps must be >= 1"), ({"views": 0}, "datafree.views"), ({"lr": 0.0}, "datafree.lr"),
    ({"scale": (1.2, 0.8)}, "augment_scale"), ({"image_size": 4}, "image_size"),
])
def test_bad_synthesis_settings_are_user_errors(changes: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        _settings(**changes).check()


# -- loss term and trainer extensions ---------------------------------------------------------
def test_l1_term_by_hand_and_registered() -> None:
    from edgeclip.distill.losses import LOSSES, WeightedLoss, WeightedTerm

    student = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    teacher = torch.tensor([[1.5, 0.0], [0.0, 1.0]])
    # |−0.5| + |2| + 0 + |−2| = 4.5 over 4 entries
    total, parts = WeightedLoss([WeightedTerm("l1", 2.0)])({"student_logits": student, "teacher_logits": teacher, "labels": None})
    assert parts["l1"] == pytest.approx(4.5 / 4) and float(total) == pytest.approx(2 * 4.5 / 4)
    assert LOSSES.get("l1").needs_teacher and LOSSES.get("l1").inputs == ("student_logits", "teacher_logits")
    with pytest.raises(UserError, match="needs teacher outputs"):
        WeightedLoss([WeightedTerm("l1", 1.0)])({"student_logits": student, "teacher_logits": None})


def _tiny_classifier():
    from edgeclip.students.registry import create_student

    torch.manual_seed(0)
    return create_student("test_resnet", class_names=["a", "b"], image_size=16)[0]


def test_train_classifier_updates_only_the_given_parameters() -> None:
    from edgeclip.config import DistillConfig
    from edgeclip.distill.augment import TensorImages
    from edgeclip.distill.datafree.trainer import head_parameters
    from edgeclip.distill.losses import cross_entropy_criterion
    from edgeclip.distill.trainer import train_classifier

    model = _tiny_classifier()
    head = head_parameters(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = TensorImages(torch.randn(8, 3, 16, 16), torch.tensor([0, 1] * 4))
    train_classifier(model, data, criterion=cross_entropy_criterion(), config=DistillConfig(epochs=2, batch_size=4, milestones=[]),
                     progress=False, parameters=head)
    head_ids = {id(p) for p in head}
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) != (id(p) in head_ids), name


def test_online_teacher_labels_the_augmented_batch() -> None:
    from edgeclip.config import DistillConfig
    from edgeclip.distill.augment import TensorImages
    from edgeclip.distill.losses import WeightedLoss, WeightedTerm
    from edgeclip.distill.trainer import train_classifier

    seen: list[torch.Tensor] = []

    def teacher(images: torch.Tensor) -> torch.Tensor:
        seen.append(images.clone())
        return torch.stack([images.mean(dim=(1, 2, 3)), -images.mean(dim=(1, 2, 3))], dim=1)

    def flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return -images

    data = TensorImages(torch.randn(6, 3, 16, 16), torch.tensor([0, 1] * 3))
    history = train_classifier(_tiny_classifier(), data, criterion=WeightedLoss([WeightedTerm("l1", 1.0)]),
                               config=DistillConfig(epochs=1, batch_size=3, milestones=[]), progress=False,
                               batch_transform=flip, teacher_fn=teacher)
    assert len(seen) == 2 and history[0].terms["l1"] > 0
    # The teacher saw what the student saw: the transformed images (each one once per epoch).
    rows = torch.cat(seen)
    assert all(sum(torch.equal(row, -image) for image in data.images) == 1 for row in rows)


# -- shifts -----------------------------------------------------------------------------------
def test_shifted_digits_are_deterministic_and_keep_labels() -> None:
    import numpy as np
    from PIL import Image

    from edgeclip.data import open_image_dataset
    from edgeclip.data.shifts import SHIFT_DESCRIPTIONS, ShiftedDataset, synthetic_shifts
    from edgeclip.eval.shift import synthetic_shifts as suite_shifts

    assert suite_shifts is synthetic_shifts  # one definition for every robustness report
    test = open_image_dataset("digits", "test")
    inverted = ShiftedDataset(test, "inversion", 32)
    base = np.asarray(test.load(5).resize((32, 32), Image.BICUBIC))
    assert np.array_equal(np.asarray(inverted.load(5)), 255 - base)
    assert inverted.labels == test.labels and inverted.sample_ids() == test.sample_ids()
    assert inverted.identity != test.identity and "shift=inversion" in inverted.identity
    for name in SHIFT_DESCRIPTIONS:
        shifted = ShiftedDataset(test, name, 32)
        first, second = np.asarray(shifted.load(3)), np.asarray(shifted.load(3))
        assert np.array_equal(first, second) and first.shape == (32, 32, 3), name
        assert not np.array_equal(first, base), name
    # Rotation fills the corners with the page colour (white), not black.
    assert np.asarray(ShiftedDataset(test, "rotation", 32).load(0))[0, 0].min() > 200
    assert ShiftedDataset(test, "blur", 32).identity != ShiftedDataset(test, "blur", 64).identity
    with pytest.raises(UserError, match="unknown distribution shift 'blurr'"):
        ShiftedDataset(test, "blurr")


def test_a_generator_installed_as_an_entry_point_is_found_by_name(monkeypatch) -> None:
    """`datafree.generator: <name>` finds a package's `edgeclip.generators` entry point (the CLI hook)."""
    import importlib.metadata

    from edgeclip.distill.datafree import generators as module

    def factory(image_size: int, latent_std: float = 1.0) -> module.DecoderGenerator:
        return module.DecoderGenerator(torch.nn.Upsample(scale_factor=2), latent_shape=(3, 8, 8), image_size=image_size,
                                       output_range=(0.0, 1.0), init_std=latent_std)

    entry = importlib.metadata.EntryPoint(name="my-latents", value="unused:factory", group=module.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata.EntryPoint, "load", lambda self: factory)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [entry] if group == module.ENTRY_POINT_GROUP else [])
    try:
        generator = module.create_generator("my-latents", 16, {"latent_std": 0.1})
        images = generator.sample(2, torch.Generator().manual_seed(0))
        assert images.shape == (2, 3, 16, 16) and generator.latents.shape == (2, 3, 8, 8)
    finally:
        module.GENERATORS._entries.pop("my-latents", None)
