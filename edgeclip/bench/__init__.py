"""edgeclip.bench: measure exported models and report what they keep of the teacher.

- `flops.count_flops` / `count_tower_flops`: FLOPs with attention counted (MATH SDPA, no MHA fast path).
- `latency.measure_latency` / `measure_throughput`: ms at batch 1 (p50/p90/p99), images/s.
- `latency.benchmark_interleaved`: backends timed round-robin so drift hits all alike;
  `harness.evaluate_runtime`: accuracy and top-1 agreement; `harness.bench_artifacts`: artifacts → report rows.
- `memory.measure_peak_memory`: peak RSS per artifact in a fresh process (devices/runner).
- `environment.collect_environment`: the machine behind the numbers.
- `report`: `Report`/`ReportRow`, `validate_report`, `write_report` (report.json/.md/.html).
- `remote.bench_remote`: the same runner on a device over SSH.
- `metrics`: top-1 accuracy, agreement, retention, over-confidence probability.
"""
