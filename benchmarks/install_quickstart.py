"""Install from a clean clone and run the quickstart, on each supported Python.

Usage (the committed results came from exactly this, see "command" in the JSON):
    python benchmarks/install_quickstart.py --python 3.10=~/.pyenv/versions/3.10.13/bin/python:constraints/py310.txt \
        --python 3.12=~/.pyenv/versions/3.12.1/bin/python:constraints.txt --out benchmarks/results/install_quickstart

For each `--python VERSION=INTERPRETER:CONSTRAINTS`, in a fresh temporary folder: `git clone` of this
checkout's HEAD, `INTERPRETER -m venv .venv`, the README's set-up command with that Python's
constraints (`pip install -e ".[all]" -c CONSTRAINTS`), then `edgeclip build --recipe quickstart
--target cpu` with an empty cache (so the proxy teacher trains too). Recorded per Python: each step's
exit code and wall time, the venv's size, and the quickstart report's verdict and student accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def step(command: list[str], cwd: Path, env: dict[str, str], log: Path, timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    with open(log, "w") as handle:
        try:
            code = subprocess.run(command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    return {"command": " ".join(command), "exit": code, "seconds": round(time.perf_counter() - started, 1), "tail": tail}


def run_python(version: str, interpreter: str, constraints: str, work: Path, timeout: float) -> dict[str, Any]:
    clone, cache = work / f"clone-{version}", work / f"cache-{version}"
    env = {**os.environ, "EDGECLIP_CACHE": str(cache), "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("PYTHONPATH", None)
    result: dict[str, Any] = {"python": version, "interpreter": interpreter, "constraints": constraints, "steps": {}}
    steps = result["steps"]
    steps["clone"] = step(["git", "clone", "-q", str(ROOT), str(clone)], work, env, work / f"{version}-clone.log", timeout)
    steps["venv"] = step([os.path.expanduser(interpreter), "-m", "venv", ".venv"], clone, env, work / f"{version}-venv.log", timeout)
    pip = str(clone / ".venv" / "bin" / "pip")
    steps["install"] = step([pip, "install", "-q", "-e", ".[all]", "-c", constraints], clone, env, work / f"{version}-install.log", timeout)
    result["venv_gb"] = round(folder_bytes(clone / ".venv") / 1e9, 2)
    out = clone / "runs" / "quickstart"
    steps["quickstart"] = step([str(clone / ".venv" / "bin" / "edgeclip"), "build", "--recipe", "quickstart", "--target", "cpu",
                                "--out", str(out)], clone, env, work / f"{version}-quickstart.log", timeout)
    report = out / "report.json"
    if report.is_file():
        data = json.loads(report.read_text())
        student = next((r for r in data.get("rows", []) if r.get("role") == "student"), {})
        result["report"] = {"recommended": (data.get("verdict") or {}).get("recommended"),
                            "student_accuracy": student.get("accuracy"), "student_retention": student.get("retention"),
                            "python_in_report": (data.get("environment") or {}).get("python")}
    return result


def render(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = ["# Install from a clean clone + quickstart, per Python", "", f"Command: `{meta['command']}`  ",
             f"Machine: {meta['machine']}; {meta['created']}. Each run: fresh clone of HEAD, new venv, the README's set-up "
             "command with that Python's constraints, then `edgeclip build --recipe quickstart --target cpu` with an empty cache.", "",
             "| Python | constraints | install exit | install min | venv GB | quickstart exit | quickstart min | student accuracy | retention | recommended |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---|"]
    for r in results:
        s, rep = r["steps"], r.get("report", {})
        acc, ret = rep.get("student_accuracy"), rep.get("student_retention")
        lines.append(f"| {r['python']} | {r['constraints']} | {s['install']['exit']} | {s['install']['seconds'] / 60:.1f} | {r['venv_gb']} | "
                     f"{s['quickstart']['exit']} | {s['quickstart']['seconds'] / 60:.1f} | "
                     f"{'-' if acc is None else f'{100 * acc:.2f}%'} | {'-' if ret is None else f'{ret:.3f}'} | {rep.get('recommended') or '-'} |")
    lines += ["", "Quickstart exit 0 = every artifact passed parity and every `cpu` budget held (README). Install minutes "
              "include pip's downloads (wheels already in pip's cache are not downloaded again)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", action="append", metavar="VERSION=INTERPRETER:CONSTRAINTS")
    parser.add_argument("--out", default="benchmarks/results/install_quickstart")
    parser.add_argument("--work", default="", help="working folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per step")
    parser.add_argument("--render-only", action="store_true", help="re-render <out>.md from an existing <out>.json")
    args = parser.parse_args()
    if args.render_only:
        data = json.loads(Path(args.out).with_suffix(".json").read_text())
        sys.path.insert(0, str(ROOT))
        from edgeclip.io_utils import write_result_files

        write_result_files(args.out, data, render(data["results"], data))
        print(Path(args.out).with_suffix(".md").read_text())
        return 0
    if not args.python:
        parser.error("--python VERSION=INTERPRETER:CONSTRAINTS is required (once per Python)")
    entries = []
    for text in args.python:
        version, _, rest = text.partition("=")
        interpreter, _, constraints = rest.rpartition(":")
        if not version or not interpreter or not constraints:
            parser.error(f"--python wants VERSION=INTERPRETER:CONSTRAINTS, got {text!r}")
        entries.append((version, interpreter, constraints))
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="edgeclip-install-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = [run_python(v, i, c, work, args.timeout) for v, i, c in entries]
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    meta = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": "python " + " ".join(sys.argv),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
            "head": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()}
    sys.path.insert(0, str(ROOT))
    from edgeclip.io_utils import write_result_files

    write_result_files(args.out, {**meta, "results": results}, render(results, meta))
    print(Path(args.out).with_suffix(".md").read_text())
    ok = all(r["steps"]["install"]["exit"] == 0 and r["steps"]["quickstart"]["exit"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
