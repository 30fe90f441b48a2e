"""TensorRT: a TensorRT-ready ONNX + the on-target build kit; the engine itself when `tensorrt` imports.

TensorRT engines are specific to the GPU and TensorRT version that build them, so they are built
on the target (DESIGN §3 `build_on_device`). This writes what the target's TensorRT parses
(`tensorrt_version`: 8.5 = JetPack 5.1, 8.6 = JetPack 6.0, 10.3 = JetPack 6.1/6.2):
- `model.onnx`: opset min(requested, newest the version parses: 17 for 8.x), LayerNormalization
  decomposed where the version has no importer (8.5), dynamic batch, fp16-safe (±inf mask
  constants such as open_clip's causal mask replaced by ±1e4, which fp16 can hold), text towers
  with INT32 token ids and no integer ArgMax; for int8 an explicit symmetric QDQ ONNX (Q/DQ on
  weights and activations, float biases) calibrated on real images (no TensorRT calibrator needed).
- `build_engine.sh` + `README.md` from export/tensorrt/, run on the device.
Every node is then checked against that version's onnx-tensorrt operator table
(`tensorrt_support.check_model`); the result is the manifest's `tensorrt_compatibility`, and a
refused node makes the artifact `failed` before anything goes to a device.
If `import tensorrt` works here, the engine is built with the Python API as well.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
from onnx import numpy_helper
from torch import nn

from edgeclip.exporters.common import ExportResult
from edgeclip.exporters import tensorrt_support as trt_support
from edgeclip.exporters.onnx_export import quantize_int8, torch_to_onnx
from edgeclip.exporters.tensorrt_rewrites import decompose_layer_norm, int32_token_input
from edgeclip.paths import kit_dir, runner_dir
from edgeclip.students.spec import ModelSpec

ONNX_FILE = "model.onnx"
ENGINE_FILE = "model.engine"
KIT_FILES = ("build_engine.sh", "check_engine.py", "README.md")
DEVICE_RUNTIME_FILE = "runtime_tensorrt.py"  # from devices/runner/: check_engine.py imports it
FP16_SAFE_LIMIT = 1e4
DEFAULT_MAX_BATCH = 8


def make_fp16_safe(model: onnx.ModelProto, limit: float = FP16_SAFE_LIMIT) -> int:
    """Replace ±inf (and values beyond fp16 range) in float constants by ±limit; returns how many tensors changed."""
    changed = 0

    def fix(tensor: onnx.TensorProto) -> bool:
        if tensor.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
            return False
        array = numpy_helper.to_array(tensor)
        bad = ~np.isfinite(array) | (np.abs(array) > 65504)
        bad &= ~np.isnan(array)
        if not bad.any():
            return False
        fixed = np.where(bad, np.sign(array) * limit, array).astype(array.dtype)
        tensor.CopyFrom(numpy_helper.from_array(fixed, tensor.name))
        return True

    for init in model.graph.initializer:
        changed += fix(init)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    changed += fix(attr.t)
    return changed


def trtexec_command(spec: ModelSpec, precision: str, max_batch: int = DEFAULT_MAX_BATCH) -> str:
    """The trtexec line build_engine.sh runs (also recorded in the manifest)."""
    dims = "x".join(str(d) for d in spec.input_shape()[1:])
    name = spec.input_names[0]
    flags = {"fp32": "", "fp16": " --fp16", "int8": " --int8 --fp16"}[precision]
    return (
        f"trtexec --onnx={ONNX_FILE} --saveEngine={ENGINE_FILE}"
        f" --minShapes={name}:1x{dims} --optShapes={name}:1x{dims} --maxShapes={name}:{max_batch}x{dims}{flags}"
    )


def build_engine(onnx_path: Path, engine_path: Path, spec: ModelSpec, precision: str,
                 max_batch: int = DEFAULT_MAX_BATCH, workspace_mb: int = 1024) -> None:
    """Build a serialized engine with the TensorRT Python API (runs only where tensorrt is installed)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # EXPLICIT_BATCH is required on TensorRT 8 and the default (flag ignored) on TensorRT 10.
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # explicit QDQ in the ONNX supplies the scales
    dims = tuple(spec.input_shape()[1:])
    profile = builder.create_optimization_profile()
    profile.set_shape(spec.input_names[0], (1, *dims), (1, *dims), (max_batch, *dims))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    engine_path.write_bytes(bytes(serialized))


def _tensorrt_importable() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001 - missing or broken install: both mean "build on the target"
        return False
    return True


