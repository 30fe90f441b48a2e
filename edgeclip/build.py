"""`edgeclip build`: teacher → student → export per target → parity → benchmark → report → budgets.

Each stage is a library call from another module; this file only wires them together and
decides what becomes a report row:
- distillation: `distill.classifier_kd.distill_classifier` (or a given student checkpoint),
- export: `exporters.export_model` for every (backend, precision) the target asks for,
- measurement: `bench.harness.bench_artifacts` (interleaved latency, memory, accuracy),
- report: `bench.report.write_report` with the target's budgets checked.
A backend that fails becomes a failed row; bad input raises UserError before anything is written.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeclip.config import Recipe
from edgeclip.data import Subset
from edgeclip.data.sampling import sample_images, sample_indices
from edgeclip.errors import UserError
from edgeclip.io_utils import write_json

RUNS_DIR = Path("runs")


@dataclass
class BuildResult:
    run_dir: Path
    report: Any
    report_paths: dict[str, Path]
    artifacts: list[Path] = field(default_factory=list)

    @property
    def failed_budgets(self) -> list[dict[str, Any]]:
        return self.report.failed_budgets

    @property
    def failed_rows(self) -> list[Any]:
        return [row for row in self.report.rows if row.status.startswith("failed")]


def log(message: str) -> None:
    print(f"[edgeclip build] {message}", file=sys.stderr, flush=True)


def default_run_dir(recipe: Recipe, target_name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return RUNS_DIR / f"{recipe.name}-{target_name}-{stamp}"


def export_plan(target: Any, recipe: Recipe) -> list[tuple[str, str]]:
    """(backend, precision) pairs: the target's backends × its precisions, as each backend allows.

    The recipe's export.backends / export.precisions, when set, narrow the target's lists.
    """
    from edgeclip.backends import get_backend

    backends = [b for b in target.backends if not recipe.export.backends or b in recipe.export.backends]
    precisions = [p for p in target.precisions if not recipe.export.precisions or p in recipe.export.precisions]
    if not backends or not precisions:
        raise UserError(f"the recipe's export.backends={recipe.export.backends} / export.precisions={recipe.export.precisions} "
                        f"leave nothing of target {target.name} ({', '.join(target.backends)}; {', '.join(target.precisions)}); "
                        "widen them or leave them empty to take the target's")
    plan = [(b, p) for b in backends for p in precisions if p in get_backend(b).precisions]
    if not plan:
        raise UserError(f"target {target.name} asks for {', '.join(precisions)} on {', '.join(backends)}, "
                        "which no backend supports; fix the profile's precisions")
    return plan


def teacher_row(teacher: Any, accuracy: float, preprocess: Any, settings: Any) -> Any:
    """The teacher as a report row: params, FLOPs and PyTorch latency of images → class logits."""
    from edgeclip.bench.flops import count_flops
    from edgeclip.bench.latency import measure_latency
    from edgeclip.bench.report import ReportRow

    example = torch.zeros(1, 3, preprocess.size, preprocess.size)
    forward = torch.no_grad()(teacher.forward_images)
    row = ReportRow(name=teacher.name, role="teacher", backend="torch", precision="fp32",
                    params=int(teacher.num_params), accuracy=accuracy, retention=1.0,
                    notes="teacher timed in PyTorch on this machine, before the artifacts (not interleaved)")
    row.flops = count_flops(forward, (example,))
    row.latency_ms = measure_latency(forward, example, warmup=settings.warmup, iterations=settings.iterations,
                                     max_seconds=settings.max_seconds)
    return row


def build(recipe: Recipe, target_name: str, *, out_dir: str | Path | None = None, progress: bool = True) -> BuildResult:
    """Run the whole pipeline for `recipe` on `target_name`; write `<run>/report.{json,md,html}`."""
    from edgeclip.bench.environment import collect_environment
    from edgeclip.bench.harness import BenchSettings, bench_artifacts
    from edgeclip.bench.report import Report, ReportRow, console_table, one_line, write_report
    from edgeclip.distill.classifier_kd import distill_classifier
    from edgeclip.distill.data_setup import open_distill_data
    from edgeclip.exporters import export_model
    from edgeclip.targets import load_target

    started = time.perf_counter()
    # Validate everything cheap before any work or any file: target, plan, data, teacher spec.
    target = load_target(target_name)
    plan = export_plan(target, recipe)
    data = open_distill_data(recipe.data, recipe.seed)
    if not recipe.student.checkpoint:
        from edgeclip.students.registry import STUDENTS

        STUDENTS.get(recipe.student.name)  # unknown student → close-match error now, not after the teacher
    run_dir = Path(out_dir) if out_dir else default_run_dir(recipe, target.name)
    if (run_dir / "report.json").exists():
        raise UserError(f"{run_dir} already holds a finished build; pass another --out or remove it")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "recipe.json", {"recipe": recipe.to_dict(), "target": target.to_dict()})
    log(f"run directory {run_dir}; target {target.name}; plan {', '.join(f'{b}-{p}' for b, p in plan)}")

    # 1. Teacher → student.
    log(f"distilling {recipe.teacher} into {recipe.student.checkpoint or recipe.student.name}")
    distilled = distill_classifier(recipe, out_dir=run_dir, progress=progress, data=data)
    metrics = distilled.metrics
    log(f"teacher accuracy {metrics['teacher_accuracy']:.4f}, student {metrics['student_accuracy']:.4f}, "
        f"retention {metrics['retention']:.4f}")
    preprocess = distilled.spec.preprocess
    # The teacher is timed now, before exporters and runtimes load their thread pools into this
    # process: measured after them, the same teacher read ~80x slower in one quickstart run.
    settings = BenchSettings(warmup=recipe.bench.warmup, iterations=recipe.bench.iterations,
                             max_seconds=recipe.bench.max_seconds, throughput_batch=recipe.bench.throughput_batch,
                             threads=recipe.bench.threads or target.threads)
    teacher = teacher_row(distilled.teacher, metrics["teacher_accuracy"], preprocess, settings)

    # 2. Real images for calibration and parity; the test split with teacher logits for evaluation.
    calibration_data = data.train
    if recipe.data.calibration:
        from edgeclip.data import open_image_dataset

        calibration_data = open_image_dataset(recipe.data.calibration, "train")
    calibration = sample_images(calibration_data, preprocess, recipe.data.calibration_count, recipe.seed)
    parity_inputs = sample_images(data.test, preprocess, recipe.export.parity_samples, recipe.seed)
    keep = sample_indices(len(data.test), recipe.bench.accuracy_samples, recipe.seed)
    eval_path = run_dir / "eval_data.npz"
    np.savez(eval_path, images=sample_images(Subset(data.test, keep), preprocess, 0), labels=np.asarray(data.test.labels)[keep],
             teacher_logits=distilled.teacher.logits(data.test).numpy()[keep])

    # 3. Export every planned artifact; a backend that breaks is a failed row, not a crash.
    artifacts, failed_rows = [], []
    for backend, precision in plan:
        artifact_dir = run_dir / "artifacts" / f"{backend}-{precision}"
        log(f"exporting {backend}-{precision}")
        try:
            artifact = export_model(distilled.model, distilled.spec, backend, precision, artifact_dir,
                                    calibration=calibration, parity_inputs=parity_inputs,
                                    source_checkpoint=str(distilled.checkpoint_dir / "model.pt"), opset=recipe.export.opset)
            artifacts.append(artifact.path)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - one backend failing must not lose the others
            failed_rows.append(ReportRow.failed(distilled.spec.name, f"export: {type(exc).__name__}: {exc}",
                                                backend=backend, precision=precision))
            log(f"  {backend}-{precision} failed: {one_line(str(exc))}")

    # 4. Measure: teacher in PyTorch, every artifact interleaved, with accuracy on the test split.
    log(f"benchmarking {len(artifacts)} artifacts")
    rows = bench_artifacts(artifacts, settings, data=eval_path, teacher_row=teacher) + failed_rows

    # 5. Report + budgets. Budgets only count where the target is this machine's kind.
    report = Report(rows=rows, environment=collect_environment(threads=settings.threads),
                    run_id=run_dir.name, notes=_notes(recipe, target, distilled, time.perf_counter() - started))
    report.apply_target(target, measured_on_target=target.measurable_here)
    paths = write_report(report, run_dir)
    print(console_table(report))
    return BuildResult(run_dir=run_dir, report=report, report_paths=paths, artifacts=artifacts)


def _notes(recipe: Recipe, target: Any, distilled: Any, seconds: float) -> list[str]:
    metrics = distilled.metrics
    notes = [
        f"recipe {recipe.name}: teacher {recipe.teacher}, student {distilled.spec.name}, data {recipe.data.train}/{recipe.data.test}",
        f"distillation: teacher accuracy {metrics['teacher_accuracy']:.4f}, student {metrics['student_accuracy']:.4f} "
        f"(PyTorch, test split), agreement with teacher {metrics['agreement']:.4f}",
        f"build took {seconds:.0f} s",
    ]
    if not target.measurable_here:
        notes.append(f"target {target.name}: artifacts are built here but must be measured on the device "
                     "(devices/runner/, or `edgeclip bench --remote user@host`); budgets are not checked here")
    return notes
