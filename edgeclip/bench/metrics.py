"""Accuracy-side metrics shared by eval, distillation reports and the benchmark harness."""

from __future__ import annotations

from typing import Any

import numpy as np

ArrayLike = Any  # numpy array or torch tensor; torch is not imported here (reports are written without it)


def _numpy(values: ArrayLike) -> np.ndarray:
    return values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)


def predictions(logits: ArrayLike) -> np.ndarray:
    """Top-1 class per row (logits or probabilities, (N, C)), or labels passed through (N,)."""
    array = _numpy(logits)
    return array.argmax(axis=1) if array.ndim == 2 else array.astype(np.int64)


def top1_accuracy(logits: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of rows whose argmax equals the label."""
    preds, truth = predictions(logits), _numpy(labels).astype(np.int64)
    if len(preds) != len(truth):
        raise ValueError(f"{len(preds)} predictions for {len(truth)} labels")
    return float((preds == truth).mean()) if len(truth) else float("nan")


def agreement(logits_a: ArrayLike, logits_b: ArrayLike) -> float:
    """Fraction of rows where two models predict the same top-1 class."""
    a, b = predictions(logits_a), predictions(logits_b)
    if len(a) != len(b):
        raise ValueError(f"cannot compare {len(a)} and {len(b)} predictions")
    return float((a == b).mean()) if len(a) else float("nan")


def retention(student_accuracy: float | None, teacher_accuracy: float | None) -> float | None:
    """Student accuracy / teacher accuracy on the same data (None when either is unknown)."""
    if student_accuracy is None or teacher_accuracy is None or teacher_accuracy <= 0:
        return None
    return float(student_accuracy / teacher_accuracy)


def overconfidence_probability(probabilities: ArrayLike, labels: ArrayLike, gamma: float = 0.5) -> float:
    """Paper 000 §3.3.2: p = N_err&oc / N_err.

    Among misclassified samples, the fraction whose softmax score on the (wrong) predicted
    class exceeds `gamma`. NaN when nothing is misclassified.
    """
    probs, truth = _numpy(probabilities), _numpy(labels).astype(np.int64)
    preds = probs.argmax(axis=1)
    wrong = preds != truth
    if not wrong.any():
        return float("nan")
    confident = probs[wrong, preds[wrong]] > gamma
    return float(confident.sum() / wrong.sum())
