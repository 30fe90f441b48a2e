"""The int8 pitfalls found on the digits MobileNetV3-small, measured again on a trained student.

1. OpenVINO int8 compiled with a dynamic batch vs with static shapes: top-1 agreement with the fp32
   PyTorch student when each test image runs alone (batch 1) and when all run in one batch.
2. NNCF activation ranges: global min-max vs NNCF's default estimators (`calibration_method: auto`).
3. onnxruntime static int8: logits rounded to uint8 (onnxruntime's default) vs graph outputs left float.

Usage:
    python benchmarks/int8_pitfalls.py --student runs/bench-compression/kd-mobilenetv3_small/student \
        --out benchmarks/results/int8_pitfalls
(the student: any classifier checkpoint, e.g. the one `benchmarks/compression_cpu.py` trains).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgeclip.bench.environment import collect_environment
from edgeclip.compress import ort_int8
from edgeclip.compress.sensitivity import run_all
from edgeclip.data import open_image_dataset, preprocess_all
from edgeclip.exporters.onnx_export import torch_to_onnx
from edgeclip.io_utils import write_result_files
from edgeclip.runtimes.base import device_runtime
from edgeclip.students.checkpoint import load_checkpoint

StaticShapeCompiler = device_runtime("openvino").StaticShapeCompiler  # what edgeclip and the device run


def agreement(outputs: np.ndarray, reference: np.ndarray) -> float:
    return float((outputs.argmax(1) == reference.argmax(1)).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--out", default="benchmarks/results/int8_pitfalls")
    args = parser.parse_args()
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    nncf.set_log_level(logging.ERROR)
    torch.set_num_threads(2)
    model, spec, _ = load_checkpoint(args.student)
    calibration = preprocess_all(open_image_dataset("digits", "train"), spec.preprocess).numpy()[0::2][:128]
    test = preprocess_all(open_image_dataset("digits", "test"), spec.preprocess).numpy()
    with torch.no_grad():
        reference = model(torch.from_numpy(test)).numpy()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}
    result: dict = {"command": "python " + " ".join(sys.argv), "student": str(args.student),
                    "environment": collect_environment(threads=2), "test_images": int(len(test))}
    with tempfile.TemporaryDirectory() as work:
        fp32 = Path(work) / "fp32.onnx"
        torch_to_onnx(model, spec, fp32)
        dataset = nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))])
        ov_model = ov.convert_model(str(fp32))
        quantized = {name: nncf.quantize(ov_model, dataset, subset_size=len(calibration), advanced_parameters=AdvancedQuantizationParameters(**extra))
                     for name, extra in (("nncf_default", {}),
                                         ("global_minmax", {"activations_range_estimator_params": RangeEstimatorParametersSet.MINMAX}))}
        dynamic = ov.Core().compile_model(quantized["nncf_default"], "CPU", config)
        one_by_one = np.concatenate([np.asarray(dynamic(test[i:i + 1])[0]) for i in range(len(test))])
        result["openvino_int8_batch"] = {
            "dynamic_batch_run_one_image_at_a_time": agreement(one_by_one, reference),
            "dynamic_batch_run_as_one_batch": agreement(np.asarray(dynamic(test)[0]), reference),
            "static_shapes_run_one_image_at_a_time": agreement(
                np.concatenate([StaticShapeCompiler(quantized["nncf_default"], "CPU", config)(test[i:i + 1]) for i in range(len(test))]), reference)}
        static = {name: StaticShapeCompiler(m, "CPU", config) for name, m in quantized.items()}
        result["openvino_int8_ranges"] = {name: agreement(run_all(run, test), reference) for name, run in static.items()}
        pre = ort_int8.preprocessed(fp32, Path(work))
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        from edgeclip.compress import quantize as q

        rounded = Path(work) / "rounded-outputs.onnx"
        quantize_static(str(pre), str(rounded), q._ArrayReader(spec.input_names[0], calibration, 16), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        float_outputs = Path(work) / "float-outputs.onnx"
        ort_int8.quantize_static_qdq(pre, float_outputs, calibration, spec.input_names[0], weights="int8")
        result["onnxruntime_int8_outputs"] = {
            "logits_rounded_to_uint8": agreement(run_all(ort_int8.session_runner(rounded, 2), test), reference),
            "logits_float": agreement(run_all(ort_int8.session_runner(float_outputs, 2), test), reference)}
    lines = [f"# int8 pitfalls on {args.student}", "", f"Command: `{result['command']}`", "",
             f"Machine: {result['environment']['cpu']}, int8 features {result['environment']['cpu_int8_features']}, "
             f"openvino {result['environment']['versions'].get('openvino')}, onnxruntime {result['environment']['versions'].get('onnxruntime')}. "
             f"Top-1 agreement with the fp32 PyTorch student on the {len(test)} test digits.", "",
             "| case | agreement |", "|---|---|"]
    for group in ("openvino_int8_batch", "openvino_int8_ranges", "onnxruntime_int8_outputs"):
        lines += [f"| {group}: {name.replace('_', ' ')} | {value:.4f} |" for name, value in result[group].items()]
    markdown = "\n".join(lines) + "\n"
    write_result_files(Path(args.out), result, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
