"""The TensorRT run paths keep their GPU work on one stream and check every CUDA status (issue 19).

No GPU or TensorRT here, so the CUDA runtime (cuda-python), TensorRT and torch.cuda are fakes
with the semantics that matter: work queued on a stream happens only when that stream is
synchronised, in order, and a failing call returns its error code instead of raising. A copy on
another stream than the engine's, or an output read before the synchronise, gives wrong numbers;
an unchecked error code goes unnoticed. The real thing is exercised on a device (`--remote`).
"""

from __future__ import annotations

import argparse
import ctypes
import enum
import importlib.util
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

# The device layer's TensorRT code: the device runner and the accident demo both run engines with it.
RUNTIME_PATH = Path(__file__).resolve().parent.parent / "devices" / "runner" / "runtime_tensorrt.py"
INPUT, OUTPUT = "image", "logits"
MANIFEST = {"inputs": [{"name": INPUT, "shape": [-1, 3, 2, 2], "dtype": "float32"}], "outputs": [{"name": OUTPUT}]}


def expected(batch: np.ndarray) -> np.ndarray:
    """What the fake engine computes: the first three values of each image, doubled."""
    return batch.reshape(len(batch), -1)[:, :3].astype(np.float32) * 2


class CudaError(enum.Enum):  # a plain Enum, as some cuda-python releases have it (int() would fail)
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2


class FakeCudart(types.ModuleType):
    """cuda.bindings.runtime: device memory in bytearrays, per-stream queues run at synchronise."""

    def __init__(self, fail: dict[str, CudaError] | None = None) -> None:
        super().__init__("cuda.bindings.runtime")
        self.memory: dict[int, bytearray] = {}
        self.queues: dict[str, list] = {}
        self.log: list[tuple] = []
        self.fail = fail or {}
        self.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice="H2D", cudaMemcpyDeviceToHost="D2H")
        self.cudaError_t = CudaError

    def _status(self, call: str) -> CudaError:
        return self.fail.get(call, CudaError.cudaSuccess)

    def cudaStreamCreate(self):
        self.log.append(("cudaStreamCreate",))
        return self._status("cudaStreamCreate"), "stream-1"

    def cudaMalloc(self, nbytes: int):
        self.log.append(("cudaMalloc", nbytes))
        if self._status("cudaMalloc") != CudaError.cudaSuccess:
            return self._status("cudaMalloc"), 0
        pointer = 4096 * (len(self.memory) + 1)
        self.memory[pointer] = bytearray(nbytes)
        return CudaError.cudaSuccess, pointer

    def cudaFree(self, pointer: int):
        self.log.append(("cudaFree", pointer))
        self.memory.pop(pointer, None)
        return (self._status("cudaFree"),)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        self.log.append(("cudaMemcpyAsync", kind, stream))
        if self._status("cudaMemcpyAsync") != CudaError.cudaSuccess:
            return (self._status("cudaMemcpyAsync"),)
        if kind == "H2D":
            data = ctypes.string_at(src, nbytes)  # the host bytes as they are when the copy is queued

            def copy() -> None:
                self.memory[dst][:nbytes] = data
        else:
            def copy() -> None:
                ctypes.memmove(dst, bytes(self.memory[src][:nbytes]), nbytes)
        self.queues.setdefault(stream, []).append(copy)
        return (CudaError.cudaSuccess,)

    def cudaStreamSynchronize(self, stream):
        self.log.append(("cudaStreamSynchronize", stream))
        for work in self.queues.pop(stream, []):
            work()
        return (self._status("cudaStreamSynchronize"),)

    def cudaGetErrorString(self, error):
        return CudaError.cudaSuccess, f"described {error.name}".encode()


class FakeContext:
    """An execution context whose engine reads and writes device memory through a `device` map."""

    def __init__(self, read, write, enqueue) -> None:
        self.read, self.write, self.enqueue = read, write, enqueue
        self.shape: tuple = ()
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape) -> bool:
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        return (self.shape[0], 3)

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream) -> bool:
        shape, addresses = self.shape, dict(self.addresses)

        def compute() -> None:
            batch = self.read(addresses[INPUT], shape)
            self.write(addresses[OUTPUT], expected(batch))
        self.enqueue(stream, compute)
        return True


