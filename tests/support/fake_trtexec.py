"""A stand-in for TensorRT's trtexec, for tests on machines without TensorRT.

It accepts the flags edgeclip's kit and runner use and behaves like trtexec where they rely on it:
`--onnx/--saveEngine` "builds" an engine (a copy of the ONNX), `--loadEngine` runs it with
onnxruntime — `--loadInputs` (raw binary) + `--exportOutput` (trtexec's JSON layout), and
`--exportTimes` (per-inference latencyMs). FAKE_TRTEXEC_CORRUPT=1 makes the engine compute wrong
outputs (so parity must fail); FAKE_TRTEXEC_FAIL_BUILD=1 makes the build fail; FAKE_TRTEXEC_LOG=path
appends every command line there.
Runs with numpy + onnxruntime only (no torch), so it works beside the Python 3.8 runner test.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import numpy as np


def flags(argv: list) -> dict:
    parsed = {}
    for arg in argv:
        key, _, value = arg.partition("=")
        parsed[key.lstrip("-")] = value
    return parsed


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
        if os.environ.get("FAKE_TRTEXEC_FAIL_BUILD"):
            print("[E] Error[4]: could not build the engine (fake failure)")
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
    dtype = np.int64 if "int64" in first.type else np.float32
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
