"""Classifier KD: loss golden values, low-shot sampling, the trainer (cache, determinism, resume),
and `distill_classifier` end to end with a CE-trained CNN teacher on real digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgeclip.config import load_recipe
from edgeclip.data import open_image_dataset
from edgeclip.distill.augment import BatchAugment, TensorImages
from edgeclip.distill.data_setup import low_shot, open_distill_data
from edgeclip.distill.losses import WeightedLoss, WeightedTerm, cross_entropy_criterion, hinton_criterion, hinton_kd
from edgeclip.config import DistillConfig, LossTermConfig
from edgeclip.distill.losses import LOSSES, criterion_from_config
from edgeclip.distill.trainer import predict_logits, train_classifier
from edgeclip.errors import UserError


def _hand_kd(student: list[list[float]], teacher: list[list[float]], tau: float) -> float:
    """τ² · mean over rows of Σ_c p_t,c (log p_t,c − log p_s,c), written out with math only."""
    total = 0.0
    for s_row, t_row in zip(student, teacher):
        zs = sum(math.exp(v / tau) for v in s_row)
        zt = sum(math.exp(v / tau) for v in t_row)
        for s, t in zip(s_row, t_row):
            p_t, p_s = math.exp(t / tau) / zt, math.exp(s / tau) / zs
            total += p_t * (math.log(p_t) - math.log(p_s))
    return tau * tau * total / len(student)


@pytest.mark.parametrize("tau", [1.0, 2.0, 4.0])
def test_kd_loss_equals_hand_computation(tau: float) -> None:
    student = [[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]]
    teacher = [[2.0, 1.0, 0.0], [0.5, 0.5, 2.0]]
    got = hinton_kd(torch.tensor(student), torch.tensor(teacher), tau=tau)
    assert float(got) == pytest.approx(_hand_kd(student, teacher, tau), rel=1e-6)


def test_kd_loss_tau_changes_value_and_is_zero_for_identical_logits() -> None:
    logits = torch.tensor([[1.0, 3.0, -2.0]])
    assert float(hinton_kd(logits, logits.clone(), tau=3.0)) == pytest.approx(0.0, abs=1e-7)
    other = torch.tensor([[3.0, 1.0, 0.0]])
    assert float(hinton_kd(logits, other, tau=1.0)) != pytest.approx(float(hinton_kd(logits, other, tau=2.0)))


def test_hinton_criterion_is_weighted_sum_of_named_terms() -> None:
    student = torch.tensor([[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]])
    teacher = torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.5, 2.0]])
    labels = torch.tensor([1, 2])
    batch = {"student_logits": student, "teacher_logits": teacher, "labels": labels}
    total, parts = hinton_criterion(alpha=0.3, beta=0.7, tau=2.0)(batch)
    ce = -sum(math.log(math.exp(row[y]) / sum(math.exp(v) for v in row)) for row, y in zip(student.tolist(), labels.tolist())) / 2
    kd = _hand_kd(student.tolist(), teacher.tolist(), 2.0)
    assert parts["ce"] == pytest.approx(ce, rel=1e-6) and parts["kd"] == pytest.approx(kd, rel=1e-6)
    assert float(total) == pytest.approx(0.3 * kd + 0.7 * ce, rel=1e-6)
    # A zero weight drops the term (no teacher needed); no weight at all is a user error.
    only_ce = WeightedLoss([WeightedTerm("kd", 0.0, {"tau": 1.0}), WeightedTerm("ce", 1.0)])
    assert not only_ce.needs_teacher and set(only_ce({**batch, "teacher_logits": None})[1]) == {"ce"}
    with pytest.raises(UserError):
        WeightedLoss([WeightedTerm("ce", 0.0)])
    with pytest.raises(UserError, match="unknown loss term"):
        WeightedLoss([WeightedTerm("kdd", 1.0)])


def test_kd_loss_rejects_class_count_mismatch() -> None:
    with pytest.raises(UserError, match="same class list"):
        hinton_kd(torch.zeros(2, 10), torch.zeros(2, 5))


def test_low_shot_gives_exactly_k_per_class_seeded_and_leaves_test_alone() -> None:
    train = open_image_dataset("digits", "train")
    for k in (5, 10, 20):
        subset = low_shot(train, k, seed=3)
        counts = np.bincount(subset.labels, minlength=10)
        assert counts.tolist() == [k] * 10
    assert low_shot(train, 5, seed=3).indices == low_shot(train, 5, seed=3).indices
    assert low_shot(train, 5, seed=3).indices != low_shot(train, 5, seed=4).indices
    # Smaller k with the same seed is not simply a prefix problem: indices are valid train indices.
    assert set(low_shot(train, 5, seed=3).indices) <= set(range(len(train)))
    assert low_shot(train, 0, seed=3) is train
    data = open_distill_data(load_recipe("", ["data.shots=5"]).data, seed=0)
    assert len(data.train) == 50 and len(data.test) == len(open_image_dataset("digits", "test"))
    with pytest.raises(UserError, match="shots"):
        low_shot(train, 10_000, seed=0)


def _toy_images(n: int = 96, classes: int = 4, seed: int = 0) -> TensorImages:
    """Linearly separable 3×8×8 'images': class c lights up quadrant-ish channel patterns."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    images = torch.randn(n, 3, 8, 8, generator=g) * 0.3
    for c in range(classes):
        images[labels == c, c % 3, (c // 3) * 4:(c // 3) * 4 + 4, :] += 2.0
    return TensorImages(images, labels)


def _toy_model(classes: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(32, classes))


def test_student_follows_cached_teacher_outputs_by_index() -> None:
    """With only the KD term, the student learns the teacher's (deliberately relabelled) answers,
    which proves each batch looks up its own rows of the cached teacher tensor."""
    data = _toy_images()
    shifted = (data.labels + 1) % 4
    teacher_logits = torch.nn.functional.one_hot(shifted, 4).float() * 8.0
    torch.manual_seed(0)
    model = _toy_model()
    config = DistillConfig(epochs=15, batch_size=16, lr=0.05, milestones=[])
    train_classifier(model, data, criterion=hinton_criterion(1.0, 0.0, 2.0), config=config, teacher_logits=teacher_logits, progress=False)
    predictions = predict_logits(model, data).argmax(1)
    assert (predictions == shifted).float().mean() > 0.9
    assert (predictions == data.labels).float().mean() < 0.1


def test_training_is_deterministic_and_resume_continues_exactly(tmp_path) -> None:
    data = _toy_images()
    config = DistillConfig(epochs=3, batch_size=16, lr=0.05, milestones=[2])
    teacher = torch.randn(len(data), 4)

    def run(epochs: int, ckpt, resume: bool) -> tuple[torch.nn.Module, list]:
        torch.manual_seed(1)
        model = _toy_model()
        history = train_classifier(model, data, criterion=hinton_criterion(0.5, 0.5, 2.0), config=config, seed=7, epochs=epochs,
                                   teacher_logits=teacher,
                                   checkpoint_dir=ckpt, resume=resume, progress=False, batch_transform=BatchAugment())
        return model, history

    straight, history = run(3, tmp_path / "a", False)
    again, _ = run(3, None, False)
    for (k, v), w in zip(straight.state_dict().items(), again.state_dict().values()):
        assert torch.equal(v, w), k
    run(1, tmp_path / "b", False)  # "interrupted" after one epoch
    resumed, resumed_history = run(3, tmp_path / "b", True)
    for (k, v), w in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(v.float(), w.float(), atol=1e-6), k
    assert [h.epoch for h in resumed_history] == [1, 2, 3]
    assert resumed_history[-1].loss == pytest.approx(history[-1].loss, rel=1e-5)
    assert resumed_history[-1].lr == pytest.approx(0.005)  # milestone at epoch 2 survived the resume
    # A checkpoint from another set-up is refused rather than silently mixed in.
    with pytest.raises(UserError, match="different model"):
        train_classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 4)), data, criterion=cross_entropy_criterion(),
                         config=config, seed=7, checkpoint_dir=tmp_path / "b", resume=True, progress=False)


