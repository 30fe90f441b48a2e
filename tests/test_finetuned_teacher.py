"""Fine-tuned CLIP teacher (paper 000 §3.2.2): frozen CLIP + MLP head, trained with CE; save/load;
CE-trained CNN teachers' checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgeclip.data import Preprocess, open_image_dataset
from edgeclip.errors import UserError
from edgeclip.io_utils import read_json, write_json
from edgeclip.teacher.finetuned import FinetunedClipTeacher, SimilarityMLP, train_head


def test_head_is_fc_bn_dropout_relu_fc_on_the_similarity_vector() -> None:
    embeddings = F.normalize(torch.randn(5, 8), dim=-1)
    head = SimilarityMLP(embeddings, logit_scale=50.0, hidden=16, dropout=0.2)
    kinds = [type(m).__name__ for m in head.mlp]
    assert kinds == ["Linear", "BatchNorm1d", "Dropout", "ReLU", "Linear"]
    assert head.mlp[0].in_features == 5  # reads the 5-class similarity vector, not the 8-dim features
    features = torch.randn(3, 8)
    expected = 50.0 * F.normalize(features, dim=-1) @ embeddings.T
    assert torch.allclose(head.similarity(features), expected, atol=1e-5)
    probe = SimilarityMLP(embeddings, logit_scale=50.0, head_input="features", hidden=16)
    assert probe.mlp[0].in_features == 8
    assert head.eval()(features).shape == (3, 5)
    with pytest.raises(UserError, match="head_input"):
        SimilarityMLP(embeddings, 50.0, head_input="pixels")


def test_training_the_head_repairs_a_wrong_zero_shot_head() -> None:
    """Image features sit next to the text embedding of a *different* class (a systematic prompt
    error): zero-shot gets ~0%, the CE-trained MLP on the similarity vector learns the mapping."""
    g = torch.Generator().manual_seed(0)
    classes, dim = 6, 16
    embeddings = F.normalize(torch.randn(classes, dim, generator=g), dim=-1)
    labels = torch.arange(600) % classes
    confused_with = (labels + 1) % classes
    features = F.normalize(embeddings[confused_with] + 0.15 * torch.randn(600, dim, generator=g), dim=-1)
    head = SimilarityMLP(embeddings, logit_scale=100.0, hidden=32)
    zero_shot_accuracy = float(((head.similarity(features)).argmax(1) == labels).float().mean())
    losses = train_head(head, features[:400], labels[:400].tolist(), epochs=40, lr=3e-3, seed=0)
    accuracy = float((head.eval()(features[400:]).argmax(1) == labels[400:]).float().mean())
    assert zero_shot_accuracy < 0.05
    assert accuracy > 0.95
    assert losses[-1] < losses[0]
    # Only the MLP trains: the class embeddings (CLIP's text side) are untouched buffers.
    assert torch.equal(head.class_embeddings, F.normalize(embeddings, dim=-1))


@pytest.fixture
def tiny_clip(tiny_clip_config):
    from edgeclip.teacher.clip_teacher import ClipTeacher

    torch.manual_seed(0)
    return ClipTeacher.from_config("tiny-clip", tiny_clip_config, Preprocess(size=16, resize_mode="stretch"))


def test_finetuned_teacher_trains_on_cached_features_saves_and_reloads(tiny_clip, tmp_path, monkeypatch) -> None:
    train = open_image_dataset("synthetic:12", "train")
    test = open_image_dataset("synthetic:12", "test")
    calls = []
    original = tiny_clip.encode_image
    monkeypatch.setattr(tiny_clip, "encode_image", lambda x, normalize=True: calls.append(len(x)) or original(x, normalize=normalize))
    teacher = FinetunedClipTeacher.train(tiny_clip, "tiny-clip", train, templates="plain", head_input="features",
                                         hidden=32, epochs=60, lr=3e-3, seed=0)
    train_accuracy = float((teacher.logits(train).argmax(1) == torch.tensor(train.labels)).float().mean())
    # A random tiny CLIP knows nothing zero-shot, but its features separate coloured shapes.
    assert train_accuracy > 0.8
    first = teacher.logits(test)
    images_seen = sum(calls)
    teacher.logits(test)
    teacher.logits(train)
    assert sum(calls) == images_seen == len(train) + len(test)  # CLIP ran once per image; the rest came from the cache
    assert teacher.num_params > sum(p.numel() for p in teacher.head.mlp.parameters())

    saved = teacher.save(tmp_path / "teacher")
    assert read_json(saved / "teacher.json")["kind"] == "clip_finetuned"
    reloaded = FinetunedClipTeacher.load(saved, clip=tiny_clip)
    assert torch.allclose(reloaded.logits(test), first)
    assert reloaded.class_names == train.class_names


def test_finetuned_head_refuses_another_clip_or_architecture(tiny_clip, tiny_clip_config, tmp_path) -> None:
    from edgeclip.teacher.clip_teacher import ClipTeacher

    train = open_image_dataset("synthetic:4", "train")
    teacher = FinetunedClipTeacher.train(tiny_clip, "tiny-clip", train, templates="plain", hidden=8, epochs=2, seed=0)
    directory = teacher.save(tmp_path / "teacher")
    torch.manual_seed(123)
    other_clip = ClipTeacher.from_config("tiny-clip", tiny_clip_config, Preprocess(size=16, resize_mode="stretch"))
    with pytest.raises(UserError, match="trained on CLIP"):
        FinetunedClipTeacher.load(directory, clip=other_clip)
    meta = read_json(directory / "teacher.json")
    write_json(directory / "teacher.json", {**meta, "hidden": 64})  # metadata no longer matches the weights
    with pytest.raises(UserError, match="another architecture"):
        FinetunedClipTeacher.load(directory, clip=tiny_clip)


def test_cnn_teacher_checkpoint_records_and_checks_its_architecture(tmp_path) -> None:
    from edgeclip.distill.teachers import load_saved_teacher, open_teacher
    from edgeclip.teacher.cnn import CnnTeacher, build_cnn, parse_cnn_spec

    names = [f"c{i}" for i in range(3)]
    teacher = CnnTeacher(build_cnn("resnet10", 3, 0.25), "resnet10", 0.25, names, Preprocess(size=16))
    directory = teacher.save(tmp_path / "t")
    loaded = load_saved_teacher(directory)
    assert isinstance(loaded, CnnTeacher) and loaded.arch == "resnet10"
    for a, b in zip(teacher.model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)
    assert parse_cnn_spec("cnn:resnet34@0.5") == ("resnet34", 0.5, None)
    # Asked for a resnet18 but the checkpoint is a resnet10: one clear error.
    with pytest.raises(UserError, match="is a resnet10, not a resnet18"):
        open_teacher(f"cnn:resnet18:{directory}")
    # Metadata edited to claim another architecture: the weights do not fit, one clear error.
    write_json(directory / "teacher.json", {**read_json(directory / "teacher.json"), "arch": "resnet34"})
    with pytest.raises(UserError, match="another architecture"):
        load_saved_teacher(directory)
    with pytest.raises(UserError, match="unknown CNN teacher"):
        parse_cnn_spec("cnn:resnet19")