def fake_tensorrt(context: FakeContext) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0 (fake)"
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=None: None})
    engine = types.SimpleNamespace(create_execution_context=lambda: context)
    trt.Runtime = lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda data: engine)
    return trt


def _install(monkeypatch, cudart: FakeCudart) -> None:
    def read(pointer: int, shape: tuple) -> np.ndarray:
        return np.frombuffer(bytes(cudart.memory[pointer]), dtype=np.float32)[: int(np.prod(shape))].reshape(shape)

    def write(pointer: int, array: np.ndarray) -> None:
        cudart.memory[pointer][: array.nbytes] = array.tobytes()

    context = FakeContext(read, write, lambda stream, work: cudart.queues.setdefault(stream, []).append(work))
    cuda = types.ModuleType("cuda")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime, cuda.bindings = cudart, bindings
    for name, module in (("cuda", cuda), ("cuda.bindings", bindings), ("cuda.bindings.runtime", cudart),
                         ("tensorrt", fake_tensorrt(context))):
        monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture()
def runner():
    spec = importlib.util.spec_from_file_location("edgeclip_runtime_tensorrt_streams", RUNTIME_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _engine(tmp_path: Path) -> str:
    path = tmp_path / "model.engine"
    path.write_bytes(b"fake engine")
    return str(path)


BATCH = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2) / 7


def test_runner_copies_and_runs_on_one_stream_and_syncs_before_reading(runner, monkeypatch, tmp_path):
    cudart = FakeCudart()
    _install(monkeypatch, cudart)
    model = runner.TensorRTModel(_engine(tmp_path), MANIFEST, argparse.Namespace())
    out = model.run(BATCH)
    np.testing.assert_allclose(out, expected(BATCH))
    streams = {entry[-1] for entry in cudart.log if entry[0] in ("cudaMemcpyAsync", "cudaStreamSynchronize")}
    assert streams == {"stream-1"}
    order = [entry[0] if entry[0] != "cudaMemcpyAsync" else entry[1] for entry in cudart.log]
    assert order[-3:] == ["H2D", "D2H", "cudaStreamSynchronize"]
    np.testing.assert_allclose(model.run(BATCH[:1] + 1), expected(BATCH[:1] + 1))  # buffers reused, still right


@pytest.mark.parametrize("call, error", [("cudaMalloc", CudaError.cudaErrorMemoryAllocation),
                                         ("cudaMemcpyAsync", CudaError.cudaErrorInvalidValue),
                                         ("cudaStreamSynchronize", CudaError.cudaErrorInvalidValue)])
def test_runner_raises_the_failing_cuda_call_and_its_error(runner, monkeypatch, tmp_path, call, error):
    _install(monkeypatch, FakeCudart(fail={call: error}))
    model = runner.TensorRTModel(_engine(tmp_path), MANIFEST, argparse.Namespace())
    with pytest.raises(RuntimeError, match=rf"CUDA call {call}.* failed with {error.name} \({error.value}\): described {error.name}"):
        model.run(BATCH)


def test_runner_refuses_a_stream_it_could_not_create(runner, monkeypatch, tmp_path):
    _install(monkeypatch, FakeCudart(fail={"cudaStreamCreate": CudaError.cudaErrorInvalidValue}))
    with pytest.raises(RuntimeError, match="CUDA call cudaStreamCreate failed with cudaErrorInvalidValue"):
        runner.TensorRTModel(_engine(tmp_path), MANIFEST, argparse.Namespace())


def test_accident_demo_runs_engines_with_the_device_layer_on_one_stream(monkeypatch, tmp_path):
    import json

    from edgeclip.runtimes.base import device_runtime
    from edgeclip.video.accident_demo.models import Model

    artifact = tmp_path / "encoder-tensorrt-fp32"
    artifact.mkdir()
    _engine(artifact)
    (artifact / "manifest.json").write_text(json.dumps({**MANIFEST, "backend": "tensorrt", "runtime_module": "tensorrt",
                                                        "model_file": "model.onnx", "engine_file": "model.engine"}))
    cudart = FakeCudart()
    _install(monkeypatch, cudart)
    model = Model(str(artifact))
    assert type(model.run.__self__) is device_runtime("tensorrt").TensorRTModel  # one cuda runner for runner and demo
    np.testing.assert_allclose(model.run(BATCH), expected(BATCH))
    assert {e[-1] for e in cudart.log if e[0] == "cudaMemcpyAsync"} == {"stream-1"}

    _install(monkeypatch, FakeCudart(fail={"cudaMemcpyAsync": CudaError.cudaErrorInvalidValue}))
    with pytest.raises(RuntimeError, match=r"cudaMemcpyAsync \(host to device\) failed with cudaErrorInvalidValue \(1\)"):
        Model(str(artifact)).run(BATCH)


