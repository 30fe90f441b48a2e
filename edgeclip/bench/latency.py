"""Latency (ms, batch 1) and throughput (images/s) of a callable that runs one batch.

Timing uses `time.perf_counter` around each call; a warm-up runs first so one-off costs (graph
optimisation, allocator growth, lazy kernel selection) do not land in the percentiles.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

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


# The timed cycles are cut into this many consecutive rounds, each with its own p50 per runner: two
# runners' p50s in the same round saw the same machine load, so their per-round ratio is steady where
# one overall p50 each flips with a noisy neighbour (the int8-vs-fp32 rule in compress/ship_rule.py).
TIMING_ROUNDS = 5


def round_p50s(samples_ms: Sequence[float], rounds: int = TIMING_ROUNDS) -> list[float]:
    """p50 of each of `rounds` consecutive, equal slices of the samples (fewer when there are fewer samples)."""
    values = np.asarray(samples_ms, dtype=np.float64)
    count = max(1, min(rounds, values.size))
    return [float(np.median(chunk)) for chunk in np.array_split(values, count) if chunk.size]


def benchmark_interleaved(runners: Mapping[str, RunFn], input: Any | Mapping[str, Any], *, warmup: int = 10,
                          iterations: int = 100, max_seconds: float = 30.0,
                          rounds: int = TIMING_ROUNDS) -> dict[str, dict[str, Any]]:
    """Latency stats per runner, timed one call per runner per cycle.

    `input` is one batch for all runners, or a mapping name -> batch (backends that need another
    dtype or layout). Each cycle runs them in a new random order, so no backend always follows the
    same one (cache and allocator state carry over between calls: with only the starting runner
    rotating, each runner kept its predecessor, and one that evicts the caches slowed the next by
    5-20% in every cycle — benchmarks/results/ort_overhead.md). A runner that raises is
    dropped from the rotation and reported as {"error": "<type>: <message>"}; the others go on.
    Stops after `iterations` cycles or `max_seconds`, so every runner gets the same count.
    Besides p50/p90/p99, `round_p50` holds the p50 of each of `rounds` consecutive slices of the
    cycles (the same cycles for every runner: see TIMING_ROUNDS).
    """
    names = list(runners)
    batches = {n: (input[n] if isinstance(input, Mapping) else input) for n in names}
    errors: dict[str, str] = {}
    samples: dict[str, list[float]] = {n: [] for n in names}

    def call(name: str, timed: bool) -> None:
        try:
            if timed:
                samples[name].append(time_call(runners[name], batches[name]))
            else:
                runners[name](batches[name])
        except Exception as exc:  # a failing backend becomes a failed row, never a crash
            errors[name] = f"{type(exc).__name__}: {exc}"

    for _ in range(max(0, warmup)):
        for name in names:
            if name not in errors:
                call(name, timed=False)
    deadline = time.perf_counter() + max_seconds
    order = np.random.default_rng(0)  # seeded: the same runs time in the same orders
    for _ in range(iterations):
        live = [n for n in names if n not in errors]
        if not live:
            break
        for index in order.permutation(len(live)):
            call(live[index], timed=True)
        if time.perf_counter() >= deadline:
            break
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in errors:
            results[name] = {"error": errors[name]}
        else:
            results[name] = {**latency_stats(samples[name]), "round_p50": round_p50s(samples[name], rounds)}
    return results
