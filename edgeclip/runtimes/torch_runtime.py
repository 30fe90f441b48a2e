"""`TorchRuntime`: the unexported PyTorch model behind the same interface as exported artifacts.

The benchmark uses it as the reference row (and for top-1 agreement with the exported model).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from edgeclip.errors import UserError
from edgeclip.utils import disable_mha_fastpath
from edgeclip.students.spec import ModelSpec


class TorchRuntime:
    backend = "pytorch"

    def __init__(self, model: nn.Module, spec: ModelSpec, threads: int = 0) -> None:
        spec.check_exportable()
        disable_mha_fastpath()  # same math path as the exported graphs
        self.model = model.eval()
        self.spec = spec
        self.threads = int(threads)
        if self.threads > 0:
            torch.set_num_threads(self.threads)  # process-wide: torch has no per-module thread pool
        self.preprocess = spec.preprocess
        self.input_name = spec.input_names[0]
        self.output_name = spec.output_names[0]
        self.input_dtype = np.dtype(spec.input_dtype)
        self.manifest = {
            "backend": "pytorch",
            "precision": "fp32",
            "kind": spec.kind,
            "name": spec.name,
            "inputs": [{"name": self.input_name, "shape": spec.input_shape(), "dtype": self.input_dtype.name}],
            "outputs": [{"name": self.output_name, "shape": self._output_shape(), "dtype": "float32"}],
            "preprocessing": spec.preprocess.to_dict(),
            "class_names": list(spec.class_names),
            "embed_dim": spec.embed_dim,
            "parity": {"status": "reference", "passed": True},
        }

    def _output_shape(self) -> list[object]:
        dims = self.spec.input_shape()[1:]
        example = np.ones((1, *dims), dtype=self.input_dtype)  # ones: a valid token id and a plain image
        return ["batch", *self.run(example).shape[1:]]

    @torch.no_grad()
    def run(self, batch: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=self.input_dtype))
        out = self.model(tensor)
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.float().cpu().numpy()

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if self.spec.is_text:
            raise UserError(f"model '{self.spec.name}' is a text encoder; feed token ids to .run(), not images")
        if len(images) == 0:
            raise UserError("predict_images got no images; pass at least one PIL image")
        return self.run(np.stack([self.preprocess(image) for image in images]))

    def __repr__(self) -> str:
        return f"TorchRuntime({self.spec.name}, threads={self.threads})"
