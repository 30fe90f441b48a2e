"""Exporters: parity of every backend that runs here, dynamic batch, towers, manifest, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgeclip.errors import UserError
from edgeclip.exporters import towers
from edgeclip.exporters.export import export_model
from edgeclip.backends import BACKENDS, list_backends
from edgeclip.utils import disable_mha_fastpath
from edgeclip.exporters.testing import (
    TINY_CONTEXT, structured_images, tiny_clip, tiny_cnn_spec, tiny_tokens, trained_tiny_cnn,
)
from edgeclip.runtimes import load_runtime
from support import write_fake_trtexec


@pytest.fixture(scope="module")
def clip() -> nn.Module:
    disable_mha_fastpath()
    return tiny_clip()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(6, 3, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def onnx_image_artifact(clip, images, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "artifacts" / "onnx-fp32"
    spec = towers.image_tower_spec(clip, "tiny-clip-image")
    return export_model(towers.ImageTower(clip), spec, "onnx", "fp32", out, parity_inputs=images)


@torch.no_grad()
def _torch(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    return model.eval()(torch.from_numpy(batch)).numpy()


def test_onnx_fp32_matches_torch_at_batch_1_and_3(clip, onnx_image_artifact):
    artifact = onnx_image_artifact
    assert artifact.ok and artifact.parity["passed"] is True and artifact.parity["max_abs_diff"] < 1e-4
    runtime = load_runtime(artifact.path)
    for batch in (1, 3):
        x = np.random.default_rng(batch).normal(size=(batch, 3, 32, 32)).astype(np.float32)
        out = runtime.run(x)
        assert out.shape == (batch, 32)
        np.testing.assert_allclose(out, _torch(towers.ImageTower(clip), x), atol=1e-4)
    # The batch dimension is symbolic in the graph itself, not just tolerated by the runtime.
    graph_input = onnx.load(str(artifact.model_path)).graph.input[0]
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch"


def test_manifest_records_contract_fields(onnx_image_artifact, tmp_path, clip):
    manifest = json.loads((onnx_image_artifact.path / "manifest.json").read_text())
    for key in ("schema_version", "backend", "precision", "model_file", "inputs", "outputs", "preprocessing",
                "tool_versions", "quantization", "parity", "kind", "embed_dim", "files"):
        assert key in manifest, key
    assert manifest["inputs"] == [{"name": "image", "shape": ["batch", 3, 32, 32], "dtype": "float32"}]
    assert manifest["outputs"] == [{"name": "embedding", "shape": ["batch", 32], "dtype": "float32"}]
    assert manifest["kind"] == "image_encoder" and manifest["embed_dim"] == 32
    assert manifest["tool_versions"]["onnxruntime"] and manifest["tool_versions"]["torch"]
    assert manifest["quantization"]["method"] == "none"
    assert manifest["parity"]["thresholds"] == {"atol": 1e-3, "rtol": 1e-3}
    assert manifest["files"] == ["model.onnx"]

    # Source checkpoint hash: recorded when given, and it changes with the checkpoint's bytes.
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.pt").write_bytes(b"weights-a")
    spec = towers.image_tower_spec(clip, "x")
    first = export_model(towers.ImageTower(clip), spec, "onnx", "fp32", tmp_path / "a", source_checkpoint=str(ckpt))
    (ckpt / "model.pt").write_bytes(b"weights-b")
    second = export_model(towers.ImageTower(clip), spec, "onnx", "fp32", tmp_path / "b", source_checkpoint=str(ckpt))
    assert len(first.manifest["source_checkpoint"]["sha256"]) == 64
    assert first.manifest["source_checkpoint"]["sha256"] != second.manifest["source_checkpoint"]["sha256"]
    assert first.manifest["parity"]["status"] == "not_run" and first.parity_passed is None


def test_openvino_fp32_matches_torch_at_batch_1_and_3(clip, images, tmp_path):
    spec = towers.image_tower_spec(clip, "tiny-clip-image")
    artifact = export_model(towers.ImageTower(clip), spec, "openvino", "fp32", tmp_path / "openvino-fp32",
                            parity_inputs=images)
    assert artifact.parity["passed"] is True, artifact.parity
    assert {"model.xml", "model.bin"} <= set(artifact.manifest["files"])
    runtime = load_runtime(artifact.path, threads=1)
    for batch in (1, 3):
        x = images[:batch]
        np.testing.assert_allclose(runtime.run(x), _torch(towers.ImageTower(clip), x), atol=1e-4)


def test_text_tower_pools_at_eot_after_export(clip, tmp_path):
    spec = towers.text_tower_spec(clip, "tiny-clip-text")
    assert spec.context_length == TINY_CONTEXT
    tokens = tiny_tokens([3, 9, 16, 5])  # different prompt lengths in one batch
    artifact = export_model(towers.TextTower(clip), spec, "onnx", "fp32", tmp_path / "text", parity_inputs=tokens)
    assert artifact.parity["passed"] is True
    runtime = load_runtime(artifact.path)
    batched = runtime.run(tokens)
    reference = _torch(towers.TextTower(clip), tokens)
    np.testing.assert_allclose(batched, reference, atol=1e-4)
    # Each row equals the prompt encoded alone: pooling used that row's own EOT position.
    for row in range(len(tokens)):
        np.testing.assert_allclose(runtime.run(tokens[row:row + 1])[0], batched[row], atol=1e-5)
    # And the pooled position matters: moving the EOT changes the embedding.
    moved = tokens.copy()
    moved[0, 2], moved[0, 6] = 1000, 49407
    assert np.abs(runtime.run(moved[:1])[0] - batched[0]).max() > 1e-3


def test_fused_zero_shot_classifier_matches_hand_computed_head(clip, images, tmp_path):
    text = towers.TextTower(clip)
    class_emb = torch.from_numpy(_torch(text, tiny_tokens([4, 6, 8, 10, 12], seed=3)))  # 5 classes
    fused = towers.FusedZeroShotClassifier(clip, class_emb, logit_scale=100.0)
    spec = towers.zero_shot_classifier_spec(clip, "tiny-zs", [f"c{i}" for i in range(5)])
    artifact = export_model(fused, spec, "onnx", "fp32", tmp_path / "zs", parity_inputs=images)
    assert artifact.parity["top1_agreement"] == 1.0
    exported = load_runtime(artifact.path).run(images)
    with torch.no_grad():  # the zero-shot head by hand: normalized image embedding · class embeddings
        image_emb = clip.encode_image(torch.from_numpy(images))
        image_emb = image_emb / image_emb.norm(dim=-1, keepdim=True)
        cosine = (image_emb @ (class_emb / class_emb.norm(dim=-1, keepdim=True)).T).numpy()
    assert exported.shape == (6, 5)
    np.testing.assert_array_equal(exported.argmax(1), cosine.argmax(1))
    np.testing.assert_allclose(exported, 100.0 * cosine, atol=1e-3)


def test_coreml_spec_has_named_input_and_output(clip, tmp_path):
    pytest.importorskip("coremltools")
    spec = towers.image_tower_spec(clip, "tiny-clip-image")
    artifact = export_model(towers.ImageTower(clip), spec, "coreml", "fp16", tmp_path / "coreml-fp16",
                            parity_inputs=np.zeros((2, 3, 32, 32), np.float32))
    assert artifact.model_path.name == "model.mlpackage" and artifact.model_path.is_dir()
    if sys.platform != "darwin":
        assert artifact.parity == {"status": "skipped", "passed": None, "reason": "CoreML prediction needs macOS"}
    import coremltools as ct

    model_spec = ct.models.MLModel(str(artifact.model_path), skip_model_load=True).get_spec()
    assert [i.name for i in model_spec.description.input] == ["image"]
    assert [o.name for o in model_spec.description.output] == ["embedding"]
    batch_range = model_spec.description.input[0].type.multiArrayType.shapeRange.sizeRanges[0]
    assert (batch_range.lowerBound, batch_range.upperBound) == (1, 64)


def test_coreml_prediction_matches_torch_on_macos(clip, images, tmp_path):
    if sys.platform != "darwin":
        pytest.skip("CoreML prediction needs macOS (coremltools only converts on Linux)")
    spec = towers.image_tower_spec(clip, "tiny-clip-image")
    artifact = export_model(towers.ImageTower(clip), spec, "coreml", "fp32", tmp_path / "coreml-fp32",
                            parity_inputs=images)
    assert artifact.parity["passed"] is True, artifact.parity
    np.testing.assert_allclose(load_runtime(artifact.path).run(images[:3]), _torch(towers.ImageTower(clip), images[:3]),
                               atol=1e-3)


def test_tensorrt_writes_fp16_safe_onnx_and_build_kit(clip, tmp_path):
    spec = towers.text_tower_spec(clip, "tiny-clip-text")
    tokens = tiny_tokens([3, 16, 7])
    artifact = export_model(towers.TextTower(clip), spec, "tensorrt", "fp16", tmp_path / "tensorrt-fp16",
                            parity_inputs=tokens)
    files = set(artifact.manifest["files"])
    assert {"model.onnx", "build_engine.sh", "README.md"} <= files
    assert (artifact.path / "build_engine.sh").stat().st_mode & 0o111  # still executable
    graph = onnx.load(str(artifact.path / "model.onnx"))
    assert graph.opset_import[0].version >= 17
    # open_clip's causal mask (-inf) was replaced: nothing non-finite left for fp16 engines.
    assert artifact.manifest["fp16_safe_constants_replaced"] >= 1
    for node in graph.graph.node:
        if node.op_type == "Constant":
            values = onnx.numpy_helper.to_array(node.attribute[0].t)
            assert values.dtype.kind != "f" or np.isfinite(values).all()
    assert "--fp16" in artifact.manifest["trtexec"] and "--maxShapes=text:8x16" in artifact.manifest["trtexec"]
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert artifact.status == "needs_target_build"
        assert "build_engine.sh" in artifact.manifest["next_step"]
        assert artifact.parity["passed"] is True and "in fp16" in artifact.parity["scope"]
        with pytest.raises(UserError, match="target"):
            load_runtime(artifact.path)


def test_tensorrt_build_kit_runs_trtexec_and_marks_ready(clip, tmp_path):
    """build_engine.sh (the on-target kit) against a stand-in trtexec that records its arguments."""
    spec = towers.text_tower_spec(clip, "tiny-clip-text")
    artifact = export_model(towers.TextTower(clip), spec, "tensorrt", "fp16", tmp_path / "tensorrt-fp16",
                            parity_inputs=tiny_tokens([5, 9, 16, 3]))
    assert (artifact.path / "reference" / "inputs.npy").is_file() and (artifact.path / "check_engine.py").is_file()
    fake = write_fake_trtexec(tmp_path / "bin") / "trtexec"
    log = tmp_path / "trtexec.log"
    result = subprocess.run(["bash", str(artifact.path / "build_engine.sh"), str(artifact.path), "--trtexec", str(fake),
                             "--max-batch", "4"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "FAKE_TRTEXEC_LOG": str(log)})
    assert result.returncode == 0, result.stdout + result.stderr
    build_args = log.read_text().splitlines()[0].split()
    assert f"--onnx={artifact.path}/model.onnx" in build_args and "--fp16" in build_args
    assert "--minShapes=text:1x16" in build_args and "--maxShapes=text:4x16" in build_args
    manifest = json.loads((artifact.path / "manifest.json").read_text())
    assert manifest["status"] == "ready" and manifest["model_file"] == "model.engine"
    # The engine itself was checked on the "device": its parity replaced the export-time ONNX check.
    assert manifest["parity"]["passed"] is True and "TensorRT engine" in manifest["parity"]["scope"]
    assert "in fp16" in manifest["export_parity"]["scope"]
    # A non-TensorRT artifact is refused with exit 2.
    other = export_model(towers.TextTower(clip), spec, "onnx", "fp32", tmp_path / "onnx-fp32")
    refused = subprocess.run(["bash", str(artifact.path / "build_engine.sh"), str(other.path), "--trtexec", str(fake)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "export with --backend tensorrt" in refused.stderr


def test_tensorrt_engine_build(clip, tmp_path):
    """Where `tensorrt` imports (an NVIDIA GPU machine), export builds the engine itself with the Python
    API: the artifact is ready, names the engine, and the engine's outputs pass parity. Elsewhere (this
    CPU machine) it must not pretend: no engine, `needs_target_build`, the kit's command in next_step,
    and parity run on the ONNX the device will build from."""
    import importlib.util

    images = np.random.default_rng(0).standard_normal((6, 3, 32, 32)).astype(np.float32)
    spec = towers.image_tower_spec(clip, "tiny-clip-image")
    artifact = export_model(towers.ImageTower(clip), spec, "tensorrt", "fp32", tmp_path / "tensorrt-fp32", parity_inputs=images)
    assert artifact.manifest["tensorrt_compatibility"]["passed"] is True
    assert artifact.parity["passed"] is True, artifact.parity
    if importlib.util.find_spec("tensorrt") is not None:
        assert artifact.status == "ready" and artifact.manifest["model_file"] == "model.engine"
        assert (artifact.path / "model.engine").stat().st_size > 0
    else:
        assert artifact.status == "needs_target_build" and artifact.manifest["model_file"] == "model.onnx"
        assert not (artifact.path / "model.engine").exists() and (artifact.path / "model.onnx").stat().st_size > 0
        assert "build_engine.sh" in artifact.manifest["next_step"] and (artifact.path / "build_engine.sh").is_file()
        assert "TensorRT engine" not in artifact.parity["scope"]  # the ONNX was checked, not an engine
        assert (artifact.path / "reference" / "inputs.npy").is_file()  # the device checks its engine against these


def test_unknown_backend_lists_known(clip, tmp_path):
    spec = towers.image_tower_spec(clip, "x")
    with pytest.raises(UserError) as info:
        export_model(towers.ImageTower(clip), spec, "onnxx", "fp32", tmp_path / "a")
    message = str(info.value)
    assert "did you mean 'onnx'" in message and all(name in message for name in BACKENDS.names())
    assert not (tmp_path / "a").exists()


def test_unsupported_precision_lists_supported(clip, tmp_path):
    spec = towers.image_tower_spec(clip, "x")
    with pytest.raises(UserError, match="does not support precision 'int8'; use one of: fp32, fp16"):
        export_model(towers.ImageTower(clip), spec, "coreml", "int8", tmp_path / "a")


def test_empty_or_misshaped_calibration_is_a_user_error(tmp_path):
    model, spec = trained_tiny_cnn(steps=1), tiny_cnn_spec()
    with pytest.raises(UserError, match="empty"):
        export_model(model, spec, "onnx", "int8", tmp_path / "a", calibration=np.zeros((0, 3, 32, 32), np.float32))
    with pytest.raises(UserError, match="calibration"):
        export_model(model, spec, "onnx", "int8", tmp_path / "a", calibration=None)
    with pytest.raises(UserError, match=r"shape \[4, 3, 16, 16\]"):
        export_model(model, spec, "onnx", "int8", tmp_path / "a", calibration=np.zeros((4, 3, 16, 16), np.float32))
    assert not (tmp_path / "a").exists()


def test_dual_encoder_must_be_exported_per_tower(clip, tmp_path):
    spec = towers.image_tower_spec(clip, "x")
    spec.kind = "dual_encoder"
    with pytest.raises(UserError, match="--tower"):
        export_model(clip, spec, "onnx", "fp32", tmp_path / "a")


class _Untraceable(nn.Module):
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom while tracing")


def test_failed_export_leaves_no_artifact(tmp_path):
    out = tmp_path / "artifacts" / "onnx-fp32"
    with pytest.raises(RuntimeError, match="boom"):
        export_model(_Untraceable(), tiny_cnn_spec(), "onnx", "fp32", out)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # temp dir cleaned up too


def test_failed_export_keeps_previous_artifact(tmp_path):
    model, spec = trained_tiny_cnn(steps=1), tiny_cnn_spec()
    out = tmp_path / "onnx-fp32"
    export_model(model, spec, "onnx", "fp32", out)
    before = (out / "manifest.json").read_text()
    with pytest.raises(RuntimeError):
        export_model(_Untraceable(), spec, "onnx", "fp32", out)
    assert (out / "manifest.json").read_text() == before


def test_parity_failure_is_recorded_not_hidden(tmp_path):
    model, spec = trained_tiny_cnn(steps=1), tiny_cnn_spec()
    spec.extra["parity_thresholds"] = {"fp32": {"atol": -1.0, "rtol": 0.0}}  # impossible to meet
    x, _ = structured_images(4)
    artifact = export_model(model, spec, "onnx", "fp32", tmp_path / "a", parity_inputs=x)
    assert artifact.ok is False and artifact.parity_passed is False
    on_disk = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert on_disk["parity"]["passed"] is False and on_disk["parity"]["top1_agreement"] == 1.0
    assert "FAILED" in artifact.summary()


def test_list_backends_rows():
    rows = {row["name"]: row for row in list_backends()}
    assert set(rows) == {"onnx", "openvino", "coreml", "tensorrt"}
    assert rows["tensorrt"]["build_where"] == "on the target device"
    assert rows["coreml"]["precisions"] == ["fp32", "fp16"]
    assert rows["onnx"]["exports_here"] is True and rows["onnx"]["runs_here"] is True
    import importlib.util

    assert rows["tensorrt"]["runs_here"] is (importlib.util.find_spec("tensorrt") is not None)


def test_export_command_end_to_end(tmp_path, monkeypatch, capsys):
    """`edgeclip export` with stand-ins for the checkpoint loader and dataset (other modules' seams)."""
    import argparse

    from edgeclip.commands import export_cmd

    model, spec = trained_tiny_cnn(steps=30), tiny_cnn_spec()
    images, image_labels = structured_images(40, seed=9)
    from PIL import Image

    from edgeclip.data.base import ImageDataset

    class Dataset(ImageDataset):
        class_names = spec.class_names
        labels = [int(label) for label in image_labels]
        identity, skipped = "quadrants-stand-in", []

        def load(self, i):  # back to 8-bit RGB so the spec's preprocessing is really applied
            rgb = np.clip(images[i].transpose(1, 2, 0) * 0.25 + 0.5, 0, 1)
            return Image.fromarray((rgb * 255).astype(np.uint8))

    model_dir = tmp_path / "run" / "student"
    model_dir.mkdir(parents=True)
    (model_dir / "model.pt").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "edgeclip.students.checkpoint",
                        types.SimpleNamespace(load_checkpoint=lambda path: (model, spec, {"extra": {"data": "quadrants"}})))
    fake_data = types.ModuleType("edgeclip.data")
    opened = []
    fake_data.open_image_dataset = lambda name, split: opened.append((name, split)) or Dataset()
    monkeypatch.setitem(sys.modules, "edgeclip.data", fake_data)

    parser = argparse.ArgumentParser()
    export_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["export", "--model", str(model_dir), "--backend", "onnx", "--precision", "int8",
                              "--calibration-count", "32", "--parity-count", "20"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    artifact_dir = tmp_path / "run" / "artifacts" / "onnx-int8"
    assert str(artifact_dir) in out and "parity passed" in out and "ort_static_qdq" in out
    assert opened == [("quadrants", "train"), ("quadrants", "test")]  # the data recorded with the checkpoint
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    assert manifest["quantization"]["calibration_count"] == 32 and manifest["parity"]["num_inputs"] == 20
    assert len(manifest["source_checkpoint"]["sha256"]) == 64

    bad = parser.parse_args(["export", "--model", str(model_dir), "--backend", "coreml", "--precision", "int8"])
    with pytest.raises(UserError, match="use one of"):
        bad.func(bad)


@pytest.mark.parametrize(("student", "tower", "expected_dir", "kind"), [
    ("test_resnet", "image", "onnx-fp32", "classifier"),
    ("test_distillclip", "text", "onnx-fp32-text", "text_encoder"),
])
def test_export_command_with_real_checkpoint_and_digits(tmp_path, capsys, student, tower, expected_dir, kind):
    """Integration with the real checkpoint format and the digits data (both other modules)."""
    import argparse

    from edgeclip.commands import export_cmd
    from edgeclip.students import create_student
    from edgeclip.students.checkpoint import save_checkpoint

    torch.manual_seed(0)
    kwargs = {"class_names": [str(d) for d in range(10)]} if kind == "classifier" else {}
    model, spec = create_student(student, **kwargs)
    save_checkpoint(tmp_path / "student", model, spec, student_name=student)
    parser = argparse.ArgumentParser()
    export_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["export", "--model", str(tmp_path / "student"), "--backend", "onnx",
                              "--calibration", "digits", "--parity-count", "12", "--tower", tower])
    assert args.func(args) == 0, capsys.readouterr().out
    manifest = json.loads((tmp_path / "artifacts" / expected_dir / "manifest.json").read_text())
    assert manifest["kind"] == kind and manifest["parity"]["passed"] is True
    assert manifest["source_checkpoint"]["path"] == str(tmp_path / "student")


