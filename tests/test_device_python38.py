"""Every artifact kind the README sends to a device, run on the oldest stack devices have: Python 3.8
with onnxruntime 1.19 and numpy 1.24 (JetPack 5: the newest onnxruntime wheel for Python 3.8).

Kinds: a classifier (fp32 and int8), a DistillCLIP image tower, text tower and fused zero-shot
classifier (the README's zero-shot runner command), and the accident demo's encoder + head. Each
runs in a Python 3.8 interpreter without torch or edgeclip, as on the device, and its numbers are
compared with what this machine computes.

The interpreter: `$EDGECLIP_TEST_PY38` (a python with those packages), else a venv made once from
pyenv's 3.8 under pytest's cache (`.pytest_cache/d/py38-ort119`; pip must reach a package index).
Without either the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "devices" / "runner" / "edgeclip_runner.py"
PINS = ("onnxruntime==1.19.*", "numpy==1.24.*", "pillow")
WANTED = {"python": "3.8.", "onnxruntime": "1.19.", "numpy": "1.24."}
TEMPLATES = ["a photo of a {}.", "a drawing of the {}."]
ARGMAX_INT64 = "Could not find an implementation for ArgMax(13)"
pytestmark = pytest.mark.slow  # makes a Python 3.8 venv once (pip), then ~35 s


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600, **kwargs)


def _versions(python: Path) -> dict | None:
    probe = _run([python, "-c", "import json, platform, numpy, onnxruntime; print(json.dumps({'python': "
                  "platform.python_version(), 'numpy': numpy.__version__, 'onnxruntime': onnxruntime.__version__}))"])
    return json.loads(probe.stdout) if probe.returncode == 0 else None


def _matches(versions: dict | None) -> bool:
    return bool(versions) and all(str(versions[k]).startswith(v) for k, v in WANTED.items())


def _make_venv(venv: Path) -> str | None:
    """Create the venv (a marker file is written last, so a half-made one is redone); None or why not."""
    interpreters = sorted(Path.home().glob(".pyenv/versions/3.8*/bin/python"))
    if not interpreters:
        return "no Python 3.8 interpreter here (~/.pyenv/versions/3.8*); set EDGECLIP_TEST_PY38 to one with " + ", ".join(PINS)
    shutil.rmtree(venv, ignore_errors=True)
    if _run([interpreters[-1], "-m", "venv", venv]).returncode != 0:
        return f"could not create a venv with {interpreters[-1]}"
    setup = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", *PINS])
    if setup.returncode != 0:
        return f"pip could not install {' '.join(PINS)} for Python 3.8: {setup.stderr.strip()[-200:]}"
    (venv / "edgeclip-test-ready").write_text(" ".join(PINS))
    return None


@pytest.fixture(scope="session")
def py38(request) -> Path:
    given = os.environ.get("EDGECLIP_TEST_PY38")
    if given:
        versions = _versions(Path(given))
        if not _matches(versions):
            pytest.fail(f"EDGECLIP_TEST_PY38={given} has {versions}, not Python 3.8 + onnxruntime 1.19 + numpy 1.24")
        return Path(given)
    venv = Path(request.config.cache.mkdir("py38-ort119"))
    python = venv / "bin" / "python"
    if not (venv / "edgeclip-test-ready").is_file() or not _matches(_versions(python)):
        why = _make_venv(venv)
        if why:
            pytest.skip(why)
    versions = _versions(python)
    assert _matches(versions), versions
    return python


@pytest.fixture()
def device_env(tmp_path) -> dict:
    """The device: no torch, no edgeclip (torch and edgeclip shadowed by packages that refuse to import)."""
    blocker = tmp_path / "blocker"
    for name in ("torch", "edgeclip"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is not on the device')\n")
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PYTHONPATH": str(blocker)}


def _rows(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


# ---- classifier ------------------------------------------------------------------------------------

def test_classifier_fp32_and_int8_on_python38(py38, device_env, tmp_path):
    import torch

    from edgeclip.exporters.export import export_model
    from edgeclip.exporters.testing import structured_images, tiny_cnn_spec, trained_tiny_cnn

    model, spec = trained_tiny_cnn(), tiny_cnn_spec()
    images, labels = structured_images(48, seed=3)
    artifacts = [export_model(model, spec, "onnx", precision, tmp_path / f"onnx-{precision}", calibration=images,
                              parity_inputs=images[:8]).path for precision in ("fp32", "int8")]
    torch.manual_seed(0)  # conv + global pool: a student that runs at any input size (the tiny CNN flattens: 32x32 only)
    pooled = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten(), torch.nn.Linear(8, 4)).eval()
    artifacts += [export_model(pooled, spec, "onnx", precision, tmp_path / f"pooled-{precision}", calibration=images,
                               parity_inputs=images[:8]).path for precision in ("fp32", "int8")]
    np.savez(tmp_path / "eval.npz", images=images, labels=labels)
    # --equal-size and the roof: the ONNX the device times at another size and the roof's GEMM models are
    # written without the `onnx` package (devices/runner/onnx_proto.py), which this device does not have.
    equal = 2 * spec.preprocess.size
    rows = _rows(_run([py38, RUNNER, *artifacts, "--data", tmp_path / "eval.npz", "--warmup", "1", "--iterations", "3",
                       "--environment", "--equal-size", equal, "--threads", "1", "--roof-size", "128"], env=device_env))
    assert rows[0]["environment"]["python"].startswith("3.8")
    assert rows[0]["environment"]["versions"]["onnxruntime"].startswith("1.19")
    trained, resizable, roof = rows[1:3], rows[3:5], rows[-1]["roof"]
    for row in trained:
        assert row["status"] == "ok" and row["accuracy"] > 0.9, row
        assert row["latency_ms"]["p50"] > 0
        assert row["equal_resolution"]["why_not"].startswith("fixed-size model: runs only at 32x32"), row
    for row in resizable:
        assert row["status"] == "ok" and row["equal_resolution"]["input_size"] == equal, row
        assert row["equal_resolution"]["latency_ms"]["p50"] > 0 and row["equal_resolution"]["why_not"] is None, row
    assert roof["gemm"] == "128x128x128" and roof["clock"] == "process CPU time"
    assert set(roof["by_library"]["fp32"]) == {"numpy", "onnxruntime"}, roof["errors"]  # no openvino on this device
    assert set(roof["by_library"]["int8"]) == {"onnxruntime MatMulInteger u8s8", "onnxruntime QLinearMatMul u8s8"}
    assert roof["fp32"] > 0 and roof["int8"] > 0 and "No module named 'openvino'" in roof["errors"]["fp32 openvino"]


def test_fused_preprocessing_classifier_on_python38(py38, device_env, tmp_path):
    """An artifact that takes raw uint8 frames (--fused-preprocess): timed on frames, scored on the .npz's
    `frames`, and its predictions on 3.8 are this machine's."""
    from PIL import Image

    from edgeclip.exporters.export import export_model
    from edgeclip.exporters.testing import tiny_cnn_spec, trained_tiny_cnn
    from edgeclip.runtimes import load_runtime

    rng = np.random.default_rng(0)
    low = rng.integers(0, 256, (6, 4, 6, 3), dtype=np.uint8)
    frames = np.stack([np.asarray(Image.fromarray(f).resize((96, 64), Image.Resampling.BICUBIC)) for f in low])
    artifact = export_model(trained_tiny_cnn(), tiny_cnn_spec(), "onnx", "fp32", tmp_path / "onnx-fp32",
                            parity_inputs=frames, fused_preprocess="64x96")
    expected = load_runtime(artifact.path).run(frames).argmax(1)
    np.savez(tmp_path / "eval.npz", frames=frames, images=np.zeros((6, 3, 32, 32), np.float32), labels=expected)
    row = _rows(_run([py38, RUNNER, artifact.path, "--data", tmp_path / "eval.npz", "--warmup", "1", "--iterations", "3"],
                     env=device_env))[0]
    assert row["status"] == "ok" and row["accuracy"] == 1.0 and row["latency_ms"]["p50"] > 0, row


