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
    code = ("import sys; import edgeclip.backends, edgeclip.runtimes, edgeclip.runtimes.onnxruntime_runtime, "
            "edgeclip.runtimes.openvino_runtime, edgeclip.manifest; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('edgeclip.exporters')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(UserError, match="unknown backend 'onnxx'; did you mean 'onnx'"):
        get_backend("onnxx")
