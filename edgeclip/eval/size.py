"""Size per tower: params, FLOPs (attention counted, bench.flops) and latency per backend.

Latency: each tower is exported to every (backend, precision) asked for, into a temporary
directory, and all variants (PyTorch included) are timed at batch 1 *interleaved in one run*
(`bench.latency.benchmark_interleaved`), so a busy machine slows them alike and ratios hold.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edgeclip.backends import cpu_backends
from edgeclip.bench.flops import count_flops
from edgeclip.exporters import export_model
from edgeclip.exporters.towers import ImageTower, TextTower, image_tower_spec, text_tower_spec
from edgeclip.runtimes import load_runtime
from edgeclip.utils import disable_mha_fastpath


def _open_clip(model: nn.Module) -> nn.Module:
    return model.model if not hasattr(model, "visual") and hasattr(model, "model") else model


def tower_params(model: nn.Module) -> dict[str, int]:
    """Image tower = `visual`; text tower = everything else but logit_scale (token table included)."""
    model = _open_clip(model)
    image = sum(p.numel() for p in model.visual.parameters())
    total = sum(p.numel() for n, p in model.named_parameters() if n != "logit_scale")
    return {"image": image, "text": total - image}


def tower_flops(model: nn.Module, image_size: int, context_length: int) -> dict[str, int]:
    """FLOPs of one image and one caption at batch 1 (2 × MACs, attention counted)."""
    model = _open_clip(model).eval()
    tokens = torch.arange(1, context_length + 1, dtype=torch.int64).unsqueeze(0)
    return {"image": count_flops(model.encode_image, (torch.zeros(1, 3, image_size, image_size),)),
            "text": count_flops(model.encode_text, (tokens,))}


def tower_modules(name: str, model: nn.Module, preprocess: Any, context_length: int) -> dict[str, tuple[nn.Module, Any]]:
    """{"image": (ImageTower, spec), "text": (TextTower, spec)} ready for export_model."""
    model = _open_clip(model).eval()
    image_spec = image_tower_spec(model, f"{name}-image", preprocess)
    text_spec = text_tower_spec(model, f"{name}-text", preprocess)
    text_spec.context_length = context_length
    return {"image": (ImageTower(model), image_spec), "text": (TextTower(model), text_spec)}


def tower_latency(towers: dict[str, tuple[nn.Module, Any]], inputs: dict[str, np.ndarray], *,
                  backends: Sequence[str] | None = None, precisions: Sequence[str] = ("fp32",),
                  calibration: dict[str, np.ndarray] | None = None, warmup: int = 10, iterations: int = 100,
                  max_seconds: float = 20.0, threads: int = 0, work_dir: str | Path | None = None) -> dict[str, Any]:
    """p50/p90/p99 per "<tower key>/<backend>-<precision>", all timed interleaved in one run.

    `towers`: key → (module, spec), e.g. "teacher/image". `inputs[key]`: one batch-1 input.
    `calibration[key]`: real inputs for static int8 (image towers). A variant that fails to
    export is reported as {"error": ...}, the others are still timed. `backends`: default torch and
    every backend that runs on a plain CPU here (the backend table's `cpu_backends`).
    """
    disable_mha_fastpath()
    backends = ("torch", *cpu_backends()) if backends is None else backends
    calibration = calibration or {}
    runners: dict[str, Any] = {}
    batches: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    artifacts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for key, (module, spec) in towers.items():
            for backend in backends:
                for precision in precisions if backend != "torch" else ("fp32",):
                    variant = f"{key}/{backend}-{precision}"
                    if backend == "torch":
                        tensor = torch.from_numpy(inputs[key])
                        runners[variant] = torch.no_grad()(module.eval())
                        batches[variant] = tensor
                        continue
                    out_dir = Path(tmp) / variant.replace("/", "_")
                    try:
                        calib = calibration.get(key) if precision == "int8" and spec.kind != "text_encoder" else None
                        artifact = export_model(module, spec, backend, precision, out_dir, calibration=calib,
                                                parity_inputs=inputs[key].repeat(2, axis=0))
                        runtime = load_runtime(artifact.path, threads=threads)
                        runners[variant] = runtime.run
                        batches[variant] = inputs[key]
                        artifacts[variant] = {"size_mb": artifact.manifest["size_bytes"] / 1e6,
                                              "int8_method": artifact.manifest.get("quantization", {}).get("method")}
                    except Exception as exc:  # noqa: BLE001 - one failing backend must not hide the others
                        errors[variant] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        with torch.inference_mode():
            stats = interleaved_samples(runners, batches, warmup=warmup, iterations=iterations, max_seconds=max_seconds)
    for variant, extra in artifacts.items():
        stats[variant] = {**stats.get(variant, {}), **extra}
    return {**stats, **errors}


def interleaved_samples(runners: dict[str, Any], batches: dict[str, Any], *, warmup: int, iterations: int,
                        max_seconds: float) -> dict[str, Any]:
    """p50/p90/p99/mean plus p10 and min per runner, one call per runner per cycle (rotating start).

    On a shared machine a call that loses its time slice reads ~20 ms whatever the model; p10 and
    min show what the model costs when it runs, p50 what a user of this machine would see.
    """
    import time

    names = list(runners)
    errors: dict[str, str] = {}
    samples: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(max(0, warmup)):
        for name in names:
            try:
                runners[name](batches[name])
            except Exception as exc:  # noqa: BLE001 - a failing variant is reported, the others go on
                errors[name] = f"{type(exc).__name__}: {exc}"
    deadline = time.perf_counter() + max_seconds
    for cycle in range(iterations):
        live = [n for n in names if n not in errors]
        start = cycle % max(1, len(live))
        for name in live[start:] + live[:start]:
            begin = time.perf_counter()
            runners[name](batches[name])
            samples[name].append((time.perf_counter() - begin) * 1000.0)
        if time.perf_counter() > deadline:
            break
    out: dict[str, Any] = {n: {"error": e} for n, e in errors.items()}
    for name, values in samples.items():
        if name in errors or not values:
            continue
        array = np.asarray(values)
        p10, p50, p90, p99 = np.percentile(array, [10, 50, 90, 99])
        out[name] = {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(array.mean()),
                     "p10": float(p10), "min": float(array.min()), "iterations": int(array.size)}
    return out