def test_recipe_declares_its_loss_terms() -> None:
    """`distill.loss` names registered terms; without it alpha/beta/tau give the same criterion."""
    recipe = load_recipe("quickstart", ["distill.loss=[{name: kd, weight: 0.25, params: {tau: 4}}, {name: ce, weight: 0.75}]"])
    assert recipe.distill.loss == [LossTermConfig("kd", 0.25, {"tau": 4}), LossTermConfig("ce", 0.75, {})]
    declared = criterion_from_config(recipe.distill)
    assert declared.describe() == hinton_criterion(0.25, 0.75, 4).describe() and declared.needs_teacher
    assert criterion_from_config(load_recipe("quickstart").distill).describe() == "0.5·kd{'tau': 1.0} + 0.5·ce"
    assert not criterion_from_config(DistillConfig(loss=[LossTermConfig("ce", 1.0)])).needs_teacher
    assert LOSSES.get("kd").needs_teacher and not LOSSES.get("ce").needs_teacher
    with pytest.raises(UserError, match="unknown loss term 'kld'"):
        criterion_from_config(DistillConfig(loss=[LossTermConfig("kld", 1.0)]))
    with pytest.raises(UserError, match="no parameter \\['temperature'\\]"):
        criterion_from_config(DistillConfig(loss=[LossTermConfig("kd", 1.0, {"temperature": 2})]))
    with pytest.raises(UserError, match="must be a mapping"):
        load_recipe("quickstart", ["distill.loss=[{name: kd, params: 3}]"])


