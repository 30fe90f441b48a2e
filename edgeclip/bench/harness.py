"""Benchmark several backends fairly, and evaluate one on labelled images.

`benchmark_interleaved` times backends round-robin: each cycle times every backend once, so
thermal throttling, frequency scaling or a noisy neighbour during the run affects all backends
alike instead of penalising whichever happened to run last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edgeclip.backends import BACKENDS, get_backend
from edgeclip.bench.equal_resolution import (
    NATIVE_IS_TEACHER_SIZE,
    equal_resolution_record,
    equal_resolution_runs,
    failed_record,
    native_record,
)
from edgeclip.bench.latency import benchmark_interleaved, measure_throughput
from edgeclip.bench.memory import measure_peak_memory
from edgeclip.bench.metrics import agreement, retention, top1_accuracy
from edgeclip.bench.qualify import (
    DEGENERATE_SHARE,
    accuracy_flags,
    baselines,
    confusion,
    per_class_accuracy,
    prediction_spread,
    retention_flags,
)
from edgeclip.compress.int8_rule import REJECTED, REJECTED_NOTE
from edgeclip.bench.report import ReportRow, one_line
from edgeclip.bench.roof import apply_roof, machine_roof
from edgeclip.config import BenchConfig
from edgeclip.data import open_image_dataset
from edgeclip.data.class_match import align_classes, class_hint, mismatch_table
from edgeclip.data.preprocess import Preprocess
from edgeclip.data.sampling import sample_images
from edgeclip.errors import UserError
from edgeclip.io_utils import load_npz
from edgeclip.manifest import read_manifest
from edgeclip.runtimes import load_runtime
from edgeclip.students.spec import LOGIT_KINDS
from edgeclip.targets import backend_available, list_targets
from edgeclip.utils import count_params

RunFn = Callable[[Any], Any]


def run_batched(run_fn: RunFn, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Outputs of `run_fn` over `images` in batches, concatenated along axis 0."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    outputs = [np.asarray(run_fn(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
    return np.concatenate(outputs, axis=0)


def evaluate_runtime(run_fn: RunFn, images: np.ndarray, labels: np.ndarray,
                     reference_logits: np.ndarray | None = None, teacher_logits: np.ndarray | None = None,
                     *, batch_size: int = 32) -> dict[str, Any]:
    """Top-1 accuracy on (images, labels), and top-1 agreement with the teacher and the reference.

    reference = the unexported PyTorch model the artifact came from (export fidelity);
    teacher = the CLIP teacher (what distillation kept). Returns the logits too, so a caller can
    use one runtime's outputs as another's reference.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"expected images (N,3,H,W) and N labels, got {images.shape} and {labels.shape}")
    logits = run_batched(run_fn, images, batch_size)
    return {
        "accuracy": top1_accuracy(logits, labels),
        "agreement_teacher": None if teacher_logits is None else agreement(logits, teacher_logits),
        "agreement_reference": None if reference_logits is None else agreement(logits, reference_logits),
        "num_samples": int(len(labels)),
        "logits": logits,
    }


# ---- artifacts -> report rows (used by `edgeclip bench` and the build orchestrator) ----------

@dataclass
class EvalData:
    images: np.ndarray  # (N,3,H,W) float32, preprocessed
    labels: np.ndarray  # (N,)
    teacher_logits: np.ndarray | None = None
    source: str = ""