def simulated_runner(model: nn.Module, onnx_path: Path, precision: str) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """(run, scope): what the engine will compute, as closely as this machine can.

    fp32 and int8: the shipped ONNX (explicit QDQ for int8) on onnxruntime CPU. fp16: the model with
    fp16 weights and fp16 activations between ops (PyTorch CPU, which keeps fp16 storage per op as a
    TensorRT fp16 engine does). Not the fp16-converted ONNX on onnxruntime CPU: lacking fp16 kernels
    it casts every op back to fp32 — measured here, a graph whose activations reach 1.7e5 (fp16 max
    65504) came out finite and "passed", which is the hole an fp16 check must not have.
    """
    if precision == "fp16":
        import copy

        import torch

        half = copy.deepcopy(model).half().eval()

        @torch.no_grad()
        def run_half(batch: np.ndarray) -> np.ndarray:
            tensor = torch.from_numpy(batch)
            # token ids and uint8 frames (fused preprocessing casts them in the graph) go in as they are
            return half(tensor if tensor.dtype in (torch.int64, torch.uint8) else tensor.half()).float().numpy()

        return run_half, ("PyTorch model in fp16 (fp16 weights and activations, as a TensorRT fp16 engine stores them); "
                          "the engine itself is checked on the target by build_engine.sh")
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    dtype = {"tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(uint8)": np.uint8}.get(first.type, np.float32)
    return (lambda batch: np.asarray(session.run(None, {first.name: batch.astype(dtype, copy=False)})[0], dtype=np.float32),
            "TensorRT-ready ONNX on onnxruntime CPU (the engine itself is checked on the target by build_engine.sh)")


def prepare_graph(graph: onnx.ModelProto, spec: ModelSpec, tensorrt_version: str) -> dict[str, Any]:
    """Rewrite the final graph (in place) into what `tensorrt_version` parses; returns what was done.

    Runs after int8 quantization: onnxruntime's pre-quantization optimizer fuses a decomposed
    LayerNorm back into one LayerNormalization (measured), and calibration keeps the int64 inputs.
    """
    done: dict[str, Any] = {}
    if not trt_support.parses_layer_norm(tensorrt_version):
        done["layer_norms_decomposed"] = decompose_layer_norm(graph)
    if spec.is_text:
        done["int32_inputs"] = int32_token_input(graph)
    return done


def export(
    model: nn.Module, spec: ModelSpec, precision: str, out_dir: Path, *, calibration: np.ndarray | None, opset: int,
    int8: Any = None, tensorrt_version: str = trt_support.DEFAULT_TENSORRT,
) -> ExportResult:
    tensorrt_version = trt_support.normalize_version(tensorrt_version)
    onnx_opset = min(opset, trt_support.max_opset(tensorrt_version))
    onnx_path = out_dir / ONNX_FILE
    quantization: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory() as work:
        fp32_path = Path(work) / ONNX_FILE
        exporter = torch_to_onnx(model, spec, fp32_path, onnx_opset)
        graph = onnx.load(str(fp32_path))
        replaced = make_fp16_safe(graph)
        onnx.save(graph, str(fp32_path))
        if precision == "int8":
            quantization = quantize_int8(fp32_path, onnx_path, model, spec, calibration, backend="tensorrt", options=int8)
        else:
            # fp16 is applied by the TensorRT builder (--fp16); the ONNX stays fp32 and fp16-safe.
            shutil.copyfile(fp32_path, onnx_path)
    graph = onnx.load(str(onnx_path))
    rewrites = prepare_graph(graph, spec, tensorrt_version)
    if any(rewrites.values()):
        onnx.save(graph, str(onnx_path))
    kit = kit_dir("tensorrt")
    for kit_file in KIT_FILES:
        shutil.copy2(kit / kit_file, out_dir / kit_file)
    # check_engine.py finds and runs trtexec with the device runner's code (one lookup, one trtexec runner)
    shutil.copy2(runner_dir() / DEVICE_RUNTIME_FILE, out_dir / DEVICE_RUNTIME_FILE)
    command = trtexec_command(spec, precision)
    compatibility = trt_support.check_model(onnx_path, tensorrt_version)
    extra = {"onnx_file": ONNX_FILE, "trtexec": command, "engine_file": ENGINE_FILE, "max_batch": DEFAULT_MAX_BATCH,
             "opset": onnx_opset, "opset_requested": opset, "tensorrt_version": tensorrt_version,
             "tensorrt_rewrites": rewrites, "tensorrt_compatibility": compatibility,
             "fp16_safe_constants_replaced": replaced}
    if spec.is_text:  # what the engine takes: the runner and check_engine.py feed this dtype
        extra["inputs"] = [{"name": spec.input_names[0], "shape": spec.input_shape(), "dtype": "int32"}]
    exporter_name = f"torch.onnx ({exporter}), opset {onnx_opset}, TensorRT {tensorrt_version}-ready"
    if not compatibility["passed"]:
        # Nothing goes to a device that its TensorRT would refuse; parity still runs on the ONNX.
        run, scope = simulated_runner(model, onnx_path, precision)
        return ExportResult(model_file=ONNX_FILE, exporter=exporter_name, quantization=quantization, status="failed",
                            next_step=trt_support.describe(compatibility), parity_mode="simulated", parity_runner=run,
                            parity_scope=scope, extra=extra)
    if _tensorrt_importable():
        build_engine(onnx_path, out_dir / ENGINE_FILE, spec, precision)
        return ExportResult(model_file=ENGINE_FILE, exporter=f"TensorRT Python API from torch.onnx ({exporter})",
                            quantization=quantization, extra=extra)
    run, scope = simulated_runner(model, onnx_path, precision)
    return ExportResult(
        model_file=ONNX_FILE,
        exporter=exporter_name,
        quantization=quantization,
        status="needs_target_build",
        next_step=f"engine must be built and checked on the target (TensorRT {tensorrt_version}): "
                  "run build_engine.sh <this artifact dir> on the device",
        parity_mode="simulated",
        parity_runner=run,
        parity_scope=scope,
        extra=extra,
    )
