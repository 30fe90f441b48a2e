"""What this CPU's int8 kernels can do: the facts int8 decisions depend on (no torch, no onnxruntime).

On arm64 (a Raspberry Pi 5's Cortex-A76, a Jetson's Carmel/A78AE) there is no such saturation:
onnxruntime's quantization guide recommends S8S8 (int8 activations and weights) in QDQ format there,
so a model built here for an arm64 target gets S8S8 whatever this machine is (`ort_int8_format`).

onnxruntime's x86 int8 GEMM/conv kernels multiply uint8 activations by int8 weights (U8S8) with
VNNI (`vpdpbusd`) when the CPU has it. Without VNNI they use `vpmaddubsw`, whose int16
intermediate saturates: measured here on an AMD EPYC without VNNI, U8S8 took a digits
MobileNetV3-small from 96.4% to 60% accuracy, so such CPUs need uint8 weights (U8U8), which are
slower — there ORT int8 was slower than fp32 for MobileNetV3 (benchmarks/results/backends_cpu.md).
"""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path
from typing import Any

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@functools.lru_cache(maxsize=1)
def cpu_features() -> dict[str, Any]:
    """{"arch", "model", "vnni", "avx2", "avx512", "flags_source"} for this machine (best effort)."""
    arch = platform.machine().lower()
    info: dict[str, Any] = {"arch": arch, "model": platform.processor() or arch, "vnni": None, "avx2": None,
                            "avx512": None, "flags_source": None}
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "flags" and not flags:
                flags = set(value.split())
            elif key == "model name" and info["model"] in (arch, ""):
                info["model"] = value.strip()
        info["flags_source"] = "/proc/cpuinfo"
    elif platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-a"], capture_output=True, text=True, timeout=5).stdout.lower()
            flags = {word for word in out.replace(":", " ").split() if word.startswith(("avx", "hw.optional"))}
            info["flags_source"] = "sysctl"
        except (OSError, subprocess.SubprocessError):
            pass
    if flags:
        info["vnni"] = any(flag in flags for flag in VNNI_FLAGS)
        info["avx2"] = "avx2" in flags
        info["avx512"] = "avx512f" in flags
    return info


def is_x86() -> bool:
    return cpu_features()["arch"] in ("x86_64", "amd64", "i686", "x86")


ARM_ARCHES = ("aarch64", "arm64", "armv8l", "armv8", "arm")


def ort_int8_format(arch: str | None = None) -> tuple[str, str, str]:
    """(activation type, weight type, why) for onnxruntime static QDQ int8 on `arch` (a target
    profile's CPU architecture; None = this machine's). Types are "int8" or "uint8"."""
    if arch is not None and arch.lower() in ARM_ARCHES:
        return "int8", "int8", (f"{arch} target: S8S8 (int8 activations and weights), what onnxruntime recommends "
                                f"with QDQ on ARM (no x86 saturation issue there)")
    if arch is not None and arch.lower() != cpu_features()["arch"]:
        return "uint8", "int8", f"{arch} target (not this CPU, flags unknown): U8S8, onnxruntime's default"
    weights, why = ort_int8_weights()
    return "uint8", weights, why


def ort_int8_weights() -> tuple[str, str]:
    """(weight type, why) for onnxruntime static int8 on this CPU: "int8" (U8S8) or "uint8" (U8U8)."""
    features = cpu_features()
    if not is_x86():
        return "int8", f"{features['arch']}: int8 dot-product kernels, no saturation issue"
    if features["vnni"]:
        return "int8", "x86 with VNNI: U8S8 kernels accumulate without saturation"
    if features["vnni"] is None:
        return "uint8", "x86 with unknown CPU flags: U8U8 is the safe choice (U8S8 saturates without VNNI)"
    return "uint8", "x86 without VNNI: U8S8 saturates in vpmaddubsw, so weights are uint8 (U8U8)"
