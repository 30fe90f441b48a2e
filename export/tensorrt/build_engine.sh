#!/usr/bin/env bash
# Build a TensorRT engine from an edgeclip TensorRT artifact, ON THE TARGET DEVICE (Jetson / NVIDIA GPU).
# Engines are tied to the GPU and TensorRT version that build them, so this runs where the model runs.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: build_engine.sh ARTIFACT_DIR [--max-batch N] [--opt-batch N] [--workspace-mb MB] [--trtexec PATH]

  ARTIFACT_DIR   an `edgeclip export --backend tensorrt` output (model.onnx + manifest.json)
  --max-batch N  largest batch the engine accepts (default: manifest max_batch, else 8)
  --opt-batch N  batch size TensorRT tunes kernels for (default 1: edge latency)
  --workspace-mb builder workspace in MiB (default 1024; lower it on an 8 GB Jetson if the build fails)
  --trtexec PATH trtexec binary (default: trtexec on PATH, else /usr/src/tensorrt/bin/trtexec on JetPack)

Precision comes from the manifest: fp16 → --fp16; int8 → --int8 --fp16 (the ONNX carries explicit
QDQ scales, no calibration cache is needed); fp32 → no flag.
Writes ARTIFACT_DIR/model.engine and build.log, marks the manifest ready (model_file=model.engine), then
runs the engine on the real images shipped in ARTIFACT_DIR/reference/ and compares it with the PyTorch
outputs there (check_engine.py): the engine's own parity goes into the manifest. Exit 0 when the engine
was built and its parity passed, 1 when parity failed (the artifact is then a failed row), 2 on bad input,
3 when trtexec could not build the engine (its last error lines go to stderr and into the manifest's
engine_build block; the artifact is then `failed`).

example (on a Jetson Orin Nano):
  ./build_engine.sh runs/abc123/artifacts/tensorrt-fp16
  edgeclip bench --artifact runs/abc123/artifacts/tensorrt-fp16 --target jetson-orin-nano
USAGE
}

[[ $# -ge 1 ]] || { usage; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
ARTIFACT=$1; shift
MAX_BATCH=""; OPT_BATCH=1; WORKSPACE_MB=1024; TRTEXEC=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --max-batch) MAX_BATCH=$2; shift 2 ;;
    --opt-batch) OPT_BATCH=$2; shift 2 ;;
    --workspace-mb) WORKSPACE_MB=$2; shift 2 ;;
    --trtexec) TRTEXEC=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build_engine.sh: error: unknown option '$1'; see --help" >&2; exit 2 ;;
  esac
done

MANIFEST="$ARTIFACT/manifest.json"
[[ -f "$MANIFEST" ]] || { echo "build_engine.sh: error: $MANIFEST not found; pass an edgeclip tensorrt artifact dir" >&2; exit 2; }
if [[ -z "$TRTEXEC" ]]; then
  TRTEXEC=$(command -v trtexec || true)
  [[ -z "$TRTEXEC" && -x /usr/src/tensorrt/bin/trtexec ]] && TRTEXEC=/usr/src/tensorrt/bin/trtexec
fi
[[ -n "$TRTEXEC" ]] || { echo "build_engine.sh: error: trtexec not found; install TensorRT (JetPack ships it in /usr/src/tensorrt/bin) or pass --trtexec" >&2; exit 2; }

# Read what the engine needs from the manifest (python3 ships with JetPack; json is stdlib).
read -r BACKEND PRECISION INPUT DIMS ONNX ENGINE MANIFEST_MAX < <(python3 - "$MANIFEST" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
inp = m["inputs"][0]
dims = "x".join(str(d) for d in inp["shape"][1:])
print(m["backend"], m["precision"], inp["name"], dims, m.get("onnx_file", "model.onnx"),
      m.get("engine_file", "model.engine"), m.get("max_batch", 8))
PY
)
[[ "$BACKEND" == "tensorrt" ]] || { echo "build_engine.sh: error: $ARTIFACT is a '$BACKEND' artifact; export with --backend tensorrt" >&2; exit 2; }
MAX_BATCH=${MAX_BATCH:-$MANIFEST_MAX}

case "$PRECISION" in
  fp32) FLAGS=() ;;
  fp16) FLAGS=(--fp16) ;;
  int8) FLAGS=(--int8 --fp16) ;;
  *) echo "build_engine.sh: error: unknown precision '$PRECISION' in $MANIFEST" >&2; exit 2 ;;
esac

set -x +e
"$TRTEXEC" \
  --onnx="$ARTIFACT/$ONNX" \
  --saveEngine="$ARTIFACT/$ENGINE" \
  --minShapes="$INPUT:1x$DIMS" \
  --optShapes="$INPUT:${OPT_BATCH}x$DIMS" \
  --maxShapes="$INPUT:${MAX_BATCH}x$DIMS" \
  --memPoolSize=workspace:"$WORKSPACE_MB" \
  "${FLAGS[@]}" 2>&1 | tee "$ARTIFACT/build.log"
TRTEXEC_STATUS=${PIPESTATUS[0]}
set +x -e

if [[ $TRTEXEC_STATUS -ne 0 || ! -s "$ARTIFACT/$ENGINE" ]]; then
  # The cause travels with the artifact: trtexec's last error lines into the manifest (status failed),
  # and to stderr, so `edgeclip bench/build --remote` can put them in the report (exit 3, not parity's 1).
  rm -f "$ARTIFACT/$ENGINE"
  python3 - "$MANIFEST" "$TRTEXEC_STATUS" "$ARTIFACT/build.log" <<'PY' >&2
import json, os, platform, sys, tempfile
path, status, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = [l.rstrip() for l in open(log, errors="replace")] if os.path.isfile(log) else []
errors = [l for l in lines if "[E]" in l or "FAILED" in l or "rror" in l] or lines
errors = errors[-12:]
m = json.load(open(path))
first = next((l for l in errors if "ERROR" in l or "Error" in l), errors[0] if errors else "no output")
m.update(status="failed", next_step=f"engine build failed on {platform.node()} (trtexec exit {status}): {first.strip()}")
m["files"] = sorted(set(m.get("files", [])) | {"build.log"})
m["engine_build"] = {"status": "failed", "host": platform.node(), "machine": platform.machine(), "built_with": "trtexec",
                     "exit_code": status, "error_lines": errors, "log": "build.log"}
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
with os.fdopen(fd, "w") as f:
    json.dump(m, f, indent=2)
os.replace(tmp, path)
print(f"build_engine.sh: error: trtexec could not build the engine (exit {status}); last error lines:")
print("\n".join("  " + l for l in errors))
PY
  exit 3
fi

# The artifact now runs: point the manifest at the engine (atomic replace).
python3 - "$MANIFEST" "$ENGINE" "$MAX_BATCH" <<'PY'
import json, os, platform, subprocess, sys, tempfile
path, engine, max_batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = json.load(open(path))
m.update(status="ready", next_step="", model_file=engine, max_batch=max_batch)
m["files"] = sorted(set(m.get("files", [])) | {engine, "build.log"})
m["engine_build"] = {"status": "built", "host": platform.node(), "machine": platform.machine(), "built_with": "trtexec"}
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
with os.fdopen(fd, "w") as f:
    json.dump(m, f, indent=2)
os.replace(tmp, path)
PY
echo "engine: $ARTIFACT/$ENGINE"

# The engine itself against PyTorch, on the device (exit 1 and a failed artifact when it differs).
python3 "$(dirname "$0")/check_engine.py" "$ARTIFACT" --trtexec "$TRTEXEC"
