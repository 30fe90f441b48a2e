"""A user's own image folder end to end (issue 21): classes matched by name, class maps, qualified numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeclip.data import DIGIT_WORDS, Preprocess, open_image_dataset
from edgeclip.data.class_match import align_classes, parse_class_map, teacher_columns
from edgeclip.errors import UserError
from edgeclip.io_utils import read_json


def _cli(argv: list[str], monkeypatch) -> int:
    import edgeclip.cli as cli

    monkeypatch.setattr(cli, "SUBCOMMANDS", ["eval", "compress", "bench"])
    return cli.main(argv)


@pytest.fixture
def quick_run(tmp_path):
    """A quickstart-like run directory: a 10-digit student (zero…nine, training order) and a CNN teacher."""
    from edgeclip.students.checkpoint import save_checkpoint
    from edgeclip.students.registry import create_student
    from edgeclip.teacher.cnn import CnnTeacher, build_cnn

    torch.manual_seed(0)
    model, spec = create_student("test_resnet", class_names=list(DIGIT_WORDS), image_size=16)
    save_checkpoint(tmp_path / "run" / "student", model, spec, student_name="test_resnet")
    CnnTeacher(build_cnn("resnet10", 10, 0.25), "resnet10", 0.25, DIGIT_WORDS, Preprocess(size=16)).save(tmp_path / "run" / "teacher")
    return tmp_path / "run"


def _digit_folder(root, names: list[str]) -> dict[str, int]:
    """Digits test images saved as root/test/<names[label]>/ (class k gets k+1 images, so a
    by-position mix-up shows in the per-class counts), and one train image per class in root/train/."""
    digits = open_image_dataset("digits", "test")
    counts: dict[str, int] = {}
    for label, name in enumerate(names):
        picked = [i for i, y in enumerate(digits.labels) if y == label][:label + 2]
        for split, chosen in (("train", picked[:1]), ("test", picked[1:])):
            (root / split / name).mkdir(parents=True)
            for i in chosen:
                digits.load(i).save(root / split / name / f"{i}.png")
        counts[DIGIT_WORDS[label]] = len(picked) - 1
    return counts


def _expected_accuracy(run, folder_words) -> float:
    """Accuracy computed here, straight from the images and their true digit, in the model's order."""
    from edgeclip.distill.augment import eval_view
    from edgeclip.distill.trainer import predict_logits
    from edgeclip.students.checkpoint import load_checkpoint

    model, spec, _ = load_checkpoint(run / "student")
    data = open_image_dataset(str(folder_words), "test")
    truth = np.array([list(DIGIT_WORDS).index(data.class_names[y]) for y in data.labels])
    predicted = predict_logits(model, eval_view(data, spec.preprocess)).argmax(1).numpy()
    return float((predicted == truth).mean())


def test_eval_on_a_folder_of_class_words_matches_by_name(quick_run, tmp_path, monkeypatch, capsys) -> None:
    counts = _digit_folder(tmp_path / "words", list(DIGIT_WORDS))  # on disk sorted: eight, five, four, ...
    assert _cli(["eval", "--model", str(quick_run / "student"), "--data", str(tmp_path / "words"), "--out", str(tmp_path / "e")],
                monkeypatch) == 0
    result = read_json(tmp_path / "e" / "eval.json")
    assert result["test_images"] == sum(counts.values()) == 55
    assert result["qualifiers"]["baselines"]["per_class_images"] == counts  # labels follow the names, not positions
    assert result["student_accuracy"] == pytest.approx(_expected_accuracy(quick_run, tmp_path / "words"))
    assert result["qualifiers"]["baselines"]["majority"] == pytest.approx(10 / 55)
    out = capsys.readouterr().out
    assert "baseline: majority class (nine)" in out and "baseline: chance (1/10)" in out and "| true \\ predicted |" in out


