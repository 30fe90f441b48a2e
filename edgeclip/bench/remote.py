"""Finish and benchmark artifacts on a device over SSH: the one path `edgeclip bench --remote` and
`edgeclip build --remote` share.

On the device: artifacts whose final form must be built there (TensorRT engines) are built with
their kit (`build_engine.sh`, which also checks the engine against the shipped PyTorch outputs),
then the standalone runner measures every artifact, times each student again at the speed
reference's input size (`--equal-size`) and measures the device's GEMM roof (`--no-roof` skips it).
Updated manifests (engine parity) are copied back into the local artifact directories, so the run
directory records what the device found.

Only `ssh` and `scp` on this machine and `python3` + numpy + the runtime on the device are needed.
SSH runs with BatchMode=yes (never hangs on a password prompt) and a ConnectTimeout. The transport
is injectable so the flow can be tested without an SSH server.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from edgeclip.bench.equal_resolution import reference_size
from edgeclip.bench.report import ReportRow
from edgeclip.bench.roof import apply_roof
from edgeclip.errors import UserError
from edgeclip.paths import runner_files

SSH_UNREACHABLE = 255  # ssh's own exit status for connection/authentication failures
KIT_SCRIPT = "build_engine.sh"
KIT_BUILD_FAILED = 3  # build_engine.sh: trtexec could not build the engine (1 = engine parity failed)
ENGINE_BUILD_FAILED = "failed: engine build"  # status prefix of such rows
EXIT_NO_ENGINE = 3  # `edgeclip build/bench`: a TensorRT engine could not be built (1 stays parity/budget failures)


def no_engine(status: str) -> bool:
    """A row whose TensorRT engine cannot exist: trtexec failed on the device, or the kit's TensorRT
    would refuse its ONNX (the compatibility check at export: "failed: TensorRT 8.5 would refuse ...")."""
    return status.startswith(ENGINE_BUILD_FAILED) or (status.startswith("failed: TensorRT ") and "would refuse" in status)


@dataclass(frozen=True)
class SshTransport:
    """How to reach the device: `ssh + [remote shell command]`, `copy + sources + [dest_prefix + path]`."""

    host: str
    ssh: tuple[str, ...]
    copy: tuple[str, ...]
    dest_prefix: str

    @classmethod
    def for_host(cls, host: str, *, connect_timeout: int = 10, port: int | None = None) -> "SshTransport":
        check_remote_host(host)
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}"]
        # `--` ends the options: neither the host nor a copied path can be read as an ssh/scp option.
        ssh = ["ssh", *options, *(["-p", str(port)] if port else []), "--", host]
        copy = ["scp", "-q", "-r", *options, *(["-P", str(port)] if port else []), "--"]
        return cls(host=host, ssh=tuple(ssh), copy=tuple(copy), dest_prefix=f"{host}:")


def check_remote_host(host: str) -> str:
    """`--remote USER@HOST` as ssh will read it: a value starting with '-' would be an ssh option
    (`-oProxyCommand=...` runs a local command), so it is refused, as are spaces and control characters."""
    if not host or host.startswith("-") or any(ch.isspace() or not ch.isprintable() for ch in host):
        raise UserError(f"--remote {host!r} is not a USER@HOST (it is empty, starts with '-' or holds spaces); "
                        "pass e.g. --remote pi@raspberrypi.local")
    return host


def _fix_hint(host: str) -> str:
    return (f"check that '{host}' is reachable and accepts key login: `ssh {host} true` must work without a password "
            f"(set it up with `ssh-copy-id {host}`)")


def _run(command: Sequence[str], transport: SshTransport, what: str, timeout: float) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise UserError(f"cannot {what}: '{command[0]}' is not installed here; install OpenSSH client (ssh, scp)") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"cannot {what} on {transport.host}: no answer within {timeout:.0f}s; {_fix_hint(transport.host)}") from None
    if result.returncode == SSH_UNREACHABLE:
        detail = (result.stderr.strip().splitlines() or [""])[-1]
        raise UserError(f"cannot {what} on {transport.host} ({detail or 'ssh failed'}); {_fix_hint(transport.host)}")
    return result


def _check(result: subprocess.CompletedProcess, transport: SshTransport, what: str) -> None:
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no error output"])[-1]
        raise UserError(f"could not {what} on {transport.host} (exit {result.returncode}: {detail}); {_fix_hint(transport.host)}")


def runner_args(config: Any, teacher_accuracy: float | None = None, equal_size: int | None = None) -> list[str]:
    """The runner's command line for a BenchConfig (same warm-up, iterations, threads as local runs; the
    device's GEMM roof unless `config.roof` is off; students also timed at `equal_size`, the speed
    reference's input size)."""
    args = ["--warmup", str(config.warmup), "--iterations", str(config.iterations), "--max-seconds", str(config.max_seconds),
            "--threads", str(config.threads), "--throughput-batch", str(config.throughput_batch)]
    if teacher_accuracy is not None:
        args += ["--teacher-accuracy", str(teacher_accuracy)]
    if not getattr(config, "roof", True):
        args.append("--no-roof")
    if equal_size:
        args += ["--equal-size", str(int(equal_size))]
    return args


