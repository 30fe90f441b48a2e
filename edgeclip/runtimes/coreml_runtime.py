"""CoreML (.mlpackage) prediction: macOS only (coremltools converts anywhere but predicts on macOS)."""

from __future__ import annotations

import platform

import numpy as np

from edgeclip.errors import UserError
from edgeclip.runtimes.base import Runtime


class CoreMLRuntime(Runtime):
    backend = "coreml"

    def _load(self) -> None:
        if platform.system() != "Darwin":
            raise UserError(
                f"CoreML artifact {self.artifact_dir} can only run on macOS; copy it to a Mac and run "
                "`edgeclip bench --artifact` there (see export/coreml/README.md)"
            )
        import coremltools as ct

        units = ct.ComputeUnit.ALL
        self.model = ct.models.MLModel(str(self.model_path), compute_units=units)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype == np.int64:
            batch = batch.astype(np.int32)  # CoreML has no int64 inputs (see coreml_export)
        result = self.model.predict({self.input_name: batch})
        return np.asarray(result[self.output_name])
