"""The backend table is the one source of backend facts; every row resolves what it names."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from edgeclip.backends import BACKENDS, PRECISIONS, get_backend
from edgeclip.errors import UserError
from edgeclip.runtimes.base import Runtime


@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_row_resolves_its_exporter_runtime_and_int8_chooser(name: str) -> None:
    row = get_backend(name)
    exporter = row.load_exporter()
    assert callable(exporter) and {"model", "spec", "precision", "out_dir"} <= set(inspect.signature(exporter).parameters)
    assert issubclass(row.load_runtime(), Runtime)
    assert set(row.precisions) <= set(PRECISIONS) and row.model_suffix.startswith(".")
    if "int8" in row.precisions:
        method = row.choose_int8_method(kind="classifier", transformer=False, has_calibration=True)
        from edgeclip.compress.quantize import METHODS

        assert method in METHODS
    else:
        with pytest.raises(UserError, match="no int8 path"):
            row.choose_int8_method(kind="classifier", transformer=False, has_calibration=True)


def test_runtimes_and_table_import_without_torch_or_exporters() -> None:
    """Devices run artifacts with numpy + the runtime: neither the table nor the ONNX/OpenVINO runtimes
    may pull in torch or the exporters (that was an exporters <-> runtimes import loop)."""
    code = ("import sys; import edgeclip.backends, edgeclip.runtimes, edgeclip.runtimes.base, edgeclip.manifest; "
            "edgeclip.runtimes.base.device_runtime('onnxruntime'); edgeclip.runtimes.base.device_runtime('openvino'); "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('edgeclip.exporters')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(UserError, match="unknown backend 'onnxx'; did you mean 'onnx'"):
        get_backend("onnxx")


# Files allowed to name a backend besides the table: the backend's own modules. A file belongs to a
# backend when its name starts with the backend's name or is `runtime_<runtime_module>.py` in the device
# layer; OpenVINO's NNCF int8 module keeps its short name.
OWN_MODULE_ALIASES = {"ov_int8.py": "openvino"}


def test_backend_names_appear_only_in_the_table_and_their_own_modules() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    found = []
    for name, row in BACKENDS.items():
        if name == "onnx":  # the default backend and the format other exporters build on: named everywhere
            continue
        pattern = re.compile(rf'"{re.escape(name)}"')
        for path in [*sorted((root / "edgeclip").rglob("*.py")), *sorted((root / "devices").rglob("*.py"))]:
            own = (path.name.startswith(name) or path.name == f"runtime_{row.runtime_module}.py"
                   or OWN_MODULE_ALIASES.get(path.name) == name
                   or path.name == "backends.py")
            if not own and "accident_demo/runtime" not in path.as_posix() and pattern.search(path.read_text()):
                found.append(f"{path.relative_to(root)}: {name}")
    assert not found, "backend facts outside the backend table: " + ", ".join(found)


def test_cli_backend_choices_come_from_the_table() -> None:
    from edgeclip.backends import cpu_backends, device_backends
    from edgeclip.cli import build_parser

    assert device_backends() == [n for n, row in BACKENDS.items() if row.has_device_runtime]
    assert cpu_backends() == [n for n in device_backends() if not get_backend(n).requires and not get_backend(n).built_on_target]
    demo = build_parser()._subparsers._group_actions[0].choices["demo"]._subparsers._group_actions[0].choices
    backend_choices = {name: next(a.choices for a in parser._actions if a.dest == "backend") for name, parser in demo.items()}
    assert backend_choices == {"zero-shot": cpu_backends(), "accident": device_backends()}


@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_row_resolves_what_else_it_names(name: str) -> None:
    row = get_backend(name)
    assert row.tools and all(isinstance(tool, str) for tool in row.tools)
    if row.precision_evidence:
        assert callable(__import__(row.precision_evidence.split(":")[0], fromlist=["_"]).__dict__[row.precision_evidence.split(":")[1]])
    if row.version_key:
        assert row.parse_version(row.parse_version("8.6")) == row.parse_version("8.6")  # normalised once is normalised
    else:
        with pytest.raises(UserError, match="takes no runtime version"):
            row.parse_version("1.0")
