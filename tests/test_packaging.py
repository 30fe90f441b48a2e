"""edgeclip as users install it: a wheel (not the editable checkout) still finds its target
profiles, runner and kits; the device runner runs on the oldest Python devices ship (JetPack 5: 3.8)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)


def test_a_wheel_install_lists_targets_and_ships_the_runner(tmp_path):
    built = _run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist")])
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("edgeclip-*.whl"))
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)]).returncode == 0
    python = venv / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # Install the wheel alone (no network: --no-deps); its dependencies come from this test's environment,
    # which is visible through PYTHONPATH but holds no edgeclip of its own (editable finders need site.py).
    installed = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", site, str(wheel)])
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    where = _run([str(python), "-c", "import edgeclip, edgeclip.paths as p; print(edgeclip.__file__); print(p.runner_path())"],
                 cwd=tmp_path, env=env)
    module_file, runner = where.stdout.split()
    assert module_file.startswith(site) and runner.startswith(site), where.stdout + where.stderr
    listed = _run([str(python), "-m", "edgeclip", "list", "targets"], cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert all(name in listed.stdout for name in ("cpu", "jetson-orin-nano", "raspberry-pi-5", "intel-cpu", "apple"))
    kit = _run([str(python), "-c", "from edgeclip.paths import kit_dir; print(sorted(p.name for p in kit_dir('tensorrt').iterdir()))"],
               cwd=tmp_path, env=env)
    assert "build_engine.sh" in kit.stdout and "check_engine.py" in kit.stdout and "onnx_support.json" in kit.stdout
    demo = Path(site) / "edgeclip" / "demo"  # the demo pages and their example digits travel as package data
    assert {"zero_shot.html", "zero_shot.js", "accident.html", "accident.js", "demo.css"} <= {p.name for p in (demo / "static").iterdir()}
    assert len(list((demo / "examples").glob("digit-*.png"))) == 5
    device = tmp_path / "device"  # the runner ships with its sibling files (runtime layer, zero-shot helpers)
    device.mkdir()
    for sibling in Path(runner).parent.glob("*.py"):
        shutil.copy(sibling, device / sibling.name)
    assert _run([sys.executable, str(device / "edgeclip_runner.py"), "--help"]).returncode == 0
    # the accident demo package carries the same runtime layer (a link in the repository, files in the wheel)
    demo_runtime = Path(site) / "edgeclip" / "video" / "accident_demo" / "runtime"
    assert (demo_runtime / "artifact_runtime.py").read_text() == (device / "artifact_runtime.py").read_text()


def _python38() -> Path | None:
    for candidate in sorted(Path.home().glob(".pyenv/versions/3.8*/bin/python")):
        return candidate
    return None


def test_the_device_runner_runs_on_python_38(tmp_path):
    from support import write_fake_trtexec

    from edgeclip.exporters.export import export_model
    from edgeclip.exporters.testing import structured_images, tiny_cnn_spec, trained_tiny_cnn
    from edgeclip.paths import runner_path

    python38 = _python38()
    if python38 is None:
        pytest.skip("no Python 3.8 interpreter here (pyenv 3.8)")
    venv = tmp_path / "py38"
    if _run([str(python38), "-m", "venv", str(venv)]).returncode != 0:
        pytest.skip("could not create a Python 3.8 venv")
    device_python = str(venv / "bin" / "python")
    setup = _run([device_python, "-m", "pip", "install", "-q", "numpy", "onnxruntime"])
    if setup.returncode != 0:
        pytest.skip(f"numpy + onnxruntime for Python 3.8 could not be installed here: {setup.stderr.strip()[-200:]}")
    model, spec = trained_tiny_cnn(), tiny_cnn_spec()
    images, labels = structured_images(24, seed=3)
    onnx = export_model(model, spec, "onnx", "fp32", tmp_path / "onnx-fp32", parity_inputs=images).path
    trt = export_model(model, spec, "tensorrt", "fp32", tmp_path / "tensorrt-fp32", calibration=images, parity_inputs=images).path
    fake = write_fake_trtexec(tmp_path / "bin", python=device_python)
    env = {"PATH": f"{fake}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path)}  # the "device": no torch, no edgeclip
    built = _run(["bash", str(trt / "build_engine.sh"), str(trt)], env={**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}"})
    assert built.returncode == 0, built.stdout[-1000:] + built.stderr[-1000:]  # check_engine.py ran on Python 3.8 too
    import numpy as np

    np.savez(tmp_path / "eval.npz", images=images, labels=labels)
    result = _run([device_python, str(runner_path()), str(onnx), str(trt), "--data", str(tmp_path / "eval.npz"),
                   "--warmup", "1", "--iterations", "3", "--environment"], env=env)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0 and lines[0]["environment"]["python"].startswith("3.8"), result.stderr[-1000:]
    rows, roof = [line for line in lines[1:] if "roof" not in line], [line["roof"] for line in lines if "roof" in line]
    assert len(rows) == 2 and len(roof) == 1 and roof[0]["fp32"] > 0, lines  # the device's GEMM roof, last
    for row in rows:
        assert row["status"] == "ok" and row["accuracy"] > 0.9, row