def load_eval_data(spec: str | Path, preprocess: Any, *, split: str = "test", limit: int = 0,
                   class_names: Sequence[str] | None = None, class_map: Mapping[str, str] | None = None) -> EvalData:
    """Labelled evaluation images: an .npz (images, labels[, teacher_logits][, class_names]) or a
    dataset spec (`digits`, a folder) preprocessed with the artifact's own preprocessing.

    With `class_names` (the model's, in its output order) labels are matched to them by name: a
    folder's classes are sorted alphabetically, the model's are in training order (data/class_match.py).
    """
    path = Path(spec)
    if path.suffix == ".npz":
        if not path.is_file():
            raise UserError(f"evaluation data {path} does not exist; pass an .npz with images and labels or a dataset spec")
        npz = load_npz(path, "evaluation data")  # never unpickles: a pickle named .npz is refused in one line
        if not {"images", "labels"} <= set(npz):
            raise UserError(f"{path} lacks 'images' and 'labels' arrays (has {sorted(npz)}); save them with np.savez")
        images, labels = npz["images"], npz["labels"]
        if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels) or not len(labels) \
                or not np.issubdtype(images.dtype, np.number) or not np.issubdtype(labels.dtype, np.integer):
            raise UserError(f"{path}: images must be numeric (N,C,H,W) and labels N integers, got images "
                            f"{images.dtype}{list(images.shape)} and labels {labels.dtype}{list(labels.shape)}; "
                            "save preprocessed images with np.savez")
        labels = labels.astype(np.int64)
        if class_names is not None and "class_names" in npz:
            labels = _labels_by_name(labels, [str(n) for n in npz["class_names"]], class_names, class_map, str(path))
        data = EvalData(images.astype(np.float32), labels, npz.get("teacher_logits"), str(path))
    else:
        dataset = open_eval_dataset(spec, split, class_names, class_map)

        data = EvalData(sample_images(dataset, preprocess, 0), np.asarray(dataset.labels, np.int64),
                        source=f"{spec} ({split} split)")
    if limit and limit < len(data.labels):
        data = EvalData(data.images[:limit], data.labels[:limit],
                        None if data.teacher_logits is None else data.teacher_logits[:limit], data.source)
    return data


def open_eval_dataset(spec: str | Path, split: str, class_names: Sequence[str] | None,
                      class_map: Mapping[str, str] | None = None) -> Any:
    """The dataset behind `--data`, its labels matched by name to `class_names` (when given)."""
    dataset = open_image_dataset(str(spec), split)
    if class_names is None:
        return dataset
    return align_classes(dataset, class_names, class_map, what=f"evaluation data {spec}", model="the artifact")


def check_eval_classes(spec: str | Path | None, split: str, manifests: Sequence[dict[str, Any]],
                       class_map: Mapping[str, str] | None = None) -> None:
    """Before any measurement: every classifier artifact's classes must cover the data's (by name)."""
    if spec is None or Path(spec).suffix == ".npz":
        return
    for names in {tuple(m.get("class_names") or ()) for m in manifests if m.get("kind") in LOGIT_KINDS}:
        if names:
            open_eval_dataset(spec, split, list(names), class_map)


def _labels_by_name(labels: np.ndarray, data_names: list[str], class_names: Sequence[str],
                    class_map: Mapping[str, str] | None, source: str) -> np.ndarray:
    renamed = [(class_map or {}).get(n, n) for n in data_names]
    extra = [n for n in renamed if n not in list(class_names)]
    if extra:
        raise UserError(f"evaluation data {source} has classes the artifact does not predict "
                        f"{mismatch_table(renamed, class_names)}; {class_hint(renamed, class_names)}")
    return np.asarray([list(class_names).index(renamed[y]) for y in labels], dtype=np.int64)


@dataclass
class BenchItem:
    """One row being measured: an exported artifact, or the unexported PyTorch model behind one."""

    row: ReportRow
    manifest: dict[str, Any]
    directory: Path | None = None  # None for a PyTorch reference
    runtime: Any = None  # has .run(batch) when this machine can run it
    reference: "BenchItem | None" = None  # the PyTorch model an artifact was exported from


def _needs_target(backend: str) -> str:
    where = [t.name for t in list_targets() if backend in t.backends]
    why = get_backend(backend).why_not_here()
    return (f"needs_target: {backend} does not run here ({why}); it runs on {', '.join(where) or 'its own device'}: "
            "bench there (--remote user@host)")


def _example_batch(manifest: dict[str, Any], batch: int, seed: int = 0) -> np.ndarray:
    """Random input of the artifact's declared shape: images (N,3,S,S), uint8 frames (N,H,W,3) of a
    fused-preprocessing artifact, or token ids (N,context)."""
    declared = manifest["inputs"][0]
    fixed = declared["shape"][0] if isinstance(declared["shape"][0], int) else None
    shape = [fixed or batch] + [int(d) for d in declared["shape"][1:]]
    rng = np.random.default_rng(seed)
    if declared.get("dtype") == "uint8":
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    if str(declared.get("dtype", "float32")).startswith("int"):
        return rng.integers(1, 400, size=shape, dtype=np.int64)
    return rng.standard_normal(shape).astype(np.float32)


