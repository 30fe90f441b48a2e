"""What an accuracy, a retention or an agreement means on this data: baselines, prediction spread, flags.

A number alone misleads on a user's own folder: 51% top-1 is good on 10 balanced classes and
nothing on a 3-class set where one class is half the images; retention 0.967 between two
chance-level models says nothing; "int8 agrees 98%" is trivial when both predict one class.
`qualify_predictions` puts the baselines beside the accuracy (chance = 1/classes, majority =
share of the most frequent class), the prediction histogram and its entropy beside any agreement,
per-class accuracy and the confusion matrix beside the mean, and turns each of these into a flag
sentence when it empties the number of meaning. Numpy only (reports are written without torch).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

# A model "learned little more than the baseline" when its accuracy is within this many points of
# max(chance, majority) — or within two binomial standard errors on small test sets, if that is more.
NEAR_BASELINE_POINTS = 0.05
# Predictions are degenerate when one class gets at least this share of them while the data's
# largest class is smaller (a constant predictor makes every agreement trivially high).
DEGENERATE_SHARE = 0.9


def standard_error(accuracy: float, count: int) -> float:
    """Binomial standard error of an accuracy measured on `count` images."""
    return math.sqrt(max(accuracy * (1 - accuracy), 1e-12) / max(count, 1))


def baseline_margin(baseline: float, count: int) -> float:
    return max(NEAR_BASELINE_POINTS, 2 * standard_error(baseline, count))


def baselines(labels: Sequence[int], class_names: Sequence[str]) -> dict[str, Any]:
    """Chance (uniform guess over the model's classes) and majority-class accuracy on these labels."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=len(class_names)) if len(labels) else np.zeros(len(class_names), int)
    top = int(counts.argmax()) if len(labels) else 0
    return {"chance": 1.0 / max(len(class_names), 1), "majority": float(counts[top] / max(len(labels), 1)),
            "majority_class": class_names[top] if class_names else None, "images": int(len(labels)),
            "per_class_images": {name: int(c) for name, c in zip(class_names, counts)}}


def prediction_spread(predicted: Sequence[int], class_names: Sequence[str]) -> dict[str, Any]:
    """How the predictions spread over the classes: histogram, entropy (bits) and the top class's share."""
    predicted = np.asarray(predicted, dtype=np.int64)
    counts = np.bincount(predicted, minlength=len(class_names)) if len(predicted) else np.zeros(len(class_names), int)
    shares = counts / max(len(predicted), 1)
    nonzero = shares[shares > 0]
    top = int(counts.argmax()) if len(predicted) else 0
    return {"histogram": {name: int(c) for name, c in zip(class_names, counts)},
            "entropy_bits": float(-(nonzero * np.log2(nonzero)).sum()) if len(nonzero) else 0.0,
            "max_entropy_bits": float(math.log2(len(class_names))) if len(class_names) > 1 else 0.0,
            "top_class": class_names[top] if class_names else None, "top_class_share": float(shares[top]) if len(shares) else 0.0,
            "classes_predicted": int((counts > 0).sum())}


def confusion(labels: Sequence[int], predicted: Sequence[int], num_classes: int) -> list[list[int]]:
    """matrix[true][predicted] = images."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix.tolist()


def per_class_accuracy(matrix: list[list[int]], class_names: Sequence[str]) -> dict[str, float | None]:
    """Recall per true class (None for a class with no images here)."""
    return {name: (row[i] / sum(row) if sum(row) else None) for i, (name, row) in enumerate(zip(class_names, matrix))}


def accuracy_flags(who: str, accuracy: float | None, base: dict[str, Any], spread: dict[str, Any] | None) -> list[str]:
    """Sentences for an accuracy near the baselines and for degenerate predictions."""
    flags: list[str] = []
    if accuracy is None or not base["images"]:
        return flags
    best = max(base["chance"], base["majority"])
    which = "majority-class" if base["majority"] > base["chance"] + 1e-9 else "chance"
    if accuracy <= best + baseline_margin(best, base["images"]):
        flags.append(f"{who} top-1 {accuracy:.1%} is not clear of the {which} baseline {best:.1%} by more than "
                     f"{baseline_margin(best, base['images']):.0%} ({base['majority_class']} is {base['majority']:.1%} of the "
                     f"images, chance {base['chance']:.1%}): it learned little more than the baseline")
    if spread and spread["top_class_share"] >= DEGENERATE_SHARE and base["majority"] < DEGENERATE_SHARE:
        flags.append(f"{who} predicts '{spread['top_class']}' for {spread['top_class_share']:.0%} of the images "
                     f"(entropy {spread['entropy_bits']:.2f} of {spread['max_entropy_bits']:.2f} bits): degenerate predictions, "
                     "any agreement with it is trivially high")
    return flags


def retention_flags(teacher_accuracy: float | None, retention: float | None, base: dict[str, Any]) -> list[str]:
    """Retention means nothing when the teacher is near chance/majority, and is noise when above 1 by noise."""
    flags: list[str] = []
    if teacher_accuracy is None or retention is None or not base["images"]:
        return flags
    best = max(base["chance"], base["majority"])
    if teacher_accuracy <= best + baseline_margin(best, base["images"]):
        flags.append(f"the teacher's top-1 {teacher_accuracy:.1%} is not clear of the baseline {best:.1%} by more than "
                     f"{baseline_margin(best, base['images']):.0%}: retention {retention:.3f} is relative to a near-baseline "
                     "teacher and means nothing")
    noise = 2 * math.sqrt(2) * standard_error(teacher_accuracy, base["images"]) / max(teacher_accuracy, 1e-9)
    if retention > 1 + noise:
        flags.append(f"retention {retention:.3f} exceeds 1 by more than sampling noise (±{noise:.3f} on {base['images']} images): "
                     "the student beats its teacher here, so retention does not measure what distillation kept")
    # Above 1 within the noise is not a problem to warn about: the student kept what the teacher knows.
    return flags


def qualify_predictions(labels: Sequence[int], student_predicted: Sequence[int], class_names: Sequence[str], *,
                        teacher_predicted: Sequence[int] | None = None, retention: float | None = None) -> dict[str, Any]:
    """The qualifier block of an evaluation (see the module doc): baselines, spreads, per-class
    accuracy and confusion for the student (and teacher), and every flag as a sentence."""
    labels = np.asarray(labels, dtype=np.int64)
    student_predicted = np.asarray(student_predicted, dtype=np.int64)
    base = baselines(labels, class_names)
    student_acc = float((student_predicted == labels).mean()) if len(labels) else None
    spread = prediction_spread(student_predicted, class_names)
    matrix = confusion(labels, student_predicted, len(class_names))
    block: dict[str, Any] = {"baselines": base, "student_predictions": spread, "confusion": matrix,
                             "per_class_accuracy": per_class_accuracy(matrix, class_names)}
    flags = accuracy_flags("the student", student_acc, base, spread)
    if teacher_predicted is not None:
        teacher_predicted = np.asarray(teacher_predicted, dtype=np.int64)
        teacher_acc = float((teacher_predicted == labels).mean()) if len(labels) else None
        teacher_spread = prediction_spread(teacher_predicted, class_names)
        block["teacher_predictions"] = teacher_spread
        block["teacher_per_class_accuracy"] = per_class_accuracy(confusion(labels, teacher_predicted, len(class_names)), class_names)
        flags += accuracy_flags("the teacher", teacher_acc, base, teacher_spread)
        flags += retention_flags(teacher_acc, retention, base)
    block["flags"] = flags
    return block


def confusion_markdown(matrix: list[list[int]], class_names: Sequence[str], per_class: dict[str, float | None]) -> list[str]:
    """Per-class accuracy and the confusion matrix (rows = true class, columns = predicted) as Markdown lines."""
    lines = ["| true \\ predicted | " + " | ".join(class_names) + " | images | accuracy |",
             "|---|" + "---:|" * (len(class_names) + 2)]
    for name, row in zip(class_names, matrix):
        acc = per_class.get(name)
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + f" | {sum(row)} | "
                     f"{'-' if acc is None else f'{acc * 100:.1f}%'} |")
    return lines
