"""Encode onnx-tensorrt's per-release operator tables (`docs/operators.md`) as the JSON that
`tensorrt_support` checks graphs against (export/tensorrt/onnx_support.json).

The table ships with edgeclip (no network at export time); this module regenerates it from a local
clone of github.com/onnx/onnx-tensorrt:

    python -m edgeclip.exporters.tensorrt_support_table /path/to/onnx-tensorrt export/tensorrt/onnx_support.json

Each TensorRT version names the release branch it was read from and that branch's commit.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

# TensorRT version → (onnx-tensorrt release branch, note). JetPack 5.1.x ships 8.5.2, JetPack 6.0
# 8.6.2, JetPack 6.1/6.2 10.3. The 10.3-GA branch was not in the snapshot this table was built
# from; 10.1-GA is the newest 10.x release branch there and stands in for it (said in the table).
RELEASES: dict[str, tuple[str, str]] = {
    "8.5": ("8.5-GA", "JetPack 5.1.x ships TensorRT 8.5.2"),
    "8.6": ("8.6-GA", "JetPack 6.0 ships TensorRT 8.6.2"),
    "10.3": ("10.1-GA", "JetPack 6.1/6.2 ship TensorRT 10.3; the table is onnx-tensorrt's 10.1-GA release branch, "
                        "the newest 10.x release branch available when it was encoded (10.3-GA was not)"),
}
_TYPE_FIXES = {"INF64": "INT64"}  # a typo in 10.1-GA's ConstantOfShape row
# Where a release's table is narrower than its importer, the importer (the code that parses) wins;
# each correction names the source line that shows it.
IMPORTER_CORRECTIONS: dict[str, dict[str, dict[str, Any]]] = {
    version: {"ConstantOfShape": {
        "types": ["FP32", "FP16", "INT32", "INT8", "BOOL"],
        "correction": f"{branch} builtin_op_importers.cpp ConstantOfShape: CHECK(notInvalidType(value, {{\"UINT8\"}})) "
                      "- any value type but UINT8 (the table says FP32; torch's shape arithmetic uses INT64 values)"}}
    for version, branch in (("8.5", "8.5-GA"), ("8.6", "8.6-GA"))
}


def parse_operators_md(text: str) -> dict[str, Any]:
    """{"opset_min", "opset_max", "int64_cast_to_int32", "operators": {op: {supported, types, restrictions}}}."""
    header = next((line for line in text.splitlines() if "supports operators" in line), "")
    up_to = re.search(r"up to [Oo]pset (\d+)", header)
    span = re.search(r"opset (\d+) to opset (\d+)", header)
    if span:
        opset_min, opset_max = int(span.group(1)), int(span.group(2))
    elif up_to:
        opset_min, opset_max = 1, int(up_to.group(1))
    else:
        raise ValueError("operators.md has no 'supports operators up to opset N' line")
    operators: dict[str, Any] = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("| Operator"):
            in_table = True
            continue
        if not in_table or not line.startswith("|") or line.startswith("|--"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name, supported = cells[0], cells[1] if len(cells) > 1 else "N"
        types = [_TYPE_FIXES.get(t.strip(), t.strip()) for t in (cells[2] if len(cells) > 2 else "").split(",") if t.strip()]
        restrictions = cells[3] if len(cells) > 3 else ""
        operators[name] = {"supported": supported.upper().startswith("Y"), "types": types,
                           "restrictions": restrictions.replace("\\.", ".")}
    return {
        "opset_min": opset_min,
        "opset_max": opset_max,
        # 8.x: "TensorRT will attempt to cast down INT64 to INT32" — an INT64 tensor is checked as INT32.
        "int64_cast_to_int32": "cast down INT64 to INT32" in text,
        "operators": operators,
    }


def build_table(repo: Path) -> dict[str, Any]:
    versions: dict[str, Any] = {}
    for version, (branch, note) in RELEASES.items():
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout

        parsed = parse_operators_md(git("show", f"{branch}:docs/operators.md"))
        for op, fix in IMPORTER_CORRECTIONS.get(version, {}).items():
            parsed["operators"][op].update(fix)
        versions[version] = {"source": f"github.com/onnx/onnx-tensorrt {branch} docs/operators.md",
                             "commit": git("rev-parse", branch).strip(), "note": note, **parsed}
    return {"about": "ONNX operator support per TensorRT version, encoded from onnx-tensorrt's docs/operators.md "
                     "by edgeclip/exporters/tensorrt_support_table.py", "versions": versions}


def main(argv: list[str] | None = None) -> int:
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a clone of github.com/onnx/onnx-tensorrt with its release branches")
    parser.add_argument("out", type=Path, help="JSON file to write")
    args = parser.parse_args(argv)
    table = build_table(args.repo)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}: " + ", ".join(f"TensorRT {v} ({len(t['operators'])} ops, opset <= {t['opset_max']})"
                                            for v, t in table["versions"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
