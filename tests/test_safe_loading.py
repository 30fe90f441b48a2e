"""No file edgeclip opens can run code: checkpoints, resume states and caches load with
weights_only=True, and a booby-trapped pickle is one clear error (exit 2) with no side effect."""

from __future__ import annotations

import os

import torch

from edgeclip.cli import main


class _Trap:
    """Unpickling this calls os.system — exactly what an untrusted checkpoint could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _trapped_checkpoint(path, marker) -> None:
    torch.save({"format": "edgeclip-teacher-v1", "state_dict": {}, "payload": _Trap(str(marker))}, path)


def test_a_trapped_teacher_checkpoint_is_refused_without_running_it(tmp_path, capsys):
    evil, marker = tmp_path / "teacher.pt", tmp_path / "pwned"
    _trapped_checkpoint(evil, marker)
    code = main(["distill", "--recipe", "quickstart", "--teacher", str(evil), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot be loaded safely" in err[0] and str(evil) in err[0]
    assert not marker.exists()


def test_a_trapped_resume_state_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    (run / "checkpoints" / "student").mkdir(parents=True)
    _trapped_checkpoint(run / "checkpoints" / "student" / "last.pt", marker)
    code = main(["distill", "--recipe", "quickstart", "--teacher", "cnn:resnet10@0.25", "--student", "test_resnet",
                 "--set", "distill.teacher_epochs=1", "--set", "distill.epochs=2", "--set", "student.image_size=16",
                 "--shots", "5", "--out", str(run), "--resume", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "resume checkpoint" in err[-1] and "cannot be loaded safely" in err[-1]
    assert not marker.exists()


def test_no_weights_only_false_anywhere():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    offenders = [str(p) for folder in ("edgeclip", "devices", "benchmarks") for p in (root / folder).rglob("*.py")
                 if "weights_only=False" in p.read_text()]
    assert offenders == []
