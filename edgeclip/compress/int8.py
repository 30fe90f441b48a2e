"""int8 that holds: calibration choice, CPU-aware weights, mixed precision from sensitivity, speed check.

`Int8Options` travels from a recipe / CLI into `exporters.export_model(..., int8=options)`. With
`mode="classic"` (also what export does when no options are given) the original methods run
unchanged (`compress.quantize.choose_int8_method`). With `mode="auto"`:
- CNNs get static QDQ int8 in the format for the CPU it will run on (`arch`: the target's; x86
  here: U8S8 with VNNI, U8U8 without; an arm64 target: S8S8; see compress/cpu.py), the chosen calibration (auto = the backend's default / min-max / entropy /
  percentile), per-channel weights;
- given validation images (real, disjoint from calibration and test), the per-layer sensitivity
  search (compress/sensitivity.py) puts the fewest most sensitive layers back into float until the
  top-1 agreement with fp32 on those images reaches `target_agreement` (ORT: float islands in
  the QDQ graph; OpenVINO: NNCF `ignored_scope`);
- transformers keep their methods (dynamic int8 on MatMul for ORT, NNCF transformer preset),
  optionally after SmoothQuant (compress/smoothquant.py);
- a user `ignored_scope` is honoured on both backends (names checked: a name that matches no
  layer is an error that lists the names that exist);
- `speed_check` times fp32 and int8 of the same backend interleaved on this CPU and records it
  (the build turns it off for a target this machine is not: its timing would be this CPU's); the
  build's own int8-vs-fp32 decision is made from the benchmark rows (compress/ship_rule.py).
Everything chosen and measured goes into the manifest's `quantization` block.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeclip.compress import cpu, ort_int8, ov_int8
from edgeclip.compress import quantize as q
from edgeclip.compress.sensitivity import fidelity, run_all, search_float_layers
from edgeclip.backends import get_backend
from edgeclip.bench.latency import benchmark_interleaved
from edgeclip.compress.ship_rule import INT8_MIN_GAIN, median_latency_ratio
from edgeclip.config import Int8Config
from edgeclip.errors import UserError


@dataclass
class Int8Options(Int8Config):
    """One int8 export: the settings (config.Int8Config, whose defaults are the only ones) plus what
    only that export knows. Build it from settings with `from_config`."""

    per_channel: bool = True
    arch: str | None = None  # CPU architecture the int8 model will run on (a target's); None = this machine
    target: str | None = None  # the target profile it is built for (manifest only)
    speed_check: bool = True
    speed_seconds: float = 2.0
    speed_threads: int = 1  # one thread: steadier on a shared machine; recorded with the result
    validation: np.ndarray | None = None  # real preprocessed images, disjoint from calibration and test
    qat: dict[str, Any] | None = None  # record of a QAT fine-tune the model went through (manifest only)
    smoothing: dict[str, Any] | None = None  # what SmoothQuant did (set by export_model when it ran)

    @classmethod
    def from_config(cls, config: Int8Config, **export: Any) -> "Int8Options":
        """These settings for one export (`export`: the fields above)."""
        return cls(**{f.name: copy.deepcopy(getattr(config, f.name)) for f in dataclasses.fields(Int8Config)}, **export)

    def describe(self) -> dict[str, Any]:
        """The options as recorded in the manifest (without the image arrays)."""
        return {"mode": self.mode, "calibration_method": self.calibration_method, "per_channel": self.per_channel,
                "weights": self.weights, "ignored_scope": list(self.ignored_scope), "mixed": self.mixed,
                "target_agreement": self.target_agreement, "max_float_fraction": self.max_float_fraction,
                "smoothquant_alpha": self.smoothquant_alpha, "smoothquant": self.smoothing,
                "arch": self.arch, "target": self.target, "speed_check": self.speed_check,
                "validation_count": None if self.validation is None else int(len(self.validation))}


def _logits(kind: str) -> bool:
    return kind in ("classifier", "zero_shot_classifier")


def speed_check(fp32: Callable[[np.ndarray], Any], int8: Callable[[np.ndarray], Any], example: np.ndarray,
                seconds: float, threads: int = 1) -> dict[str, Any]:
    """fp32 vs int8 p50 latency (batch 1), interleaved, on this CPU. `int8_faster` is the build's rule
    (compress/ship_rule.py): int8/fp32 in the median of the interleaved rounds ≤ 1 - INT8_MIN_GAIN."""
    stats = benchmark_interleaved({"fp32": fp32, "int8": int8}, example, warmup=5, iterations=400, max_seconds=seconds)
    if "error" in stats["fp32"] or "error" in stats["int8"]:
        return {"measured": False, "reason": stats["fp32"].get("error") or stats["int8"].get("error")}
    fp32_ms, int8_ms = stats["fp32"]["p50"], stats["int8"]["p50"]
    ratio, rounds = median_latency_ratio(stats["int8"], stats["fp32"]) or (int8_ms / fp32_ms, 1)
    return {"measured": True, "fp32_p50_ms": round(fp32_ms, 4), "int8_p50_ms": round(int8_ms, 4),
            "int8_over_fp32": round(ratio, 3), "rounds": rounds, "min_gain": INT8_MIN_GAIN,
            "int8_faster": bool(ratio <= 1.0 - INT8_MIN_GAIN), "threads": threads,
            "iterations": stats["int8"]["iterations"], "batch": int(len(example)), "cpu": cpu.cpu_features()["model"],
            "vnni": cpu.cpu_features()["vnni"]}


def _validation_record(run: Callable[[np.ndarray], Any], reference: np.ndarray | None, options: Int8Options,
                       logits: bool) -> dict[str, Any] | None:
    if options.validation is None or reference is None:
        return None
    value = fidelity(run_all(run, options.validation), reference, logits)
    return {"metric": "top1_agreement" if logits else "mean_cosine", "value": value, "count": int(len(options.validation)),
            "target": options.target_agreement, "target_met": bool(value >= options.target_agreement)}


def quantize_onnx_auto(fp32_path: Path, dst: Path, spec: Any, calibration: np.ndarray | None, options: Int8Options,
                       *, transformer: bool, backend: str = "onnx") -> dict[str, Any]:
    """ONNX int8 for onnxruntime (mode auto); returns the manifest's quantization record."""
    options.check()
    logits = _logits(spec.kind)
    input_name = spec.input_names[0]
    fp32_run = ort_int8.session_runner(fp32_path)
    reference = run_all(fp32_run, options.validation) if options.validation is not None else None
    record: dict[str, Any] = {"options": options.describe(), "cpu": {k: cpu.cpu_features()[k] for k in ("model", "vnni", "avx512")}}
    ort_int8.check_node_names(fp32_path, options.ignored_scope)  # typos fail before any work
    built_on_target = get_backend(backend).built_on_target
    if transformer or spec.kind == "text_encoder" or built_on_target:
        # Transformers and engines built on the target (TensorRT): the measured methods (dynamic MatMul
        # int8 / symmetric QDQ) — the auto search would tune for this machine's onnxruntime, not the
        # target's engine — with the user's float layers honoured where the method is static.
        method = q.choose_int8_method(backend=backend, kind=spec.kind, transformer=transformer,
                                      has_calibration=calibration is not None)
        details = _classic_onnx(method, fp32_path, dst, spec, calibration, transformer, options.ignored_scope)
        record.update({"method": method, "description": q.METHODS[method], **details})
    else:
        if calibration is None or len(calibration) == 0:
            raise UserError("static int8 needs calibration inputs; pass real images (edgeclip export --calibration DATA)")
        activations, weights, why = cpu.ort_int8_format(options.arch)
        if options.weights != "auto":
            weights, why = options.weights, "set by the user"
        with tempfile.TemporaryDirectory(prefix="edgeclip-int8-") as work:
            pre = ort_int8.preprocessed(fp32_path, Path(work))
            # Pre-processing may fuse nodes away; a name that vanished would be silently ignored by ORT.
            ort_int8.check_node_names(pre, options.ignored_scope, "ignored-scope (after graph pre-processing)")
            full = Path(work) / "int8.onnx"
            details = ort_int8.quantize_static_qdq(pre, full, calibration, input_name, method=options.calibration_method,
                                                   percentile=options.percentile, per_channel=options.per_channel,
                                                   weights=weights, activations=activations, exclude=options.ignored_scope)
            revertible = ort_int8.OrtRevertible(full, pre)
            search = None
            float_layers: list[str] = []
            if options.mixed and reference is not None:
                max_float = int(options.max_float_fraction * len(revertible.layers()))
                search = search_float_layers(revertible, options.validation, reference, logits=logits,
                                             target=options.target_agreement, max_float=max_float)
                float_layers = search.float_layers
            revertible.save(float_layers, dst)
        method = "ort_static_qdq_mixed" if float_layers else "ort_static_qdq_auto"
        record.update({"method": method, "description": q.METHODS[method], **details, "weights_why": why,
                       "float_layers": float_layers, "mixed_precision": search.to_dict() if search else None})
    run = ort_int8.session_runner(dst)
    record["validation"] = _validation_record(run, reference, options, logits)
    if not options.speed_check:
        if options.target:  # turned off by the build for a target this machine is not
            record["speed_check"] = _not_timed_here(options)
    elif not built_on_target:  # an engine built on the target (TensorRT) is timed there, not here
        record["speed_check"] = speed_check(ort_int8.session_runner(fp32_path, threads=options.speed_threads),
                                            ort_int8.session_runner(dst, threads=options.speed_threads),
                                            _example(spec, calibration), options.speed_seconds, options.speed_threads)
    if options.qat:
        record["qat"] = options.qat
    return record


