"""Latency (ms, batch 1) and throughput (images/s) of a callable that runs one batch.

Timing uses `time.perf_counter` around each call; a warm-up runs first so one-off costs (graph
optimisation, allocator growth, lazy kernel selection) do not land in the percentiles.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

RunFn = Callable[[Any], Any]


def latency_stats(samples_ms: Sequence[float]) -> dict[str, float | int]:
    """p50/p90/p99/mean (ms) and the number of timed iterations."""
    if not len(samples_ms):
        raise ValueError("no latency samples: at least one timed iteration is needed")
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(values.mean()),
            "iterations": int(values.size)}


def time_call(run_fn: RunFn, batch: Any) -> float:
    """Milliseconds one call of `run_fn(batch)` takes."""
    start = time.perf_counter()
    run_fn(batch)
    return (time.perf_counter() - start) * 1000.0


def measure_latency(run_fn: RunFn, batch: Any, *, warmup: int = 10, iterations: int = 100,
                    max_seconds: float = 10.0) -> dict[str, float | int]:
    """Per-call latency of `run_fn(batch)` after `warmup` calls.

    Stops after `iterations` timed calls or once `max_seconds` of timing has passed (whichever is
    first, at least one call), so a slow model on a slow device still finishes.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    for _ in range(max(0, warmup)):
        run_fn(batch)
    samples: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(samples) < iterations:
        samples.append(time_call(run_fn, batch))
        if time.perf_counter() >= deadline:
            break
    return latency_stats(samples)


def measure_throughput(run_fn: RunFn, batch_n: Any, *, warmup: int = 2, iterations: int = 10,
                       max_seconds: float = 5.0) -> float:
    """Images per second running batches of `len(batch_n)` back to back."""
    size = len(batch_n)
    if size < 1:
        raise ValueError("throughput needs a non-empty batch")
    for _ in range(max(0, warmup)):
        run_fn(batch_n)
    done = 0
    start = time.perf_counter()
    deadline = start + max_seconds
    while done < max(1, iterations):
        run_fn(batch_n)
        done += 1
        if time.perf_counter() >= deadline:
            break
    return float(done * size / (time.perf_counter() - start))
