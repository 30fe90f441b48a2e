"""CPU-shaped students: RepVGG-style re-parameterisable blocks (folded before export) and timm's
MobileNetV4-conv-small with its CIFAR-size stride."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from edgeclip.exporters.export import export_model
from edgeclip.students.checkpoint import load_checkpoint, save_checkpoint
from edgeclip.students.registry import create_student
from edgeclip.students.repvgg import RepVGGBlock, fold_reparameterizable, has_reparameterizable
from edgeclip.utils import seed_everything

CLASSES = ["cat", "dog", "car"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECLIP_CACHE", str(tmp_path / "cache"))
    seed_everything(0)


def _trained_looking(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, as after training (fresh BN is the identity,
    which would hide a wrong fold of the scale or the shift)."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.3)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.2)
    return model.eval()


def test_repvgg_block_folds_to_one_conv_with_identical_outputs():
    block = _trained_looking(RepVGGBlock(8, 8, stride=1))
    assert block.identity is not None  # same shape in and out: the identity branch exists
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        before = block(x)
        block.reparameterize()
        after = block(x)
    assert isinstance(block.fused, nn.Conv2d) and block.fused.kernel_size == (3, 3)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    assert torch.allclose(before, after, atol=1e-5), (before - after).abs().max()


@pytest.mark.parametrize("image_size", [32, 64])
def test_repvgg_student_outputs_identical_before_and_after_folding(image_size):
    model, _ = create_student("test_repvgg", class_names=CLASSES, image_size=image_size)
    model = _trained_looking(model)
    x = torch.randn(3, 3, image_size, image_size)
    folded = fold_reparameterizable(model)
    assert folded is not model  # the trained model keeps its branches (checkpoints, fine-tuning)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    convs = [m for m in folded.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert len(convs) == sum(isinstance(m, RepVGGBlock) for m in model.modules())  # one conv per block
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-5), (model(x) - folded(x)).abs().max()


def test_fold_leaves_models_without_branches_alone():
    model, _ = create_student("test_resnet", class_names=CLASSES)
    assert not has_reparameterizable(model)
    assert fold_reparameterizable(model) is model

    class Vae(nn.Module):  # a `reparameterize(mu, logvar)` is not a folding method
        def reparameterize(self, mu, logvar):
            raise AssertionError("must not be called")

    assert not has_reparameterizable(Vae())


def test_exporter_folds_repvgg_automatically(tmp_path):
    model, spec = create_student("test_repvgg", class_names=CLASSES)
    model = _trained_looking(model)
    images = torch.randn(4, 3, 32, 32).numpy()
    artifact = export_model(model, spec, "onnx", "fp32", tmp_path / "onnx-fp32", parity_inputs=images)
    assert artifact.ok and artifact.manifest["reparameterized"] is True
    assert artifact.manifest["parity"]["passed"] is True  # checked against the unfolded, trained model
    graph = onnx.load(str(tmp_path / "onnx-fp32" / artifact.manifest["model_file"])).graph
    ops = [node.op_type for node in graph.node]
    blocks = sum(isinstance(m, RepVGGBlock) for m in model.modules())
    assert ops.count("Conv") == blocks and "Add" not in ops and "BatchNormalization" not in ops
    # the trained model itself was not folded in place
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_repvgg_checkpoint_keeps_training_branches(tmp_path):
    model, spec = create_student("test_repvgg", class_names=CLASSES)
    model = _trained_looking(model)
    save_checkpoint(tmp_path / "student", model, spec, student_name="test_repvgg")
    loaded, loaded_spec, _ = load_checkpoint(tmp_path / "student")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded_spec.name == "test_repvgg" and has_reparameterizable(loaded)


def test_mobilenetv4_strides_8_at_cifar_size_and_32_at_224():
    small, spec = create_student("test_mobilenetv4", class_names=CLASSES)
    assert spec.preprocess.size == 32 and "stride 8" in spec.extra["architecture"]
    with torch.no_grad():
        assert small.eval().forward_features(torch.randn(1, 3, 32, 32)).shape[-2:] == (4, 4)
    large, spec = create_student("test_mobilenetv4", class_names=CLASSES, image_size=224)
    assert "stride 32" in spec.extra["architecture"]
    with torch.no_grad():
        assert large.eval().forward_features(torch.randn(1, 3, 224, 224)).shape[-2:] == (7, 7)
    with torch.device("meta"):
        _, full = create_student("mobilenetv4_conv_small", class_names=CLASSES)
    assert full.preprocess.size == 224 and full.extra["architecture"].startswith("timm:mobilenetv4_conv_small(")