# ---- DistillCLIP: image tower, text tower, fused zero-shot ---------------------------------------------

@pytest.fixture(scope="module")
def dual(tmp_path_factory):
    import open_clip
    import torch

    from edgeclip.data import open_image_dataset
    from edgeclip.data.sampling import sample_images
    from edgeclip.exporters.dual import export_dual_encoder
    from edgeclip.students.registry import create_student

    torch.manual_seed(0)
    model, spec = create_student("test_distillclip")
    spec.extra.update({"logit_scale": 50.0})
    model.eval()
    images = sample_images(open_image_dataset("digits", "test"), spec.preprocess, 12)
    tokens = open_clip.SimpleTokenizer(context_length=16)(["a photo of a cat.", "the number seven"]).numpy()
    out = tmp_path_factory.mktemp("dual")
    arts = export_dual_encoder(model, spec, "onnx", "fp32", out, class_names=["zero", "one", "two"], templates=TEMPLATES,
                               parity_images=images, parity_tokens=tokens)
    return model, arts, images


def test_image_tower_on_python38(py38, device_env, dual):
    _, arts, _ = dual
    row = _rows(_run([py38, RUNNER, arts["image"].path, "--warmup", "1", "--iterations", "3"], env=device_env))[0]
    assert row["status"] == "ok" and row["kind"] == "image_encoder", row


def test_text_tower_on_python38(py38, device_env, dual):
    _, arts, _ = dual
    row = _rows(_run([py38, RUNNER, arts["text"].path, "--warmup", "1", "--iterations", "3"], env=device_env))[0]
    # Text towers are exported without the int64 ArgMax onnxruntime 1.19 has no kernel for.
    assert ARGMAX_INT64 not in row["status"], row
    assert row["status"] == "ok" and row["kind"] == "text_encoder", row


