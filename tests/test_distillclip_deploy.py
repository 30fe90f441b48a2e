"""Deploying a dual encoder: towers + tokenizer + fused classifier, and zero-shot with new classes on the device."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeclip.cli import main
from edgeclip.exporters.dual import export_dual_encoder
from edgeclip.students.checkpoint import save_checkpoint
from edgeclip.students.registry import create_student

RUNNER = Path(__file__).resolve().parent.parent / "devices" / "runner"
TEMPLATES = ["a photo of a {}.", "a drawing of the {}."]


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    torch.manual_seed(0)
    model, spec = create_student("test_distillclip")
    spec.extra.update({"logit_scale": 50.0, "templates": "digits", "data": "digits"})
    directory = tmp_path_factory.mktemp("student") / "student"
    save_checkpoint(directory, model, spec, student_name="test_distillclip")
    return model.eval(), spec, directory


@pytest.fixture(scope="module")
def artifacts(student, tmp_path_factory):
    from edgeclip.data import open_image_dataset
    from edgeclip.data.sampling import sample_images

    model, spec, directory = student
    test = open_image_dataset("digits", "test")
    images = sample_images(test, spec.preprocess, 16)
    import open_clip

    tokens = open_clip.SimpleTokenizer(context_length=16)(["a photo of a cat.", "a dog", "the number seven, written by hand."]).numpy()
    out = tmp_path_factory.mktemp("artifacts")
    return export_dual_encoder(model, spec, "onnx", "fp32", out, class_names=["zero", "one", "two"], templates=TEMPLATES,
                               parity_images=images, parity_tokens=tokens, source_checkpoint=str(directory)), images


def test_three_artifacts_with_tokenizer_and_class_embeddings(artifacts, student) -> None:
    arts, _ = artifacts
    assert set(arts) == {"image", "text", "zeroshot"}
    assert all(a.ok for a in arts.values()), {k: a.summary() for k, a in arts.items()}
    text = arts["text"].path
    assert {"tokenizer.json", "bpe_simple_vocab_16e6.txt.gz", "model.onnx"} <= {p.name for p in text.iterdir()}
    manifest = json.loads((text / "manifest.json").read_text())
    assert manifest["tokenizer"]["context_length"] == 16 and manifest["tokenizer"]["templates"] == TEMPLATES
    assert "tokenizer.json" in manifest["files"]
    fused = json.loads((arts["zeroshot"].path / "manifest.json").read_text())
    assert fused["class_names"] == ["zero", "one", "two"]
    assert np.load(arts["zeroshot"].path / "class_embeddings.npy").shape == (3, 32)


def test_text_tower_has_dynamic_batch_and_eot_pooling(artifacts, student) -> None:
    import open_clip

    from edgeclip.runtimes import load_runtime

    model, _, _ = student
    arts, _ = artifacts
    runtime = load_runtime(arts["text"].path)
    prompts = ["a", "a photo of a very very long named thing indeed", "two words", "x y z", "the digit nine."]
    tokens = open_clip.SimpleTokenizer(context_length=16)(prompts)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1).numpy()
    np.testing.assert_allclose(runtime.run(tokens.numpy()), expected, atol=1e-4)  # batch 5, prompts of every length
    np.testing.assert_allclose(runtime.run(tokens[1:2].numpy()), expected[1:2], atol=1e-4)  # batch 1


def test_device_runner_classifies_new_class_names(artifacts, student, tmp_path) -> None:
    from edgeclip.exporters.dual import class_embeddings

    model, spec, _ = student
    arts, images = artifacts
    np.savez(tmp_path / "eval.npz", images=images, labels=np.zeros(len(images), dtype=np.int64))
    classes = ["cat", "sports car", "handwritten seven", "it's a dog's life"]
    proc = subprocess.run([sys.executable, str(RUNNER / "edgeclip_runner.py"), str(arts["image"].path),
                           "--text-tower", str(arts["text"].path), "--classes", ",".join(classes),
                           "--templates", ",".join(TEMPLATES), "--data", str(tmp_path / "eval.npz")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])["zero_shot"]
    with torch.no_grad():
        features = torch.nn.functional.normalize(model.encode_image(torch.from_numpy(images)), dim=-1)
        expected = (features @ class_embeddings(model, 16, classes, TEMPLATES).T).argmax(1).numpy()
    assert result["classes"] == classes and result["logit_scale"] == 50.0
    assert result["accuracy"] == pytest.approx(float((expected == 0).mean()))
    # the fused artifact's embeddings work too, without a text tower
    proc = subprocess.run([sys.executable, str(RUNNER / "edgeclip_runner.py"), str(arts["image"].path), "--classes", "zero,one,two",
                           "--class-embeddings", str(arts["zeroshot"].path / "class_embeddings.npy"),
                           "--data", str(tmp_path / "eval.npz")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    fused = json.loads(proc.stdout.strip().splitlines()[-1])["zero_shot"]
    with torch.no_grad():
        expected = (features @ class_embeddings(model, 16, ["zero", "one", "two"], TEMPLATES).T).argmax(1).numpy()
    assert fused["accuracy"] == pytest.approx(float((expected == 0).mean()))


def test_runner_files_parse_as_python_38() -> None:
    names = sorted(path.name for path in RUNNER.glob("*.py"))  # everything that ships to the device
    assert {"edgeclip_runner.py", "artifact_runtime.py", "zero_shot.py", "clip_tokenizer.py", "prompt_ensemble.py"} <= set(names)
    for name in names:
        source = (RUNNER / name).read_text()
        ast.parse(source, filename=name, feature_version=(3, 8))
        tree = ast.parse(source)
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not imported & {"torch", "open_clip", "edgeclip"}, name


def test_empty_class_list_exits_2_and_writes_nothing(student, tmp_path, capsys) -> None:
    _, _, directory = student
    code = main(["export", "--model", str(directory), "--tower", "fused", "--classes", " , ", "--backend", "onnx",
                 "--out", str(tmp_path / "art")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "non-empty class list" in err
    assert not (tmp_path / "art").exists()
