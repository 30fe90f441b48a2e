"""proxy-digits-large: registered, trained on the pretrain pool only, and big enough for a real compression."""

from __future__ import annotations

import pytest

from edgeclip.bench.flops import count_tower_flops
from edgeclip.clip_models import build_clip_from_config
from edgeclip.data import check_disjoint, open_image_dataset
from edgeclip.students.registry import create_student
from edgeclip.teacher.clip_teacher import PROXY_TEACHERS
from edgeclip.teacher.proxy import PROXY_DIGITS_LARGE_CONFIG, ProxyTrainConfig, proxy_pool, train_proxy_teacher


def test_registered_and_pool_disjoint_from_every_test_split() -> None:
    assert "proxy-digits-large" in PROXY_TEACHERS.names()
    pool = proxy_pool("proxy-digits-large")
    for split in ("test", "train"):
        check_disjoint(pool, open_image_dataset("digits", split), f"pool vs {split}")


def test_student_image_tower_is_a_real_compression_of_the_teacher() -> None:
    teacher = build_clip_from_config(PROXY_DIGITS_LARGE_CONFIG)
    student, _ = create_student("distillclip_digits", teacher_model=teacher)
    t_flops, s_flops = count_tower_flops(teacher, 32, 16), count_tower_flops(student, 32, 16)
    t_params = sum(p.numel() for p in teacher.visual.parameters())
    s_params = sum(p.numel() for p in student.visual.parameters())
    assert s_flops["image"] <= t_flops["image"] / 4, (s_flops, t_flops)
    assert s_params <= t_params / 2, (s_params, t_params)


@pytest.mark.slow
def test_large_proxy_trains_on_the_pretrain_pool(tmp_path, monkeypatch) -> None:
    teacher, info = train_proxy_teacher(ProxyTrainConfig(epochs=1), progress=False, name="proxy-digits-large",
                                        model_config=PROXY_DIGITS_LARGE_CONFIG)
    assert info["train_split"].endswith("split=pretrain:n=719") and info["teacher"] == "proxy-digits-large"
    assert 0.0 <= info["zero_shot_accuracy_test"] <= 1.0 and info["test_images"] == 359
    teacher.save(tmp_path / "t.pt")
    assert teacher.name == "proxy-digits-large"
