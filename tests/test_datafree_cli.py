"""`edgeclip distill --method data-free`: end to end on tiny settings (run directory, resume,
report), the proxy digits teacher (slow), and every bad input as one line, exit 2, nothing written."""

from __future__ import annotations

import pytest

SHAPES = ["red circle", "green square", "blue triangle", "yellow cross", "magenta stripes"]


def _cli(argv: list[str], monkeypatch) -> int:
    import edgeclip.cli as cli

    monkeypatch.setattr(cli, "SUBCOMMANDS", ["distill"])
    return cli.main(argv)


def _tiny(teacher: str, *extra: str) -> list[str]:
    settings = {
        "student.name": "test_resnet", "student.image_size": 16, "data.train": "synthetic:4", "data.test": "synthetic:4",
        "data.templates": "plain", "datafree.images_per_class": 3, "datafree.steps": 2, "datafree.batch_size": 2,
        "datafree.views": 1, "datafree.contrastive_epochs": 2, "datafree.contrastive_batch": 8, "datafree.generator": "pixel",
        "datafree.generator_params": "{}", "datafree.style_template": "'{} in the style of {}'", "datafree.template": "'a {}'",
        "distill.epochs": 2, "distill.batch_size": 4, "distill.milestones": "[]", "datafree.warmup_epochs": 1,
        "datafree.shifts": "[inversion]", "datafree.fewshot_shots": "[1]", "datafree.fewshot_seeds": 2, "datafree.fewshot_steps": 2,
        "datafree.fewshot_batch_size": 4,
    }
    argv = ["distill", "--method", "data-free", "--teacher", teacher, "--classes", ",".join(SHAPES), "--quiet"]
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    return argv + list(extra)


def test_cli_datafree_end_to_end_then_resume(tmp_path, tiny_teacher_file, monkeypatch, capsys) -> None:
    from edgeclip.io_utils import read_json
    from edgeclip.students.checkpoint import load_checkpoint

    out = tmp_path / "run"
    assert _cli(_tiny(tiny_teacher_file, "--prompt", "contrastive", "--scratch", "--out", str(out)), monkeypatch) == 0
    printed = capsys.readouterr().out
    assert "Data-free distillation" in printed and "Few-shot" in printed
    result = read_json(out / "result.json")
    assert result["method"] == "data-free" and result["classes"] == SHAPES
    assert result["synthesis"]["images_total"] == 15 and result["synthesis"]["method"] == "contrastive"
    assert result["training"]["warmup"]["epochs"] == 1 and result["training"]["finetune"]["epochs"] == 2
    m = result["metrics"]
    assert 0 <= m["student_accuracy"] <= 1 and m["teacher_accuracy"] is not None and "scratch_accuracy" in m
    assert set(m["shifts"]) == {"inversion"} and len(result["fewshot"]["rows"]) == 2
    synthetic = out / "synthetic" / "contrastive"
    data = read_json(synthetic / "synthetic.json")
    assert len(data["images"]) == 15 and all("v_seed" in r and r["prompt"].endswith("in the style of sks") for r in data["images"])
    assert (synthetic / "contact_sheet.png").is_file() and len(list((synthetic / "contact_sheets").glob("*.png"))) == 5
    from edgeclip.data import open_image_dataset

    folder = open_image_dataset(str(synthetic / "images"), "all")  # a plain image folder anyone can read
    assert len(folder) == 15 and folder.class_names == [f"{i:03d}-{n.replace(' ', '-')}" for i, n in enumerate(SHAPES)]
    for path in ("student/model.pt", "student/spec.json", "teacher/teacher.json", "result.md",
                 "checkpoints/warmup/last.pt", "checkpoints/finetune/last.pt", "checkpoints/scratch-finetune/last.pt"):
        assert (out / path).is_file(), path
    model, spec, info = load_checkpoint(out / "student")
    assert spec.class_names == SHAPES and info["extra"]["prompt"] == "contrastive"

    # --resume: nothing is synthesized or trained again, and the numbers are the same.
    image = synthetic / "images" / "000-red-circle" / "00000.png"
    stamp = image.stat().st_mtime_ns
    assert _cli(_tiny(tiny_teacher_file, "--prompt", "contrastive", "--scratch", "--out", str(out), "--resume"), monkeypatch) == 0
    again = read_json(out / "result.json")
    assert image.stat().st_mtime_ns == stamp
    assert again["metrics"]["student_accuracy"] == m["student_accuracy"]
    assert again["fewshot"]["rows"] == result["fewshot"]["rows"]


