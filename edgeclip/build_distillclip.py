"""`edgeclip build` for `distill.method: distillclip` recipes: distill → export towers → bench → report.

Rows of the report (one per exported model, so budgets apply to each):
- per backend × precision: the student's image tower, text tower and fused zero-shot classifier
  (`exporters.dual`); the fused row carries zero-shot accuracy on the held-out test split and its
  retention against the teacher's zero-shot accuracy, per backend and precision;
- speed-reference teacher rows, PyTorch fp32 on this machine: the teacher's image tower, text
  tower and fused zero-shot classifier (its accuracy is the retention reference);
- the unexported student (the harness's reference row, with FLOPs per tower).
Params and FLOPs of tower rows are the tower's own (image: `visual`; text: the rest), not the
whole dual encoder's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeclip.config import Recipe
from edgeclip.errors import UserError
from edgeclip.io_utils import write_json


def _teacher_rows(teacher: Any, class_embeddings: torch.Tensor, accuracy: float, settings: Any) -> list[Any]:
    """The teacher's towers and fused classifier timed in PyTorch (speed reference, not interleaved)."""
    from edgeclip.bench.latency import measure_latency
    from edgeclip.bench.report import ReportRow
    from edgeclip.eval.size import tower_flops, tower_params
    from edgeclip.exporters.towers import FusedZeroShotClassifier, ImageTower, TextTower

    model = teacher.model.eval()
    size, context = teacher.preprocess.size, teacher.context_length
    params, flops = tower_params(model), tower_flops(model, size, context)
    image = torch.zeros(1, 3, size, size)
    tokens = teacher.tokenize(["a photo of the digit seven."])
    modules = {"image": (ImageTower(model), image), "text": (TextTower(model), tokens),
               "zeroshot": (FusedZeroShotClassifier(model, class_embeddings, teacher.logit_scale), image)}
    rows = []
    for tower, (module, example) in modules.items():
        run = torch.no_grad()(module)
        row = ReportRow(name=f"{teacher.name}-{tower}", role="teacher", backend="torch", precision="fp32",
                        params=params["text" if tower == "text" else "image"], flops=flops["text" if tower == "text" else "image"],
                        notes="speed reference: teacher timed in PyTorch on this machine before the artifacts (not interleaved)")
        row.latency_ms = measure_latency(run, example, warmup=settings.warmup, iterations=settings.iterations,
                                         max_seconds=settings.max_seconds)
        if tower == "zeroshot":
            row.accuracy, row.retention = accuracy, 1.0
        rows.append(row)
    return rows


