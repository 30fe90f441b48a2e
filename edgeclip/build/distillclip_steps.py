"""`edgeclip build` steps for `distill.method: distillclip` (paper 001 dual encoders).

The same step interface as `build/steps.py` (which supplies `speed_reference`, `bench_config`,
`log`); what differs for a dual encoder:
- `distill`: `distill_clip`, wrapped so the build sees a zero-shot teacher and student
  (`teacher_accuracy` / `student_accuracy` are zero-shot top-1 on the held-out test split);
- `teacher_row`: the teacher's fused zero-shot classifier timed in PyTorch (the accuracy reference);
- `real_inputs`: also real prompt tokens (text-tower parity) and the teacher's zero-shot logits;
- `export_all`: per (backend, precision) the image tower, the text tower with its tokenizer and the
  fused zero-shot classifier (`exporters.dual`), so the report has a row per tower and per fused
  classifier, and zero-shot retention per backend and precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeclip.bench.flops import count_flops
from edgeclip.bench.latency import measure_latency
from edgeclip.bench.report import ReportRow, one_line
from edgeclip.build.plan import BuildPlan
from edgeclip.build.steps import RealInputs, bench_config, log, speed_reference  # noqa: F401 - the step interface
from edgeclip.config import BenchConfig
from edgeclip.data import open_image_dataset
from edgeclip.data.sampling import sample_images
from edgeclip.distill.distillclip.trainer import distill_clip
from edgeclip.errors import UserError
from edgeclip.eval.encoders import teacher_encoder
from edgeclip.eval.size import tower_params
from edgeclip.exporters.dual import export_dual_encoder
from edgeclip.exporters.towers import FusedZeroShotClassifier
from edgeclip.students.spec import Deployable
from edgeclip.teacher.templates import get_templates
from edgeclip.utils import count_params


class ZeroShotTeacher:
    """The CLIP teacher seen as a classifier over the test classes (prompt-ensemble head)."""

    def __init__(self, teacher: Any, class_names: list[str], templates: list[str]) -> None:
        self.clip, self.encoder = teacher, teacher_encoder(teacher)
        self.name = f"{teacher.name}-zeroshot"
        self.class_embeddings = self.encoder.class_embeddings(class_names, templates)
        self.module = FusedZeroShotClassifier(teacher.model, self.class_embeddings, teacher.logit_scale).eval()
        self.num_params = count_params(teacher.model.visual)

    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(images)

    @torch.no_grad()
    def logits(self, dataset: Any) -> torch.Tensor:
        return self.clip.logit_scale * self.encoder.image_features(dataset) @ self.class_embeddings.T


@dataclass
class DistilledDualEncoder:
    """What the build steps need from a DistillCLIP run."""

    result: Any  # DistillClipResult
    teacher: ZeroShotTeacher
    class_names: list[str]
    templates: list[str]

    @property
    def spec(self) -> Any:
        return self.result.spec

    @property
    def metrics(self) -> dict[str, Any]:
        m = self.result.metrics
        return {**m, "teacher_accuracy": m["teacher_zero_shot"], "student_accuracy": m["student_zero_shot"],
                "retention": m["zero_shot_retention"]}

    def deployables(self) -> list[Deployable]:
        """The unexported student (per-tower FLOPs come from its reference row); towers are exported in export_all."""
        return [Deployable(self.result.model, self.result.spec, self.result.checkpoint_dir)]


def distill(plan: BuildPlan, progress: bool) -> DistilledDualEncoder:
    recipe = plan.recipe
    log(f"distilling {recipe.teacher} into {recipe.student.name} (distillclip) on pairs {recipe.data.pairs}")
    result = distill_clip(recipe, out_dir=plan.run_dir, progress=progress)
    templates = get_templates(recipe.data.templates)
    class_names = list(plan.data.test.class_names)
    distilled = DistilledDualEncoder(result, ZeroShotTeacher(result.teacher, class_names, templates), class_names, templates)
    m = distilled.metrics
    log(f"zero-shot top-1: teacher {m['teacher_accuracy']:.4f}, student {m['student_accuracy']:.4f}, retention {m['retention']:.4f}")
    return distilled


def teacher_row(distilled: DistilledDualEncoder, config: BenchConfig) -> ReportRow:
    """The teacher's fused zero-shot classifier in PyTorch: the accuracy every retention divides by."""
    size = distilled.teacher.clip.preprocess.size
    example = torch.zeros(1, 3, size, size)
    forward = torch.no_grad()(distilled.teacher.forward_images)
    row = ReportRow(name=distilled.teacher.name, role="teacher", backend="torch", precision="fp32",
                    params=distilled.teacher.num_params, accuracy=distilled.metrics["teacher_accuracy"], retention=1.0,
                    notes="accuracy teacher: zero-shot (prompt ensemble) image tower + class embeddings, timed in PyTorch "
                          "before the artifacts (not interleaved)")
    row.flops = count_flops(forward, (example,))
    row.latency_ms = measure_latency(forward, example, warmup=config.warmup, iterations=config.iterations,
                                     max_seconds=config.max_seconds)
    return row