@pytest.mark.parametrize("prompt", ["plain", "mix", "random"])
def test_cli_datafree_every_prompt_method_runs(tmp_path, tiny_teacher_file, monkeypatch, prompt: str) -> None:
    from edgeclip.io_utils import read_json

    out = tmp_path / prompt
    extra = ["--set", "datafree.fewshot_shots=[]", "--set", "datafree.shifts=[]", "--set", "datafree.warmup_epochs=0"]
    assert _cli(_tiny(tiny_teacher_file, "--prompt", prompt, "--out", str(out), *extra), monkeypatch) == 0
    rows = read_json(out / "synthetic" / prompt / "synthetic.json")["images"]
    key = {"plain": "prompt", "mix": "lambda", "random": "v_seed"}[prompt]
    assert len(rows) == 15 and all(key in r for r in rows)


def test_cli_datafree_classes_file_end_to_end(tmp_path, tiny_teacher_file, monkeypatch) -> None:
    from edgeclip.io_utils import read_json

    classes = tmp_path / "classes.txt"
    classes.write_text("# five shapes\n" + "\n".join(SHAPES) + "\n")
    argv = _tiny(tiny_teacher_file, "--prompt", "plain", "--out", str(tmp_path / "run"), "--set", "datafree.fewshot_shots=[]",
                 "--set", "datafree.shifts=[]", "--set", "datafree.warmup_epochs=0")
    i = argv.index("--classes")
    argv[i:i + 2] = ["--classes-file", str(classes)]
    assert _cli(argv, monkeypatch) == 0
    result = read_json(tmp_path / "run" / "result.json")
    assert result["classes"] == SHAPES and result["recipe"]["datafree"]["classes_file"] == str(classes)
    rows = read_json(tmp_path / "run" / "synthetic" / "plain" / "synthetic.json")["images"]
    assert [r["class"] for r in rows[::3]] == SHAPES and rows[0]["prompt"] == "a red circle"


@pytest.mark.parametrize("change,message", [
    (["--classes", ""], "no class names"),
    (["--classes", "cat,dog,cat"], "duplicates ['cat']"),
    (["--classes", "cat,,dog"], "class name 2 of 3 is empty"),
    (["--classes", "cat"], "at least 2 classes"),
    (["--classes-file", "/nonexistent/classes.txt"], "classes file '/nonexistent/classes.txt' does not exist"),
    (["--teacher", "cnn:resnet18"], "without a text tower"),
    (["--generator", "vqgan"], "unknown image generator 'vqgan'"),
    (["--set", "datafree.steps=0"], "datafree.steps must be >= 1"),
    (["--prompt", "mixed"], "unknown prompt method 'mixed'; did you mean 'mix'"),
    (["--set", "datafree.generator_params={blocks: 2}"], "has no option ['blocks']"),
])
def test_cli_datafree_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, tiny_teacher_file, monkeypatch, capsys,
                                                                      change: list[str], message: str) -> None:
    argv = _tiny(tiny_teacher_file, "--out", str(tmp_path / "run"))
    if change[0] in ("--classes", "--teacher"):
        i = argv.index(change[0])
        argv[i + 1] = change[1]
        change = []
    if change and change[0] == "--classes-file":
        i = argv.index("--classes")
        del argv[i:i + 2]
    code = _cli(argv + change, monkeypatch)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("edgeclip: error: ") and message in lines[0], err
    assert not (tmp_path / "run").exists()


