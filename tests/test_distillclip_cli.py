"""End to end through the CLI on tiny inputs: distill (distillclip), eval --suite, build."""

from __future__ import annotations

import json

import pytest

from distillclip_helpers import tiny_teacher
from edgeclip.cli import main

FAST = ["--set", "student.name=test_distillclip", "--set", "data.pairs=digits", "--set", "distill.epochs=1",
        "--set", "distill.warmup_steps=3"]


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "tiny_teacher.pt"
    tiny_teacher().save(path)
    return path


@pytest.fixture(scope="module")
def run_dir(teacher_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "distill"
    assert main(["distill", "--recipe", "distillclip-digits", "--teacher", str(teacher_file), "--out", str(out), "--quiet", *FAST]) == 0
    return out


def test_distill_cli_writes_run_dir(run_dir, capsys) -> None:
    result = json.loads((run_dir / "result.json").read_text())
    assert result["method"] == "distillclip" and result["student"]["name"] == "test_distillclip"
    assert (run_dir / "student" / "model.pt").is_file()


def test_eval_suite_table(run_dir, tmp_path, capsys) -> None:
    code = main(["eval", "--model", str(run_dir / "student"), "--suite", "zero-shot,linear-probe,shift,retrieval",
                 "--latency-backends", "torch,onnx", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    rows = report["suite"]["rows"]
    for name in ("zero-shot top-1", "linear-probe top-1", "shift noise top-1", "shift inversion top-1",
                 "retrieval image_to_text_R@1", "retrieval text_to_image_R@5"):
        row = rows[name]
        assert 0 <= row["teacher"] <= 1 and 0 <= row["student"] <= 1
        assert row["retention"] == pytest.approx(row["student"] / row["teacher"]) if row["teacher"] else True
    size = report["size"]
    assert size["student"]["image"]["flops"] > 0 and size["teacher"]["text"]["params"] > 0
    assert {"student/image/onnx-fp32", "teacher/text/torch-fp32"} <= set(size["latency_ms_p50"])
    assert "| metric | teacher | student | retention |" in (tmp_path / "eval.md").read_text()
    assert "synthetic shift" in json.dumps(report["suite"]["details"]["shift"])


def test_eval_corruption_shift_through_the_cli(run_dir, tmp_path, capsys) -> None:
    """--shift-set/--shift-images reach the suite: a seeded subset, the corruption grid and the mean per severity."""
    assert main(["eval", "--model", str(run_dir / "student"), "--suite", "shift", "--shift-set", "corruptions",
                 "--shift-images", "20", "--latency-backends", "none", "--out", str(tmp_path), "--quiet"]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    rows, details = report["suite"]["rows"], report["suite"]["details"]["shift"]
    assert details["family"] == "corruptions" and details["images"] == 20 and "shift noise top-1" not in rows
    assert {f"shift mean s{k} top-1" for k in range(1, 6)} <= set(rows) and "shift fog s5 top-1" in rows
    assert "| fog |" in (tmp_path / "eval.md").read_text()


def test_eval_bad_suite_exits_2(run_dir, capsys) -> None:
    assert main(["eval", "--model", str(run_dir / "student"), "--suite", "zero-shot,speed"]) == 2
    assert "unknown suite 'speed'" in capsys.readouterr().err


def test_missing_pairs_csv_exits_2_before_writing(teacher_file, tmp_path, capsys) -> None:
    code = main(["distill", "--recipe", "distillclip-digits", "--teacher", str(teacher_file), "--out", str(tmp_path / "run"),
                 "--pairs", str(tmp_path / "nope.csv"), *FAST])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_build_rows_per_tower_and_fused_classifier(teacher_file, tmp_path, capsys) -> None:
    out = tmp_path / "build"
    code = main(["build", "--recipe", "distillclip-quickstart", "--target", "cpu", "--out", str(out), "--quiet",
                 "--set", f"teacher={teacher_file}", *FAST, "--set", "export.backends=[onnx]", "--set", "export.precisions=[fp32]",
                 "--set", "bench.iterations=5", "--set", "bench.max_seconds=0.5", "--set", "bench.memory=false",
                 "--set", "bench.speed_reference=none"])
    report = json.loads((out / "report.json").read_text())
    rows = {(r["name"], r["backend"], r["precision"]): r for r in report["rows"]}
    assert {("test_distillclip-image", "onnx", "fp32"), ("test_distillclip-text", "onnx", "fp32"),
            ("test_distillclip-zeroshot", "onnx", "fp32"), ("tiny-teacher-zeroshot", "torch", "fp32")} <= set(rows)
    fused = rows[("test_distillclip-zeroshot", "onnx", "fp32")]
    teacher = rows[("tiny-teacher-zeroshot", "torch", "fp32")]
    assert fused["retention"] == pytest.approx(fused["accuracy"] / teacher["accuracy"])
    image, text = rows[("test_distillclip-image", "onnx", "fp32")], rows[("test_distillclip-text", "onnx", "fp32")]
    assert image["params"] != text["params"] and image["flops"] > 0 and text["flops"] > 0  # each tower's own size
    # exit 1 exactly when the report holds a failed/unverified row or a budget not met/not measured
    unfinished = [r["status"] for r in report["rows"] if r["status"].startswith(("failed", "needs_target", "skipped"))]
    unmet = [b for b in report["budget_results"] if b["passed"] is not True]
    assert report["budget_results"] and code == (1 if unfinished or unmet else 0), (code, unfinished, unmet)
    assert (out / "artifacts" / "onnx-fp32-text" / "tokenizer.json").is_file()
    text_parity = json.loads((out / "artifacts" / "onnx-fp32-text" / "manifest.json").read_text())["parity"]
    assert text_parity.get("passed") is True, text_parity  # ran on real prompt tokens (RealInputs.tokens), not skipped


def _shift_folder(root, names) -> None:
    from edgeclip.data import open_image_dataset

    digits = open_image_dataset("digits", "test")
    for label, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in [i for i, y in enumerate(digits.labels) if y == label][:2]:
            digits.load(i).save(root / name / f"{i}.png")


def test_eval_rejects_bad_shift_folder_before_any_work(run_dir, tmp_path, monkeypatch, capsys) -> None:
    from edgeclip.teacher import ClipTeacher

    _shift_folder(tmp_path / "numerals", [str(k) for k in range(10)])
    monkeypatch.setattr(ClipTeacher, "load", classmethod(lambda cls, spec: pytest.fail("the teacher loaded before the check")))
    code = main(["eval", "--model", str(run_dir / "student"), "--suite", "zero-shot,shift", "--shift-data",
                 str(tmp_path / "numerals"), "--latency-backends", "none", "--out", str(tmp_path / "e"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "shift folder" in err and "--class-map" in err and not (tmp_path / "e").exists()


def test_shift_mean_covers_built_in_shifts_only(run_dir, tmp_path, capsys) -> None:
    from edgeclip.data import DIGIT_WORDS

    _shift_folder(tmp_path / "words", list(DIGIT_WORDS))
    assert main(["eval", "--model", str(run_dir / "student"), "--suite", "shift", "--shift-data", str(tmp_path / "words"),
                 "--latency-backends", "none", "--out", str(tmp_path / "e"), "--quiet"]) == 0
    report = json.loads((tmp_path / "e" / "eval.json").read_text())
    rows, details = report["suite"]["rows"], report["suite"]["details"]["shift"]
    built_in = [n for n, d in details.items() if d["source"] == "built-in"]
    assert len(built_in) == 6 and details["folder:words"]["source"] == "user"
    for role in ("teacher", "student"):
        assert rows["shift mean top-1"][role] == pytest.approx(sum(rows[f"shift {n} top-1"][role] for n in built_in) / 6)
    assert "never averaged in" in (tmp_path / "e" / "eval.md").read_text()
