"""Capacity-gap analysis: the over-confidence probability p, the table, and `edgeclip eval`."""

from __future__ import annotations

import math

import pytest
import torch

from edgeclip.distill.capacity_gap import CAPACITY_JSON, CAPACITY_MD, overconfidence_p, render_markdown, rows_from_runs
from edgeclip.errors import UserError
from edgeclip.io_utils import read_json, write_json


def _cli(argv: list[str], monkeypatch) -> int:
    """The real `edgeclip` entry point, with only the subcommands under test registered."""
    import edgeclip.cli as cli

    monkeypatch.setattr(cli, "SUBCOMMANDS", ["distill", "eval"])
    return cli.main(argv)


def test_overconfidence_p_equals_a_hand_count() -> None:
    # label:            0     1     2     0     1     2
    probs = torch.tensor([
        [0.90, 0.05, 0.05],  # right
        [0.70, 0.20, 0.10],  # wrong (pred 0), 0.70 > 0.5 → over-confident
        [0.40, 0.35, 0.25],  # wrong (pred 0), 0.40 ≤ 0.5
        [0.10, 0.60, 0.30],  # wrong (pred 1), 0.60 > 0.5 → over-confident
        [0.20, 0.50, 0.30],  # right
        [0.50, 0.30, 0.20],  # wrong (pred 0), exactly 0.5 is not "exceeds"
    ])
    labels = [0, 1, 2, 0, 1, 2]
    logits = probs.log()  # softmax(log p) = p, so the logits path must count the same
    # Hand count: 4 mistakes, 2 of them with the wrong top score > 0.5.
    assert overconfidence_p(logits, labels, gamma=0.5) == pytest.approx(2 / 4)
    # γ = 0.65: only the 0.70 row remains over-confident.
    assert overconfidence_p(logits, labels, gamma=0.65) == pytest.approx(1 / 4)
    # γ = 0.3: every mistake's top score (0.70, 0.40, 0.60, 0.50) exceeds it.
    assert overconfidence_p(logits, labels, gamma=0.3) == pytest.approx(4 / 4)
    # No mistakes: p is undefined, reported as NaN rather than 0.
    assert math.isnan(overconfidence_p(logits[[0, 4]], [0, 1]))


def _fake_result(teacher: str, kind: str, params: int, teacher_acc: float, p: float, student_acc: float,
                 student: str = "resnet18_w8", scratch: float | None = None, shots: int = 0) -> dict:
    return {
        "teacher": {"name": teacher, "kind": kind, "params": params},
        "student": {"name": student, "params": 176_402},
        "param_gap": params / 176_402,
        "data": {"test": "digits:test", "shots": shots},
        "metrics": {"teacher_accuracy": teacher_acc, "student_accuracy": student_acc, "retention": student_acc / teacher_acc,
                    "agreement": 0.9, "teacher_overconfidence_p": p, "overconfidence_gamma": 0.5, "scratch_accuracy": scratch},
    }


def test_table_from_runs_has_a_row_per_teacher_and_the_scratch_baseline(tmp_path) -> None:
    runs = []
    for i, args in enumerate([("proxy+mlp", "clip_finetuned", 900_000, 0.95, 0.20, 0.93, "resnet18_w8", 0.85),
                              ("resnet18@0.5-ce", "cnn_ce", 2_800_000, 0.97, 0.60, 0.91),
                              ("resnet34@0.5-ce", "cnn_ce", 5_300_000, 0.975, 0.70, 0.90)]):
        run = tmp_path / f"run{i}"
        write_json(run / "result.json", _fake_result(*args))
        runs.append(run)
    rows, gamma = rows_from_runs(runs)
    assert [r.teacher for r in rows] == ["proxy+mlp", "resnet18@0.5-ce", "resnet34@0.5-ce", "none (scratch)"]
    assert rows[1].param_gap == pytest.approx(2_800_000 / 176_402) and rows[2].overconfidence_p == 0.70
    assert rows[-1].student_accuracy == 0.85 and rows[-1].teacher_params is None and gamma == 0.5
    table = render_markdown(rows, gamma)
    assert "| resnet34@0.5-ce | cnn_ce | 5.30M | 30.0x | 97.5 | 0.700 | resnet18_w8 | 0.176M | 90.0 |" in table
    assert "| none (scratch) | none | - | - | - | - | resnet18_w8 | 0.176M | 85.0 |" in table

    write_json(tmp_path / "other" / "result.json", _fake_result("x", "cnn_ce", 1, 0.5, 0.5, 0.5, student="mobilenetv3_small"))
    with pytest.raises(UserError, match="mix students"):
        rows_from_runs(runs + [tmp_path / "other"])
    with pytest.raises(UserError, match="not a finished"):
        rows_from_runs([tmp_path / "missing"])


