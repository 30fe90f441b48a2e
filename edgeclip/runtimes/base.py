"""The `Runtime` interface shared by every backend (torch-free: numpy + the backend's runtime only).

`ArtifactRuntime` runs an artifact with the device layer (devices/runner/artifact_runtime.py and its
`runtime_<module>.py` files): the code the device runner and the accident demo run, loaded by path,
so the workstation, the parity check at export and the device open a model the same way.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import numpy as np
from PIL import Image

from edgeclip.data.preprocess import Preprocess  # numpy + PIL only: runs where torch is absent
from edgeclip.backends import get_backend
from edgeclip.errors import UserError
from edgeclip.paths import runner_module


class Runtime:
    """Runs one exported artifact. Subclasses implement `_load` and `_run`.

    `.run(batch)` takes a preprocessed batch (N,3,H,W float32, or (N,context) int64 tokens for a
    text encoder) and returns the first output. `.predict_images(images)` applies the artifact's
    own preprocessing first, so a caller cannot feed it differently than it was exported.
    """

    backend = "base"

    def __init__(self, artifact_dir: str | Path, manifest: dict[str, Any], threads: int = 0,
                 model_file: str | None = None) -> None:
        self.artifact_dir = Path(artifact_dir)
        self.manifest = manifest
        self.threads = int(threads)
        self.preprocess = Preprocess.from_dict(manifest["preprocessing"])
        self.input_name: str = manifest["inputs"][0]["name"]
        self.output_name: str = manifest["outputs"][0]["name"]
        self.input_shape: list[Any] = list(manifest["inputs"][0]["shape"])
        self.input_dtype = np.dtype(manifest["inputs"][0].get("dtype", "float32"))
        self._warned_resize = False
        self.model_path = self.artifact_dir / (model_file or manifest["model_file"])
        if not self.model_path.exists():
            raise UserError(
                f"model file {self.model_path} named in {self.artifact_dir / 'manifest.json'} is missing; "
                "re-run `edgeclip export`"
            )
        try:
            self._load()
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - every backend has its own parse errors; all mean "corrupt"
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"cannot load {self.model_path} with {self.backend} ({first_line[:200]}); the file is corrupt or "
                "from an incompatible version: re-run `edgeclip export`"
            ) from None

    def _load(self) -> None:
        raise NotImplementedError

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        fixed = self.input_shape[1:]
        if batch.ndim != len(self.input_shape) or any(
            isinstance(want, int) and want != got for want, got in zip(fixed, batch.shape[1:])
        ):
            raise UserError(
                f"input of shape {list(batch.shape)} does not fit {self.input_name} {self.input_shape} of "
                f"{self.artifact_dir}; preprocess with runtime.preprocess (or use predict_images)"
            )
        return np.ascontiguousarray(batch, dtype=self.input_dtype)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """First model output for a preprocessed batch, as float32 numpy."""
        return np.asarray(self._run(self._check(batch)), dtype=np.float32)

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Outputs for PIL images. A fused-preprocessing artifact gets each image as a uint8 frame;
        an image of another size than its frame is stretched to it on the host (PIL bilinear) with a
        one-time warning: such an artifact is built for one camera's frames."""
        if self.input_dtype.kind not in "fu":
            raise UserError(f"{self.artifact_dir} is a text encoder; feed token ids to .run(), not images")
        if len(images) == 0:
            raise UserError("predict_images got no images; pass at least one PIL image")
        frame = self.preprocess.fused_frame
        if frame is not None and not self._warned_resize:
            other = sorted({image.size[::-1] for image in images if image.size[::-1] != tuple(frame)})
            if other:
                self._warned_resize = True
                warnings.warn(f"{self.artifact_dir} takes {frame[0]}x{frame[1]} frames (fused preprocessing); images of "
                              f"{', '.join(f'{h}x{w}' for h, w in other)} are stretched to it on the host (PIL bilinear)",
                              stacklevel=2)
        return self.run(np.stack([self.preprocess(image) for image in images]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.artifact_dir}, threads={self.threads})"


def device_layer() -> ModuleType:
    """devices/runner/artifact_runtime.py, the torch-free runtime layer the device runs."""
    return runner_module("artifact_runtime.py")


def device_runtime(runtime_module: str) -> ModuleType:
    """The device layer's code for one runtime (devices/runner/runtime_<runtime_module>.py)."""
    return device_layer().runtime(runtime_module)


class ArtifactRuntime(Runtime):
    """An artifact run by the device layer's runtime for its manifest's `runtime_module`, on this CPU."""

    def __init__(self, artifact_dir: str | Path, manifest: dict[str, Any], threads: int = 0,
                 model_file: str | None = None) -> None:
        self.backend = str(manifest.get("backend"))
        super().__init__(artifact_dir, manifest, threads, model_file)

    def _load(self) -> None:
        layer = device_layer()
        # The runtime comes from the backend row (a manifest written before it recorded runtime_module opens too).
        code = layer.runtime(get_backend(self.backend).runtime_module)
        self.model = code.open_model(str(self.model_path), self.manifest, layer.RuntimeOptions(threads=self.threads))
        self.input_name = self.model.input_name

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.model.run(batch)
