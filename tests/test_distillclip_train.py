"""DistillCLIP trainer: run layout, teacher-embedding cache, resume, feature projections, text init."""

from __future__ import annotations

import json

import pytest
import torch

from distillclip_helpers import CountingTeacher, recipe, tiny_teacher
from edgeclip.distill.distillclip.loop import TrainingInterrupted
from edgeclip.distill.distillclip.trainer import distill_clip
from edgeclip.errors import UserError
from edgeclip.students.checkpoint import load_checkpoint


def test_run_layout_and_teacher_runs_once_per_pair(tmp_path, monkeypatch) -> None:
    # A private cache: other tests in the session may already have cached this teacher's embeddings.
    monkeypatch.setenv("EDGECLIP_CACHE", str(tmp_path / "cache"))
    teacher = CountingTeacher(tiny_teacher())
    result = distill_clip(recipe("distill.epochs=2"), teacher=teacher, out_dir=tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("student/model.pt", "student/spec.json", "checkpoints/last.pt", "result.json", "result.md",
                 "teacher/clip_teacher.json", "teacher/teacher.pt"):
        assert (run / name).is_file(), name
    # 719 train pairs: the teacher encoded each image and caption exactly once for two epochs.
    assert (teacher.images, teacher.texts) == (719, 719)
    model, spec, info = load_checkpoint(run / "student")
    assert spec.kind == "dual_encoder" and spec.extra["teacher"].endswith("teacher.pt")
    record = json.loads((run / "result.json").read_text())
    assert record["training"]["epochs"] == 2 and record["method"] == "distillclip"
    assert 0 <= record["metrics"]["student_zero_shot"] <= 1
    # A second run with the same teacher and pairs reads the disk cache: the teacher never runs.
    again = CountingTeacher(teacher._teacher)
    distill_clip(recipe(), teacher=again, out_dir=tmp_path / "run2", progress=False)
    assert (again.images, again.texts) == (0, 0)
    assert result.metrics["test_images"] == 359


def test_online_teacher_runs_every_step(tmp_path) -> None:
    teacher = CountingTeacher(tiny_teacher())
    distill_clip(recipe("distill.teacher_cache=false"), teacher=teacher, out_dir=tmp_path / "run", progress=False)
    assert teacher.images == 11 * 64  # 11 full batches of 64, teacher on every step


def test_resume_after_kill_equals_uninterrupted_run(tmp_path) -> None:
    overrides = ("distill.epochs=2", "distill.checkpoint_every=4")
    full = distill_clip(recipe(*overrides), teacher=tiny_teacher(), out_dir=tmp_path / "full", progress=False)
    with pytest.raises(TrainingInterrupted):
        distill_clip(recipe(*overrides), teacher=tiny_teacher(), out_dir=tmp_path / "killed", progress=False, stop_after_steps=14)
    assert not (tmp_path / "killed" / "result.json").exists()
    resumed = distill_clip(recipe(*overrides), teacher=tiny_teacher(), out_dir=tmp_path / "killed", progress=False, resume=True)
    for (name, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    full_hist = full.result["training"]["per_epoch"]
    resumed_hist = resumed.result["training"]["per_epoch"]
    assert [h["loss"] for h in full_hist] == pytest.approx([h["loss"] for h in resumed_hist], rel=1e-6)


def test_feature_projection_is_trained_and_not_exported(tmp_path) -> None:
    loss = "distill.loss=[{name: inter}, {name: feature, weight: 1.0}, {name: contrastive, weight: 0.1}]"
    result = distill_clip(recipe(loss), teacher=tiny_teacher(), out_dir=tmp_path / "run", progress=False)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert state["image_projection.weight"].shape == (48, 32)  # student 32-d -> teacher 48-d
    assert result.result["student"]["feature_projection_params"] == 2 * 32 * 48
    exported = torch.load(tmp_path / "run" / "student" / "model.pt", weights_only=True)["state_dict"]
    assert not any("projection.weight" in k and k.startswith(("image_", "text_")) for k in exported)


def test_feature_projection_parameters_change(tmp_path) -> None:
    from edgeclip.distill.distillclip.student import DistillStudent

    captured = {}
    original_init = DistillStudent.__init__

    def spy(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        captured["student"] = self
        captured["before"] = self.image_projection.weight.detach().clone()

    DistillStudent.__init__ = spy
    try:
        distill_clip(recipe("distill.loss=[{name: feature}]"), teacher=tiny_teacher(), out_dir=tmp_path / "run", progress=False)
    finally:
        DistillStudent.__init__ = original_init
    after = captured["student"].image_projection.weight.detach()
    assert not torch.allclose(captured["before"], after), "the feature projection was not trained"


def test_text_init_strict_fails_and_skip_continues(tmp_path) -> None:
    from edgeclip.teacher import ClipTeacher
    from edgeclip.teacher.proxy import PROXY_DIGITS_PREPROCESS

    wide = {"embed_dim": 48, "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 1, "head_width": 32},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 96, "heads": 4, "layers": 3}}
    teacher = ClipTeacher.from_config("wide", wide, PROXY_DIGITS_PREPROCESS)
    with pytest.raises(UserError, match="width 64.*width 96.*text_init=skip"):
        distill_clip(recipe(), teacher=teacher, out_dir=tmp_path / "strict", progress=False)
    assert not (tmp_path / "strict").exists()  # nothing written before validation passed
    messages = []
    result = distill_clip(recipe("distill.text_init=skip"), teacher=teacher, out_dir=tmp_path / "skip", progress=False,
                          log=messages.append)
    assert "skipped" in result.result["student"]["text_init"]["init_skipped"]
    assert any("text tower init from the teacher skipped" in m for m in messages)


@pytest.mark.slow
@pytest.mark.parametrize("student", ["distillclip_vit_s16", "distillclip_vit_s32", "distillclip_mobilenetv3"])
def test_paper_students_train_from_a_vit_b32_teacher(student, tmp_path) -> None:
    """The registered paper students distill from an open_clip ViT-B/32 (random weights: speed only) on a pairs CSV."""
    from edgeclip.data import open_image_dataset
    from edgeclip.teacher import ClipTeacher

    images = open_image_dataset("synthetic:4", "train")
    lines = ["path,caption"]
    for i in range(8):
        images.load(i).resize((64, 64)).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,a photo of a {images.class_names[images.labels[i]]}")
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    teacher = ClipTeacher.load("ViT-B-32:random")
    result = distill_clip(recipe(f"student.name={student}", "student.image_size=224", f"data.pairs={tmp_path / 'pairs.csv'}",
                                 "data.test=synthetic:1", "distill.batch_size=4", "distill.freeze=[]"),
                          teacher=teacher, out_dir=tmp_path / "run", progress=False)
    init = result.result["student"]["text_init"]
    assert init["layer_map"] == [[i, 2 * i] for i in range(6)] and "transformer.resblocks" in init["copied"]
    assert result.result["training"]["per_epoch"][0]["steps"] == 2