def _reference_item(source: str, models: Mapping[str, Any], threads: int = 0) -> BenchItem | None:
    """The unexported PyTorch model of `source` (in memory when the caller has it, else loaded),
    timed with the same thread count as the artifacts (`--threads`): with torch's default it would
    take every core while the others are timed."""
    # lazy: defers torch
    from edgeclip.bench.flops import count_flops, count_tower_flops

    if source in models:
        model, spec = models[source]
    elif Path(source).exists():
        # lazy: defers torch
        from edgeclip.students.checkpoint import load_checkpoint

        model, spec, _ = load_checkpoint(source)
    else:
        return None
    row = ReportRow(name=spec.name, role="reference", kind=spec.kind, backend="torch", precision="fp32", params=count_params(model),
                    notes=f"unexported PyTorch model from {source}")
    if spec.kind == "dual_encoder":  # exported per tower; the reference row carries the per-tower FLOPs
        row.flops_per_tower = count_tower_flops(model, spec.preprocess.size, spec.context_length)
        return BenchItem(row, {})
    # lazy: defers torch
    from edgeclip.runtimes.torch_runtime import TorchRuntime

    runtime = TorchRuntime(model, spec, threads=threads)
    row.flops = count_flops(model, (torch_tensor(_example_batch(runtime.manifest, 1)),))
    return BenchItem(row, runtime.manifest, runtime=runtime)