def test_eval_capacity_gap_cli_prints_and_saves_the_table(tmp_path, monkeypatch, capsys) -> None:
    runs = []
    for i, (name, p) in enumerate([("a-teacher", 0.1), ("b-teacher", 0.9)]):
        write_json(tmp_path / f"r{i}" / "result.json", _fake_result(name, "cnn_ce", 1_000_000, 0.9, p, 0.8, scratch=0.7))
        runs.append(str(tmp_path / f"r{i}"))
    out = tmp_path / "table"
    assert _cli(["eval", "--analysis", "capacity-gap", "--runs", *runs, "--out", str(out)], monkeypatch) == 0
    printed = capsys.readouterr().out
    assert "a-teacher" in printed and "none (scratch)" in printed
    saved = read_json(out / CAPACITY_JSON)
    assert [r["teacher"] for r in saved["rows"]] == ["a-teacher", "b-teacher", "none (scratch)"]
    assert saved["machine"]["torch"] == torch.__version__ and (out / CAPACITY_MD).is_file()
    # Bad input → exit 2 with one line, nothing written.
    assert _cli(["eval", "--analysis", "capacity-gap", "--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "t2")], monkeypatch) == 2
    assert "not a finished" in capsys.readouterr().err and not (tmp_path / "t2").exists()
    assert _cli(["eval", "--analysis", "capacity-gap", "--out", str(tmp_path / "t3")], monkeypatch) == 2
    assert not (tmp_path / "t3").exists()


@pytest.mark.slow
def test_capacity_gap_with_proxy_clip_and_two_cnn_teachers(tmp_path, proxy_teacher) -> None:
    """End to end on real digits: fine-tuned proxy CLIP and two CE-trained CNNs of different sizes."""
    from edgeclip.config import load_recipe
    from edgeclip.distill.capacity_gap import run_capacity_gap

    recipe = load_recipe("digits-kd", ["student.name=resnet18_w8", "data.shots=20", "distill.epochs=4", "distill.batch_size=32",
                                       "distill.milestones=[3]", "distill.lr=0.05", "distill.head_epochs=20"])
    rows, meta = run_capacity_gap(recipe, ["proxy-digits", "cnn:resnet10@0.25", "cnn:resnet18@0.5"], out_dir=tmp_path, progress=False)
    assert [r.teacher_kind for r in rows] == ["clip_finetuned", "cnn_ce", "cnn_ce", "none"]
    assert rows[1].teacher_params < rows[2].teacher_params
    assert rows[0].teacher_accuracy > 0.5  # the fine-tuned proxy CLIP knows digits
    for row in rows[:3]:
        assert row.param_gap == pytest.approx(row.teacher_params / row.student_params)
        assert 0.0 <= row.overconfidence_p <= 1.0 or math.isnan(row.overconfidence_p)
    assert (tmp_path / CAPACITY_MD).is_file() and meta["data"]["shots"] == 20


def test_cifar_resnet_teacher_keeps_the_resolution_the_imagenet_stem_throws_away() -> None:
    """cnn:cifar_resnet18 is ResNet18 with the CIFAR stem (3×3/1, no pool): its first stage sees 32×32,
    the ImageNet-stem teacher's sees 8×8; the names and the width check are shared."""
    import torch

    from edgeclip.errors import UserError
    from edgeclip.teacher.cnn import build_cnn

    cifar, imagenet = build_cnn("cifar_resnet18", 10, 0.25), build_cnn("resnet18", 10, 0.25)
    seen: dict[str, tuple[int, ...]] = {}
    for name, model in (("cifar", cifar), ("imagenet", imagenet)):
        first_stage = [m for m in model.modules() if m.__class__.__name__ == "BasicBlock"][0]
        first_stage.register_forward_pre_hook(lambda _m, inputs, name=name: seen.update({name: tuple(inputs[0].shape[-2:])}))
        model.eval()(torch.zeros(1, 3, 32, 32))
    assert seen == {"cifar": (32, 32), "imagenet": (8, 8)}
    with pytest.raises(UserError, match="did you mean 'cifar_resnet18'"):
        build_cnn("cifar_resnet81", 10)
