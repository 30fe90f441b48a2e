#!/usr/bin/env python3
"""Check a TensorRT engine built on the device against the PyTorch outputs shipped with its artifact.

Runs on the target with Python 3.8+ and numpy only (no torch, no edgeclip): `edgeclip export` put
`reference/inputs.npy` (real images), `reference/outputs.npy` (the unexported PyTorch model's
outputs for them) and `reference/edgeclip_parity.py` (edgeclip's parity rules) in the artifact.
The engine runs on the inputs through trtexec (JetPack ships it; found and run by the device runner's
runtime_tensorrt.py, shipped in the artifact too), in chunks of the engine's maximum batch; the outputs are compared with the thresholds recorded in the manifest, and the
result becomes the manifest's `parity` (the ONNX check done at export moves to `export_parity`).

    python3 check_engine.py ARTIFACT_DIR [--trtexec PATH]

Exit 0: engine parity passed; 1: it failed (the artifact is marked failed); 2: bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile

import numpy as np


def fail(message: str, code: int = 2) -> None:
    print(f"check_engine.py: error: {message}", file=sys.stderr)
    sys.exit(code)


def device_runtime():
    """runtime_tensorrt.py, which `edgeclip export` ships beside this script: the trtexec lookup and
    the trtexec runner the device runner uses (one copy of each)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if not os.path.isfile(os.path.join(here, "runtime_tensorrt.py")):
        fail(f"runtime_tensorrt.py is missing from {here}; re-export the artifact with `edgeclip export --backend tensorrt`")
    sys.path.insert(0, here)
    import runtime_tensorrt  # noqa: E402 - shipped next to this script

    return runtime_tensorrt


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a built TensorRT engine against the shipped PyTorch outputs.")
    parser.add_argument("artifact", help="the tensorrt artifact directory (manifest.json, engine, reference/)")
    parser.add_argument("--trtexec", default=None, help="trtexec binary (default: $TRTEXEC, PATH, /usr/src/tensorrt/bin)")
    args = parser.parse_args(argv)

    manifest_path = os.path.join(args.artifact, "manifest.json")
    reference = os.path.join(args.artifact, "reference")
    if not os.path.isfile(manifest_path):
        fail(f"{manifest_path} not found; pass an edgeclip tensorrt artifact directory")
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    engine = os.path.join(args.artifact, manifest.get("engine_file", "model.engine"))
    if not os.path.isfile(engine):
        fail(f"engine {engine} does not exist; run build_engine.sh first")
    if not os.path.isfile(os.path.join(reference, "inputs.npy")):
        fail(f"{reference}/inputs.npy is missing; re-export the artifact with parity inputs (edgeclip export / build)")
    sys.path.insert(0, reference)
    import edgeclip_parity  # noqa: E402 - shipped next to the reference data

    inputs = np.load(os.path.join(reference, "inputs.npy"))
    expected = np.load(os.path.join(reference, "outputs.npy"))
    step = int(manifest.get("max_batch") or 8)
    runtime = device_runtime()
    trtexec = runtime.find_trtexec(args.trtexec)
    if not trtexec:
        fail("trtexec not found; this device has no TensorRT (JetPack ships it in /usr/src/tensorrt/bin) or pass --trtexec")
    model = runtime.TrtexecModel(engine, manifest, args, trtexec)  # feeds the engine's input type (int32 text tokens)
    try:
        outputs = np.concatenate([model.run(inputs[i:i + step]) for i in range(0, len(inputs), step)])
    except (RuntimeError, OSError, ValueError) as exc:
        fail(f"trtexec could not run the engine ({exc})", 1)
    export_parity = manifest.get("export_parity") or manifest.get("parity") or {}
    thresholds = export_parity.get("thresholds") or edgeclip_parity.thresholds_for(manifest["precision"], 1e-3, 1e-3)
    record = edgeclip_parity.compare_outputs(expected, outputs, kind=manifest["kind"], precision=manifest["precision"],
                                             thresholds=thresholds)
    record["scope"] = f"TensorRT engine on {platform.node()} ({platform.machine()}) via trtexec"
    manifest["export_parity"] = export_parity
    manifest["parity"] = record
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(manifest_path)), suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(manifest, handle, indent=2)
    os.replace(tmp, manifest_path)
    verdict = "passed" if record["passed"] else "FAILED"
    detail = f"cosine {record['mean_cosine']:.5f}, max|d| {record['max_abs_diff']:.3g}"
    if record.get("top1_agreement") is not None:
        detail += f", top-1 agreement {record['top1_agreement']:.3f}"
    print(f"engine parity {verdict} on {record['num_inputs']} real inputs ({detail})")
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
