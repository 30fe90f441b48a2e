"""Peak memory per artifact, each in a fresh process.

Several native runtimes in one process share one resident set and allocator state, and
`ru_maxrss` is a high-water mark that never goes down, so in-process numbers are unreliable. Each
artifact is therefore loaded and run (batch 1) by the standalone device runner in its own
subprocess, which reports peak RSS minus its baseline right after importing numpy and the
runtime. Peak RSS is VmHWM on Linux (ru_maxrss elsewhere): Linux carries `ru_maxrss` over
fork+exec, so a runner started from this torch-laden process would inherit its peak and read 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edgeclip.paths import runner_path

RUNNER_PATH = runner_path()
MEMORY_METHOD = ("peak memory = peak RSS (Linux VmHWM, else ru_maxrss) of a fresh process that loads the artifact "
                 "and runs it at batch 1 (devices/runner/edgeclip_runner.py), minus that process's peak right after "
                 "importing numpy and the runtime library")


def run_runner(artifact_dirs: list[str | Path], extra_args: list[str] | None = None, *, timeout: float = 600.0,
               python: str = sys.executable) -> list[dict]:
    """Run the standalone runner locally and parse its JSON lines (rows; environment and roof lines are skipped)."""
    command = [python, str(RUNNER_PATH), *map(str, artifact_dirs), *(extra_args or [])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"runner exited {result.returncode}: {tail}")
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return [row for row in rows if "environment" not in row and "roof" not in row]


def measure_peak_memory(artifact_dir: str | Path, *, threads: int = 0, iterations: int = 5,
                        timeout: float = 300.0) -> float | None:
    """Peak MiB that loading and running `artifact_dir` at batch 1 adds over the bare runtime.

    None when the runner cannot run this backend (TensorRT/CoreML need their device).
    """
    args = ["--warmup", "2", "--iterations", str(iterations), "--throughput-batch", "0", "--threads", str(threads),
            "--no-roof"]
    rows = run_runner([artifact_dir], args, timeout=timeout)
    if not rows or rows[0].get("status") != "ok":
        return None
    value = rows[0].get("peak_mem_mb")
    return None if value is None else float(value)
