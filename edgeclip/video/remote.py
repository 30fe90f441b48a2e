"""`edgeclip demo accident --remote user@host`: the same device demo, run on the device over SSH.

Copies the `accident_demo` package, the model directory's deployable part (accident_model.json + the
chosen encoder and head artifacts) and the video (or frame folder) with scp, runs the runner
there with python3, copies `alerts.json` and the annotated MP4 back, and removes its work
directory. Transport and error handling are `edgeclip.bench.remote`'s (BatchMode ssh, timeouts,
one-line errors), injectable for tests.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

from edgeclip.bench.remote import KIT_SCRIPT, SshTransport
from edgeclip.bench.remote import _check as check_step
from edgeclip.bench.remote import _run as run_step
from edgeclip.errors import UserError
from edgeclip.video import accident_demo as device
from edgeclip.video.io import user_errors

PACKAGE_PATH = Path(device.__file__).parent  # copied whole; run as `python3 -m accident_demo`


def stage_model(model_dir: Path, backend: str, precision: str | None, into: Path) -> Path:
    """Copy only what the device needs: accident_model.json and the two artifacts for `backend`."""
    with user_errors():
        config = device.read_model_dir(str(model_dir))
        parts = [device.find_artifact(str(model_dir), config, part, backend, precision) for part in ("encoder", "head")]
    staged = into / "model"
    (staged / "artifacts").mkdir(parents=True)
    shutil.copy2(model_dir / device.MODEL_FILE, staged / device.MODEL_FILE)
    for part in parts:
        shutil.copytree(part, staged / "artifacts" / Path(part).name)
    return staged


def demo_remote(host: str, model_dir: str | Path, *, video: str | None = None, frames: str | None = None,
                backend: str = "onnx", precision: str | None = None, out_dir: str | Path = "accident-demo",
                runner_args: Sequence[str] = (), python: str = "python3", remote_dir: str = "/tmp/edgeclip-accident",
                transport: SshTransport | None = None, timeout: float = 1800.0) -> dict[str, Any]:
    """Run the device demo on `host`; returns its summary (alerts, latency, FPS) with local output paths."""
    transport = transport or SshTransport.for_host(host)
    source = Path(video or frames or "")
    if bool(video) == bool(frames):
        raise UserError("pass exactly one of --video FILE or --frames DIR")
    if not source.exists():
        raise UserError(f"{'video' if video else 'frame folder'} {source} does not exist; check the path")
    out_dir = Path(out_dir)
    quoted = shlex.quote(remote_dir)
    with tempfile.TemporaryDirectory(prefix="edgeclip-remote-demo-") as work:
        staged = stage_model(Path(model_dir), backend, precision, Path(work))
        check_step(run_step([*transport.ssh, f"rm -rf {quoted} && mkdir -p {quoted}"], transport, "create the work dir", 60),
                   transport, "create the work dir")
        try:
            result = _stage_and_run(transport, remote_dir, Path(work), staged, source, host, timeout, [
                python, "-m", "accident_demo", "--model", "model", "--video" if video else "--frames", source.name,
                "--backend", backend, "--out", "out", "--json", *(["--precision", precision] if precision else []),
                *runner_args])
            fetched = Path(work) / "out"
            check_step(run_step([*transport.copy, f"{transport.dest_prefix}{remote_dir}/out", str(fetched)], transport,
                                "copy the results back", timeout), transport, "copy the results back")
        finally:
            run_step([*transport.ssh, f"rm -rf {quoted}"], transport, "remove the work dir", 60)
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in fetched.iterdir():
            shutil.move(str(item), out_dir / item.name)
    summary = _parse_summary(result.stdout, host)
    summary["annotated_video"] = str(out_dir / "annotated.mp4") if summary.get("annotated_video") else None
    summary["measured_on"] = host
    return summary


def _stage_and_run(transport: SshTransport, remote_dir: str, work: Path, staged: Path, source: Path, host: str,
                   timeout: float, args: list[str]) -> Any:
    """Copy the demo package, the model and the video; build TensorRT engines there; run the demo."""
    runner = work / "accident_demo"  # a clean copy: no __pycache__ from this machine
    shutil.copytree(PACKAGE_PATH, runner, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for local, what in ((runner, "the demo"), (staged, "the model"), (source, "the video")):
        check_step(run_step([*transport.copy, str(local), f"{transport.dest_prefix}{remote_dir}/{local.name}"],
                            transport, f"copy {what}", timeout), transport, f"copy {what}")
    for artifact in sorted((staged / "artifacts").iterdir()):
        build_engine_there(transport, remote_dir, artifact, host, timeout)
    command = f"cd {shlex.quote(remote_dir)} && " + " ".join(shlex.quote(a) for a in args)
    result = run_step([*transport.ssh, command], transport, "run the demo", timeout)
    if result.returncode == 127:
        raise UserError(f"'{args[0]}' was not found on {host}; install Python 3 with numpy, Pillow, PyAV and "
                        "onnxruntime/openvino there, or pass --remote-python")
    if result.returncode == 2:  # the runner's own one-line input error
        line = (result.stderr.strip().splitlines() or ["bad input"])[-1]
        raise UserError(f"on {host}: {line.removeprefix('accident_demo: error: ')}")
    check_step(result, transport, "run the demo")
    return result


def build_engine_there(transport: SshTransport, remote_dir: str, artifact: Path, host: str, timeout: float) -> None:
    """A TensorRT artifact is an ONNX + build kit: build and check its engine on the device first."""
    manifest = json.loads((artifact / "manifest.json").read_text())
    if manifest.get("status") != "needs_target_build" or not (artifact / KIT_SCRIPT).is_file():
        return
    relative = shlex.quote(f"model/artifacts/{artifact.name}")
    result = run_step([*transport.ssh, f"cd {shlex.quote(remote_dir)} && bash {relative}/{KIT_SCRIPT} {relative}"],
                      transport, f"build the engine of {artifact.name}", timeout)
    last = ((result.stdout + result.stderr).strip().splitlines() or [""])[-1]
    if result.returncode == 1:
        raise UserError(f"the TensorRT engine of {artifact.name} built on {host} failed its parity check ({last}); "
                        "see build.log there, or use --backend onnx")
    if result.returncode != 0:
        raise UserError(f"building the TensorRT engine of {artifact.name} on {host} failed: {last}")


def _parse_summary(stdout: str, host: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    raise UserError(f"the demo on {host} printed no summary; run `python3 -m accident_demo --help` there to check it")
