"""Test-wide set-up: a private cache per session, quiet progress bars, seeded torch."""

from __future__ import annotations

import os
import tempfile

import pytest

# Before edgeclip is imported anywhere: tests must not read or write the user's cache. Set
# EDGECLIP_TEST_CACHE to reuse one between runs (e.g. a trained proxy teacher) while developing.
os.environ["EDGECLIP_CACHE"] = os.environ.get("EDGECLIP_TEST_CACHE") or tempfile.mkdtemp(prefix="edgeclip-test-cache-")
# The GEMM roof (bench/roof.py) is the machine's: measured once per session even where a test has its own cache.
os.environ.setdefault("EDGECLIP_ROOF_CACHE", os.path.join(os.environ["EDGECLIP_CACHE"], "roof"))
os.environ.setdefault("TQDM_DISABLE", "1")
# One torch thread: tests check behaviour, and on a shared 2-core machine more threads made
# tiny-model steps 10-50x slower (measured on the distillation tests: 170 s vs 13 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _seed() -> None:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def proxy_teacher():
    """The digits proxy CLIP, trained once per test session (or taken from EDGECLIP_TEST_CACHE)."""
    from edgeclip.teacher.proxy import load_proxy_teacher

    return load_proxy_teacher(progress=False)


@pytest.fixture
def tiny_clip_config() -> dict:
    """A tiny open_clip config: fast to build and run, real tokenizer vocabulary."""
    return {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 16, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16},
        "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }


@pytest.fixture
def fake_trtexec(tmp_path, monkeypatch):
    """A stand-in trtexec (onnxruntime underneath) first on PATH; returns its folder."""
    from support import write_fake_trtexec

    folder = write_fake_trtexec(tmp_path / "fake-tensorrt-bin")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


@pytest.fixture(scope="session")
def bad_input_world(tmp_path_factory) -> dict[str, str]:
    """Bad files for the fuzz table (tests/test_bad_inputs.py): {placeholder: path}, written once."""
    from support.bad_inputs import make_bad_input_world

    return make_bad_input_world(tmp_path_factory.mktemp("bad-inputs"))


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """EDGECLIP_CACHE in this test's tmp_path (modules opt in: pytestmark usefixtures("private_cache"))."""
    monkeypatch.setenv("EDGECLIP_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def cnn():
    """A tiny trained CNN classifier and its spec (edgeclip.exporters.testing), once per module."""
    from edgeclip.exporters.testing import tiny_cnn_spec, trained_tiny_cnn

    return trained_tiny_cnn(), tiny_cnn_spec()


@pytest.fixture
def tiny_teacher(tiny_clip_config):
    """A tiny CLIP teacher (random weights, seeded)."""
    import torch

    from edgeclip.data import Preprocess
    from edgeclip.teacher.clip_teacher import ClipTeacher

    torch.manual_seed(0)
    return ClipTeacher.from_config("tiny-clip", tiny_clip_config, Preprocess(size=16))


@pytest.fixture
def tiny_teacher_file(tmp_path, tiny_teacher) -> str:
    """`tiny_teacher` saved as a teacher file (a --teacher path)."""
    path = tmp_path / "tiny-clip.pt"
    tiny_teacher.save(path)
    return str(path)


@pytest.fixture
def no_torch_env(tmp_path) -> dict[str, str]:
    """PYTHONPATH shadowing torch and edgeclip with packages that refuse to import (children inherit
    it): what the device runner and the device demo must run without."""
    blocker = tmp_path / "blocker"
    for name in ("torch", "edgeclip"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is not allowed on the device')\n")
    return {**os.environ, "PYTHONPATH": str(blocker)}
