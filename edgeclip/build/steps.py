"""The steps of `edgeclip build`, each a library call on data from the step before.

distill → time the teacher → real inputs (calibration, parity, evaluation) → export every
deployable for every planned (backend, precision) → speed reference → benchmark → report.
A backend that breaks becomes a failed row; bad input raises UserError before anything is written.

What a distillation result must offer the build (classifier KD's DistillResult does):
`deployables()`, `spec.preprocess`, `teacher` (name, num_params, forward_images, logits(dataset)),
`metrics["teacher_accuracy"]`, `metrics["student_accuracy"]`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeclip.bench.latency import measure_latency
from edgeclip.bench.report import ReportRow, one_line
from edgeclip.build.plan import BuildPlan, check_fused_preprocess
from edgeclip.build.speed_reference import speed_reference_arch, speed_reference_artifacts
from edgeclip.compress.int8_inputs import int8_images, int8_options, qat_record
from edgeclip.config import BenchConfig
from edgeclip.data import Subset, open_image_dataset
from edgeclip.data.sampling import sample_images, sample_indices
from edgeclip.distill.methods import run_distillation
from edgeclip.errors import UserError
from edgeclip.exporters import export_model
from edgeclip.students.spec import IMAGE_KINDS


def log(message: str) -> None:
    print(f"[edgeclip build] {message}", file=sys.stderr, flush=True)


def distill(plan: BuildPlan, progress: bool) -> Any:
    recipe = plan.recipe
    log(f"distilling {recipe.teacher} into {recipe.student.checkpoint or recipe.student.name} ({recipe.distill.method})")
    distilled = run_distillation(recipe, out_dir=plan.run_dir, progress=progress, data=plan.data)
    metrics = distilled.metrics
    log(f"teacher accuracy {metrics['teacher_accuracy']:.4f}, student {metrics['student_accuracy']:.4f}, "
        f"retention {metrics['retention']:.4f}")
    return distilled


def teacher_row(distilled: Any, config: BenchConfig) -> ReportRow:
    """The accuracy teacher as a report row: params, FLOPs and PyTorch latency of images → class logits.

    Timed before exporters and runtimes load their thread pools into this process: measured after
    them, the same teacher read ~80x slower in one quickstart run.
    """
    # lazy: defers torch
    import torch

    from edgeclip.bench.flops import count_flops

    teacher, size = distilled.teacher, distilled.spec.preprocess.size
    example = torch.zeros(1, 3, size, size)
    forward = torch.no_grad()(teacher.forward_images)
    row = ReportRow(name=teacher.name, role="teacher", backend="torch", precision="fp32", params=int(teacher.num_params),
                    accuracy=distilled.metrics["teacher_accuracy"], retention=1.0,
                    notes="accuracy teacher, timed in PyTorch on this machine before the artifacts (not interleaved)")
    row.flops = count_flops(forward, (example,))
    row.latency_ms = measure_latency(forward, example, warmup=config.warmup, iterations=config.iterations,
                                     max_seconds=config.max_seconds)
    return row


@dataclass
class RealInputs:
    calibration: np.ndarray  # train images for int8 calibration
    parity: np.ndarray  # test images compared against PyTorch at export
    eval_path: Path  # test images, labels and teacher logits for accuracy/agreement
    validation: np.ndarray | None = None  # train images, not calibration: the int8 sensitivity search (compress/int8.py)


def real_inputs(plan: BuildPlan, distilled: Any) -> RealInputs:
    """Real images, preprocessed the student's way: calibration from the train split (or
    data.calibration), parity and evaluation from the held-out test split."""
    recipe, data = plan.recipe, plan.data
    preprocess = distilled.spec.preprocess
    calibration, validation = int8_images(
        data.train, preprocess, recipe.int8, calibration_count=recipe.data.calibration_count, seed=recipe.seed,
        calibration_data=open_image_dataset(recipe.data.calibration, "train") if recipe.data.calibration else None)
    parity = sample_images(data.test, preprocess, recipe.export.parity_samples, recipe.seed)
    keep = sample_indices(len(data.test), recipe.bench.accuracy_samples, recipe.seed)
    eval_path = plan.run_dir / "eval_data.npz"
    np.savez(eval_path, images=sample_images(Subset(data.test, keep), preprocess, 0),
             labels=np.asarray(data.test.labels)[keep], teacher_logits=distilled.teacher.logits(data.test).numpy()[keep],
             class_names=np.asarray(data.test.class_names, dtype=str))  # labels are matched to each artifact by name
    return RealInputs(calibration, parity, eval_path, validation)


def export_all(plan: BuildPlan, deployables: list[Any], inputs: RealInputs) -> tuple[list[Path], list[ReportRow]]:
    """Every deployable for every planned (backend, precision); a backend that breaks is a failed row."""
    artifacts, failed = [], []
    frame = check_fused_preprocess(plan.recipe, plan.exports)  # export.fused_preprocess: image models take raw frames
    for deployable in deployables:
        fused = frame if frame is not None and deployable.spec.kind in IMAGE_KINDS else None
        # Parity frames: the same test images, stretched to the frame size (accuracy in the bench needs a dataset
        # spec: eval_data.npz holds preprocessed floats, so a fused row says accuracy was not measured).
        parity = inputs.parity if fused is None else sample_images(
            plan.data.test, replace(deployable.spec.preprocess, fused_frame=fused), plan.recipe.export.parity_samples,
            plan.recipe.seed)
        for backend, precision in plan.exports:
            if deployable.precisions is not None and precision not in deployable.precisions:
                continue
            name = f"{backend}-{precision}{deployable.suffix}"
            log(f"exporting {deployable.spec.name} {name}")
            text = deployable.spec.is_text
            try:
                artifact = export_model(deployable.model, deployable.spec, backend, precision,
                                        plan.run_dir / "artifacts" / name,
                                        # fused: int8 is refused at plan time, and calibration is float tensors
                                        calibration=None if text or fused is not None else inputs.calibration,
                                        parity_inputs=None if text else parity,
                                        source_checkpoint=str(deployable.checkpoint / "model.pt"), opset=plan.recipe.export.opset,
                                        tensorrt=plan.target.tensorrt,
                                        int8=None if text else int8_options(plan.recipe.int8, inputs.validation, plan.target,
                                                                                           qat_record(deployable.checkpoint)),
                                        fused_preprocess=fused)
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - one backend failing must not lose the others
                failed.append(ReportRow.failed(deployable.spec.name, f"export: {type(exc).__name__}: {exc}",
                                               backend=backend, precision=precision))
                log(f"  {name} failed: {one_line(str(exc))}")
                continue
            artifacts.append(artifact.path)
            log(f"  {name}: {artifact.summary()}")
    return artifacts, failed


def finish_rows(rows: list[ReportRow], deployables: list[Any]) -> list[ReportRow]:
    """Classifier rows need nothing after benchmarking (dual encoders attach tower metrics here)."""
    return rows


def speed_reference(plan: BuildPlan) -> tuple[list[Path], list[ReportRow]]:
    arch = speed_reference_arch(plan.recipe)
    if arch is None:
        return [], []
    return speed_reference_artifacts(arch, plan.exports, log=log, tensorrt=plan.target.tensorrt)


def private_copies(artifacts: list[Path], folder: Path) -> list[Path]:
    """Copies of the artifacts still to be built on a device (cached speed references are shared by
    every build; the engine one device builds must not land in them)."""
    import json
    import shutil

    copies = []
    for artifact in artifacts:
        if json.loads((artifact / "manifest.json").read_text()).get("status") == "needs_target_build":
            copy = folder / artifact.name
            if not copy.exists():
                shutil.copytree(artifact, copy)
            artifact = copy
        copies.append(artifact)
    return copies


def bench_config(plan: BuildPlan) -> BenchConfig:
    """The recipe's bench settings with the target's thread count when the recipe leaves it at 0."""
    import dataclasses

    return dataclasses.replace(plan.recipe.bench, threads=plan.recipe.bench.threads or plan.target.threads)