def _needs_build_there(artifact: Path) -> bool:
    manifest = json.loads((artifact / "manifest.json").read_text())
    return manifest.get("status") == "needs_target_build" and (artifact / KIT_SCRIPT).is_file()


def _failed_row(artifact: Path, status: str, notes: str = "") -> dict[str, Any]:
    """A report row (dict) for an artifact that never reached the runner."""
    manifest = json.loads((artifact / "manifest.json").read_text())
    return {"name": manifest.get("name") or artifact.name, "role": manifest.get("role", "student"), "kind": manifest.get("kind"),
            "backend": manifest.get("backend"), "precision": manifest.get("precision"), "params": manifest.get("params"),
            "flops": manifest.get("flops"), "status": status, "notes": notes}


def _compatibility_note(artifact: Path) -> str:
    compatibility = json.loads((artifact / "manifest.json").read_text()).get("tensorrt_compatibility")
    if not compatibility:
        return ""
    # lazy: defers onnx
    from edgeclip.exporters.tensorrt_support import describe

    return describe(compatibility)


class DeviceSession:
    """A fresh work directory on the device holding the runner, the evaluation data and the artifacts."""

    def __init__(self, host: str, transport: SshTransport | None, remote_dir: str, timeout: float) -> None:
        self.host = host
        self.transport = transport or SshTransport.for_host(host)
        self.remote_dir = remote_dir
        self.timeout = timeout

    def shell(self, command: str, what: str) -> subprocess.CompletedProcess:
        return _run([*self.transport.ssh, f"cd {shlex.quote(self.remote_dir)} && {command}"], self.transport, what, self.timeout)

    def stage(self, artifacts: Sequence[Path], data: Path | None) -> list[str]:
        quoted = shlex.quote(self.remote_dir)
        # A fresh staging dir: stale artifacts from an earlier run must not be measured by mistake.
        _check(_run([*self.transport.ssh, f"rm -rf {quoted} && mkdir -p {quoted}"], self.transport, "create the work dir", 60),
               self.transport, "create the work dir")
        # The runner with its sibling files (the runtime layer it opens artifacts with, the zero-shot helpers).
        _check(_run([*self.transport.copy, *map(str, runner_files()), *([str(data)] if data else []),
                     self.transport.dest_prefix + self.remote_dir + "/"], self.transport, "copy the runner", self.timeout),
               self.transport, "copy the runner")
        staged = [f"a{i}-{a.name}" for i, a in enumerate(artifacts)]
        for artifact, name in zip(artifacts, staged):
            _check(_run([*self.transport.copy, str(artifact), f"{self.transport.dest_prefix}{self.remote_dir}/{name}"],
                        self.transport, f"copy artifact {artifact.name}", self.timeout), self.transport, f"copy artifact {artifact.name}")
        return staged

    def build_engine(self, name: str) -> list[str] | None:
        """Run the artifact's kit there: engine build + engine parity. Returns None when an engine was
        built (its parity, passed or failed, is in the manifest the runner reads), or trtexec's last
        error lines when it could not build one (the kit's exit 3)."""
        result = self.shell(f"bash {shlex.quote(name)}/{KIT_SCRIPT} {shlex.quote(name)}", f"build the engine of {name}")
        last = ((result.stdout + result.stderr).strip().splitlines() or [""])[-1]
        if result.returncode == 2:
            if "trtexec not found" in last:
                raise UserError(f"{self.host} has no TensorRT (trtexec not found); install JetPack's TensorRT there, "
                                "or pick a target without TensorRT")
            raise UserError(f"building the engine of {name} on {self.host} failed: {last}")
        if result.returncode == KIT_BUILD_FAILED:
            # build_engine.sh printed "error: ... last error lines:" then the lines, indented, on stderr.
            lines = result.stderr.strip().splitlines()
            start = next((i + 1 for i, line in enumerate(lines) if "last error lines" in line), 0)
            return [line.strip() for line in lines[start:] if line.strip()][-12:] or [last]
        return None  # exit 1 = the engine failed its parity check: the runner reports the row as failed

    def fetch_built(self, name: str, local: Path) -> None:
        """Copy what the device built back into the local artifact: the engine and its build log first,
        the manifest (engine status and parity) last, so it never names a file that is not there."""
        def fetch(remote_name: str, local_path: Path) -> None:
            _check(_run([*self.transport.copy, f"{self.transport.dest_prefix}{self.remote_dir}/{name}/{remote_name}",
                         str(local_path)], self.transport, f"fetch {remote_name} of {name}", self.timeout),
                   self.transport, f"fetch {remote_name} of {name}")

        fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=local)
        os.close(fd)
        try:
            fetch("manifest.json", Path(tmp))
            manifest = json.loads(Path(tmp).read_text())  # a truncated copy must not replace a good manifest
            for built in (manifest.get("model_file"), "build.log"):
                if built and built in manifest.get("files", []) and not (local / built).exists():
                    fetch(built, local / built)
            os.replace(tmp, local / "manifest.json")
        finally:
            Path(tmp).unlink(missing_ok=True)

    def run_runner(self, staged: list[str], python: str, args: Sequence[str], data: Path | None) -> subprocess.CompletedProcess:
        argv = [python, "edgeclip_runner.py", *staged, "--environment", *args, *(["--data", data.name] if data else [])]
        result = self.shell(" ".join(shlex.quote(a) for a in argv), "run the benchmark")
        if result.returncode == 127:
            raise UserError(f"'{python}' was not found on {self.host}; install Python 3 with numpy and onnxruntime/openvino "
                            "there, or pass the interpreter path")
        _check(result, self.transport, "run the benchmark")
        return result

    def cleanup(self) -> None:
        _run([*self.transport.ssh, f"rm -rf {shlex.quote(self.remote_dir)}"], self.transport, "remove the work dir", 60)