def test_cli_datafree_style_file_that_does_not_parse(tmp_path, tiny_teacher_file, monkeypatch, capsys) -> None:
    bad = tmp_path / "styles.yaml"
    bad.write_text("styles: [oil, 'watercolour\n")
    code = _cli(_tiny(tiny_teacher_file, "--prompt", "mix", "--styles", str(bad), "--out", str(tmp_path / "run")), monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is not valid YAML" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_classes_file_and_list_parsing(tmp_path) -> None:
    from edgeclip.distill.datafree.classes import parse_class_list, read_classes_file, resolve_class_names
    from edgeclip.errors import UserError

    assert parse_class_list(" zero, one ,two") == ["zero", "one", "two"] and parse_class_list("  ") == []
    path = tmp_path / "classes.txt"
    path.write_text("# digits\nzero\n\n one \ntwo\n")
    assert read_classes_file(path) == ["zero", "one", "two"]
    assert resolve_class_names([], str(path)) == ["zero", "one", "two"]
    with pytest.raises(UserError, match="not both"):
        resolve_class_names(["a", "b"], str(path))
    with pytest.raises(UserError, match="is a folder"):
        read_classes_file(tmp_path)


@pytest.mark.slow
def test_datafree_digits_student_learns_from_class_names_alone(proxy_teacher, tmp_path) -> None:
    """The real thing, scaled down: proxy CLIP + ten names → a student that reads real digits."""
    from edgeclip.config import load_recipe
    from edgeclip.distill.datafree.trainer import distill_datafree

    recipe = load_recipe("digits-datafree", ["datafree.images_per_class=20", "datafree.batch_size=20", "datafree.steps=60",
                                             "distill.epochs=60", "distill.batch_size=32", "distill.milestones=[36,54]",
                                             "datafree.shifts=[]"])
    result = distill_datafree(recipe, teacher=proxy_teacher, out_dir=tmp_path / "run", progress=False)
    m = result.metrics
    assert m["teacher_accuracy"] > 0.9
    # Chance is 10%: a student that never saw a real digit recognises many of them.
    assert m["student_accuracy"] > 0.3, m


def test_recipes_carry_the_paper_defaults_and_the_method_picks_its_recipe() -> None:
    import argparse

    from edgeclip.commands.distill_cmd import distill_recipe as recipe_from_args
    from edgeclip.config import load_recipe

    paper = load_recipe("datafree-paper")
    d, k = paper.datafree, paper.distill
    assert (d.prompt, d.lr, d.steps, d.batch_size, d.image_size, d.images_per_class) == ("contrastive", 0.15, 500, 8, 224, 3000)
    assert (d.contrastive_lr, d.contrastive_epochs, d.contrastive_batch, d.contrastive_bank) == (0.1, 100, 256, 2048)
    assert (d.mix_alpha, d.random_scale, d.warmup_epochs, d.finetune_lr_factor, d.online_teacher) == (1.0, 10.0, 150, 0.1, False)
    assert (k.method, k.epochs, k.lr, k.momentum, [t.name for t in k.loss]) == ("data-free", 150, 0.1, 0.9, ["l1"])
    args = argparse.Namespace(recipe=None, overrides=[], method="data-free", classes="a, b", classes_file=None, prompt="mix",
                              generator=None, styles=None)
    recipe = recipe_from_args(args)
    assert recipe.name == "digits-datafree" and recipe.datafree.classes == ["a", "b"] and recipe.datafree.prompt == "mix"
    args.method, args.classes, args.prompt = None, None, None
    assert recipe_from_args(args).name == "quickstart"


def test_list_generators(capsys) -> None:
    from edgeclip.cli import main

    assert main(["list", "generators"]) == 0
    out = capsys.readouterr().out
    assert "pixel" in out and "fourier" in out