def test_towers_accept_the_clip_teacher_wrapper(clip, images, tmp_path):
    """The teacher is exported through the same towers (ClipTeacher keeps open_clip in `.model`)."""
    from edgeclip.data.preprocess import Preprocess
    from edgeclip.teacher.clip_teacher import ClipTeacher

    preprocess = Preprocess(size=32, resize_mode="letterbox")
    teacher = ClipTeacher(clip, name="tiny", arch="tiny", model_cfg=None, preprocess=preprocess, source="test")
    spec = towers.image_tower_spec(teacher, "teacher-image")
    assert spec.preprocess == preprocess and spec.embed_dim == 32
    assert towers.text_tower_spec(teacher, "teacher-text").context_length == TINY_CONTEXT
    artifact = export_model(towers.ImageTower(teacher), spec, "onnx", "fp32", tmp_path / "t", parity_inputs=images)
    assert artifact.parity["passed"] is True
    np.testing.assert_allclose(load_runtime(artifact.path).run(images), _torch(towers.ImageTower(clip), images), atol=1e-4)


def test_coreml_fp16_keeps_normalization_and_softmax_in_fp32(clip):
    """The Apple fp16 artifact: matmuls in fp16, LayerNorm / softmax in fp32 (fp16 overflow of x²)."""
    pytest.importorskip("coremltools")
    from coremltools.converters.mil.mil import types

    from edgeclip.exporters.coreml_export import convert

    spec = towers.image_tower_spec(clip, "tiny-clip-image")
    program = convert(towers.ImageTower(clip), spec, "fp16")._mil_program
    dtypes: dict[str, set] = {}
    for op in program.functions["main"].operations:
        if op.outputs:
            dtypes.setdefault(op.op_type, set()).add(op.outputs[0].dtype)
    assert dtypes["layer_norm"] == {types.fp32} and dtypes["softmax"] == {types.fp32}
    assert types.fp16 in dtypes["linear"]  # the bulk of the compute did go to fp16