def test_a_term_the_trainer_cannot_feed_is_refused_before_training() -> None:
    from edgeclip.distill.losses import WeightedLoss, register_loss

    if "test_embedding_l2" not in LOSSES:
        @register_loss("test_embedding_l2", needs_teacher=True)
        def _l2(student_image, teacher_image):  # noqa: ANN001, ANN202 - a dual-encoder-style term
            return ((student_image - teacher_image) ** 2).sum()

    data = _toy_images()
    with pytest.raises(UserError, match="reads student_image, teacher_image, which classifier training does not provide"):
        train_classifier(_toy_model(), data, criterion=WeightedLoss([WeightedTerm("test_embedding_l2", 1.0)]),
                         config=DistillConfig(epochs=1, batch_size=16), progress=False)


def test_batch_augment_keeps_shape_and_background() -> None:
    images = torch.full((4, 3, 16, 16), 1.5)
    images[:, :, 6:10, 6:10] = -1.0
    out = BatchAugment(degrees=15)(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    assert torch.allclose(out[:, :, 0, 0], torch.full((4, 3), 1.5), atol=1e-5)  # corners filled with the border colour
    assert not torch.allclose(out, images)


class _CountingTeacher:
    """A ClassifierTeacher that records how often it is asked for outputs."""

    kind = "counting"

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, []
        self.name, self.class_names = "counting-" + inner.name, inner.class_names

    @property
    def num_params(self) -> int:
        return self.inner.num_params

    def logits(self, dataset):
        self.calls.append(len(dataset))
        return self.inner.logits(dataset)

    def forward_images(self, images):
        return self.inner.forward_images(images)

    def describe(self):
        return {"kind": self.kind, "name": self.name}

    def save(self, directory):
        return self.inner.save(directory)


def test_distill_classifier_end_to_end_with_cnn_teacher(tmp_path) -> None:
    from edgeclip.distill.classifier_kd import distill_classifier
    from edgeclip.io_utils import read_json
    from edgeclip.students.checkpoint import load_checkpoint

    # 16×16 inputs keep this fast on 2 busy cores; the pipeline is the same as at 32.
    overrides = ["student.name=test_resnet", "student.image_size=16", "data.shots=10", "distill.epochs=3",
                 "distill.batch_size=32", "distill.milestones=[2]", "distill.lr=0.05"]
    first = distill_classifier(load_recipe("", overrides), teacher="cnn:resnet10@0.25", out_dir=tmp_path / "cnn", progress=False)
    recipe = load_recipe("", overrides + ["distill.scratch_baseline=true"])
    counting = _CountingTeacher(first.teacher)
    result = distill_classifier(recipe, teacher=counting, out_dir=tmp_path / "run", progress=False)
    # The teacher ran once over the 100 train images and once over the test split, not per epoch.
    assert counting.calls == [100, len(open_image_dataset("digits", "test"))]
    m = result.metrics
    assert m["retention"] == pytest.approx(m["student_accuracy"] / m["teacher_accuracy"])
    assert 0.0 <= m["agreement"] <= 1.0 and m["scratch_accuracy"] is not None
    saved = read_json(tmp_path / "run" / "result.json")
    assert saved["metrics"]["student_accuracy"] == m["student_accuracy"] and saved["data"]["shots"] == 10
    assert saved["training"]["epochs"] == 3 and (tmp_path / "run" / "result.md").is_file()
    model, spec, info = load_checkpoint(tmp_path / "run" / "student")
    assert spec.class_names == open_image_dataset("digits", "train").class_names and spec.extra["data"] == "digits"
    from edgeclip.distill.augment import eval_view

    again = predict_logits(model, eval_view(open_image_dataset("digits", "test"), spec.preprocess))
    assert float((again.argmax(1).numpy() == np.array(open_image_dataset("digits", "test").labels)).mean()) == pytest.approx(m["student_accuracy"])
    # Same recipe and seed → same student (seeded, deterministic on CPU).
    assert torch.equal(next(iter(first.model.state_dict().values())), next(iter(result.model.state_dict().values())))


# ---- CLI: `edgeclip distill` / `edgeclip eval`, and bad input → exit 2 with nothing written ----

def _cli(argv: list[str], monkeypatch) -> int:
    """The real `edgeclip` entry point, with only the subcommands under test registered."""
    import edgeclip.cli as cli

    monkeypatch.setattr(cli, "SUBCOMMANDS", ["distill", "eval"])
    return cli.main(argv)


QUICK = ["--student", "test_resnet", "--shots", "5", "--epochs", "1", "--quiet", "--set", "student.image_size=16",
         "--set", "distill.batch_size=25", "--set", "distill.milestones=[]"]


def _image_folder(root, layout: dict[str, list[str]]) -> None:
    from PIL import Image

    for split, classes in layout.items():
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (12, 12), (40 * c, 80 + 10 * i, 30)).save(folder / f"{i}.png")


