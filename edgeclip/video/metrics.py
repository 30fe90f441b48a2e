"""Window- and clip-level metrics for accident recognition (numpy only).

- accuracy / balanced accuracy at a threshold on P(accident);
- ROC-AUC: probability that a random accident window scores above a random normal one (ties
  count half) — the Mann–Whitney U statistic;
- AP: average precision, Σ_k (R_k − R_{k−1}) P_k over score thresholds (scikit-learn's definition);
- time-to-accident of the first alert of a positive clip: (onset time − alert time) in seconds,
  positive when the alert comes before the onset (anticipation), negative when after (delay).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def accuracy(labels: Sequence[int], probabilities: Sequence[float], threshold: float = 0.5) -> float:
    labels, predicted = np.asarray(labels), np.asarray(probabilities) >= threshold
    return float((predicted == labels.astype(bool)).mean()) if labels.size else float("nan")


def balanced_accuracy(labels: Sequence[int], probabilities: Sequence[float], threshold: float = 0.5) -> float:
    """Mean of the recall on accident windows and on normal windows (chance = 0.5 whatever the balance)."""
    labels, predicted = np.asarray(labels).astype(bool), np.asarray(probabilities) >= threshold
    recalls = [float((predicted[labels == value] == value).mean()) for value in (True, False) if (labels == value).any()]
    return float(np.mean(recalls)) if recalls else float("nan")


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, dtype=np.float64)
    positives, negatives = scores[labels], scores[~labels]
    if positives.size == 0 or negatives.size == 0:
        return float("nan")
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (positives.size * negatives.size))


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """AP = Σ (R_k − R_{k−1}) · P_k over distinct score thresholds, highest first; NaN without positives."""
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, dtype=np.float64)
    total = labels.sum()
    if total == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    labels, scores = labels[order], scores[order]
    last_of_each = np.r_[np.nonzero(np.diff(scores))[0], labels.size - 1]  # one point per distinct threshold
    true_pos = np.cumsum(labels)[last_of_each]
    precision = true_pos / (last_of_each + 1)
    recall = true_pos / total
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def first_alert(frames: Sequence[int], probabilities: Sequence[float], threshold: float) -> int | None:
    """The (0-based) frame of the first window whose probability reaches the threshold, or None."""
    for frame, probability in zip(frames, probabilities):
        if probability >= threshold:
            return int(frame)
    return None


def time_to_accident(alert_frame: int | None, onset_frame: int, fps: float) -> float | None:
    """Seconds from the alert to the accident onset (>0: alert before the onset); None without an alert."""
    return None if alert_frame is None else (onset_frame - alert_frame) / fps


def window_metrics(labels: Sequence[int], probabilities: Sequence[float], threshold: float = 0.5) -> dict[str, Any]:
    labels = np.asarray(labels)
    return {
        "windows": int(labels.size), "accident_windows": int(labels.sum()), "normal_windows": int((labels == 0).sum()),
        "accuracy": accuracy(labels, probabilities, threshold),
        "balanced_accuracy": balanced_accuracy(labels, probabilities, threshold),
        "roc_auc": roc_auc(labels, probabilities), "average_precision": average_precision(labels, probabilities),
        "threshold": threshold,
    }


def alert_metrics(streams: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Clip-level results of a sliding window over whole clips.

    Each stream: {"label", "onset" (0-based or None), "gap" (frames), "fps", "frames", "probabilities"}.
    A positive clip is detected when its first alert comes no earlier than `gap` frames before the
    onset (earlier = a false alarm in the normal-driving part); a normal clip is correct without alerts.
    """
    detected, false_alarm_clips, tta, normal_correct, positives, normals = 0, 0, [], 0, 0, 0
    for stream in streams:
        alert = first_alert(stream["frames"], stream["probabilities"], threshold)
        if stream["label"] == 1:
            positives += 1
            if alert is not None and alert >= stream["onset"] - stream["gap"]:
                detected += 1
                tta.append(time_to_accident(alert, stream["onset"], stream["fps"]))
            elif alert is not None:
                false_alarm_clips += 1
        else:
            normals += 1
            normal_correct += alert is None
    return {
        "positive_clips": positives, "detected": detected, "early_false_alarms": false_alarm_clips,
        "detection_rate": detected / positives if positives else None,
        "normal_clips": normals, "normal_clips_without_alert": normal_correct,
        "clip_accuracy": (detected + normal_correct) / (positives + normals) if positives + normals else None,
        "time_to_accident_s": {"mean": float(np.mean(tta)) if tta else None,
                               "median": float(np.median(tta)) if tta else None, "values": [round(t, 3) for t in tta]},
        "threshold": threshold,
    }