def test_eval_on_a_folder_of_numerals_needs_a_class_map(quick_run, tmp_path, monkeypatch, capsys) -> None:
    _digit_folder(tmp_path / "numerals", [str(k) for k in range(10)])
    _digit_folder(tmp_path / "words", list(DIGIT_WORDS))
    args = ["eval", "--model", str(quick_run / "student"), "--data", str(tmp_path / "numerals")]
    assert _cli([*args, "--out", str(tmp_path / "bad")], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgeclip: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "must be the model's class words" in err and "--class-map 0=zero,1=one" in err and "(extra): 0, 1, 2" in err
    assert not (tmp_path / "bad").exists()
    mapping = ",".join(f"{k}={w}" for k, w in enumerate(DIGIT_WORDS))
    assert _cli([*args, "--class-map", mapping, "--out", str(tmp_path / "e")], monkeypatch) == 0
    result = read_json(tmp_path / "e" / "eval.json")
    assert result["student_accuracy"] == pytest.approx(_expected_accuracy(quick_run, tmp_path / "words"))
    assert result["class_map"]["3"] == "three"
    # The same map as a YAML file.
    (tmp_path / "map.yaml").write_text("\n".join(f"'{k}': {w}" for k, w in enumerate(DIGIT_WORDS)))
    assert _cli([*args, "--class-map", str(tmp_path / "map.yaml"), "--out", str(tmp_path / "e2")], monkeypatch) == 0
    assert read_json(tmp_path / "e2" / "eval.json")["student_accuracy"] == pytest.approx(result["student_accuracy"])


def test_align_classes_tables_extra_names_and_allows_a_subset(tmp_path) -> None:
    _digit_folder(tmp_path / "f", ["one", "three", "two"])  # one, three, two: a subset, alphabetical
    data = open_image_dataset(str(tmp_path / "f"), "test")
    aligned = align_classes(data, DIGIT_WORDS)
    assert aligned.class_names == list(DIGIT_WORDS)
    assert [DIGIT_WORDS[y] for y in aligned.labels] == [data.class_names[y] for y in data.labels]
    with pytest.raises(UserError, match=r"\(extra\): one, three, two .*\(missing\): cat, dog"):
        align_classes(data, ["cat", "dog"])
    with pytest.raises(UserError, match="several folders"):
        align_classes(data, DIGIT_WORDS, {"one": "two"})
    with pytest.raises(UserError, match="no such class folder"):
        align_classes(data, DIGIT_WORDS, {"eleven": "one"})


def test_parse_class_map_forms_and_errors(tmp_path) -> None:
    assert parse_class_map("") == {} and parse_class_map(None) == {}
    assert parse_class_map(" 0=zero, 1 = one ") == {"0": "zero", "1": "one"}
    (tmp_path / "m.json").write_text('{"0": "zero"}')
    assert parse_class_map(str(tmp_path / "m.json")) == {"0": "zero"}
    for bad in ("0zero", "0=,1=one", "0=zero,0=nil", str(tmp_path / "missing.yaml")):
        with pytest.raises(UserError):
            parse_class_map(bad)


def test_teacher_columns_reorder_by_name() -> None:
    assert teacher_columns(["b", "a", "c"], ["a", "b", "c"]) == [1, 0, 2]
    with pytest.raises(UserError, match="does not predict every class"):
        teacher_columns(["a", "b"], ["a", "b", "c"])


def test_bench_eval_data_matches_labels_by_name(tmp_path) -> None:
    from edgeclip.bench.harness import check_eval_classes, load_eval_data

    counts = _digit_folder(tmp_path / "words", list(DIGIT_WORDS))
    pre = Preprocess(size=16)
    data = load_eval_data(str(tmp_path / "words"), pre, class_names=list(DIGIT_WORDS))
    assert np.bincount(data.labels, minlength=10).tolist() == [counts[w] for w in DIGIT_WORDS]
    # an .npz that records its class names (as `edgeclip build` writes it) is matched by name too
    np.savez(tmp_path / "e.npz", images=data.images, labels=data.labels, class_names=np.asarray(DIGIT_WORDS, dtype=str))
    shuffled = list(reversed(DIGIT_WORDS))
    again = load_eval_data(str(tmp_path / "e.npz"), pre, class_names=shuffled)
    assert [shuffled[y] for y in again.labels] == [DIGIT_WORDS[y] for y in data.labels]
    # checked before any measurement: a numeral folder against word classes fails at once, with the hint
    _digit_folder(tmp_path / "numerals", [str(k) for k in range(10)])
    manifests = [{"kind": "classifier", "class_names": list(DIGIT_WORDS)}]
    with pytest.raises(UserError, match="--class-map"):
        check_eval_classes(str(tmp_path / "numerals"), "test", manifests)
    check_eval_classes(str(tmp_path / "numerals"), "test", manifests, {str(k): w for k, w in enumerate(DIGIT_WORDS)})


def test_recipe_classname_map_names_the_classes_a_student_learns(tmp_path) -> None:
    from edgeclip.config import DataConfig
    from edgeclip.distill.data_setup import open_distill_data

    _digit_folder(tmp_path / "numerals", [str(k) for k in range(10)])
    folder = str(tmp_path / "numerals")
    mapping = ",".join(f"{k}={w}" for k, w in enumerate(DIGIT_WORDS))
    data = open_distill_data(DataConfig(train=folder, test=folder, classname_map=mapping), seed=0)
    assert data.class_names == list(DIGIT_WORDS) and data.test.class_names == list(DIGIT_WORDS)
    assert [data.test.class_names[y] for y in data.test.labels][:3] == ["zero", "one", "one"]
    plain = open_distill_data(DataConfig(train=folder, test=folder), seed=0)
    assert plain.class_names == [str(k) for k in range(10)]