def _not_timed_here(options: Int8Options) -> dict[str, Any]:
    where = f"target {options.target}" if options.target else "the target"
    return {"measured": False, "reason": f"this machine is not {where}: int8 vs fp32 speed is measured on the device "
                                         f"(--remote), not on the build host"}


def _example(spec: Any, calibration: np.ndarray | None) -> np.ndarray:
    if calibration is not None and len(calibration):
        return np.ascontiguousarray(calibration[:1])
    size = spec.preprocess.size
    return np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)


def _classic_onnx(method: str, fp32_path: Path, dst: Path, spec: Any, calibration: np.ndarray | None, transformer: bool,
                  exclude: list[str]) -> dict[str, Any]:
    """The original methods (onnx_export.quantize_int8's table), plus user-excluded nodes where static."""
    input_name = spec.input_names[0]
    if method == "ort_dynamic":
        if exclude:
            raise UserError("ignored_scope applies to static int8; this model gets dynamic int8 (MatMul only) on onnxruntime")
        return q.quantize_onnx_dynamic(fp32_path, dst)
    if method == "ort_static_qdq_matmul":
        return q.quantize_onnx_static(fp32_path, dst, calibration, input_name, op_types=q.MATMUL_OPS)
    if method == "trt_static_qdq":
        op_types = q.MATMUL_OPS if spec.kind == "text_encoder" else (q.MATMUL_OPS + ("Conv",) if transformer else None)
        return q.quantize_onnx_static(fp32_path, dst, calibration, input_name, op_types=op_types, symmetric=True,
                                      float_bias=True)  # TensorRT 8.x refuses INT32 DequantizeLinear (bias)
    return q.quantize_onnx_static(fp32_path, dst, calibration, input_name)