def build_distillclip(recipe: Recipe, target: Any, plan: list[tuple[str, str]], run_dir: Path, *, progress: bool,
                      log: Any, started: float) -> tuple[list[Any], list[Path], list[str]]:
    """Distill, export and measure; returns (report rows, artifact dirs, notes) for `build.build` to report."""
    from edgeclip.bench.harness import BenchSettings, bench_artifacts
    from edgeclip.bench.report import ReportRow, one_line
    from edgeclip.data import open_image_dataset
    from edgeclip.data.sampling import sample_images
    from edgeclip.distill.distillclip.trainer import distill_clip
    from edgeclip.eval.encoders import student_encoder, teacher_encoder
    from edgeclip.eval.size import tower_params
    from edgeclip.exporters.dual import export_dual_encoder
    from edgeclip.teacher.templates import get_templates

    test = open_image_dataset(recipe.data.test, "test")
    templates = get_templates(recipe.data.templates)
    log(f"distilling {recipe.teacher} into {recipe.student.name} (distillclip) on pairs {recipe.data.pairs}")
    distilled = distill_clip(recipe, out_dir=run_dir, progress=progress)
    model, spec, teacher = distilled.model, distilled.spec, distilled.teacher
    metrics = distilled.metrics
    log(f"zero-shot: teacher {metrics['teacher_zero_shot']:.4f}, student {metrics['student_zero_shot']:.4f}, "
        f"retention {metrics['zero_shot_retention']:.4f}")
    settings = BenchSettings(warmup=recipe.bench.warmup, iterations=recipe.bench.iterations,
                             max_seconds=recipe.bench.max_seconds, throughput_batch=recipe.bench.throughput_batch,
                             threads=recipe.bench.threads or target.threads, memory=recipe.bench.memory)
    t_enc = teacher_encoder(teacher)
    teacher_classes = t_enc.class_embeddings(test.class_names, templates)
    teacher_rows = _teacher_rows(teacher, teacher_classes, metrics["teacher_zero_shot"], settings)

    calibration = sample_images(open_image_dataset(recipe.data.test, "train"), spec.preprocess,
                                recipe.data.calibration_count, recipe.seed)
    parity_images = sample_images(test, spec.preprocess, recipe.export.parity_samples, recipe.seed)
    import open_clip

    prompts = [t.format(c) for c in test.class_names for t in templates][:64]
    parity_tokens = open_clip.SimpleTokenizer(context_length=int(spec.context_length or 77))(prompts).numpy()
    teacher_features = t_enc.image_features(test)
    eval_path = run_dir / "eval_data.npz"
    np.savez(eval_path, images=sample_images(test, spec.preprocess, 0), labels=np.asarray(test.labels),
             teacher_logits=(teacher.logit_scale * teacher_features @ teacher_classes.T).numpy())

    artifacts: list[Path] = []
    failed: list[Any] = []
    for backend, precision in plan:
        log(f"exporting image/text/zero-shot towers to {backend}-{precision}")
        try:
            exported = export_dual_encoder(model, spec, backend, precision, run_dir / "artifacts",
                                           class_names=test.class_names, templates=templates, calibration=calibration,
                                           parity_images=parity_images, parity_tokens=parity_tokens,
                                           source_checkpoint=str(distilled.checkpoint_dir), opset=recipe.export.opset)
            artifacts += [a.path for a in exported.values()]
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - one backend failing must not lose the others
            failed.append(ReportRow.failed(spec.name, f"export: {type(exc).__name__}: {exc}", backend=backend, precision=precision))
            log(f"  {backend}-{precision} failed: {one_line(str(exc))}")
    log(f"benchmarking {len(artifacts)} artifacts")
    rows = bench_artifacts(artifacts, settings, data=eval_path, teacher_row=teacher_rows[-1])
    own = tower_params(model)
    flops = (next((r.flops_per_tower for r in rows if r.role == "reference" and r.flops_per_tower), None) or {})
    for row in rows:
        if row.role == "student":
            tower = "text" if row.name.endswith("-text") else "image"
            row.params, row.flops = own[tower], flops.get(tower, row.flops)
    rows = teacher_rows[:-1] + rows + failed  # bench_artifacts already put the fused teacher row first
    write_json(run_dir / "distillclip_build.json", {"metrics": metrics, "artifacts": [str(a) for a in artifacts]})
    notes = [
        f"recipe {recipe.name}: distillclip, teacher {recipe.teacher}, student {spec.name}, pairs {recipe.data.pairs}, "
        f"test {recipe.data.test} ({len(test)} held-out images)",
        f"zero-shot top-1 (PyTorch, prompt ensemble '{recipe.data.templates}'): teacher {metrics['teacher_zero_shot']:.4f}, "
        f"student {metrics['student_zero_shot']:.4f}, retention {metrics['zero_shot_retention']:.4f}; "
        "per backend/precision in the -zeroshot rows",
        f"full evaluation: edgeclip eval --model {distilled.checkpoint_dir} --suite zero-shot,linear-probe,shift,retrieval",
        f"build took {time.perf_counter() - started:.0f} s",
    ]
    return rows, artifacts, notes


def build(recipe: Recipe, target: Any, plan: list[tuple[str, str]], *, out_dir: str | Path | None, progress: bool,
          started: float) -> Any:
    """The whole `edgeclip build` for a distillclip recipe: run directory, rows, report, budgets."""
    from edgeclip.bench.environment import collect_environment
    from edgeclip.bench.report import Report, console_table, write_report
    from edgeclip.build import BuildResult, default_run_dir, log
    from edgeclip.students.registry import STUDENTS

    STUDENTS.get(recipe.student.name)  # unknown student → close-match error before anything is written
    run_dir = Path(out_dir) if out_dir else default_run_dir(recipe, target.name)
    if (run_dir / "report.json").exists():
        raise UserError(f"{run_dir} already holds a finished build; pass another --out or remove it")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "recipe.json", {"recipe": recipe.to_dict(), "target": target.to_dict()})
    log(f"run directory {run_dir}; target {target.name}; plan {', '.join(f'{b}-{p}' for b, p in plan)}")
    rows, artifacts, notes = build_distillclip(recipe, target, plan, run_dir, progress=progress, log=log, started=started)
    if not target.measurable_here:
        notes.append(f"target {target.name}: artifacts are built here but must be measured on the device "
                     "(devices/runner/, or `edgeclip bench --remote user@host`); budgets are not checked here")
    report = Report(rows=rows, environment=collect_environment(threads=recipe.bench.threads or target.threads),
                    run_id=run_dir.name, notes=notes)
    report.apply_target(target, measured_on_target=target.measurable_here)
    paths = write_report(report, run_dir)
    print(console_table(report))
    return BuildResult(run_dir=run_dir, report=report, report_paths=paths, artifacts=artifacts)
