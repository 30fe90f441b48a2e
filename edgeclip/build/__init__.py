"""`edgeclip build`: teacher → student → export per target → parity → benchmark → report → verdict.

`build()` only orders the steps (build/steps.py) and decides the report; each step is a library
call from another module. With `remote`, the artifacts are finished and measured on the device
itself (TensorRT engines built and checked there) and the target's budgets are checked on those
numbers; without it, a target this machine is not gets a report that says which command finishes
the job.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgeclip.bench.environment import collect_environment
from edgeclip.bench.harness import bench_artifacts
from edgeclip.bench.remote import finish_on_device
from edgeclip.bench.report import Report
from edgeclip.bench.report_files import write_report
from edgeclip.bench.report_inputs import preview_for_artifact
from edgeclip.bench.report_text import console_table
from edgeclip.bench.verdict import compute_verdict
from edgeclip.build.accident import build_accident
from edgeclip.build.compression import compressed_deployables
from edgeclip.build.plan import BuildPlan, export_plan, plan_build
from edgeclip.build.result import BuildResult
from edgeclip.build.steps import log, private_copies
from edgeclip.build.student_search import distill_candidates, time_build_candidates, write_search_figure
from edgeclip.config import Recipe
from edgeclip.distill.methods import get_method
from edgeclip.io_utils import write_json
from edgeclip.manifest import read_manifest


def build(recipe: Recipe, target_name: str, *, out_dir: str | Path | None = None, progress: bool = True,
          remote: str | None = None, remote_python: str = "python3") -> BuildResult:
    """Run the whole pipeline for `recipe` on `target_name`; write `<run>/report.{json,md,html}`."""
    if recipe.video.clips:  # a dashcam accident recipe: encoder + temporal head (edgeclip/build/accident.py)
        return build_accident(recipe, target_name, out_dir=out_dir, progress=progress, remote=remote,
                              remote_python=remote_python)
    started = time.perf_counter()
    plan = plan_build(recipe, target_name, out_dir)  # every cheap check, before any file or training
    steps = get_method(recipe.distill.method).load_build_steps()  # e.g. dual encoders: a row per tower
    search = None
    if recipe.search.latency_budget_ms:  # time every candidate first: none within the budget → exit 2, nothing written
        search = time_build_candidates(plan, log=log)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    write_json(plan.run_dir / "recipe.json", {"recipe": recipe.to_dict(), "target": plan.target.to_dict()})
    log(f"run directory {plan.run_dir}; target {plan.target.name}; plan {', '.join(plan.export_names)}")

    if search is not None:
        search = distill_candidates(plan, search, progress, log=log)
        distilled, deployables = search.distilled, list(search.deployables)
    else:
        distilled = steps.distill(plan, progress)
        deployables = distilled.deployables()
    config = steps.bench_config(plan)
    teacher = steps.teacher_row(distilled, config)
    inputs = steps.real_inputs(plan, distilled)
    deployables += compressed_deployables(plan, distilled, progress, log=steps.log)  # recipe prune: / int8.qat_epochs
    artifacts, failed_rows = steps.export_all(plan, deployables, inputs)
    references, failed_references = steps.speed_reference(plan)
    if remote:  # the device builds engines into the artifacts it gets: never into the shared cache
        references = private_copies(references, plan.run_dir / "speed-reference")

    log(f"benchmarking {len(artifacts) + len(references)} artifacts")

    models = {str(d.checkpoint / "model.pt"): (d.model, d.spec) for d in deployables}
    rows = bench_artifacts(artifacts + references, config, data=inputs.eval_path, teacher_row=teacher, models=models)
    rows = steps.finish_rows(rows, deployables)
    environment = None
    if remote:
        rows, environment = _measure_on_device(plan, rows, artifacts + references, inputs, config, remote, remote_python)
    return _report(plan, rows + failed_rows + failed_references, distilled, environment, config, remote,
                   time.perf_counter() - started, artifacts, search=search)


def _measure_on_device(plan: BuildPlan, rows: list[Any], artifacts: list[Path], inputs: Any, config: Any,
                       remote: str, remote_python: str) -> tuple[list[Any], dict[str, Any]]:
    """Finish the artifacts on the device (TensorRT engines built and checked there) and measure them
    there; local artifact rows are replaced by the device's, teacher and reference rows stay."""
    log(f"finishing and measuring {len(artifacts)} artifacts on {remote}")
    teacher = next((r for r in rows if r.role == "teacher"), None)
    device_rows, environment = finish_on_device(artifacts, remote, data=inputs.eval_path, config=config, python=remote_python,
                                                teacher_accuracy=teacher.accuracy if teacher else None)
    local = [r for r in rows if r.role in ("teacher", "reference")]
    return local + device_rows, {"measured_on": remote, **environment}


def _inputs_preview(run_dir: Path, artifacts: list[Path]) -> bytes | None:
    """The report's strip of evaluation inputs as the first classifier artifact sees them."""
    eval_path = run_dir / "eval_data.npz"
    if not eval_path.is_file():
        return None
    for artifact in artifacts:
        if (Path(artifact) / "manifest.json").is_file():
            png = preview_for_artifact(eval_path, read_manifest(artifact))
            if png:
                return png
    return None


def _report(plan: BuildPlan, rows: list[Any], distilled: Any, environment: dict[str, Any] | None, config: Any,
            remote: str | None, seconds: float, artifacts: list[Path], search: Any = None) -> BuildResult:
    target, recipe = plan.target, plan.recipe
    on_target = bool(remote) or target.measurable_here
    metrics = distilled.metrics
    notes = [
        f"recipe {recipe.name}: teacher {recipe.teacher}, method {recipe.distill.method}, data {recipe.data.train}/{recipe.data.test}",
        f"distillation: teacher accuracy {metrics['teacher_accuracy']:.4f}, student {metrics['student_accuracy']:.4f} "
        f"(PyTorch, test split), agreement with teacher {metrics.get('agreement', float('nan')):.4f}",
        f"parity: {recipe.export.parity_samples} real test images per artifact against the unexported PyTorch model",
        "speed reference rows: the teacher architecture with random weights, exported like the students and timed "
        "interleaved with them (latency only; × teacher = its p50 / the row's p50 in the same backend and precision)",
        f"build took {seconds:.0f} s",
    ]
    next_step = ""
    if not on_target:
        next_step = (f"this machine is not a {target.name}: budgets are not measured here. Finish on the device with "
                     f"`edgeclip build --recipe {recipe.name} --target {target.name} --remote user@<{target.name}>` "
                     f"(or `edgeclip bench --target {target.name} --remote user@<{target.name}> --data "
                     f"{plan.run_dir / 'eval_data.npz'} --artifact <each dir under {plan.run_dir / 'artifacts'}>`)")
        notes.append(next_step)
    report = Report(rows=rows, environment=environment or collect_environment(threads=config.threads),
                    run_id=plan.run_dir.name, notes=notes)
    report.apply_target(target, measured_on_target=on_target)
    report.fill_speedups()
    report.verdict = compute_verdict(report, next_step)
    if search is not None:  # build/student_search.py: the latency-vs-retention table and its plot
        report.student_search = write_search_figure(search.record(), plan.run_dir)
    paths = write_report(report, plan.run_dir, inputs_png=_inputs_preview(plan.run_dir, artifacts))
    print(console_table(report))
    return BuildResult(run_dir=plan.run_dir, report=report, report_paths=paths, artifacts=artifacts)


__all__ = ["BuildPlan", "BuildResult", "build", "export_plan", "plan_build"]