def test_fused_zero_shot_classifier_on_python38(py38, device_env, dual, tmp_path):
    """The fused artifact needs no text tower: its logits on 3.8 match this machine's onnxruntime."""
    from edgeclip.runtimes import load_runtime

    _, arts, images = dual
    np.savez(tmp_path / "eval.npz", images=images, labels=np.zeros(len(images), dtype=np.int64))
    row = _rows(_run([py38, RUNNER, arts["zeroshot"].path, "--data", tmp_path / "eval.npz", "--warmup", "1",
                      "--iterations", "3"], env=device_env))[0]
    assert row["status"] == "ok", row
    expected = load_runtime(arts["zeroshot"].path).run(images).argmax(1)
    assert row["accuracy"] == pytest.approx(float((expected == 0).mean()))
    # The image tower + the fused artifact's class embeddings: the runner's zero-shot mode.
    result = _run([py38, RUNNER, arts["image"].path, "--classes", "zero,one,two", "--class-embeddings",
                   arts["zeroshot"].path / "class_embeddings.npy", "--data", tmp_path / "eval.npz"], env=device_env)
    zero_shot = _rows(result)[-1]["zero_shot"]
    assert zero_shot["accuracy"] == pytest.approx(float((expected == 0).mean()))


def test_readme_zero_shot_command_with_new_classes_on_python38(py38, device_env, dual, tmp_path):
    """`edgeclip_runner.py IMAGE_TOWER --text-tower TEXT_TOWER --classes ... --images my_digit.png`."""
    import torch
    from PIL import Image

    from edgeclip.exporters.dual import class_embeddings

    model, arts, images = dual
    pictures = []
    for i, image in enumerate(images[:3]):
        path = tmp_path / f"digit{i}.png"
        pixels = (np.clip(image.transpose(1, 2, 0) * 0.25 + 0.5, 0, 1) * 255).astype(np.uint8)  # any real picture
        Image.fromarray(pixels).save(path)
        pictures.append(path)
    classes = ["zero", "one", "two", "seven"]
    result = _run([py38, RUNNER, arts["image"].path, "--text-tower", arts["text"].path, "--classes", ",".join(classes),
                   "--templates", ",".join(TEMPLATES), "--images", *pictures], env=device_env)
    assert result.returncode == 0, result.stdout + result.stderr
    answer = _rows(result)[-1]["zero_shot"]
    assert answer["classes"] == classes
    # The same pictures through this machine's pipeline: edgeclip's preprocessing, the PyTorch towers.
    from edgeclip.runtimes import load_runtime

    runtime = load_runtime(arts["image"].path)
    batch = np.stack([runtime.preprocess(Image.open(p).convert("RGB")) for p in pictures]).astype(np.float32)
    with torch.no_grad():
        features = torch.nn.functional.normalize(model.encode_image(torch.from_numpy(batch)), dim=-1)
        expected = (features @ class_embeddings(model, 16, classes, TEMPLATES).T).argmax(1).numpy()
    assert [p["class"] for p in answer["predictions"]] == [classes[i] for i in expected], answer


# ---- accident demo: encoder + head ----------------------------------------------------------------------

def test_accident_demo_on_python38_matches_this_machine(py38, device_env, tmp_path):
    from edgeclip.cli import main
    from edgeclip.video import accident_demo
    from edgeclip.video.synthetic import write_clip, write_frame_folder

    clips = tmp_path / "clips"
    clips.mkdir()
    write_clip(clips / "crash.mp4", frames=24, accident_frame=14)
    write_clip(clips / "normal.mp4", frames=24)
    write_frame_folder(clips / "frames", frames=24, accident_frame=18)
    (clips / "list.txt").write_text("crash.mp4 1 15\nnormal.mp4 0\nframes 1\n")
    model_dir = tmp_path / "accident"
    assert main(["video", "train", "--clips", str(clips / "list.txt"), "--encoder", "test_distillclip", "--frames", "4",
                 "--stride", "2", "--gap-s", "0.5", "--epochs", "2", "--folds", "0", "--out", str(model_dir),
                 "--backend", "onnx"]) == 0
    device = tmp_path / "device"
    shutil.copytree(Path(accident_demo.__file__).parent, device / "accident_demo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    summaries: dict[str, dict] = {}
    for name, python, env in (("py38", py38, device_env), ("here", Path(sys.executable), {**os.environ, **device_env})):
        # A frame folder and no MP4: numpy + Pillow + onnxruntime only (PyAV/OpenCV are for video files).
        result = _run([python, "-m", "accident_demo", "--model", model_dir, "--frames", clips / "frames", "--out",
                       tmp_path / f"out-{name}", "--no-video", "--json"], cwd=device, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        assert json.loads(result.stdout.strip().splitlines()[-1])["frames"] == 24
        summaries[name] = json.loads((tmp_path / f"out-{name}" / "alerts.json").read_text())
    mine, theirs = summaries["py38"], summaries["here"]
    assert mine["windows"] == theirs["windows"] > 0
    assert [w["frame"] for w in mine["probabilities"]] == [w["frame"] for w in theirs["probabilities"]]
    np.testing.assert_allclose([w["probability"] for w in mine["probabilities"]],
                               [w["probability"] for w in theirs["probabilities"]], atol=2e-4)  # rounded to 4 places
    assert [a["frame"] for a in mine["alerts"]] == [a["frame"] for a in theirs["alerts"]]
