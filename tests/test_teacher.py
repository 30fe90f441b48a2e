"""ClipTeacher: loading (checkpoint paths, tags offline, errors), zero-shot head, output cache."""

from __future__ import annotations

import pytest
import torch

from edgeclip.data.preprocess import Preprocess
from edgeclip.errors import UserError
from edgeclip.teacher import ClipTeacher
from edgeclip.teacher.cache import cached_image_features

PRE = Preprocess(size=16, resize_mode="stretch")


@pytest.fixture
def tiny_teacher(tiny_clip_config) -> ClipTeacher:
    torch.manual_seed(1)
    return ClipTeacher.from_config("tiny", tiny_clip_config, PRE)


def test_zero_shot_head_equals_hand_computed_prompt_ensemble(tiny_teacher) -> None:
    classes, templates = ["cat", "dog", "emu"], ["a photo of a {}.", "a drawing of a {}.", "{}"]
    head = tiny_teacher.zero_shot_head(classes, templates)
    model = tiny_teacher.model
    expected = []
    for name in classes:
        tokens = tiny_teacher.tokenizer([t.format(name) for t in templates])
        embeddings = model.encode_text(tokens)
        embeddings = embeddings / embeddings.norm(dim=-1, keepdim=True)
        mean = embeddings.mean(dim=0)
        expected.append(mean / mean.norm())
    expected = torch.stack(expected)
    torch.testing.assert_close(head.class_embeddings, expected.detach(), rtol=1e-5, atol=1e-6)
    images = torch.randn(4, 3, 16, 16)
    features = model.encode_image(images)
    cosine = (features / features.norm(dim=-1, keepdim=True)) @ expected.T
    torch.testing.assert_close(head(features), model.logit_scale.exp() * cosine, rtol=1e-5, atol=1e-5)
    assert tiny_teacher.logit_scale == pytest.approx(float(model.logit_scale.detach().exp()))


def test_classname_map_changes_prompts(tiny_teacher) -> None:
    plain = tiny_teacher.class_embeddings(["sb"], ["{}"])
    mapped = tiny_teacher.class_embeddings(["sb"], ["{}"], {"sb": "Saint Bernard, a type of dog"})
    direct = tiny_teacher.class_embeddings(["Saint Bernard, a type of dog"], ["{}"])
    assert not torch.allclose(plain, mapped)
    torch.testing.assert_close(mapped, direct)


def test_teacher_checkpoint_roundtrip(tiny_teacher, tmp_path) -> None:
    path = tmp_path / "teacher.pt"
    tiny_teacher.save(path)
    loaded = ClipTeacher.load(str(path))
    images = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(loaded.encode_image(images), tiny_teacher.encode_image(images))
    assert loaded.identity == tiny_teacher.identity and loaded.source == str(path)  # same weights, same cache key
    assert loaded.preprocess == PRE
    with torch.no_grad():
        next(loaded.model.parameters()).add_(1.0)
    loaded._identity = None
    assert loaded.identity != tiny_teacher.identity  # other weights, other cache key


def test_open_clip_checkpoint_path_with_arch(tmp_path) -> None:
    import open_clip

    torch.manual_seed(3)
    model = open_clip.create_model("RN50")  # an open_clip arch; a state dict the test writes
    path = tmp_path / "rn50.pt"
    torch.save(model.state_dict(), path)
    teacher = ClipTeacher.load(f"RN50:{path}")
    images = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(teacher.encode_image(images), model.eval().encode_image(images, normalize=True))
    assert teacher.preprocess.size == 224


def test_checkpoint_for_other_architecture_is_a_clear_error(tiny_teacher, tmp_path) -> None:
    path = tmp_path / "tiny_state.pt"
    torch.save(tiny_teacher.model.state_dict(), path)
    with pytest.raises(UserError, match="does not fit teacher architecture RN50"):
        ClipTeacher.load(f"RN50:{path}")
    with pytest.raises(UserError, match="not an edgeclip teacher checkpoint; for an open_clip state dict pass ARCH:"):
        ClipTeacher.load(str(path))


def test_offline_tag_fails_fast_with_fix(monkeypatch) -> None:
    from edgeclip.teacher import clip_teacher

    monkeypatch.setattr(clip_teacher, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(UserError, match=r"not cached and the model hub .* cannot be reached; pass a local checkpoint"):
        ClipTeacher.load("ViT-B-32:openai")


def test_unknown_teacher_tag_and_arch() -> None:
    with pytest.raises(UserError, match=r"unknown pretrained tag for ViT-B-32 'openia'; did you mean 'openai'"):
        ClipTeacher.load("ViT-B-32:openia")
    with pytest.raises(UserError, match=r"unknown teacher architecture 'ViT-B-33'"):
        ClipTeacher.load("ViT-B-33:openai")
    with pytest.raises(UserError, match=r"unknown teacher 'proxy-digit'; did you mean 'proxy-digits'"):
        ClipTeacher.load("proxy-digit")
    with pytest.raises(UserError, match="does not exist"):
        ClipTeacher.load("/nonexistent/teacher.pt")


def test_cache_runs_teacher_once(tiny_teacher) -> None:
    from edgeclip.data import open_image_dataset

    dataset = open_image_dataset("synthetic:4", split="train")
    calls = {"n": 0}
    original = tiny_teacher.model.encode_image

    def counting(images, normalize=False):
        calls["n"] += images.shape[0]
        return original(images, normalize=normalize)

    tiny_teacher.model.encode_image = counting
    first = cached_image_features(tiny_teacher, dataset, PRE, batch_size=8, progress=False)
    assert calls["n"] == len(dataset)
    second = cached_image_features(tiny_teacher, dataset, PRE, batch_size=8, progress=False)
    assert calls["n"] == len(dataset), "second pass must come from the cache"
    torch.testing.assert_close(first, second)
    # A different transform is a different key: the teacher runs again.
    cached_image_features(tiny_teacher, dataset, Preprocess(size=16, resize_mode="letterbox"), progress=False)
    assert calls["n"] == 2 * len(dataset)


@pytest.mark.slow
def test_proxy_teacher_knows_digits(proxy_teacher) -> None:
    from edgeclip.data import open_image_dataset
    from edgeclip.teacher.proxy import zero_shot_accuracy

    accuracy = zero_shot_accuracy(proxy_teacher, open_image_dataset("digits", split="test"))
    assert accuracy >= 0.85
