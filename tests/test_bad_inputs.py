"""The fuzz list: bad inputs to every subcommand, each refused with exit 2 and exactly one line
`edgeclip: error: ...` on stderr, no traceback, and nothing finished-looking left behind.

Cases run in-process through `edgeclip.cli.main` (fast); a few run as real processes to prove
the same holds at process exit. Placeholders `{name}` are files from `make_bad_input_world`
(tests/support/bad_inputs.py). Every case must fail before any long work (training, export,
benchmarking): the table as a whole takes seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeclip.cli import main

HOSTILE_HOST = "-oProxyCommand=touch {marker}"

# (id, argv, a fragment the one error line must contain)
CASES: list[tuple[str, list[str], str]] = [
    # ---- build
    ("build-unknown-recipe", ["build", "--recipe", "quikstart", "--target", "cpu"], "did you mean 'quickstart'"),
    ("build-unknown-target", ["build", "--target", "jetsn"], "unknown target 'jetsn'"),
    ("build-target-missing", ["build"], "required: --target"),
    ("build-target-no-value", ["build", "--target"], "expected one argument"),
    ("build-unknown-key", ["build", "--target", "cpu", "--set", "distill.epoch=2"], "did you mean 'distill.epochs'"),
    ("build-unknown-student", ["build", "--target", "cpu", "--student", "mobilenet"], "unknown student 'mobilenet'"),
    ("build-out-is-file", ["build", "--target", "cpu", "--out", "{file}"], "is an existing file"),
    ("build-out-under-file", ["build", "--target", "cpu", "--out", "{file}/run"], "is a file"),
    ("build-out-unwritable", ["build", "--target", "cpu", "--out", "/proc/edgeclip-run"], "not writable"),
    ("build-set-bad-yaml", ["build", "--target", "cpu", "--set", "distill.epochs=[1"], "not a valid YAML value"),
    ("build-set-bad-yaml-brace", ["build", "--target", "cpu", "--set", "data.train={{a"], "not a valid YAML value"),
    ("build-set-not-int", ["build", "--target", "cpu", "--set", "distill.epochs=abc"], "must be int"),
    ("build-set-float-for-int", ["build", "--target", "cpu", "--set", "seed=1.5"], "must be int"),
    ("build-set-no-equals", ["build", "--target", "cpu", "--set", "distill.epochs"], "is not key=value"),
    ("build-set-no-key", ["build", "--target", "cpu", "--set", "=5"], "is not key=value"),
    ("build-set-section-scalar", ["build", "--target", "cpu", "--set", "distill=5"], "must be a mapping"),
    ("build-set-into-scalar", ["build", "--target", "cpu", "--set", "distill.epochs.x=1"], "is not a section"),
    ("build-set-bool-for-str", ["build", "--target", "cpu", "--set", "distill.text_init=true"], "must be str"),
    ("build-set-bad-bool", ["build", "--target", "cpu", "--set", "distill.augment=maybe"], "must be bool"),
    ("build-set-list-for-dict", ["build", "--target", "cpu", "--set", "video.head_params=[1]"], "must be a mapping"),
    ("build-empty-recipe", ["build", "--recipe", "{empty}", "--target", "cpu"], "is empty"),
    ("build-comment-only-recipe", ["build", "--recipe", "{comments_only}", "--target", "cpu"], "is empty"),
    ("build-list-recipe", ["build", "--recipe", "{list}", "--target", "cpu"], "must be a YAML mapping"),
    ("build-bad-yaml-recipe", ["build", "--recipe", "{bad}", "--target", "cpu"], "not valid YAML"),
    ("build-nonutf8-recipe", ["build", "--recipe", "{nonutf8}", "--target", "cpu"], "not UTF-8"),
    ("build-missing-recipe", ["build", "--recipe", "{missing}.yaml", "--target", "cpu"], "does not exist"),
    ("build-recipe-unknown-key", ["build", "--recipe", "{unknown_key}", "--target", "cpu"], "did you mean 'distill.epochs'"),
    ("build-recipe-bad-type", ["build", "--recipe", "{bad_type}", "--target", "cpu"], "must be int"),
    ("build-remote-option-host", ["build", "--target", "cpu", "--remote=" + HOSTILE_HOST], "starts with '-'"),
    ("build-remote-empty-host", ["build", "--target", "cpu", "--remote", ""], "not a USER@HOST"),
    ("build-remote-space-host", ["build", "--target", "cpu", "--remote", "pi@host rm"], "not a USER@HOST"),
    ("build-parity-samples-0", ["build", "--target", "cpu", "--set", "export.parity_samples=0"], "parity_samples must be >= 1"),
    ("build-recipe-missing-clips", ["build", "--recipe", "{missing_clips}", "--target", "cpu"], "recipe key video.clips[0]"),
    ("build-target-list-yaml", ["build", "--target", "{list}"], "must be a YAML mapping"),
    # ---- distill
    ("distill-unknown-method", ["distill", "--method", "nosuch"], "unknown"),
    ("distill-unknown-student", ["distill", "--student", "nosuch"], "unknown student 'nosuch'"),
    ("distill-out-is-file", ["distill", "--out", "{file}"], "is an existing file"),
    ("distill-out-unwritable", ["distill", "--out", "/proc/edgeclip-run"], "not writable"),
    ("distill-text-init-choice", ["distill", "--text-init", "sometimes"], "invalid choice"),
    ("distill-shots-not-int", ["distill", "--shots", "ten"], "invalid int value"),
    ("distill-epochs-not-int", ["distill", "--epochs", "x"], "invalid int value"),
    ("distill-set-bad-yaml", ["distill", "--set", "distill.milestones=[60,"], "not a valid YAML value"),
    ("distill-empty-recipe", ["distill", "--recipe", "{empty}"], "is empty"),
    ("distill-classes-file-nonutf8", ["distill", "--method", "data-free", "--classes-file", "{nonutf8}"], "UTF-8"),
    ("distill-classes-file-missing", ["distill", "--method", "data-free", "--classes-file", "{missing}.txt"], "does not exist"),
    ("distill-classes-and-file", ["distill", "--method", "data-free", "--classes", "a,b", "--classes-file", "{classes_both}"],
     "not both"),
    ("distill-trapped-teacher", ["distill", "--teacher", "{trapped_teacher}", "--out", "{root}/distill-run"],
     "cannot be loaded safely"),
    ("distill-list-teacher-json", ["distill", "--teacher", "{list_teacher}", "--out", "{root}/distill-run"],
     "not an object"),
    ("distill-trapped-cnn-teacher", ["distill", "--teacher", "{trapped_cnn_teacher}", "--out", "{root}/distill-run"],
     "cannot be loaded safely"),
    ("distill-unknown-flag", ["distill", "--epohcs", "3"], "unrecognized arguments"),
    # ---- eval
    ("eval-no-model", ["eval"], "needs --model"),
    ("eval-missing-model", ["eval", "--model", "{missing}"], "no student checkpoint"),
    ("eval-trapped-model", ["eval", "--model", "{trapped_student}"], "cannot be loaded safely"),
    ("eval-model-without-spec", ["eval", "--model", "{nospec}"], "spec.json is missing"),
    ("eval-unknown-analysis", ["eval", "--analysis", "nosuch"], "invalid choice"),
    ("eval-capacity-gap-no-teachers", ["eval", "--analysis", "capacity-gap"], "needs teachers"),
    ("eval-capacity-gap-both", ["eval", "--analysis", "capacity-gap", "--runs", "{root}", "--teacher", "x"], "not both"),
    ("eval-out-is-file", ["eval", "--model", "{student}", "--out", "{file}"], "is an existing file"),
    ("eval-suite-on-classifier", ["eval", "--model", "{student}", "--suite", "zero-shot"], "drop --suite"),
    ("eval-gamma-not-float", ["eval", "--gamma", "high"], "invalid float value"),
    # ---- export
    ("export-missing-model", ["export", "--model", "{missing}", "--backend", "onnx"], "does not exist"),
    ("export-unknown-backend", ["export", "--model", "{student}", "--backend", "nosuch"], "unknown backend"),
    ("export-bad-precision", ["export", "--model", "{student}", "--backend", "onnx", "--precision", "int4"], "int4"),
    ("export-trapped-model", ["export", "--model", "{trapped_student}", "--backend", "onnx"], "cannot be loaded safely"),
    ("export-out-is-file", ["export", "--model", "{student}", "--backend", "onnx", "--out", "{file}"], "is an existing file"),
    ("export-out-unwritable", ["export", "--model", "{student}", "--out", "/proc/edgeclip-art"], "not writable"),
    ("export-bad-tower", ["export", "--model", "{student}", "--tower", "left"], "invalid choice"),
    ("export-opset-not-int", ["export", "--model", "{student}", "--opset", "new"], "invalid int value"),
    ("export-model-is-file", ["export", "--model", "{file}", "--backend", "onnx"], "spec.json is missing"),
    ("export-classes-nonutf8", ["export", "--model", "{dual}", "--tower", "fused", "--classes", "@{nonutf8}"], "not UTF-8"),
    ("export-classes-missing", ["export", "--model", "{dual}", "--tower", "fused", "--classes", "@{missing}"], "does not exist"),
    ("export-classes-empty", ["export", "--model", "{dual}", "--tower", "fused", "--classes", " , "], "class list"),
    ("export-model-without-spec", ["export", "--model", "{nospec}"], "spec.json is missing"),
    ("export-fused-malformed", ["export", "--model", "{student}", "--fused-preprocess", "720by1280"], "not HEIGHTxWIDTH"),
    ("export-fused-zero-side", ["export", "--model", "{student}", "--fused-preprocess", "0x1280"], "out of range"),
    ("export-fused-int8", ["export", "--model", "{student}", "--precision", "int8", "--fused-preprocess", "720x1280"],
     "int8 is not supported"),
    ("export-fused-frame-too-small", ["export", "--model", "{student}", "--fused-preprocess", "8x8"], "only shrinks frames"),
    ("export-fused-text-tower", ["export", "--model", "{dual}", "--tower", "text", "--fused-preprocess", "64x64"],
     "text encoder"),
    ("build-fused-malformed", ["build", "--target", "cpu", "--set", "export.fused_preprocess=big"], "not HEIGHTxWIDTH"),
    ("build-fused-with-int8", ["build", "--target", "cpu", "--set", "export.fused_preprocess=720x1280"],
     "cannot go with int8"),
    # ---- bench
    ("bench-no-artifact", ["bench"], "required: --artifact"),
    ("bench-missing-artifact", ["bench", "--artifact", "{missing}"], "does not exist"),
    ("bench-list-manifest", ["bench", "--artifact", "{list_manifest_artifact}"], "not a JSON object"),
    ("bench-corrupt-manifest", ["bench", "--artifact", "{corrupt_manifest_artifact}"], "is corrupt"),
    ("bench-keyless-manifest", ["bench", "--artifact", "{keyless_manifest_artifact}"], "lacks backend"),
    ("bench-pickle-npz", ["bench", "--artifact", "{tiny}", "--data", "{fake_npz}", "--no-memory"], "never unpickled"),
    ("bench-npy-as-npz", ["bench", "--artifact", "{tiny}", "--data", "{array_npz}", "--no-memory"], "not a readable .npz"),
    ("bench-npz-no-labels", ["bench", "--artifact", "{tiny}", "--data", "{nolabels_npz}", "--no-memory"], "lacks 'images' and 'labels'"),
    ("bench-npz-bad-shapes", ["bench", "--artifact", "{tiny}", "--data", "{badshape_npz}", "--no-memory"], "(N,C,H,W)"),
    ("bench-out-is-file", ["bench", "--artifact", "{tiny}", "--out", "{file}"], "is an existing file"),
    ("bench-out-unwritable", ["bench", "--artifact", "{tiny}", "--out", "/proc/edgeclip-report"], "not writable"),
    ("bench-int8-labelled-fp32", ["bench", "--artifact", "{int8_as_fp32}"], "manifest says fp32"),
    ("bench-fp32-labelled-int8", ["bench", "--artifact", "{fp32_as_int8}"], "manifest says int8"),
    ("bench-remote-option-host", ["bench", "--artifact", "{tiny}", "--remote=" + HOSTILE_HOST], "starts with '-'"),
    ("bench-iterations-0", ["bench", "--artifact", "{tiny}", "--iterations", "0"], "--iterations must be >= 1"),
    ("bench-warmup-negative", ["bench", "--artifact", "{tiny}", "--warmup", "-1"], "--warmup must be >= 0"),
    ("bench-limit-negative", ["bench", "--artifact", "{tiny}", "--limit", "-1"], "--limit must be >= 0"),
    ("bench-teacher-accuracy-2", ["bench", "--artifact", "{tiny}", "--teacher-accuracy", "2"], "fraction in (0, 1]"),
    ("bench-unknown-target", ["bench", "--artifact", "{tiny}", "--target", "jetsn"], "unknown target 'jetsn'"),
    ("bench-target-list-yaml", ["bench", "--artifact", "{tiny}", "--target", "{list}"], "must be a YAML mapping"),
    # ---- list
    ("list-unknown-kind", ["list", "nosuch"], "invalid choice"),
    ("list-extra-argument", ["list", "students", "extra"], "unrecognized arguments"),
    # ---- demo
    ("demo-unknown-page", ["demo", "nosuch"], "invalid choice"),
    ("demo-zero-shot-missing", ["demo", "zero-shot", "--model", "{missing}"], "does not exist"),
    ("demo-zero-shot-list-manifest", ["demo", "zero-shot", "--model", "{list_manifest}"], "no exported artifacts"),
    ("demo-zero-shot-killed-export", ["demo", "zero-shot", "--model", "{killed}"], "no exported artifacts"),
    ("demo-zero-shot-port", ["demo", "zero-shot", "--model", "{root}", "--port", "http"], "invalid int value"),
    ("demo-accident-missing", ["demo", "accident", "--video", "{missing}.mp4", "--model", "{missing}"], "does not exist"),
    ("demo-accident-remote-option-host", ["demo", "accident", "--video", "{missing}.mp4", "--remote=" + HOSTILE_HOST],
     "starts with '-'"),
    ("demo-accident-out-is-file", ["demo", "accident", "--video", "{missing}.mp4", "--out", "{file}"], "is an existing file"),
    # ---- compress
    ("compress-prune-missing", ["compress", "prune", "--model", "{missing}", "--ratio", "0.5"], "does not exist"),
    ("compress-prune-trapped", ["compress", "prune", "--model", "{trapped_student}", "--ratio", "0.5"], "cannot be loaded safely"),
    ("compress-prune-ratio-1.5", ["compress", "prune", "--model", "{student}", "--ratio", "1.5"], "between 0 and 1"),
    ("compress-prune-ratio-text", ["compress", "prune", "--model", "{student}", "--ratio", "half"], "invalid float value"),
    ("compress-prune-out-is-file", ["compress", "prune", "--model", "{student}", "--ratio", "0.5", "--out", "{file}"],
     "is an existing file"),
    ("compress-qat-missing", ["compress", "qat", "--model", "{missing}"], "does not exist"),
    ("compress-int8-missing", ["compress", "int8", "--model", "{missing}"], "does not exist"),
    ("compress-int8-unknown-backend", ["compress", "int8", "--model", "{student}", "--backend", "nosuch"], "unknown backend"),
    ("compress-no-action", ["compress", "squeeze"], "invalid choice"),
    # ---- video
    ("video-train-missing-clips", ["video", "train", "--clips", "{missing}.txt", "--encoder", "proxy-digits", "--out",
                                   "{root}/video-run"], "does not exist"),
    ("video-train-nonutf8-clips", ["video", "train", "--clips", "{nonutf8}", "--encoder", "proxy-digits", "--out",
                                   "{root}/video-run"], "not UTF-8"),
    ("video-train-frames-0", ["video", "train", "--clips", "{missing}", "--encoder", "x", "--frames", "0"], "must be >= 1"),
    ("video-train-head-param", ["video", "train", "--clips", "x", "--encoder", "x", "--head-param", "width"], "is not KEY=VALUE"),
    ("video-train-out-is-file", ["video", "train", "--clips", "x", "--encoder", "x", "--out", "{file}"], "is an existing file"),
    ("video-train-no-encoder", ["video", "train", "--clips", "x"], "required: --encoder"),
    ("video-export-missing", ["video", "export", "--model", "{missing}"], "has no trained temporal head"),
    ("video-unknown-action", ["video", "nosuch"], "invalid choice"),
]

FINISHED_LOOKING = {"report.json", "report.html", "report.md", "manifest.json", "result.json", "result.md", "eval.json",
                    "model.pt", "model.onnx", "capacity_gap.json", "spec.json"}


def _fill(argv: list[str], world: dict[str, str]) -> list[str]:
    return [a.format(**world) for a in argv]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case_id,argv,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(case_id, argv, fragment, bad_input_world, capsys, monkeypatch):
    root = Path(bad_input_world["root"])
    monkeypatch.chdir(root)  # a default run directory would land here, and be seen
    before = _files(root)
    try:
        code = main(_fill(argv, bad_input_world))
    except SystemExit as exc:  # argparse usage errors exit from parse_args
        code = exc.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("edgeclip: error: "), err
    assert "Traceback" not in err and fragment in lines[0], lines[0]
    new = _files(root) - before
    assert not {p for p in new if p.name in FINISHED_LOOKING}, new
    assert not [p for p in new if not any(part.startswith(".") for part in p.relative_to(root).parts)], new
    assert not Path(bad_input_world["marker"]).exists()  # nothing unpickled ran


def test_the_fuzz_list_covers_every_subcommand_with_80_cases():
    from edgeclip.cli import SUBCOMMANDS

    assert len(CASES) >= 80 and len({c[0] for c in CASES}) == len(CASES)
    assert {c[1][0] for c in CASES} == set(SUBCOMMANDS)


# A few as real processes: the exit status and stderr a shell sees, with no traceback at exit.
PROCESS_CASES = ["build-out-is-file", "build-set-bad-yaml", "bench-pickle-npz", "export-classes-nonutf8",
                 "demo-zero-shot-list-manifest", "build-target-no-value"]


@pytest.mark.parametrize("case_id", PROCESS_CASES)
def test_bad_input_in_a_real_process(case_id, bad_input_world):
    _, argv, fragment = next(c for c in CASES if c[0] == case_id)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run([sys.executable, "-m", "edgeclip", *_fill(argv, bad_input_world)], capture_output=True,
                            text=True, timeout=300, cwd=bad_input_world["root"], env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


# ---- the rows that are about reading input right, not refusing it

@pytest.mark.parametrize("word", ["off", "no", "on", "yes", "Off"])
def test_yaml_words_stay_strings_for_string_keys(word, tmp_path):
    from edgeclip.config import load_recipe

    recipe = load_recipe("distillclip-digits", [f"distill.text_init={word}", f"distill.ddp_backend={word}"])
    assert recipe.distill.text_init == word and recipe.distill.ddp_backend == word
    path = tmp_path / "r.yaml"
    path.write_text(f"distill:\n  text_init: {word}\n  augment: {word}\n")
    recipe = load_recipe(str(path))
    assert recipe.distill.text_init == word  # the recipe file reads the same way as --set
    assert recipe.distill.augment is (word.lower() in ("on", "yes"))  # bool keys still take yes/no/on/off


def test_distill_text_init_off_as_the_readme_documents():
    import argparse

    from edgeclip.cli import build_parser
    from edgeclip.commands.distill_cmd import distill_recipe

    args = build_parser().parse_args(["distill", "--recipe", "distillclip-digits", "--text-init", "off"])
    assert isinstance(args, argparse.Namespace) and distill_recipe(args).distill.text_init == "off"


def test_export_tower_all_needs_no_backend():
    from edgeclip.cli import build_parser

    args = build_parser().parse_args(["export", "--model", "runs/x/student", "--tower", "all"])
    assert args.backend == "onnx" and args.precision == "fp32"


def test_ssh_gets_the_host_after_double_dash():
    from edgeclip.bench.remote import SshTransport
    from edgeclip.errors import UserError

    transport = SshTransport.for_host("pi@rpi5")
    assert transport.ssh[-2:] == ("--", "pi@rpi5") and transport.copy[-1] == "--"
    with pytest.raises(UserError, match="starts with '-'"):
        SshTransport.for_host("-oProxyCommand=touch /tmp/x")


def test_output_check_leaves_nothing_behind(tmp_path):
    from edgeclip.io_utils import check_output_dir

    assert check_output_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    check_output_dir(tmp_path, replaced=True)
    assert list(tmp_path.iterdir()) == []  # the probe file is gone and nothing was created


def test_every_torch_load_goes_through_the_safe_loader():
    root = Path(__file__).resolve().parent.parent / "edgeclip"
    callers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "torch.load(" in p.read_text()
                     and p.name != "io_utils.py" and "torch.load(" in "".join(
                         line for line in p.read_text().splitlines() if not line.lstrip().startswith(("#", "`"))))
    assert callers == []


@pytest.mark.parametrize("kind", ["clip_finetuned", "cnn_ce"])
def test_a_trapped_saved_teacher_is_one_line_without_running_it(kind, tmp_path):
    """teacher/finetuned.py and teacher/cnn.py loaded head.pt / model.pt with torch.load directly: a
    booby-trapped file was refused by a 33-line traceback advising weights_only=False."""
    import torch

    from edgeclip.errors import UserError
    from edgeclip.teacher.cnn import CnnTeacher
    from edgeclip.teacher.finetuned import FinetunedClipTeacher
    from support.bad_inputs import Trap

    marker = tmp_path / "pwned"
    directory = tmp_path / "teacher"
    directory.mkdir()
    if kind == "cnn_ce":
        meta = {"kind": "cnn_ce", "arch": "resnet10", "width": 0.25, "class_names": ["a", "b"],
                "preprocess": {"size": 16}}
        weights, load = directory / "model.pt", lambda: CnnTeacher.load(directory)
    else:
        meta = {"kind": "clip_finetuned", "clip": "tiny", "head_input": "similarity", "hidden": 8, "dropout": 0.0,
                "class_names": ["a", "b"]}
        weights, load = directory / "head.pt", lambda: FinetunedClipTeacher.load(directory, clip=object())
    (directory / "teacher.json").write_text(__import__("json").dumps(meta))
    torch.save({"payload": Trap(str(marker))}, weights)
    with pytest.raises(UserError) as info:
        load()
    message = str(info.value)
    assert "cannot be loaded safely" in message and str(weights) in message and "weights_only" not in message
    assert "\n" not in message and not marker.exists()


def test_recipe_paths_resolve_from_the_recipe_folder(tmp_path, monkeypatch):
    """`edgeclip build --recipe /somewhere/r.yaml` from another directory finds the recipe's relative
    clip lists beside the recipe; $EDGECLIP_ROOT is the documented root for shipped recipes."""
    from edgeclip.build.accident import resolve_clips
    from edgeclip.config import load_recipe

    folder = tmp_path / "project"
    (folder / "lists").mkdir(parents=True)
    (folder / "lists" / "clips.txt").write_text("# empty on purpose\n")
    (folder / "r.yaml").write_text("video:\n  clips: [lists/clips.txt]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recipe = load_recipe(str(folder / "r.yaml"))
    assert resolve_clips(recipe.video.clips, recipe) == [str(folder / "lists" / "clips.txt")]
    shipped = load_recipe("accident-proxy")
    assert shipped.source_dir == ""  # shipped recipes resolve from the checkout (or $EDGECLIP_ROOT)
    monkeypatch.setenv("EDGECLIP_ROOT", str(folder))
    assert resolve_clips(["lists/clips.txt"], shipped) == [str(folder / "lists" / "clips.txt")]


@pytest.mark.parametrize("claimed,xml,problem", [
    ("fp32", '<layer id="3" type="FakeQuantize" version="opset1">', "manifest says fp32"),
    ("int8", '<layer id="3" type="Convolution"><data element_type="f16"/>', "manifest says int8"),
    ("fp32", '<layer id="3" type="Const"><data element_type="f16"/>', None),  # OpenVINO's default weight compression
    ("int8", '<layer id="3" type="Const"><data element_type="i8"/>', None),
])
def test_openvino_model_precision_evidence(claimed, xml, problem, tmp_path):
    from edgeclip.bench.model_precision import model_precision_problem

    (tmp_path / "model.xml").write_text(f"<net>{xml}</net>")
    found = model_precision_problem(tmp_path, {"backend": "openvino", "precision": claimed, "model_file": "model.xml"})
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize("argv", [["build", "--target", "cpu"], ["distill"]])
def test_a_default_run_directory_in_an_unwritable_cwd_fails_before_training(argv, capsys, monkeypatch):
    monkeypatch.chdir("/proc")  # runs/<id> would be created here: root cannot write to /proc either
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "run directory" in err[0] and "not writable" in err[0], err
