"""Frame encoders from every kind of spec, and the per-(encoder, clip, frames) feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeclip.errors import UserError
from edgeclip.video.features import clip_features, load_encoder
from edgeclip.video.io import clip_info
from edgeclip.video.synthetic import write_clip


pytestmark = pytest.mark.usefixtures("private_cache")


def test_student_checkpoints_give_image_towers_and_backbones(tmp_path):
    from edgeclip.students import create_student
    from edgeclip.students.checkpoint import save_checkpoint

    clip, spec = create_student("test_distillclip")
    save_checkpoint(tmp_path / "dual", clip, spec, student_name="test_distillclip")
    dual = load_encoder(str(tmp_path / "dual"))
    assert dual.kind == "student_dual_encoder" and dual.has_text and dual.preprocess.resize_mode == "letterbox"
    batch = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(clip.encode_image(torch.from_numpy(batch)), dim=-1).numpy()
    assert np.allclose(dual.encode(batch), expected, atol=1e-5)
    assert dual.text_embeddings(["a car crash", "a road"]).shape == (2, dual.embed_dim)

    model, cspec = create_student("test_resnet", class_names=["a", "b", "c"])
    save_checkpoint(tmp_path / "cls", model, cspec, student_name="test_resnet")
    backbone = load_encoder(str(tmp_path / "cls"))
    assert backbone.kind == "student_classifier" and not backbone.has_text
    features = backbone.encode(batch)
    assert features.shape == (2, model.fc.in_features) and np.allclose(np.linalg.norm(features, axis=1), 1.0)
    with pytest.raises(UserError, match="has no text tower"):
        backbone.text_embeddings(["a crash"])


def test_teacher_checkpoint_and_bad_specs(tmp_path, tiny_clip_config):
    from edgeclip.data.preprocess import Preprocess
    from edgeclip.teacher.clip_teacher import ClipTeacher

    ClipTeacher.from_config("tiny", tiny_clip_config, Preprocess(size=16)).save(tmp_path / "teacher.pt")
    teacher = load_encoder(str(tmp_path / "teacher.pt"))
    assert teacher.kind == "clip_teacher" and teacher.has_text and teacher.embed_dim == 16
    assert teacher.preprocess.resize_mode == "letterbox" and teacher.preprocess.size == 16  # never centre-cropped
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither an exported artifact"):
        load_encoder(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="unknown encoder 'distilclip_mobilenetv3'; did you mean 'distillclip_mobilenetv3'"):
        load_encoder("distilclip_mobilenetv3")


def test_features_are_cached_per_encoder_clip_and_frames(tmp_path, monkeypatch):
    video = write_clip(tmp_path / "clip.mp4", frames=12)
    info = clip_info(video)
    encoder = load_encoder("test_distillclip")
    some = clip_features(encoder, info, [0, 5, 11])
    assert some.shape == (3, encoder.embed_dim)
    calls = {"n": 0}
    original = encoder._encode

    def counting(batch):
        calls["n"] += 1
        return original(batch)

    encoder._encode = counting
    assert np.array_equal(clip_features(encoder, info, [0, 5, 11]), some) and calls["n"] == 0  # cached
    everything = clip_features(encoder, info)  # a new frame set: encoded once
    assert calls["n"] == 1 and everything.shape == (12, encoder.embed_dim)
    assert np.allclose(everything[[0, 5, 11]], some, atol=1e-5)
    clip_features(encoder, info, [1, 2, 3])  # served from the every-frame cache
    assert calls["n"] == 1
    other = load_encoder("test_mobilenetv3")  # another encoder: another cache entry
    assert clip_features(other, info, [0]).shape == (1, other.embed_dim)
    with pytest.raises(UserError, match="outside clip"):
        clip_features(encoder, info, [12])
