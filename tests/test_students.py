"""Student registry: builds, shapes, width multipliers, text init from a teacher, checkpoints, FLOPs."""

from __future__ import annotations

import open_clip
import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from edgeclip.errors import UserError
from edgeclip.students.checkpoint import load_checkpoint, save_checkpoint
from edgeclip.students.dual_encoder import init_text_from_teacher
from edgeclip.students.registry import STUDENTS, create_student, list_students
from edgeclip.utils import count_params, seed_everything

CLASSES = ["cat", "dog", "car"]
SMALL = 32


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECLIP_CACHE", str(tmp_path / "cache"))
    seed_everything(0)


def _tokens(texts: list[str], context_length: int) -> torch.Tensor:
    return open_clip.tokenize(texts, context_length=context_length)


def _conv_params(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))


def _text_layer_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- every student builds --------------------------------------------------------------------

CLASSIFIERS = [n for n, e in STUDENTS.items() if e.kind == "classifier"]
DUAL_ENCODERS = [n for n, e in STUDENTS.items() if e.kind == "dual_encoder"]


def test_registry_has_the_required_students():
    required = {
        "mobilenetv3_small", "mobilenetv3_large", "resnet18", "resnet18_w2", "resnet18_w4", "resnet18_w8", "resnet18_w16",
        "test_mobilenetv3", "test_resnet", "distillclip_vit_s16", "distillclip_mobilenetv3", "test_distillclip",
    }
    assert required <= set(STUDENTS.names())


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_builds_with_logits_per_class(name):
    model, spec = create_student(name, class_names=CLASSES, image_size=SMALL)
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, SMALL, SMALL))
    assert logits.shape == (2, len(CLASSES))
    assert torch.isfinite(logits).all()
    assert spec.kind == "classifier" and spec.class_names == CLASSES and spec.num_classes == 3
    assert spec.preprocess.size == SMALL and spec.preprocess.resize_mode == "center_crop"
    assert spec.preprocess.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert spec.output_names == ["logits"] and spec.dynamic_axes["image"] == {0: "batch"}


@pytest.mark.parametrize("name", DUAL_ENCODERS)
def test_dual_encoder_builds_with_both_towers(name):
    # Full-size towers (~50-70M params, mostly the 49408-token embedding) run on the meta device:
    # same construction and forward code, shapes only, no seconds spent on random init.
    device = "cpu" if name.startswith("test_") else "meta"
    with torch.device(device):
        model, spec = create_student(name, image_size=SMALL)
        model.eval()
        with torch.no_grad():
            image = model.encode_image(torch.randn(2, 3, SMALL, SMALL))
            text = model.encode_text(_tokens(["a photo of a cat", "a dog"], spec.context_length).to(device))
    assert spec.kind == "dual_encoder" and spec.preprocess.size == SMALL
    assert spec.input_names == ["image", "text"] and spec.output_names == ["image_embedding", "text_embedding"]
    assert image.shape == (2, spec.embed_dim) and text.shape == (2, spec.embed_dim)
    if device == "cpu":
        assert torch.isfinite(image).all() and torch.isfinite(text).all()


def test_test_variants_default_to_32px_and_real_ones_to_224():
    assert create_student("test_resnet", class_names=CLASSES)[1].preprocess.size == 32
    assert create_student("test_distillclip")[1].preprocess.size == 32
    with torch.device("meta"):  # shapes only; the default size of the real students
        assert create_student("resnet18_w8", class_names=CLASSES)[1].preprocess.size == 224
        assert create_student("distillclip_vit_s16")[1].preprocess.size == 224


def test_resnet_stem_follows_image_size():
    small, _ = create_student("test_resnet", class_names=CLASSES, image_size=32)
    large, _ = create_student("test_resnet", class_names=CLASSES, image_size=96)
    assert not any(isinstance(m, nn.MaxPool2d) for m in small.modules())
    assert small.stem[0].kernel_size == (3, 3) and small.stem[0].stride == (1, 1)
    assert any(isinstance(m, nn.MaxPool2d) for m in large.modules())
    assert large.stem[0].kernel_size == (7, 7)
    with torch.no_grad():
        assert large.eval()(torch.randn(1, 3, 96, 96)).shape == (1, 3)


def test_width_multiplier_shrinks_filters():
    with torch.device("meta"):
        full, _ = create_student("resnet18", class_names=CLASSES)
        eighth, _ = create_student("resnet18_w8", class_names=CLASSES)
        half, _ = create_student("resnet18_w2", class_names=CLASSES)
    assert eighth.stages[-1][-1].conv2.out_channels == 64 and full.stages[-1][-1].conv2.out_channels == 512
    ratio = _conv_params(eighth) / _conv_params(full)
    assert 1 / 70 < ratio < 1 / 55, ratio  # convs scale with w² (the RGB stem conv only with w)
    assert 1 / 4.2 < _conv_params(half) / _conv_params(full) < 1 / 3.8


# --- listing and bad input ---------------------------------------------------------------------