@dataclass
class DualRealInputs(RealInputs):
    tokens: np.ndarray = None  # type: ignore[assignment]  # real prompts for text-tower parity


def real_inputs(plan: BuildPlan, distilled: DistilledDualEncoder) -> DualRealInputs:
    import open_clip

    recipe, test = plan.recipe, plan.data.test
    preprocess = distilled.spec.preprocess
    calibration_data = open_image_dataset(recipe.data.calibration, "train") if recipe.data.calibration else plan.data.train
    calibration = sample_images(calibration_data, preprocess, recipe.data.calibration_count, recipe.seed)
    parity = sample_images(test, preprocess, recipe.export.parity_samples, recipe.seed)
    prompts = [t.format(c) for c in distilled.class_names for t in distilled.templates][:64]
    tokens = open_clip.SimpleTokenizer(context_length=int(distilled.spec.context_length or 77))(prompts).numpy()
    eval_path = plan.run_dir / "eval_data.npz"
    np.savez(eval_path, images=sample_images(test, preprocess, 0), labels=np.asarray(test.labels),
             teacher_logits=distilled.teacher.logits(test).numpy())
    return DualRealInputs(calibration, parity, eval_path, tokens=tokens.astype(np.int64))


def export_all(plan: BuildPlan, deployables: list[Deployable], inputs: DualRealInputs) -> tuple[list[Path], list[ReportRow]]:
    """Image tower, text tower (+ tokenizer) and fused zero-shot classifier per planned (backend, precision)."""
    (student,) = deployables
    class_names, templates = list(plan.data.test.class_names), get_templates(plan.recipe.data.templates)
    artifacts: list[Path] = []
    failed: list[ReportRow] = []
    for backend, precision in plan.exports:
        log(f"exporting {student.spec.name} image/text/zero-shot towers to {backend}-{precision}")
        try:
            exported = export_dual_encoder(student.model, student.spec, backend, precision, plan.run_dir / "artifacts",
                                           class_names=class_names, templates=templates, calibration=inputs.calibration,
                                           parity_images=inputs.parity, parity_tokens=inputs.tokens,
                                           source_checkpoint=str(student.checkpoint / "model.pt"), opset=plan.recipe.export.opset,
                                           tensorrt=plan.target.tensorrt)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - one backend failing must not lose the others
            failed.append(ReportRow.failed(student.spec.name, f"export: {type(exc).__name__}: {exc}", backend=backend,
                                           precision=precision))
            log(f"  {backend}-{precision} failed: {one_line(str(exc))}")
            continue
        for tower, artifact in exported.items():
            artifacts.append(artifact.path)
            log(f"  {backend}-{precision}-{tower}: {artifact.summary()}")
    return artifacts, failed


def finish_rows(rows: list[ReportRow], deployables: list[Deployable]) -> list[ReportRow]:
    """Params and FLOPs of each tower row are the tower's own, not the whole dual encoder's."""
    (student,) = deployables
    own = tower_params(student.model)
    flops = next((r.flops_per_tower for r in rows if r.role == "reference" and r.flops_per_tower), None) or {}
    for row in rows:
        if row.role == "student" and row.name.startswith(student.spec.name):
            tower = "text" if row.name.endswith("-text") else "image"
            row.params, row.flops = own[tower], flops.get(tower, row.flops)
    return rows