def test_logits_parity_by_agreement_unless_the_spec_asks_for_cosine() -> None:
    from edgeclip.exporters.parity import compare_outputs, thresholds_for

    # Two near-tied logits rows: the int8 output keeps their direction (cosine ~1) but flips row 0's top-1.
    reference = np.array([[1.0, 1.001, 0.5], [3.0, 0.0, 0.0]], dtype=np.float32)
    exported = np.array([[1.001, 1.0, 0.5], [3.0, 0.0, 0.0]], dtype=np.float32)
    by_agreement = compare_outputs(reference, exported, kind="classifier", precision="int8", thresholds=thresholds_for("int8", 1e-4, 1e-4))
    assert by_agreement["top1_agreement"] == 0.5 and by_agreement["passed"] is False  # 0.5 < 0.90
    cosine_only = thresholds_for("int8", 1e-4, 1e-4, overrides={"int8": {"min_top1_agreement": None}})
    record = compare_outputs(reference, exported, kind="classifier", precision="int8", thresholds=cosine_only)
    assert record["mean_cosine"] > 0.999 and record["passed"] is True
    # ...and cosine still fails an output that points elsewhere.
    record = compare_outputs(reference, -exported, kind="classifier", precision="int8", thresholds=cosine_only)
    assert record["passed"] is False
