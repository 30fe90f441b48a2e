"""Benchmark artifacts on a device over SSH: copy the standalone runner + artifacts, run, parse rows.

Only `ssh` and `scp` on this machine and `python3` + numpy + the runtime on the device are
needed. SSH runs with BatchMode=yes (never hangs on a password prompt) and a ConnectTimeout.
The transport is injectable so the flow can be tested without an SSH server.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from edgeclip.bench.memory import RUNNER_PATH
from edgeclip.errors import UserError

SSH_UNREACHABLE = 255  # ssh's own exit status for connection/authentication failures


@dataclass(frozen=True)
class SshTransport:
    """How to reach the device: `ssh + [remote shell command]`, `copy + sources + [dest_prefix + path]`."""

    host: str
    ssh: tuple[str, ...]
    copy: tuple[str, ...]
    dest_prefix: str

    @classmethod
    def for_host(cls, host: str, *, connect_timeout: int = 10, port: int | None = None) -> "SshTransport":
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}"]
        ssh = ["ssh", *options, *(["-p", str(port)] if port else []), host]
        copy = ["scp", "-q", "-r", *options, *(["-P", str(port)] if port else [])]
        return cls(host=host, ssh=tuple(ssh), copy=tuple(copy), dest_prefix=f"{host}:")


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


def bench_remote(artifact_dirs: Sequence[str | Path], host: str, *, data: str | Path | None = None,
                 remote_dir: str = "/tmp/edgeclip-bench", python: str = "python3", runner_args: Sequence[str] = (),
                 transport: SshTransport | None = None, timeout: float = 1800.0, cleanup: bool = True
                 ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the standalone runner on `host` for each artifact; returns (rows, device environment).

    Rows are in report.json's row format with the device's measurements, ready to merge into a
    Report. Artifacts are copied as `a<i>-<name>` so two runs' `onnx-int8` do not collide.
    """
    transport = transport or SshTransport.for_host(host)
    artifact_dirs = [Path(a) for a in artifact_dirs]
    for artifact in artifact_dirs:
        if not (artifact / "manifest.json").is_file():
            raise UserError(f"artifact '{artifact}' has no manifest.json; pass a directory written by `edgeclip export`")
    if data is not None and not Path(data).is_file():
        raise UserError(f"evaluation data '{data}' does not exist; pass an .npz with images and labels")

    quoted_dir = shlex.quote(remote_dir)
    staged = [f"a{i}-{a.name}" for i, a in enumerate(artifact_dirs)]
    # Fresh staging dir: stale artifacts from an earlier run must not be measured by mistake.
    _check(_run([*transport.ssh, f"rm -rf {quoted_dir} && mkdir -p {quoted_dir}"], transport, "create the work dir", 60),
           transport, "create the work dir")
    _check(_run([*transport.copy, str(RUNNER_PATH), *([str(data)] if data else []), transport.dest_prefix + remote_dir + "/"],
                transport, "copy the runner", timeout), transport, "copy the runner")
    for artifact, name in zip(artifact_dirs, staged):
        _check(_run([*transport.copy, str(artifact), f"{transport.dest_prefix}{remote_dir}/{name}"], transport,
                    f"copy artifact {artifact.name}", timeout), transport, f"copy artifact {artifact.name}")

    args = [python, "edgeclip_runner.py", *staged, "--environment", *runner_args]
    if data:
        args += ["--data", Path(data).name]
    command = f"cd {quoted_dir} && " + " ".join(shlex.quote(a) for a in args)
    if cleanup:
        command = f"{command}; status=$?; rm -rf {quoted_dir}; exit $status"
    result = _run([*transport.ssh, command], transport, "run the benchmark", timeout)
    if result.returncode == 127:
        raise UserError(f"'{python}' was not found on {host}; install Python 3 with numpy and onnxruntime/openvino there, "
                        "or pass the interpreter path")
    _check(result, transport, "run the benchmark")
    return parse_runner_output(result.stdout, staged, artifact_dirs, host)


def _check(result: subprocess.CompletedProcess, transport: SshTransport, what: str) -> None:
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no error output"])[-1]
        raise UserError(f"could not {what} on {transport.host} (exit {result.returncode}: {detail}); {_fix_hint(transport.host)}")


def parse_runner_output(stdout: str, staged: Sequence[str], artifact_dirs: Sequence[Path], host: str
                        ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """JSON lines → (rows, environment). Staged names in rows are mapped back to the local artifact names."""
    rows: list[dict[str, Any]] = []
    environment: dict[str, Any] = {}
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
        if item.get("name") in local_names:  # a manifest without a name: the runner used the staged dir name
            item["name"] = local_names[item["name"]]
        item["notes"] = "; ".join(filter(None, [f"measured on {host}", item.get("notes", "")]))
        rows.append(item)
    if len(rows) != len(staged):
        raise UserError(f"the runner on {host} returned {len(rows)} rows for {len(staged)} artifacts; "
                        f"run `python3 edgeclip_runner.py <artifact>` there to see the error")
    return rows, environment
