"""Latency-aware student choice: `edgeclip build --latency-budget MS` (recipe `search:`).

The candidates are the recipe's students × image sizes × pruning ratios (config.SearchConfig).
1. `time_candidates`: every candidate is exported with the product's exporter to the target's
   backend and timed by the benchmark harness (interleaved, batch 1, the target's thread count).
   Latency does not depend on the weights, so untrained students are timed — a pruned candidate
   is the random-weight student pruned at its ratio: torch-pruning cuts every layer by the same
   ratio, so the layer widths, hence the latency, are those of the trained student pruned later.
   No candidate within the budget → one-line UserError naming the fastest measured, before any
   training.
2. `distill_candidates`: only the candidates within the budget are trained (one distillation per
   student × size; pruned ones are pruned from it and recovered with KD, as `edgeclip compress
   prune` does) and the best retention wins (ties: the faster).
The outcome's `record()` is the report's `student_search` block: every candidate with latency,
retention (None when over the budget: never trained), budget flag, Pareto flag and the choice
(bench/pareto.py renders it as a table and a plot).

`time_candidates` also takes trained checkpoints (`Candidate.checkpoint`): benchmarks/cifar10_pareto.py
times finished runs with it.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from edgeclip.backends import get_backend
from edgeclip.bench.harness import bench_artifacts
from edgeclip.bench.pareto import PLOT_NAME, pareto_front, pareto_png
from edgeclip.config import BenchConfig, PruneConfig
from edgeclip.distill.methods import run_distillation
from edgeclip.errors import UserError
from edgeclip.exporters import export_model
from edgeclip.io_utils import atomic_path
from edgeclip.students.spec import Deployable

SEARCH_DIR = "search"  # <run>/search/<student>@<size>/: one distillation per student × size
SEARCH_PRECISIONS = ("fp32", "fp16")  # int8 timing needs calibration images, which exist only after training


@dataclass
class Candidate:
    """One point of the search: a registered student at an input size, pruned by `prune_ratio`
    (0 = not pruned); `checkpoint` (a trained student dir) is timed instead of a fresh build."""

    student: str
    image_size: int
    prune_ratio: float = 0.0
    checkpoint: str = ""
    retention: float | None = None
    info: dict[str, Any] = field(default_factory=dict)  # anything a caller wants carried into the record

    @property
    def group(self) -> str:
        """The distillation this candidate comes from (pruned candidates share their student's)."""
        return f"{self.student}@{self.image_size}"

    @property
    def label(self) -> str:
        return self.group + (f"+pruned{round(self.prune_ratio * 100)}" if self.prune_ratio else "")


@dataclass
class Timed:
    candidate: Candidate
    latency_ms: float  # p50, batch 1
    latency: dict[str, Any]  # the harness's full latency block (percentiles, round_p50)
    params: int | None
    flops: int | None


@dataclass
class SearchOutcome:
    timed: list[Timed]
    budget_ms: float | None
    backend: str
    precision: str
    threads: int
    measured_on: str
    chosen: Timed | None = None
    distilled: Any = None  # the chosen student's distillation result (classifier KD's DistillResult)
    deployables: list[Any] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        front = pareto_front([(t.latency_ms, t.candidate.retention) for t in self.timed])
        rows = []
        for t, on_front in zip(self.timed, front):
            c = t.candidate
            rows.append({"label": c.label, "student": c.student, "image_size": c.image_size, "prune_ratio": c.prune_ratio,
                         "checkpoint": c.checkpoint or None, "params": t.params, "flops": t.flops,
                         "latency_ms": t.latency_ms, "latency": t.latency, "retention": c.retention,
                         "retention_note": None if c.retention is not None else (
                             "not trained (over budget)" if self.budget_ms is not None and t.latency_ms > self.budget_ms
                             else "not trained"),
                         "meets_budget": None if self.budget_ms is None else t.latency_ms <= self.budget_ms,
                         "pareto": on_front, "chosen": t is self.chosen, **c.info})
        choice = None
        if self.chosen is not None:
            within = [t for t in self.timed if self.budget_ms is None or t.latency_ms <= self.budget_ms]
            choice = (f"Chosen: **{self.chosen.candidate.label}** — the best retention "
                      f"({self.chosen.candidate.retention:.4f}) of the {len(within)} candidate(s) within the budget, "
                      f"{self.chosen.latency_ms:.3f} ms p50; timed on {self.measured_on}.")
        return {"budget_ms": self.budget_ms, "backend": self.backend, "precision": self.precision, "threads": self.threads,
                "measured_on": self.measured_on, "candidates": rows, "choice": choice}


# --- the candidates ---------------------------------------------------------------------------


def candidate_grid(recipe: Any) -> list[Candidate]:
    """students × image sizes × pruning ratios from the recipe's `search:` (empty = the recipe's own)."""
    cfg = recipe.search
    students = list(cfg.students) or [recipe.student.name]
    sizes = [int(s) for s in cfg.image_sizes] or [int(recipe.student.image_size)]
    ratios = [float(r) for r in cfg.prune_ratios] or [0.0]
    return [Candidate(student, size, ratio) for student in students for size in sizes for ratio in ratios]


def check_search(recipe: Any) -> None:
    """Cheap checks of `search:` (plan time, before anything is written or trained)."""
    # lazy: defers torch
    from edgeclip.students.registry import STUDENTS

    cfg = recipe.search
    if cfg.latency_budget_ms < 0:
        raise UserError(f"--latency-budget must be > 0 ms, got {cfg.latency_budget_ms:g}; e.g. --latency-budget 2")
    if not cfg.latency_budget_ms:
        return
    if recipe.distill.method != "classifier_kd":
        raise UserError(f"a latency budget picks among classifier students; distill.method is '{recipe.distill.method}' — "
                        "drop --latency-budget or use a classifier_kd recipe")
    if recipe.student.checkpoint:
        raise UserError("--latency-budget searches registered students, but the recipe starts from a trained checkpoint "
                        "(student.checkpoint); drop one of them")
    if recipe.prune.ratio:
        raise UserError("with --latency-budget, pruning is one of the searched candidates: set search.prune_ratios "
                        f"(e.g. [0, {recipe.prune.ratio:g}]) instead of prune.ratio")
    if cfg.precision not in SEARCH_PRECISIONS:
        raise UserError(f"search.precision '{cfg.precision}' cannot be timed before training; use one of "
                        f"{', '.join(SEARCH_PRECISIONS)} (the build still exports int8 for the chosen student)")
    for candidate in candidate_grid(recipe):
        entry = STUDENTS.get(candidate.student)  # unknown → close-match error
        if entry.kind != "classifier":
            raise UserError(f"search.students: '{candidate.student}' is a {entry.kind}, not a classifier; "
                            "list classifier students (edgeclip list students)")
        if candidate.image_size < 8:
            raise UserError(f"search.image_sizes: {candidate.image_size} is too small; use sizes >= 8, e.g. [32, 64]")
        if not 0.0 <= candidate.prune_ratio < 1.0:
            raise UserError(f"search.prune_ratios: {candidate.prune_ratio:g} is not in [0, 1); e.g. [0, 0.5]")


def candidate_model(candidate: Candidate, class_names: Sequence[str]) -> tuple[Any, Any]:
    """(model, spec) to time: the trained checkpoint, else the registered student (random weights),
    pruned at the candidate's ratio; spec.name is the candidate's label."""
    # lazy: defers torch
    from edgeclip.compress.prune import prune_model
    from edgeclip.students.checkpoint import load_checkpoint
    from edgeclip.students.registry import create_student

    if candidate.checkpoint:
        model, spec, _ = load_checkpoint(candidate.checkpoint)
        if spec.preprocess.size != candidate.image_size:
            raise UserError(f"{candidate.checkpoint} was trained at {spec.preprocess.size}px, not {candidate.image_size}px; "
                            "time another size with a fresh candidate (no checkpoint)")
    else:
        model, spec = create_student(candidate.student, class_names=list(class_names), image_size=candidate.image_size)
        if candidate.prune_ratio:
            model, _ = prune_model(model, spec, PruneConfig(ratio=candidate.prune_ratio))
    spec = copy.deepcopy(spec)
    spec.name = candidate.label
    return model.eval(), spec


def time_candidates(candidates: Sequence[Candidate], class_names: Sequence[str], *, backend: str, precision: str,
                    threads: int, bench: Any, log: Callable[[str], None] = print) -> list[Timed]:
    """Export every candidate (temporary artifacts) and time them together with the benchmark harness."""
    config = BenchConfig(warmup=bench.warmup, iterations=bench.iterations, max_seconds=bench.max_seconds,
                         throughput_batch=0, threads=threads, memory=False, speed_reference="none")
    with tempfile.TemporaryDirectory(prefix="edgeclip-search-") as work:
        directories = []
        for index, candidate in enumerate(candidates):
            model, spec = candidate_model(candidate, class_names)
            log(f"timing candidate {candidate.label} ({backend} {precision})")
            directory = Path(work) / f"{index:03d}-{backend}-{precision}"
            artifact = export_model(model, spec, backend, precision, directory)
            if artifact.manifest.get("status") != "ready":
                raise UserError(f"candidate {candidate.label} could not be exported to {backend} {precision} "
                                f"({artifact.manifest.get('status')}): {artifact.manifest.get('next_step')}; "
                                "choose another search.backend or drop the candidate")
            directories.append(directory)
        rows = bench_artifacts(directories, config)
    timed = []
    for candidate, row in zip(candidates, rows):
        if not row.latency_ms or not row.latency_ms.get("p50"):
            raise UserError(f"candidate {candidate.label} could not be timed on {backend} ({row.status}); "
                            "choose another search.backend")
        timed.append(Timed(candidate, float(row.latency_ms["p50"]), dict(row.latency_ms), row.params, row.flops))
    return timed


def no_candidate_error(timed: Sequence[Timed], budget_ms: float, where: str) -> UserError:
    fastest = min(timed, key=lambda t: t.latency_ms)
    return UserError(f"no student candidate meets the latency budget of {budget_ms:g} ms on {where}: the fastest measured "
                     f"is {fastest.candidate.label} at {fastest.latency_ms:.3f} ms p50; raise --latency-budget to at least "
                     f"{fastest.latency_ms:.3g} or add smaller candidates (search.students, search.image_sizes, search.prune_ratios)")


def choose(timed: Sequence[Timed], budget_ms: float | None) -> Timed:
    """The trained candidate within the budget with the best retention; ties go to the faster."""
    within = [t for t in timed if t.candidate.retention is not None and (budget_ms is None or t.latency_ms <= budget_ms)]
    if not within:
        raise UserError(f"no trained candidate within {budget_ms:g} ms to choose from")
    return max(within, key=lambda t: (t.candidate.retention, -t.latency_ms))


# --- the build's search -----------------------------------------------------------------------


def search_where(plan: Any) -> tuple[str, str, int]:
    """(backend, precision, threads) the candidates are timed with: the target's first planned backend
    (or search.backend), search.precision, the bench threads or the target's."""
    cfg = plan.recipe.search
    backends = [b for b, _ in plan.exports]
    backend = cfg.backend or backends[0]
    if backend not in backends:
        raise UserError(f"search.backend '{backend}' is not planned for target {plan.target.name} ({', '.join(backends)}); "
                        "leave it empty or pick one of those")
    return backend, cfg.precision, int(plan.recipe.bench.threads or plan.target.threads or 0)


def time_build_candidates(plan: Any, log: Callable[[str], None] = print) -> SearchOutcome:
    """Step 1 of the build's search (nothing written to the run directory): time every candidate,
    refuse the build when none meets the budget."""
    recipe = plan.recipe
    backend, precision, threads = search_where(plan)
    if not get_backend(backend).can_run_here:
        raise UserError(f"the latency search times candidates here, but {backend} cannot run on this machine "
                        f"({get_backend(backend).why_not_here()}); set search.backend to one that can (e.g. onnx)")
    measured_on = "the target" if plan.target.measurable_here else f"this build host, not the target ({plan.target.name})"
    budget = float(recipe.search.latency_budget_ms)
    timed = time_candidates(candidate_grid(recipe), plan.data.class_names, backend=backend, precision=precision,
                            threads=threads, bench=recipe.bench, log=log)
    if not any(t.latency_ms <= budget for t in timed):
        raise no_candidate_error(timed, budget, f"{plan.target.name} ({backend} {precision}, {threads} thread(s), {measured_on})")
    return SearchOutcome(timed, budget, backend, precision, threads, measured_on)


def distill_candidates(plan: Any, outcome: SearchOutcome, progress: bool, log: Callable[[str], None] = print) -> SearchOutcome:
    """Step 2: train the candidates within the budget (one distillation per student × size, pruned
    ones pruned from it) and choose; fills `outcome.chosen`, `.distilled`, `.deployables`."""
    # lazy: defers torch
    from edgeclip.distill.compression import prune_checkpoint

    recipe = plan.recipe
    within = [t for t in outcome.timed if t.latency_ms <= outcome.budget_ms]
    distilled: dict[str, Any] = {}
    for t in within:
        c = t.candidate
        if c.group not in distilled:
            sub = dataclasses.replace(recipe, student=dataclasses.replace(recipe.student, name=c.student, image_size=c.image_size))
            log(f"distilling candidate {c.group} ({t.latency_ms:.3f} ms)")
            distilled[c.group] = run_distillation(sub, out_dir=plan.run_dir / SEARCH_DIR / c.group, progress=progress, data=plan.data)
        result = distilled[c.group]
        if not c.prune_ratio:
            c.checkpoint, c.retention = str(result.checkpoint_dir), float(result.metrics["retention"])
            continue
        out = plan.run_dir / SEARCH_DIR / c.label
        log(f"pruning candidate {c.label} + {recipe.prune.recover_epochs} epochs of KD recovery")
        settings = PruneConfig(ratio=c.prune_ratio, importance=recipe.prune.importance,
                               recover_epochs=recipe.prune.recover_epochs, recover_lr=recipe.prune.recover_lr)
        record = prune_checkpoint(result.checkpoint_dir, out, settings, data=recipe.data.train, progress=progress)
        # retention against the run's teacher accuracy (the pruning record's own teacher may differ)
        c.checkpoint = str(out)
        c.retention = float(record["after"]["accuracy"]) / float(result.metrics["teacher_accuracy"])
    outcome.chosen = choose(outcome.timed, outcome.budget_ms)
    chosen = outcome.chosen.candidate
    outcome.distilled = distilled[chosen.group]
    log(f"chose {chosen.label}: retention {chosen.retention:.4f}, {outcome.chosen.latency_ms:.3f} ms")
    if chosen.prune_ratio:
        # lazy: defers torch
        from edgeclip.students.checkpoint import load_checkpoint

        model, spec, _ = load_checkpoint(chosen.checkpoint)
        spec.name = f"{spec.name}+pruned{round(chosen.prune_ratio * 100)}"
        outcome.deployables = [Deployable(model, spec, Path(chosen.checkpoint), f"-pruned{round(chosen.prune_ratio * 100)}")]
    else:
        outcome.deployables = outcome.distilled.deployables()
    return outcome


def write_search_figure(record: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """pareto.png beside the report; returns the record with `figure` set."""
    with atomic_path(Path(run_dir) / PLOT_NAME) as tmp:
        tmp.write_bytes(pareto_png(record))
    return {**record, "figure": PLOT_NAME}