def test_list_students_counts_real_params():
    rows = {row["name"]: row for row in list_students()}
    assert set(rows) == set(STUDENTS.names())
    for row in rows.values():
        assert row["params"] > 0 and row["kind"] in ("classifier", "dual_encoder") and row["description"]
    # The meta-device count equals a real build's count (10 classes is the listing default).
    real, _ = create_student("test_resnet", class_names=[str(i) for i in range(10)])
    assert rows["test_resnet"]["params"] == count_params(real)
    assert rows["resnet18"]["params"] > rows["resnet18_w2"]["params"] > rows["resnet18_w8"]["params"]
    assert 10e6 < rows["resnet18"]["params"] < 12e6  # torchvision's ResNet18 has 11.2M at 1000 classes


def test_unknown_student_suggests_close_match():
    with pytest.raises(UserError, match="mobilenetv3_"):
        create_student("mobilenet", class_names=CLASSES)


def test_bad_options_are_user_errors():
    with pytest.raises(UserError, match="class_names"):
        create_student("resnet18_w8")
    with pytest.raises(UserError, match="class_names"):
        create_student("resnet18_w8", class_names=[])
    with pytest.raises(UserError, match="duplicates"):
        create_student("test_resnet", class_names=["a", "a"])
    with pytest.raises(UserError, match="dual encoder"):
        create_student("test_distillclip", class_names=CLASSES)
    with pytest.raises(UserError, match="no option"):
        create_student("test_resnet", class_names=CLASSES, widht=2)
    with pytest.raises(UserError, match="unknown text_cfg keys"):
        create_student("test_distillclip", text_cfg={"layer": 3})
    with pytest.raises(UserError, match="image_size"):
        create_student("test_resnet", class_names=CLASSES, image_size=0)


# --- DistillCLIP ------------------------------------------------------------------------------


def test_distillclip_vit_s16_matches_the_paper():
    with torch.device("meta"):  # the architecture is the point here, not the random weights
        model, spec = create_student("distillclip_vit_s16")
    visual = model.visual
    assert visual.transformer.width == 384 and len(visual.transformer.resblocks) == 12
    assert visual.transformer.resblocks[0].attn.num_heads == 6
    assert visual.conv1.kernel_size == (16, 16) and visual.image_size == (224, 224)
    assert model.transformer.width == 512 and len(model.transformer.resblocks) == 6
    assert model.transformer.resblocks[0].attn.num_heads == 8
    assert model.context_length == 77 and model.vocab_size == 49408
    assert tuple(model.text_projection.shape) == (512, 256) and tuple(visual.proj.shape) == (384, 256)
    assert spec.embed_dim == 256 and spec.context_length == 77 and spec.preprocess.size == 224


def test_text_init_copies_teacher_layer_2i():
    teacher, _ = create_student("test_distillclip", text_cfg={"layers": 4})
    student, spec = create_student("test_distillclip", teacher_model=teacher)
    s_blocks, t_blocks = student.transformer.resblocks, teacher.transformer.resblocks
    assert len(s_blocks) == 2 and len(t_blocks) == 4
    assert _text_layer_equal(s_blocks[0], t_blocks[0]) and _text_layer_equal(s_blocks[1], t_blocks[2])
    assert not _text_layer_equal(s_blocks[1], t_blocks[1])  # the map is 2i, not i
    assert torch.equal(student.token_embedding.weight, teacher.token_embedding.weight)
    assert torch.equal(student.positional_embedding, teacher.positional_embedding)
    assert torch.equal(student.ln_final.weight, teacher.ln_final.weight)
    assert torch.equal(student.text_projection, teacher.text_projection)  # same embed dim here
    assert not torch.equal(student.visual.conv1.weight, teacher.visual.conv1.weight)  # image tower untouched
    assert spec.extra["text_init"]["layer_map"] == [[0, 0], [1, 2]]
    # Same embeddings + same layer 0 → the student's first-layer activations equal the teacher's.
    tokens = _tokens(["a photo of a dog"], 16)
    with torch.no_grad():
        x_s = s_blocks[0](student.token_embedding(tokens) + student.positional_embedding)
        x_t = t_blocks[0](teacher.token_embedding(tokens) + teacher.positional_embedding)
    assert torch.allclose(x_s, x_t)


def test_text_init_with_smaller_embed_dim_and_context():
    teacher, _ = create_student("test_distillclip", text_cfg={"layers": 4})
    student, spec = create_student(
        "test_distillclip", teacher_model=teacher, embed_dim=16, text_cfg={"context_length": 8}
    )
    assert torch.equal(student.positional_embedding, teacher.positional_embedding[:8])
    assert tuple(student.text_projection.shape) == (64, 16)
    assert "text_projection" in spec.extra["text_init"]["skipped"]


