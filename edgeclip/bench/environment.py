"""What a measurement ran on: CPU, cores, threads, OS, Python, library versions, GPU.

A latency number without its machine is meaningless, so every report carries this block.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from typing import Any

from edgeclip.backends import report_tools
from edgeclip.compress.cpu import cpu_features

# Distribution names whose versions change benchmark numbers (the backends' from the backend table).
LIBRARIES = ("torch", "torchvision", "numpy", *report_tools(), "open_clip_torch", "timm")


def cpu_model() -> str:
    """Human CPU name: /proc/cpuinfo (x86 "model name", arm boards "Model"/"Hardware"), sysctl on macOS."""
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip() or platform.machine()
        except (OSError, subprocess.SubprocessError):
            return platform.machine()
    try:
        fields: dict[str, str] = {}
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    board = fields.get("model", "")
    return fields.get("model name") or (board if board and not board.isdigit() else "") or fields.get("hardware") or platform.machine()


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def gpu_description() -> str | None:
    """CUDA device name when torch sees one; None on CPU-only machines."""
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch  # noqa: F811 - imported lazily: environment collection must not require torch
        except ImportError:
            return None
    try:
        if torch.cuda.is_available():
            return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except Exception:  # a broken driver must not break a report
        return None
    return None


def physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except Exception:
        return None


def collect_environment(threads: int | None = None) -> dict[str, Any]:
    """The environment block of report.json. `threads` = intra-op threads the runtimes were given (0 = auto)."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        affinity = os.cpu_count()
    env: dict[str, Any] = {
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores_logical": os.cpu_count(),
        "cores_physical": physical_cores(),
        "cores_usable": affinity,
        "threads": threads if threads is not None else 0,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": library_versions(),
        "gpu": gpu_description(),
    }

    # int8 speed depends on these (onnxruntime U8S8 needs VNNI; NNCF/oneDNN use VNNI/AMX when present)
    env["cpu_int8_features"] = {k: cpu_features()[k] for k in ("avx2", "avx512", "vnni")}
    try:  # other work on the machine skews absolute times (ratios measured interleaved much less)
        env["load_average_1m"] = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # Windows
        pass
    # Busy-waiting OpenMP threads collapse under oversubscription; the CLI sets PASSIVE unless told otherwise.
    env["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "")
    warning = load_warning(env)
    if warning:
        env["load_warning"] = warning
    try:
        import onnxruntime

        env["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        pass
    return env


def load_warning(env: dict[str, Any]) -> str | None:
    """A sentence when the machine was busier than its cores while timing, else None.

    The 1-minute load average counts runnable processes (this benchmark's own included); above the
    usable core count, processes queued for a core and times are inflated, unevenly between backends
    (on a shared 2-core machine a training step ran 10-16x slower, and a verdict flipped).
    """
    load, cores = env.get("load_average_1m"), env.get("cores_usable") or env.get("cores_logical")
    if not isinstance(load, (int, float)) or not cores or load <= cores:
        return None
    return (f"the machine was loaded while timing: 1-min load average {load:g} on {cores} usable core(s); "
            "latencies and speed-ups may be inflated and uneven between rows; re-run on an idle machine")
