"""TensorRT engine runtime (TensorRT 10 tensor API, CUDA buffers via torch). Runs on the target only.

Every GPU step of a call — the input copy, the engine, the output copy — is queued on the runtime's
own CUDA stream, in that order, and the stream is synchronised before the output is read: a copy
on torch's default stream while the engine runs on another would race it (the engine could read
the input before it has landed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeclip.errors import UserError
from edgeclip.runtimes.base import Runtime, device_runtime


def _require_tensorrt():
    try:
        import tensorrt as trt
    except Exception:  # noqa: BLE001
        raise UserError(
            "TensorRT is not installed here; run TensorRT artifacts on the target device (Jetson / NVIDIA GPU) "
            "after building the engine there with export/tensorrt/build_engine.sh"
        ) from None
    return trt


class TensorRTRuntime(Runtime):
    backend = "tensorrt"

    def __init__(self, artifact_dir, manifest, threads: int = 0, model_file: str | None = None) -> None:
        _require_tensorrt()
        # Before the on-target build the manifest points at the ONNX; the engine is what runs (the device layer's rule).
        engine = model_file or device_runtime("tensorrt").runnable_file(manifest)
        if not (Path(artifact_dir) / engine).is_file():
            raise UserError(
                f"TensorRT engine {Path(artifact_dir) / engine} is not built yet; run "
                f"`export/tensorrt/build_engine.sh {artifact_dir}` on the target device"
            )
        super().__init__(artifact_dir, manifest, threads, engine)

    def _load(self) -> None:
        trt = _require_tensorrt()
        import torch  # CUDA buffers; the TensorRT path runs on GPU devices that have torch

        self._torch = torch
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(self.model_path.read_bytes())
        if self.engine is None:
            raise RuntimeError("deserialize_cuda_engine returned None (engine built for another GPU/TensorRT?)")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        torch, stream = self._torch, self.stream
        with torch.cuda.stream(stream):  # the copies below are queued on `stream`, not the default one
            x = torch.from_numpy(np.ascontiguousarray(batch)).to("cuda")
            self.context.set_input_shape(self.input_name, tuple(x.shape))
            self.context.set_tensor_address(self.input_name, x.data_ptr())
            out_shape = tuple(self.context.get_tensor_shape(self.output_name))
            out = torch.empty(out_shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(self.output_name, out.data_ptr())
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed (execute_async_v3 returned False)")
            host = out.to("cpu")  # after the engine on the same stream
        stream.synchronize()  # nothing of this call is still in flight when its output is read
        return host.numpy()