class _Wrapper(nn.Module):
    """Stands in for ClipTeacher: the open_clip model lives at `.model`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


def test_text_init_accepts_wrapped_teacher_and_follows_quick_gelu():
    teacher, _ = create_student("test_distillclip", text_cfg={"layers": 3}, quick_gelu=True)
    student, spec = create_student("test_distillclip", teacher_model=_Wrapper(teacher))
    assert _text_layer_equal(student.transformer.resblocks[1], teacher.transformer.resblocks[2])
    assert isinstance(student.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    assert spec.extra["build_kwargs"]["quick_gelu"] is True


def test_text_init_rejects_mismatched_teachers():
    narrow, _ = create_student("test_distillclip", text_cfg={"width": 32, "heads": 4, "layers": 4})
    with pytest.raises(UserError, match="width"):
        create_student("test_distillclip", teacher_model=narrow)
    shallow, _ = create_student("test_distillclip", text_cfg={"layers": 2})
    with pytest.raises(UserError, match="at least 3"):
        create_student("test_distillclip", teacher_model=shallow)
    with pytest.raises(UserError, match="text transformer"):
        init_text_from_teacher(create_student("test_distillclip")[0], nn.Linear(2, 2))


def _image_tower_flops(visual: nn.Module) -> int:
    # Meta tensors: FlopCounterMode sees every op's shapes without computing anything.
    torch.backends.mha.set_fastpath_enabled(False)
    visual.eval()
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        visual(torch.zeros(1, 3, 224, 224, device="meta"))
    return counter.get_total_flops()


def test_fast_dual_encoder_image_tower_under_a_quarter_of_vit_b32():
    with torch.device("meta"):
        vit_b32 = open_clip.CLIP(**open_clip.get_model_config("ViT-B-32"))
        fast, _ = create_student("distillclip_mobilenetv3")
        paper, _ = create_student("distillclip_vit_s16")
    teacher_flops = _image_tower_flops(vit_b32.visual)
    assert teacher_flops == pytest.approx(8.82e9, rel=0.01)
    assert _image_tower_flops(fast.visual) < teacher_flops / 4
    assert _image_tower_flops(paper.visual) == pytest.approx(9.2e9, rel=0.01)  # DESIGN §4.5's note


@pytest.mark.slow
def test_flop_counts_on_real_tensors_match():
    vit_b32 = open_clip.create_model("ViT-B-32")
    torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        vit_b32.visual.eval()(torch.randn(1, 3, 224, 224))
    assert counter.get_total_flops() == pytest.approx(8.82e9, rel=0.01)


# --- checkpoints ------------------------------------------------------------------------------


def test_classifier_checkpoint_round_trip(tmp_path):
    model, spec = create_student("test_resnet", class_names=CLASSES)
    model.train()
    model(torch.randn(4, 3, 32, 32))  # move BatchNorm running stats off their init
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    save_checkpoint(tmp_path / "ckpt", model, spec, student_name="test_resnet", extra={"epoch": 3})
    loaded, loaded_spec, info = load_checkpoint(tmp_path / "ckpt")
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
    assert not loaded.training
    assert loaded_spec.to_dict() == spec.to_dict()
    assert info["extra"] == {"epoch": 3} and info["student_name"] == "test_resnet"
    assert not list((tmp_path / "ckpt").glob(".*tmp"))  # no temp files left behind


def test_dual_encoder_checkpoint_round_trip_keeps_overrides(tmp_path):
    model, spec = create_student("test_distillclip", text_cfg={"layers": 3}, quick_gelu=True, embed_dim=24)
    model.eval()
    tokens, image = _tokens(["a cat", "a car"], 16), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = (model.encode_image(image), model.encode_text(tokens))
    path = save_checkpoint(tmp_path / "dual", model, spec, student_name="test_distillclip")
    loaded, loaded_spec, _ = load_checkpoint(path)  # the model.pt path works too
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(image), expected[0])
        assert torch.equal(loaded.encode_text(tokens), expected[1])
    assert loaded_spec.embed_dim == 24


def test_checkpoint_into_other_architecture_is_a_user_error(tmp_path):
    model, spec = create_student("test_resnet", class_names=CLASSES)
    save_checkpoint(tmp_path / "wrong", model, spec, student_name="test_mobilenetv3")
    with pytest.raises(UserError, match="do not fit student 'test_mobilenetv3'"):
        load_checkpoint(tmp_path / "wrong")
    dual, dual_spec = create_student("test_distillclip", text_cfg={"layers": 3})
    save_checkpoint(tmp_path / "lost", dual, dual_spec, student_name="test_distillclip", build_kwargs={})
    with pytest.raises(UserError, match="do not fit"):
        load_checkpoint(tmp_path / "lost")


def test_bad_checkpoint_paths_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no student checkpoint"):
        load_checkpoint(tmp_path / "missing")
    model, spec = create_student("test_resnet", class_names=CLASSES)
    save_checkpoint(tmp_path / "ok", model, spec, student_name="test_resnet")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "ok" / "model.pt")
    with pytest.raises(UserError, match="not an edgeclip student checkpoint"):
        load_checkpoint(tmp_path / "ok")
    (tmp_path / "ok" / "model.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="not a readable"):
        load_checkpoint(tmp_path / "ok" / "model.pt")
    (tmp_path / "ok" / "spec.json").unlink()
    with pytest.raises(UserError, match="spec.json"):
        load_checkpoint(tmp_path / "ok")
    with pytest.raises(UserError, match="JSON-like"):
        save_checkpoint(tmp_path / "x", model, spec, student_name="test_resnet", extra={"t": torch.ones(1)})
