"""A stand-in for TensorRT's trtexec, for tests on machines without TensorRT.

It accepts the flags edgeclip's kit and runner use and behaves like trtexec where they rely on it:
`--onnx/--saveEngine` "builds" an engine (a copy of the ONNX) — but first parses the ONNX as the
device's TensorRT would: every node against that release's onnx-tensorrt operator table (the same
table and check `edgeclip export` uses, export/tensorrt/onnx_support.json), and refuses the first
node it cannot import with trtexec's own error lines and exit 1. `--loadEngine` runs the engine with
onnxruntime — `--loadInputs` (raw binary) + `--exportOutput` (trtexec's JSON layout), and
`--exportTimes` (per-inference latencyMs).
FAKE_TRTEXEC_TENSORRT=8.5|8.6|10.3 is the device's TensorRT (default 8.6, JetPack 6.0);
FAKE_TRTEXEC_CORRUPT=1 makes the engine compute wrong outputs (so parity must fail);
FAKE_TRTEXEC_FAIL_BUILD=1 makes the build fail (out of memory, as on an 8 GB board); FAKE_TRTEXEC_LOG=path
appends every command line there.
Runs with numpy + onnxruntime only (no torch), so it works beside the Python 3.8 runner test: where
`onnx` is missing, the graph check runs in FAKE_TRTEXEC_CHECKER_PYTHON (the test's interpreter).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np


def flags(argv: list) -> dict:
    parsed = {}
    for arg in argv:
        key, _, value = arg.partition("=")
        parsed[key.lstrip("-")] = value
    return parsed


SOURCE_ROOT = os.environ.get("FAKE_TRTEXEC_SRC") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tensorrt_version() -> str:
    return os.environ.get("FAKE_TRTEXEC_TENSORRT") or "8.6"


def banner(version: str) -> str:
    """trtexec's own version tag: TensorRT 8.5.2 prints [TensorRT v8502], 10.3.0 [TensorRT v100300]."""
    major, minor = (int(p) for p in version.split(".")[:2])
    patch = {"8.5": 2, "8.6": 2}.get(version, 0)
    return f"v{major}{minor}0{patch}" if major < 10 else f"v{major}{minor:02d}{patch:02d}"


def compatibility(onnx_file: str, version: str) -> dict:
    """edgeclip's TensorRT compatibility record of the file, in this interpreter or the checker's."""
    try:
        sys.path.insert(0, SOURCE_ROOT)
        from edgeclip.exporters.tensorrt_support import check_model
    except ImportError:  # no onnx here (the Python 3.8 device venv): ask the test's interpreter
        checker = os.environ.get("FAKE_TRTEXEC_CHECKER_PYTHON") or sys.executable
        result = subprocess.run([checker, "-m", "edgeclip.exporters.tensorrt_support", onnx_file, "--tensorrt", version, "--json"],
                                capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SOURCE_ROOT})
        if result.returncode not in (0, 1):
            raise SystemExit(f"[E] fake trtexec could not check the ONNX: {result.stderr.strip()[-500:]}")
        return json.loads(result.stdout)
    return check_model(onnx_file, version)


def parse_failure(record: dict, command: str, version: str) -> list:
    """What trtexec prints when its ONNX parser stops at the first node it cannot import."""
    first = record["unsupported"][0]
    stamp = time.strftime("[%m/%d/%Y-%H:%M:%S]")
    if first["node"] == "(model)":
        where = [f"{stamp} [E] [TRT] ModelImporter.cpp:771: ERROR: {first['op']}: {first['reason']}"]
    else:
        where = [f"{stamp} [E] [TRT] ModelImporter.cpp:726: While parsing node [{first['op']} -> \"{first['node']}\"]:",
                 f"{stamp} [E] [TRT] ModelImporter.cpp:731: ERROR: {first['op']}: {first['reason']}"]
    return where + [f"{stamp} [E] Failed to parse onnx file", f"{stamp} [E] Parsing model failed",
                    f"{stamp} [E] Failed to create engine from model or file.", f"{stamp} [E] Engine set up failed",
                    f"&&&& FAILED TensorRT.trtexec [TensorRT {banner(version)}] # {command}"]


def session(engine: str):
    import onnxruntime as ort

    with open(engine, "rb") as handle:
        if handle.read(8) != b"FAKETRT\n":
            raise SystemExit("[E] engine file is not a (fake) TensorRT engine")
        model = handle.read()
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def main(argv: list) -> int:
    if os.environ.get("FAKE_TRTEXEC_LOG"):
        with open(os.environ["FAKE_TRTEXEC_LOG"], "a") as log:
            log.write(" ".join(argv) + "\n")
    args = flags(argv)
    if "onnx" in args:
        version = tensorrt_version()
        command = "trtexec " + " ".join(argv)
        print(f"&&&& RUNNING TensorRT.trtexec [TensorRT {banner(version)}] # {command}")
        record = compatibility(args["onnx"], version)
        if not record["passed"]:
            print("\n".join(parse_failure(record, command, version)))
            return 1
        if os.environ.get("FAKE_TRTEXEC_FAIL_BUILD"):
            print("[E] Error[2]: [virtualMemoryBuffer.cpp::resizePhysical::140] Error Code 2: OutOfMemory (no further information)")
            print("[E] Error[2]: [builder.cpp::buildSerializedNetwork::751] Error Code 2: Internal Error "
                  "(Assertion engine != nullptr failed. )")
            print("[E] Engine could not be created from network")
            print("[E] Building engine failed")
            print("[E] Failed to create engine from model or file.")
            print("[E] Engine set up failed")
            print(f"&&&& FAILED TensorRT.trtexec [TensorRT {banner(version)}] # {command}")
            return 1
        with open(args["onnx"], "rb") as source, open(args["saveEngine"], "wb") as engine:
            engine.write(b"FAKETRT\n")
            shutil.copyfileobj(source, engine)
        print(f"[I] Engine built in 0.1 sec. (fake trtexec; {' '.join(a for a in ('--fp16', '--int8') if a in argv)})")
        return 0
    sess = session(args["loadEngine"])
    first = sess.get_inputs()[0]
    name, shape = args["shapes"].split(":")
    dims = [int(d) for d in shape.split("x")]
    dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(first.type, np.float32)
    if "loadInputs" in args:
        batch = np.fromfile(args["loadInputs"].split(":", 1)[1], dtype=dtype).reshape(dims)
    else:
        batch = np.random.default_rng(0).standard_normal(dims).astype(dtype)
    times = []
    output = None
    for _ in range(max(1, int(args.get("iterations") or 1))):
        start = time.perf_counter()
        output = sess.run(None, {first.name: batch})[0]
        times.append((time.perf_counter() - start) * 1000.0)
    if os.environ.get("FAKE_TRTEXEC_CORRUPT"):
        output = -output + np.random.default_rng(1).standard_normal(output.shape).astype(output.dtype)
    if "exportOutput" in args:
        with open(args["exportOutput"], "w") as handle:
            json.dump([{"name": sess.get_outputs()[0].name, "dimensions": "x".join(str(d) for d in output.shape),
                        "values": output.reshape(-1).tolist()}], handle)
    if "exportTimes" in args:
        with open(args["exportTimes"], "w") as handle:
            json.dump([{"startComputeMs": 0.0, "computeMs": t, "latencyMs": t} for t in times], handle)
    print(f"[I] Latency: mean = {np.mean(times):.3f} ms (fake trtexec)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
