"""Temporal heads (evl, mean-mlp, zero-shot), their export, and the accident metrics (golden values by hand)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeclip.errors import UserError
from edgeclip.video.heads import TEMPORAL_HEADS, create_head, list_heads, load_head, save_head
from edgeclip.video.metrics import (
    accuracy, alert_metrics, average_precision, balanced_accuracy, roc_auc, time_to_accident, window_metrics,
)


class FakeTextEncoder:
    """Text embeddings chosen by hand (normal prompts → [1, 0], accident prompts → [0.6, 0.8])."""

    logit_scale = 10.0

    def text_embeddings(self, prompts):
        accident = any("crash" in p or "accident" in p or "collision" in p for p in prompts)
        return np.tile(np.array([0.6, 0.8] if accident else [1.0, 0.0], np.float32), (len(prompts), 1))


def test_registry_lists_the_three_heads():
    assert TEMPORAL_HEADS.names() == ["evl", "mean-mlp", "zero-shot"]
    rows = {r["name"]: r for r in list_heads()}
    assert rows["zero-shot"]["trainable"] is False and rows["zero-shot"]["needs_text_tower"] is True
    with pytest.raises(UserError, match="did you mean 'evl'"):
        create_head("evll", 8, 16)
    with pytest.raises(UserError, match="does not take these options"):
        create_head("mean-mlp", 8, 16, width=3)


@pytest.mark.parametrize("name", ["evl", "mean-mlp", "zero-shot"])
def test_heads_map_windows_to_two_logits(name):
    head = create_head(name, 6, 16).eval()
    x = torch.randn(3, 6, 16)
    out = head(x)
    assert out.shape == (3, 2)
    assert torch.allclose(head(x[:1]), out[:1], atol=1e-6)  # windows in a batch do not interact


def test_evl_head_sees_frame_order_and_starts_with_identity_temporal_conv():
    head = create_head("evl", 8, 16).eval()
    assert torch.count_nonzero(head.temporal_conv.weight) == 0  # EVL: local temporal module starts at zero
    x = torch.randn(2, 8, 16)
    assert not torch.allclose(head(x), head(x.flip(1)), atol=1e-5)  # temporal position embedding
    mean = create_head("mean-mlp", 8, 16).eval()
    assert torch.allclose(mean(x), mean(x.flip(1)), atol=1e-6)  # the baseline ignores order


def test_zero_shot_head_by_hand():
    head = create_head("zero-shot", 2, 2, encoder=FakeTextEncoder())
    assert torch.allclose(head.class_embeddings, torch.tensor([[1.0, 0.0], [0.6, 0.8]]))
    window = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # frame 2 is normalized to [0, 1]
    # per frame cosine: [1, 0.6] and [0, 0.8]; mean [0.5, 0.7]; times logit scale 10
    assert torch.allclose(head(window), torch.tensor([[5.0, 7.0]]))


def test_head_checkpoint_round_trip(tmp_path):
    head = create_head("evl", 4, 8, width=16, heads=2).eval()
    save_head(tmp_path / "head.pt", head, "evl", 4, 8, {"width": 16, "heads": 2})
    loaded, info = load_head(tmp_path / "head.pt")
    x = torch.randn(2, 4, 8)
    assert torch.equal(loaded(x), head(x)) and info["params"] == {"width": 16, "heads": 2}
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not an edgeclip temporal head"):
        load_head(tmp_path / "other.pt")


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_head_exports_with_parity_and_runs_in_its_runtime(tmp_path, backend):
    from edgeclip.exporters import export_model
    from edgeclip.runtimes import load_runtime
    from edgeclip.students.spec import ModelSpec

    head = create_head("evl", 5, 12, width=16, heads=2).eval()
    spec = ModelSpec(name="evl_head", kind="temporal_head", embed_dim=12, input_names=["features"],
                     output_names=["logits"], dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
                     extra={"frames": 5})
    windows = np.random.default_rng(0).standard_normal((6, 5, 12)).astype(np.float32)
    artifact = export_model(head, spec, backend, "fp32", tmp_path / backend, parity_inputs=windows)
    assert artifact.ok and artifact.manifest["inputs"][0]["shape"] == ["batch", 5, 12]
    runtime = load_runtime(tmp_path / backend)
    assert np.allclose(runtime.run(windows[:3]), head(torch.from_numpy(windows[:3])).detach().numpy(), atol=1e-4)


def test_window_metrics_by_hand():
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(labels, scores) == pytest.approx(0.75)  # 3 of 4 (accident, normal) pairs ranked right
    # sorted: 0.8 (+) P=1 R=.5 | 0.4 (-) | 0.35 (+) P=2/3 R=1 -> AP = .5·1 + .5·2/3
    assert average_precision(labels, scores) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5 and np.isnan(roc_auc([1, 1], [0.2, 0.3]))
    assert accuracy([1, 0, 0, 0], [0.9, 0.6, 0.1, 0.2]) == 0.75
    assert balanced_accuracy([1, 0, 0, 0], [0.9, 0.6, 0.1, 0.2]) == pytest.approx((1 + 2 / 3) / 2)
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(1)
    y, s = rng.integers(0, 2, 50), rng.random(50).round(1)  # with ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))
    summary = window_metrics([0, 1, 1], [0.2, 0.7, 0.4])
    assert (summary["windows"], summary["accident_windows"], summary["accuracy"]) == (3, 2, pytest.approx(2 / 3))


def test_alert_metrics_and_time_to_accident_by_hand():
    assert time_to_accident(80, 90, 20.0) == 0.5 and time_to_accident(None, 90, 20.0) is None
    streams = [
        {"label": 1, "onset": 90, "gap": 20, "fps": 20.0, "frames": [60, 80, 95], "probabilities": [0.1, 0.7, 0.9]},
        {"label": 1, "onset": 90, "gap": 20, "fps": 20.0, "frames": [40, 95], "probabilities": [0.8, 0.9]},  # too early
        {"label": 1, "onset": 30, "gap": 10, "fps": 10.0, "frames": [20, 40], "probabilities": [0.1, 0.2]},  # missed
        {"label": 0, "onset": None, "gap": 0, "fps": 25.0, "frames": [10, 20], "probabilities": [0.2, 0.3]},
        {"label": 0, "onset": None, "gap": 0, "fps": 25.0, "frames": [10, 20], "probabilities": [0.2, 0.6]},
    ]
    result = alert_metrics(streams, 0.5)
    assert (result["detected"], result["early_false_alarms"], result["normal_clips_without_alert"]) == (1, 1, 1)
    assert result["detection_rate"] == pytest.approx(1 / 3) and result["clip_accuracy"] == pytest.approx(2 / 5)
    assert result["time_to_accident_s"]["values"] == [0.5]  # alert at frame 80, onset 90, 20 fps