def test_cli_distill_then_eval(tmp_path, monkeypatch, capsys) -> None:
    from edgeclip.io_utils import read_json

    out = tmp_path / "run"
    assert _cli(["distill", *QUICK, "--teacher", "cnn:resnet10@0.25", "--out", str(out)], monkeypatch) == 0
    result = read_json(out / "result.json")
    assert result["data"]["train_images"] == 50 and result["student"]["name"] == "test_resnet"
    assert "retention" in capsys.readouterr().out
    # eval picks the run's own teacher and reproduces the run's numbers.
    assert _cli(["eval", "--model", str(out / "student")], monkeypatch) == 0
    evaluated = read_json(out / "eval.json")
    assert evaluated["student_accuracy"] == pytest.approx(result["metrics"]["student_accuracy"])
    assert evaluated["teacher_accuracy"] == pytest.approx(result["metrics"]["teacher_accuracy"])
    # A student evaluated on data with other classes → exit 2.
    assert _cli(["eval", "--model", str(out / "student"), "--data", "synthetic:2", "--out", str(tmp_path / "e2")], monkeypatch) == 2
    assert "classes" in capsys.readouterr().err and not (tmp_path / "e2").exists()
    # The run's teacher checkpoint is reusable as --teacher; a student directory is not a teacher.
    assert _cli(["distill", *QUICK, "--teacher", str(out / "student"), "--out", str(tmp_path / "bad")], monkeypatch) == 2
    assert "student checkpoint, not a teacher" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_cli_distill_rejects_train_and_test_with_different_class_folders(tmp_path, monkeypatch, capsys) -> None:
    _image_folder(tmp_path / "data", {"train": ["cat", "dog"], "test": ["cat", "emu"]})
    out = tmp_path / "run"
    code = _cli(["distill", *QUICK, "--data", str(tmp_path / "data"), "--teacher", "cnn:resnet10", "--out", str(out)], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "different classes" in err and "Traceback" not in err
    assert not out.exists()


def test_cli_distill_rejects_a_student_with_another_class_count(tmp_path, monkeypatch, capsys) -> None:
    from edgeclip.students.checkpoint import save_checkpoint
    from edgeclip.students.registry import create_student

    model, spec = create_student("test_resnet", class_names=["a", "b", "c"], image_size=16)
    save_checkpoint(tmp_path / "student3", model, spec, student_name="test_resnet")
    out = tmp_path / "run"
    code = _cli(["distill", *QUICK, "--set", f"student.checkpoint={tmp_path / 'student3'}", "--teacher", "cnn:resnet10",
                 "--out", str(out)], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and "predicts 3 classes but the data has 10" in err
    assert not out.exists()


def test_cli_distill_rejects_a_teacher_checkpoint_of_another_architecture(tmp_path, monkeypatch, capsys) -> None:
    from edgeclip.data import Preprocess
    from edgeclip.data.digits import DIGIT_WORDS
    from edgeclip.teacher.cnn import CnnTeacher, build_cnn

    saved = CnnTeacher(build_cnn("resnet10", 10, 0.25), "resnet10", 0.25, DIGIT_WORDS, Preprocess(size=16)).save(tmp_path / "t")
    out = tmp_path / "run"
    assert _cli(["distill", *QUICK, "--teacher", f"cnn:resnet34:{saved}", "--out", str(out)], monkeypatch) == 2
    assert "is a resnet10, not a resnet34" in capsys.readouterr().err and not out.exists()