def quantize_openvino_auto(ov_model: Any, spec: Any, calibration: np.ndarray | None, options: Int8Options, *,
                           transformer: bool) -> tuple[Any, dict[str, Any]]:
    """NNCF int8 for OpenVINO (mode auto): ignored scope, calibration choice, mixed precision, speed check."""
    options.check()
    logits = _logits(spec.kind)
    if calibration is None or len(calibration) == 0:
        if spec.kind == "text_encoder":
            quantized, details = q.quantize_openvino(ov_model, None, method="nncf_weight_int8")
            return quantized, {"method": "nncf_weight_int8", "description": q.METHODS["nncf_weight_int8"], **details}
        raise UserError("OpenVINO int8 needs calibration inputs; pass real images (edgeclip export --calibration DATA)")
    ignored = ov_int8.resolve_ignored_scope(ov_model, options.ignored_scope)
    fp32_run = ov_int8.compiled_runner(ov_model)
    reference = run_all(fp32_run, options.validation) if options.validation is not None else None
    quantized, details = ov_int8.nncf_quantize(ov_model, calibration, method=options.calibration_method,
                                               transformer=transformer, ignored=ignored)
    # (SmoothQuant, when asked for, already ran in PyTorch before export: compress/smoothquant.py)
    search = None
    float_layers: list[str] = []
    if options.mixed and reference is not None and not transformer:
        revertible = ov_int8.OvRevertible(quantized)
        max_float = int(options.max_float_fraction * len(revertible.layers()))
        search = search_float_layers(revertible, options.validation, reference, logits=logits,
                                     target=options.target_agreement, max_float=max_float)
        float_layers = search.float_layers
        if float_layers:  # what ships is NNCF's own output with those layers in its ignored scope
            quantized, details = ov_int8.nncf_quantize(ov_model, calibration, method=options.calibration_method,
                                                       transformer=transformer, ignored=sorted(set(ignored) | set(float_layers)))
    method = "nncf_ptq_mixed" if float_layers else ("nncf_ptq_transformer" if transformer else "nncf_ptq")
    record: dict[str, Any] = {"method": method, "description": q.METHODS[method], **details, "options": options.describe(),
                              "float_layers": float_layers, "mixed_precision": search.to_dict() if search else None,
                              "cpu": {k: cpu.cpu_features()[k] for k in ("model", "vnni", "avx512")}}
    run = ov_int8.compiled_runner(quantized)
    record["validation"] = _validation_record(run, reference, options, logits)
    if not options.speed_check:
        if options.target:
            record["speed_check"] = _not_timed_here(options)
    else:
        record["speed_check"] = speed_check(ov_int8.compiled_runner(ov_model, threads=options.speed_threads),
                                            ov_int8.compiled_runner(quantized, threads=options.speed_threads),
                                            _example(spec, calibration), options.speed_seconds, options.speed_threads)
    if options.qat:
        record["qat"] = options.qat
    return quantized, record
