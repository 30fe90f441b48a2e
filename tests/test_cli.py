"""The CLI: every subcommand has --help with examples; list works; bad input exits 2 in one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edgeclip.cli import SUBCOMMANDS, main


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    """The installed console script in a subprocess: what a user sees, exit code included."""
    return subprocess.run([sys.executable, "-m", "edgeclip.cli", *argv], capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"}, timeout=600)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help_with_examples(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"edgeclip {command}" in out


def test_top_level_help_lists_subcommands(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in SUBCOMMANDS:
        assert command in out


def test_list_students_shows_param_counts(capsys) -> None:
    assert main(["list", "students"]) == 0
    out = capsys.readouterr().out
    for name in ("mobilenetv3_small", "mobilenetv3_large", "resnet18_w8", "distillclip_vit_s16", "distillclip_mobilenetv3"):
        assert name in out
    line = next(l for l in out.splitlines() if l.startswith("resnet18 "))
    assert "11.18M" in line  # torchvision-equivalent ResNet18 with 10 classes


@pytest.mark.parametrize("kind,expected", [
    ("recipes", "quickstart"), ("targets", "jetson-orin-nano"), ("backends", "openvino"),
    ("teachers", "proxy-digits"), ("datasets", "digits"), ("heads", "evl"),
])
def test_list_kinds(kind: str, expected: str, capsys) -> None:
    assert main(["list", kind]) == 0
    assert expected in capsys.readouterr().out


def test_demo_without_a_model_says_so_in_one_line(tmp_path) -> None:
    result = run_cli("demo", "accident", "--video", str(tmp_path / "drive.mp4"), "--model", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "nowhere does not exist" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


@pytest.mark.parametrize("argv,message", [
    (["build", "--recipe", "quikstart", "--target", "cpu"], "unknown recipe 'quikstart'; did you mean 'quickstart'"),
    (["build", "--recipe", "quickstart", "--target", "jetsn"], "unknown target 'jetsn'"),
    (["build", "--recipe", "quickstart", "--target", "cpu", "--set", "distill.epoch=2"], "did you mean 'distill.epochs'"),
    (["build", "--recipe", "quickstart", "--target", "cpu", "--student", "mobilenet"], "unknown student 'mobilenet'"),
])
def test_bad_input_is_one_line_exit_2(argv: list[str], message: str, tmp_path) -> None:
    result = run_cli(*argv, "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgeclip: error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "run" / "report.json").exists()


@pytest.mark.parametrize("preset,expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_cli_sets_passive_omp_waiting_unless_the_user_chose(preset, expected) -> None:
    """Busy-waiting OpenMP threads collapse training on shared cores (benchmarks/results/threading.md):
    the CLI sets OMP_WAIT_POLICY=PASSIVE before torch loads, and keeps a value the user set."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    code = "import os, edgeclip.cli; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    assert out.strip() == expected
