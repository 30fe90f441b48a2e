"""Do the README's install routes resolve on each supported Python, and what does a venv weigh?

Usage (the committed results came from exactly this, see "command" in the JSON):
    python benchmarks/install_routes.py --python 3.10=~/.pyenv/versions/3.10.13/bin/python:constraints/py310.txt \
        --python 3.12=~/.pyenv/versions/3.12.1/bin/python:constraints.txt --venv /work/main/.venv \
        --out benchmarks/results/install_routes

For each `--python VERSION=INTERPRETER:CONSTRAINTS`: `pip install --dry-run --ignore-installed
".[all]" -c CONSTRAINTS --report ...` with that interpreter's pip, i.e. pip's real resolver over
the package metadata (wheels pip has no separate metadata for are downloaded into its cache, not
installed). Recorded: exit status, the resolved versions of the pinned packages, and whether each
equals its pin. `--venv`: the size of an installed venv (the CUDA route, as the README's set-up line
installs it on Linux x86_64), and how much of it is NVIDIA/CUDA/Triton packages, which a CPU-only
install (PyTorch's CPU wheel index) does not get. Nothing is installed; the CPU index itself is not
reachable from the machine these results came from, so that route is not resolved here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GPU_PREFIXES = ("nvidia", "triton", "cuda")


def pins(constraints: Path) -> dict[str, str]:
    out = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def resolve(interpreter: str, constraints: Path, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [interpreter, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
                   str(report), ".[all]", "-c", str(constraints)]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        seconds = round(time.perf_counter() - started, 1)
        python = subprocess.run([interpreter, "-c", "import platform; print(platform.python_version())"],
                                capture_output=True, text=True).stdout.strip()
        if result.returncode != 0 or not report.is_file():
            errors = [l for l in result.stderr.splitlines() if l.startswith("ERROR")]
            return {"python": python, "resolved": False, "exit_code": result.returncode, "seconds": seconds,
                    "errors": errors[-5:]}
        installs = json.loads(report.read_text())["install"]
    versions = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"] for item in installs}
    wanted = pins(constraints)
    return {"python": python, "resolved": True, "exit_code": 0, "seconds": seconds, "packages": len(versions),
            "pinned": {name: {"pin": pin, "resolved": versions.get(name)} for name, pin in wanted.items()},
            "all_pins_met": all(versions.get(name) == pin for name, pin in wanted.items()),
            "gpu_packages": sorted(n for n in versions if n.startswith(GPU_PREFIXES))}


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total


def venv_size(venv: Path) -> dict[str, Any]:
    site = next(venv.glob("lib/python*/site-packages"))
    gpu = sum(folder_bytes(p) for p in site.iterdir() if p.name.lower().startswith(GPU_PREFIXES) and p.is_dir())
    torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True).stdout.strip()
    return {"venv": str(venv), "torch": torch, "total_gb": round(folder_bytes(venv) / 1e9, 2),
            "nvidia_cuda_triton_gb": round(gpu / 1e9, 2)}


def markdown(data: dict[str, Any]) -> str:
    lines = ["# Install routes", "", f"Command: `{data['command']}`", "",
             "| Python | constraints | resolves | all pins met | packages | CUDA/Triton packages pulled | seconds |",
             "|---|---|---|---|---:|---:|---:|"]
    for key, row in data["routes"].items():
        lines.append(f"| {row['python']} | {row['constraints']} | {'yes' if row['resolved'] else 'NO'} | "
                     f"{row.get('all_pins_met', '-')} | {row.get('packages', '-')} | {len(row.get('gpu_packages', []))} | "
                     f"{row['seconds']} |")
    for key, row in data["routes"].items():
        if not row["resolved"]:
            lines += ["", f"{key}: " + "; ".join(row["errors"])]
        else:
            off = {n: v for n, v in row["pinned"].items() if v["pin"] != v["resolved"]}
            if off:
                lines += ["", f"{key}: resolved differently from its pins: {off}"]
    if data.get("venv"):
        v = data["venv"]
        lines += ["", f"Installed venv `{v['venv']}` (torch {v['torch']}): {v['total_gb']} GB, of which "
                      f"{v['nvidia_cuda_triton_gb']} GB are nvidia-*/cuda-*/triton packages a CPU-only torch does not need."]
    lines += ["", "Dry runs resolve from package metadata; nothing was installed. The CPU-only route (PyTorch's CPU "
                  "wheel index) was not resolved: that index is not reachable from this machine.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", action="append", default=[], metavar="VERSION=INTERPRETER:CONSTRAINTS")
    parser.add_argument("--venv", help="an installed venv to measure")
    parser.add_argument("--timeout", type=float, default=1500.0)
    parser.add_argument("--out", default="benchmarks/results/install_routes")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from edgeclip.io_utils import write_result_files

    routes = {}
    for item in args.python:
        version, _, rest = item.partition("=")
        interpreter, _, constraints = rest.rpartition(":")
        row = resolve(os.path.expanduser(interpreter), ROOT / constraints, args.timeout)
        routes[version] = {**row, "constraints": constraints}
        print(json.dumps(routes[version]), flush=True)
    data = {"command": "python benchmarks/install_routes.py " + " ".join(sys.argv[1:]), "routes": routes,
            "venv": venv_size(Path(args.venv)) if args.venv else None}
    write_result_files(args.out, data, markdown(data))
    print(markdown(data))
    return 0 if all(r["resolved"] for r in routes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