def torch_tensor(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(array)


def _artifact_item(directory: Path, config: BenchConfig, references: dict[str, BenchItem | None],
                   models: Mapping[str, Any]) -> BenchItem:
    manifest = read_manifest(directory)  # missing / corrupt -> UserError, exit 2
    item = BenchItem(ReportRow(name=str(manifest.get("name") or directory.name), role=manifest.get("role", "student"),
                               kind=manifest.get("kind"), backend=manifest["backend"], precision=manifest["precision"],
                               size_mb=(manifest.get("size_bytes") or 0) / 1e6 or None, notes=str(directory)),
                     manifest, directory)
    source = (manifest.get("source_checkpoint") or {}).get("path")
    if source:
        if source not in references:
            references[source] = _reference_item(source, models, config.threads)
        item.reference = references[source]
    if item.reference is not None:
        ref_row = item.reference.row
        item.row.params = ref_row.params
        tower = {"image_encoder": "image", "text_encoder": "text"}.get(manifest.get("kind", ""))
        item.row.flops = ref_row.flops if ref_row.flops is not None else (ref_row.flops_per_tower or {}).get(tower)
    else:
        item.row.params, item.row.flops = manifest.get("params"), manifest.get("flops")
    compatibility = manifest.get("tensorrt_compatibility")
    if compatibility:  # which TensorRT the kit was checked against, on every row
        # lazy: defers onnx
        from edgeclip.exporters.tensorrt_support import describe

        item.row.notes = "; ".join(filter(None, [item.row.notes, describe(compatibility)]))
    if manifest.get("status") == REJECTED:
        # Measured like any artifact so the report shows what it would have given; the verdict never
        # picks it (compress/int8_rule.py), and a failed parity still fails the row (parity_status).
        item.row.notes = "; ".join(filter(None, [item.row.notes, REJECTED_NOTE + one_line(manifest.get("next_step") or "")]))
    if manifest.get("status") == "failed":
        item.row.status = f"failed: {one_line(manifest.get('next_step') or 'export failed')}"
    elif manifest.get("status", "ready") not in ("ready", REJECTED):
        item.row.status = f"needs_target: {one_line(manifest.get('next_step') or manifest['status'])}"
    elif not backend_available(manifest["backend"]):
        item.row.status = _needs_target(manifest["backend"])
    else:
        item.runtime = load_runtime(directory, threads=config.threads)  # corrupt model -> UserError
    return item


def parity_status(manifest: dict[str, Any], status: str) -> str:
    """A row's status after its artifact's parity: a failed parity (at export, or of the engine on the
    device) fails the row whatever else it is; parity that never ran turns an "ok" into a visible
    "skipped" — a check that did not run never reads as a pass."""
    parity = manifest.get("parity") or {}
    if manifest.get("status") == "failed":  # e.g. a TensorRT kit its TensorRT would refuse: that cause stays
        return status
    if parity.get("passed") is False:
        return f"failed: parity against PyTorch failed ({parity.get('scope') or 'at export'}; see manifest.json parity)"
    if parity.get("passed") is None and status == "ok":
        return f"skipped: parity not verified ({parity.get('reason') or parity.get('status') or 'no parity record'})"
    return status


def bench_artifacts(artifact_dirs: Sequence[str | Path], config: BenchConfig | None = None, *,
                    data: str | Path | None = None, split: str = "test", limit: int = 0,
                    teacher_accuracy: float | None = None, teacher_row: ReportRow | None = None,
                    models: Mapping[str, Any] | None = None, class_map: Mapping[str, str] | None = None) -> list[ReportRow]:
    """Benchmark exported artifacts on this machine into report rows.

    Missing/corrupt artifacts raise UserError (via the runtimes). A backend this machine cannot
    run is a `needs_target` row; one that breaks while running is a `failed` row; an artifact whose
    parity failed is a `failed` row whatever else it is. When the manifest names its source
    checkpoint, the unexported PyTorch model joins as the reference row (params, FLOPs,
    agreement_reference) — taken from `models` (source path -> (model, spec)) when the caller
    already holds it in memory. A measured `teacher_row` (e.g. from `edgeclip build`) stands in for
    the accuracy-only teacher row and sets the accuracy retention is computed from.
    """
    config = config or BenchConfig()
    references: dict[str, BenchItem | None] = {}
    artifacts = [_artifact_item(Path(d), config, references, models or {}) for d in artifact_dirs]
    items = [ref for ref in references.values() if ref is not None] + artifacts
    runs: dict[Any, RunFn] = {i: item.runtime.run for i, item in enumerate(items) if item.runtime is not None}
    inputs: dict[Any, Any] = {i: _example_batch(items[i].manifest, 1) for i in runs}
    equal_runs = equal_resolution_runs(items, config.threads)  # timed in the same interleaved cycles
    runs.update({key: run for key, (run, _) in equal_runs.items()})
    inputs.update({key: batch for key, (_, batch) in equal_runs.items()})
    stats = benchmark_interleaved(runs, inputs, warmup=config.warmup, iterations=config.iterations,
                                  max_seconds=config.max_seconds * max(1, len(runs)))
    for key, result in stats.items():
        if key in equal_runs:
            size = int(equal_runs[key][1].shape[-1])
            items[key[1]].row.equal_resolution = (failed_record(size, result["error"]) if "error" in result
                                                  else equal_resolution_record(size, result))
            continue
        item = items[key]
        if "error" in result:
            item.row.status = f"failed: {one_line(result['error'])}"
            item.runtime = None
            continue
        item.row.latency_ms = result
        if config.throughput_batch > 0:
            item.row.throughput = _guarded(item.row, lambda: measure_throughput(
                item.runtime.run, _example_batch(item.manifest, config.throughput_batch), max_seconds=config.max_seconds))
        if config.memory and item.directory is not None and _memory_measurable(item.manifest):
            item.row.peak_mem_mb = _guarded(item.row, lambda: measure_peak_memory(item.directory, threads=config.threads))

    for item in artifacts:  # a student already at the teacher's size: its own timing is the equal-size one
        equal = item.row.equal_resolution
        if equal and equal.get("note") == NATIVE_IS_TEACHER_SIZE:
            item.row.equal_resolution = native_record(equal["input_size"], item.row.latency_ms)
    if config.roof:
        apply_roof([item.row for item in items], machine_roof(config.threads))
    teacher = None
    if data is not None:
        teacher = _evaluate_items(items, data, split, limit, teacher_accuracy, teacher_row, class_map)
    for item in artifacts:
        item.row.status = parity_status(item.manifest, item.row.status)
    return ([teacher] if teacher else []) + [item.row for item in items]


def _memory_measurable(manifest: dict[str, Any]) -> bool:
    backend = manifest.get("backend")
    return backend in BACKENDS and BACKENDS.get(backend).memory_measurable


def _guarded(row: ReportRow, measure: Callable[[], Any]) -> Any:
    try:
        return measure()
    except Exception as exc:  # one measurement failing fails its row, not the run
        row.status = f"failed: {one_line(f'{type(exc).__name__}: {exc}')}"
        return None


def _evaluate_items(items: list[BenchItem], data: str | Path, split: str, limit: int,
                    teacher_accuracy: float | None, teacher_row: ReportRow | None,
                    class_map: Mapping[str, str] | None = None) -> ReportRow | None:
    """Accuracy / agreement for classifier rows (references come first in `items`, so artifacts can
    agree with them); returns the teacher row when a teacher accuracy is known."""
    cache: dict[str, EvalData] = {}
    logits: dict[int, np.ndarray] = {}
    teacher_logits = None
    for item in items:
        if item.runtime is None:
            continue
        if item.manifest.get("kind") not in LOGIT_KINDS:
            item.row.notes = "; ".join(filter(None, [item.row.notes, "accuracy needs a classifier; embeddings not scored"]))
            continue
        preprocessing = item.manifest["preprocessing"]
        if preprocessing.get("fused_frame") and Path(data).suffix == ".npz":
            # An .npz holds preprocessed float tensors; this artifact takes raw frames (a visible note, not a pass).
            item.row.notes = "; ".join(filter(None, [item.row.notes, "accuracy not measured: the artifact takes uint8 "
                                                     "frames (fused preprocessing), the .npz holds preprocessed floats; "
                                                     "pass a dataset spec (--data digits / a folder) instead"]))
            continue
        class_names = item.manifest.get("class_names") or None
        cache_key = json.dumps([preprocessing, class_names], sort_keys=True)
        if cache_key not in cache:
            cache[cache_key] = load_eval_data(data, Preprocess.from_dict(preprocessing), split=split, limit=limit,
                                              class_names=class_names, class_map=class_map)
        eval_data = cache[cache_key]
        teacher_logits = eval_data.teacher_logits if eval_data.teacher_logits is not None else teacher_logits
        reference = logits.get(id(item.reference)) if item.reference is not None else None
        result = _guarded(item.row, lambda: evaluate_runtime(item.runtime.run, eval_data.images, eval_data.labels,
                                                             reference, eval_data.teacher_logits))
        if result is None:
            continue
        logits[id(item)] = result["logits"]
        item.row.accuracy, item.row.agreement_teacher = result["accuracy"], result["agreement_teacher"]
        item.row.agreement_reference = result["agreement_reference"] if item.directory is not None else None
        item.row.quality = row_quality(eval_data.labels, result["logits"], class_names, reference)
    source = "given by the caller (--teacher-accuracy)"
    if teacher_row is not None and teacher_row.accuracy is not None:
        teacher_accuracy = teacher_row.accuracy
    elif teacher_accuracy is None and teacher_logits is not None:
        teacher_accuracy = top1_accuracy(teacher_logits, next(iter(cache.values())).labels)
        source = f"accuracy of the teacher_logits stored in {data}"
    if teacher_accuracy is None:
        return None
    teacher = teacher_row or ReportRow(name="teacher", role="teacher", backend="torch", precision="fp32",
                                       accuracy=teacher_accuracy, notes=source)
    for item in items:
        if item.row.accuracy is not None:
            item.row.retention = retention(item.row.accuracy, teacher_accuracy)
            if item.row.quality is not None:
                item.row.quality["flags"] += retention_flags(teacher_accuracy, item.row.retention, item.row.quality["baselines"])
    return teacher


def row_quality(labels: np.ndarray, logits: np.ndarray, class_names: Sequence[str] | None,
                reference_logits: np.ndarray | None) -> dict[str, Any]:
    """A classifier row's qualifiers (bench/qualify.py): baselines, prediction spread, per-class
    accuracy, confusion matrix, and flags — including agreement made trivial by constant predictions."""
    names = list(class_names or [str(k) for k in range(np.asarray(logits).shape[1])])
    predicted = np.asarray(logits).argmax(axis=1)
    base = baselines(labels, names)
    spread = prediction_spread(predicted, names)
    matrix = confusion(labels, predicted, len(names))
    flags = accuracy_flags("this model", top1_accuracy(logits, labels), base, spread)
    if reference_logits is not None:
        ref_spread = prediction_spread(np.asarray(reference_logits).argmax(axis=1), names)
        if ref_spread["top_class_share"] >= DEGENERATE_SHARE and base["majority"] < DEGENERATE_SHARE:
            flags.append(f"its agreement with the PyTorch model is trivially high: that model predicts "
                         f"'{ref_spread['top_class']}' for {ref_spread['top_class_share']:.0%} of the images")
    return {"baselines": base, "predictions": spread, "per_class_accuracy": per_class_accuracy(matrix, names),
            "class_names": names, "confusion": matrix, "flags": flags}
