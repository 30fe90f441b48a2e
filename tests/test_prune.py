"""Structured pruning: shapes recorded as data, rebuilt on load, exported with parity; bad ratios refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgeclip.cli import main
from edgeclip.compress.prune import kept_channel_summary, prune_model
from edgeclip.config import PruneConfig
from edgeclip.errors import UserError
from edgeclip.students import create_student
from edgeclip.students.checkpoint import load_checkpoint, save_checkpoint
from edgeclip.students.structure import SplitQKVAttention, apply_structure, split_attention
from edgeclip.utils import count_params

DIGITS = [str(i) for i in range(10)]


def _student(name: str, **kwargs):
    torch.manual_seed(0)
    model, spec = create_student(name, **kwargs)
    return model.eval(), spec


def test_split_qkv_attention_computes_what_multihead_attention_computes():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    split = SplitQKVAttention.from_multihead(mha).eval()
    x = torch.randn(3, 7, 32)
    mask = torch.triu(torch.full((7, 7), float("-inf")), 1)
    with torch.no_grad():
        for attn_mask in (None, mask):
            expected = mha(x, x, x, need_weights=False, attn_mask=attn_mask)[0]
            actual, weights = split(x, x, x, need_weights=False, attn_mask=attn_mask)
            assert weights is None
            assert torch.allclose(actual, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["test_resnet", "test_mobilenetv3"])
def test_cnn_pruning_narrows_channels_keeps_io_and_round_trips(name, tmp_path):
    model, spec = _student(name, class_names=DIGITS)
    pruned, result = prune_model(model, spec, PruneConfig(ratio=0.5))
    before, after = kept_channel_summary(model), kept_channel_summary(pruned)
    assert count_params(pruned) < 0.6 * count_params(model)
    assert after[next(reversed(after))] == len(DIGITS)  # the classifier keeps one output per class
    assert any(after[layer] < width for layer, width in before.items())
    assert result["structure"]["attributes"] and not result["structure"]["split_attention"]
    json.dumps(result)  # the record and the structure are plain data
    x = torch.randn(3, 3, 32, 32)
    save_checkpoint(tmp_path / "p", pruned, spec, student_name=name, structure=result["structure"])
    loaded, _, info = load_checkpoint(tmp_path / "p")
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
    assert info["structure"] == result["structure"]
    assert torch.load(tmp_path / "p" / "model.pt", weights_only=True)["format_version"] == 2


def test_vit_tower_pruning_removes_heads_and_mlp_width_only(tmp_path):
    model, spec = _student("test_distillclip")
    pruned, result = prune_model(model, spec, PruneConfig(ratio=0.5, head_ratio=0.5))
    blocks = pruned.visual.transformer.resblocks
    assert all(isinstance(b.attn, SplitQKVAttention) and b.attn.num_heads == 1 for b in blocks)  # 2 heads → 1
    assert all(b.mlp.c_fc.out_features == 128 for b in blocks)  # 256 hidden → 128
    assert all(b.attn.proj.out_features == 64 and b.mlp.c_proj.out_features == 64 for b in blocks)  # residual width kept
    assert isinstance(pruned.transformer.resblocks[0].attn, nn.MultiheadAttention)  # text tower untouched
    assert count_params(pruned.visual) < count_params(model.visual)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert pruned.encode_image(x).shape == model.encode_image(x).shape
    save_checkpoint(tmp_path / "vit", pruned, spec, student_name="test_distillclip", structure=result["structure"])
    loaded, _, _ = load_checkpoint(tmp_path / "vit")
    with torch.no_grad():
        assert torch.allclose(loaded.encode_image(x), pruned.encode_image(x), atol=1e-6)
    assert result["record"]["heads"] == {"transformer.resblocks.0.attn": 1, "transformer.resblocks.1.attn": 1}


def test_pruned_student_exports_with_parity(tmp_path):
    from edgeclip.exporters.export import export_model

    model, spec = _student("test_resnet", class_names=DIGITS)
    pruned, _ = prune_model(model, spec, PruneConfig(ratio=0.3))
    images = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    artifact = export_model(pruned, spec, "onnx", "fp32", tmp_path / "onnx", parity_inputs=images)
    assert artifact.parity["passed"] is True


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.2, 1.5])
def test_ratio_outside_open_unit_interval_is_refused(ratio):
    model, spec = _student("test_resnet", class_names=DIGITS)
    with pytest.raises(UserError, match="between 0 and 1"):
        prune_model(model, spec, PruneConfig(ratio=ratio))


def test_ratio_that_empties_a_layer_names_it_and_the_largest_safe_ratio():
    model, spec = _student("test_resnet", class_names=DIGITS)  # narrowest layers have 4 channels
    with pytest.raises(UserError, match=r"removes all 4 channels of layer '.+'.*at most 0\.75"):
        prune_model(model, spec, PruneConfig(ratio=0.8))
    model, spec = _student("test_distillclip")
    with pytest.raises(UserError, match="removes all 2 heads"):
        prune_model(model, spec, PruneConfig(ratio=0.3, head_ratio=0.6))


def test_unknown_ignore_layer_lists_layers():
    model, spec = _student("test_resnet", class_names=DIGITS)
    with pytest.raises(UserError, match="matches no layer; layers are: stem.0"):
        prune_model(model, spec, PruneConfig(ratio=0.5, ignore=["stem.9"]))


def test_structure_refuses_non_size_attributes():
    model, _ = _student("test_resnet", class_names=DIGITS)
    with pytest.raises(UserError, match="not a layer size"):
        apply_structure(model, {"version": 1, "attributes": {"stem.0": {"forward": 1}}}, {})
    with pytest.raises(UserError, match="does not have"):
        apply_structure(model, {"version": 1, "attributes": {"nope": {"out_channels": 1}}}, {})


def test_split_attention_rejects_a_wrong_path():
    model, _ = _student("test_resnet", class_names=DIGITS)
    with pytest.raises(UserError, match="multi-head attention"):
        split_attention(model, ["stem.0"])


def _tiny_checkpoint(tmp_path):
    from edgeclip.data import open_image_dataset

    model, spec = _student("test_resnet", class_names=open_image_dataset("digits", "train").class_names)
    directory = tmp_path / "student"
    spec.extra["data"] = "digits"
    save_checkpoint(directory, model, spec, student_name="test_resnet", extra={"data": "digits"})
    return directory


def test_compress_prune_cli_end_to_end(tmp_path, capsys):
    student = _tiny_checkpoint(tmp_path)
    out = tmp_path / "pruned"
    code = main(["compress", "prune", "--model", str(student), "--ratio", "0.5", "--recover-epochs", "1",
                 "--teacher", "self", "--batch-size", "128", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "params" in printed and "next: edgeclip export" in printed
    record = json.loads((out / "compress.json").read_text())["prune"]
    assert record["recovery"]["epochs"] == 1 and record["after"]["test_images"] == 359
    assert not (tmp_path / "pruned.recovery").exists()  # resumable state removed once finished
    model, spec, info = load_checkpoint(out)
    assert info["extra"]["prune"]["settings"]["ratio"] == 0.5
    assert count_params(model) == record["params_after"]
    code = main(["export", "--model", str(out), "--backend", "onnx", "--parity-count", "16", "--out", str(tmp_path / "a")])
    assert code == 0 and (tmp_path / "a" / "manifest.json").is_file()


@pytest.mark.parametrize(("ratio", "message"), [("1.0", "between 0 and 1"), ("0.9", "removes all 4 channels")])
def test_compress_prune_cli_bad_ratio_exits_2_and_writes_nothing(tmp_path, capsys, ratio, message):
    student = _tiny_checkpoint(tmp_path)
    out = tmp_path / "pruned"
    assert main(["compress", "prune", "--model", str(student), "--ratio", ratio, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() and not (tmp_path / "pruned.recovery").exists()


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_pruned_vit_tower_exports_with_parity(backend, tmp_path):
    from edgeclip.exporters import towers
    from edgeclip.exporters.export import export_model

    model, spec = _student("test_distillclip")
    pruned, _ = prune_model(model, spec, PruneConfig(ratio=0.5, head_ratio=0.5))
    tower = towers.ImageTower(pruned).eval()
    images = np.random.default_rng(0).standard_normal((6, 3, 32, 32)).astype(np.float32)
    artifact = export_model(tower, towers.image_tower_spec(pruned, "pruned-tower"), backend, "fp32", tmp_path / backend,
                            parity_inputs=images)
    assert artifact.parity["passed"] is True


def test_cnn_image_tower_keeps_the_embedding_width_it_shares_with_the_text_tower():
    # distillclip_cifar10: a timm ConvNet image tower whose head projection writes the joint embedding.
    model, spec = _student("distillclip_cifar10")
    pruned, result = prune_model(model, spec, PruneConfig(ratio=0.5))
    assert result["record"]["pruned_part"] == "visual" and result["record"]["params_after"] < 0.5 * result["record"]["params_before"]
    assert pruned.visual.head.proj.out_features == model.visual.head.proj.out_features
    with torch.no_grad():
        image = pruned.encode_image(torch.randn(2, 3, 32, 32))
        text = pruned.encode_text(torch.zeros(2, spec.context_length, dtype=torch.long))
    assert image.shape == text.shape == (2, spec.embed_dim)
