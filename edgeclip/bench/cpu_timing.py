"""CPU-time medians of runners timed round-robin, in several rounds: what benchmarks use on a shared machine.

On a machine other jobs load, wall-clock latency counts the time a call waited for a core; the CPU time
the process spent on the call does not (for single-threaded inference it is the call's own work).
Each round times every runner once per cycle, in a new random order every cycle; two rounds that agree
show the figure is stable, their disagreement is reported instead of hidden.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Callable, Mapping

import numpy as np

RunFn = Callable[[Any], Any]


def _timed(run: RunFn, batch: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run(batch)
    return (time.process_time() - cpu) * 1000.0, (time.perf_counter() - wall) * 1000.0


def interleaved_cpu_medians(runners: Mapping[str, RunFn], inputs: Mapping[str, Any], *, rounds: int = 2,
                            iterations: int = 30, warmup: int = 5, seed: int = 0,
                            progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Per runner: `cpu_ms` (median over rounds of each round's CPU-time median), `cpu_ms_rounds`,
    `wall_ms_rounds`, `round_spread` (max/min - 1 of the round medians), and the 1-min load average
    at the start of each round. A runner that raises is reported as {"error": ...} and dropped."""
    names = list(runners)
    errors: dict[str, str] = {}
    per_round: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    loads: list[float] = []
    order = np.random.default_rng(seed)
    for round_index in range(rounds):
        loads.append(round(os.getloadavg()[0], 2))
        samples: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        for name in names:
            try:
                for _ in range(warmup):
                    runners[name](inputs[name])
            except Exception as exc:  # noqa: BLE001 - one failing runner is a row with its error
                errors.setdefault(name, f"{type(exc).__name__}: {exc}")
        for _ in range(iterations):
            live = [n for n in names if n not in errors]
            # A fresh random order every cycle: with a fixed cyclic order (only the start rotating) each runner
            # always follows the same neighbour, and one that evicts the caches (a PyTorch model) slowed the
            # runner after it by 5-20% in every cycle (measured: ORT settings "beat" the default that followed it).
            for index in order.permutation(len(live)):
                name = live[index]
                try:
                    samples[name].append(_timed(runners[name], inputs[name]))
                except Exception as exc:  # noqa: BLE001
                    errors.setdefault(name, f"{type(exc).__name__}: {exc}")
        for name in names:
            if samples[name]:
                per_round[name].append((statistics.median(s[0] for s in samples[name]),
                                        statistics.median(s[1] for s in samples[name])))
        if progress:
            progress(f"round {round_index + 1}/{rounds} done")
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in errors or not per_round[name]:
            results[name] = {"error": errors.get(name, "not timed")}
            continue
        cpu = [r[0] for r in per_round[name]]
        results[name] = {"cpu_ms": statistics.median(cpu), "cpu_ms_rounds": [round(c, 4) for c in cpu],
                         "wall_ms_rounds": [round(r[1], 4) for r in per_round[name]],
                         "round_spread": max(cpu) / min(cpu) - 1.0 if min(cpu) > 0 else None,
                         "iterations_per_round": iterations, "load_average_1m_per_round": loads}
    return results