def _build_engines(session: DeviceSession, built: Sequence[tuple[str, Path]]) -> dict[Path, dict[str, Any]]:
    """Build each pending engine there; returns a failed row per artifact whose engine trtexec could not build
    (with its manifest's engine_build block and build.log fetched back)."""
    failed = {}
    for name, local in built:
        errors = session.build_engine(name)
        if errors is None:
            continue
        session.fetch_built(name, local)
        cause = next((e for e in errors if "ERROR" in e or "Error" in e), errors[0])[:240]
        notes = "; ".join(filter(None, [f"trtexec on {session.host}: " + " | ".join(errors), _compatibility_note(local)]))
        failed[local] = _failed_row(local, f"{ENGINE_BUILD_FAILED} on {session.host} failed (trtexec): {cause}", notes)
    return failed


def bench_remote(artifact_dirs: Sequence[str | Path], host: str, *, data: str | Path | None = None,
                 remote_dir: str | None = None, python: str = "python3", runner_args: Sequence[str] = (),
                 transport: SshTransport | None = None, timeout: float = 1800.0, cleanup: bool = True
                 ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Finish (build engines there) and measure each artifact on `host`; returns (rows, device environment).

    Rows are in report.json's row format with the device's measurements, ready to merge into a
    Report. Artifacts are copied as `a<i>-<name>` so two runs' `onnx-int8` do not collide.
    """
    artifact_dirs = [Path(a) for a in artifact_dirs]
    for artifact in artifact_dirs:
        if not (artifact / "manifest.json").is_file():
            raise UserError(f"artifact '{artifact}' has no manifest.json; pass a directory written by `edgeclip export`")
    data = Path(data) if data is not None else None
    if data is not None and not data.is_file():
        raise UserError(f"evaluation data '{data}' does not exist; pass an .npz with images and labels")
    # A kit its TensorRT would refuse (checked at export) is a failed row here: it is never copied.
    failed: dict[Path, dict[str, Any]] = {}
    for artifact in artifact_dirs:
        manifest = json.loads((artifact / "manifest.json").read_text())
        if manifest.get("status") == "failed":
            failed[artifact] = _failed_row(artifact, f"failed: {manifest.get('next_step') or 'export failed'}",
                                           _compatibility_note(artifact))
    to_stage = [a for a in artifact_dirs if a not in failed]
    # One work dir per run (removed after): two runs on one device must not delete each other's files.
    remote_dir = remote_dir or f"/tmp/edgeclip-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    session = DeviceSession(host, transport, remote_dir, timeout)
    staged = session.stage(to_stage, data)
    result = None
    try:
        built = [(name, local) for name, local in zip(staged, to_stage) if _needs_build_there(local)]
        failed.update(_build_engines(session, built))
        runnable = [(name, local) for name, local in zip(staged, to_stage) if local not in failed]
        if runnable:
            result = session.run_runner([name for name, _ in runnable], python, runner_args, data)
        for name, local in built:
            if local not in failed:
                session.fetch_built(name, local)
    finally:
        if cleanup:
            session.cleanup()
    rows, environment = ([], {}) if result is None else parse_runner_output(
        result.stdout, [name for name, _ in runnable], [local for _, local in runnable], host)
    measured = iter(rows)
    ordered = []
    for artifact in artifact_dirs:  # the caller's order, failed rows in their place
        if artifact in failed:
            ordered.append(failed[artifact])
            continue
        row = next(measured)
        note = _compatibility_note(artifact)
        if note:
            row["notes"] = "; ".join(filter(None, [row.get("notes", ""), note]))
        ordered.append(row)
    return ordered, environment


def parse_runner_output(stdout: str, staged: Sequence[str], artifact_dirs: Sequence[Path], host: str
                        ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """JSON lines → (rows, environment). Staged names in rows are mapped back to the local artifact names;
    the device's GEMM roof line, when the runner measured one, becomes `environment["roof"]` (with
    `measured_on`: the host)."""
    rows: list[dict[str, Any]] = []
    environment: dict[str, Any] = {}
    roof: dict[str, Any] | None = None
    local_names = dict(zip(staged, (a.name for a in artifact_dirs)))
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "environment" in item:
            environment = item["environment"]
            continue
        if "roof" in item:
            roof = {**item["roof"], "measured_on": host}
            continue
        if item.get("name") in local_names:  # a manifest without a name: the runner used the staged dir name
            item["name"] = local_names[item["name"]]
        item["notes"] = "; ".join(filter(None, [f"measured on {host}", item.get("notes", "")]))
        rows.append(item)
    if len(rows) != len(staged):
        raise UserError(f"the runner on {host} returned {len(rows)} rows for {len(staged)} artifacts; "
                        f"run `python3 edgeclip_runner.py <artifact>` there to see the error")
    if roof is not None:
        environment = {**environment, "roof": roof}
    return rows, environment


def device_machine(host: str) -> str:
    """How a report names the machine whose roof a device row is compared with (the row's roof_source)."""
    return f"device {host}"


def finish_on_device(artifact_dirs: Sequence[Path], host: str, *, data: Path | None, config: Any, python: str = "python3",
                     teacher_accuracy: float | None = None, transport: SshTransport | None = None,
                     speed_reference_size: int | None = None) -> tuple[list[Any], dict[str, Any]]:
    """`edgeclip build|bench --remote`: bench_remote with the bench settings; rows as ReportRows carrying what
    local rows carry: achieved GFLOP/s and % of the device's GEMM roof (bench/roof.apply_roof, roof source
    "device HOST"), and each student timed at the speed reference's input size (`equal_resolution`; the
    speedups are filled by Report.fill_speedups as for local rows). That size is the staged speed
    reference's, or `speed_reference_size` when the caller's speed reference row is timed elsewhere."""
    manifests = [json.loads((Path(a) / "manifest.json").read_text()) for a in artifact_dirs
                 if (Path(a) / "manifest.json").is_file()]
    equal_size = speed_reference_size or reference_size(manifests)
    rows, environment = bench_remote(artifact_dirs, host, data=data, python=python, transport=transport,
                                     runner_args=runner_args(config, teacher_accuracy, equal_size))
    report_rows = [ReportRow.from_dict(row) for row in rows]
    if environment.get("roof"):
        apply_roof(report_rows, environment["roof"], machine=device_machine(host))
    return report_rows, environment