# ---- edgeclip's own runtime (torch CUDA buffers) --------------------------------------------------

class FakeTorch:
    """torch with the stream semantics TensorRTRuntime relies on: copies are queued on the current
    stream (torch.cuda.stream(s) sets it), a device-to-host copy synchronises the current stream
    first (as torch's blocking copy does), queued work runs at the stream's synchronise."""

    float32 = np.float32

    def __init__(self) -> None:
        self.queues: dict[int, list] = {}
        self.tensors: dict[int, "FakeTorch.Tensor"] = {}
        self.default = FakeTorch.Stream(self, 0)
        self.current = self.default
        self.log: list[tuple] = []
        torch = self

        class Cuda:
            @staticmethod
            @contextmanager
            def stream(stream):
                previous, torch.current = torch.current, stream
                try:
                    yield
                finally:
                    torch.current = previous
        self.cuda = Cuda

    class Stream:
        def __init__(self, torch: "FakeTorch", handle: int) -> None:
            self.torch, self.cuda_stream = torch, handle

        def synchronize(self) -> None:
            self.torch.log.append(("synchronize", self.cuda_stream))
            for work in self.torch.queues.pop(self.cuda_stream, []):
                work()

    class Tensor:
        def __init__(self, torch: "FakeTorch", array: np.ndarray, device: str) -> None:
            self.torch, self.array, self.device = torch, array, device
            self.shape = array.shape
            torch.tensors[id(self)] = self

        def data_ptr(self) -> int:
            return id(self)

        def numpy(self) -> np.ndarray:
            assert self.device == "cpu"
            return self.array

        def cuda(self) -> "FakeTorch.Tensor":
            return self.to("cuda")

        def cpu(self) -> "FakeTorch.Tensor":
            return self.to("cpu")

        def to(self, device: str) -> "FakeTorch.Tensor":
            torch, stream = self.torch, self.torch.current
            torch.log.append(("copy to " + device, stream.cuda_stream))
            if device == "cuda":
                target = FakeTorch.Tensor(torch, np.full_like(self.array, np.nan), "cuda")
                source = self.array.copy()
                torch.queues.setdefault(stream.cuda_stream, []).append(lambda: np.copyto(target.array, source))
                return target
            stream.synchronize()  # a blocking device-to-host copy waits for its stream
            return FakeTorch.Tensor(torch, self.array.copy(), "cpu")

    def from_numpy(self, array: np.ndarray) -> "FakeTorch.Tensor":
        return FakeTorch.Tensor(self, array, "cpu")

    def empty(self, shape, dtype=None, device="cpu") -> "FakeTorch.Tensor":
        return FakeTorch.Tensor(self, np.full(shape, np.nan, dtype=np.float32), device)


def test_tensorrt_runtime_queues_copies_and_engine_on_its_stream():
    from edgeclip.runtimes.tensorrt_runtime import TensorRTRuntime

    torch = FakeTorch()
    stream = FakeTorch.Stream(torch, 7)
    context = FakeContext(lambda pointer, shape: torch.tensors[pointer].array.reshape(shape),
                          lambda pointer, array: np.copyto(torch.tensors[pointer].array, array),
                          lambda handle, work: torch.queues.setdefault(handle, []).append(work))
    runtime = object.__new__(TensorRTRuntime)  # no TensorRT here: the loaded state by hand
    runtime._torch, runtime.stream, runtime.context = torch, stream, context
    runtime.input_name, runtime.output_name = INPUT, OUTPUT
    out = runtime._run(BATCH)
    np.testing.assert_allclose(out, expected(BATCH))  # NaN if the copy raced the engine
    assert {handle for _, handle in torch.log} == {7}  # nothing on the default stream
    assert torch.log[-1] == ("synchronize", 7)
