"""The shift suite on natural photos: CIFAR-10-C-style corruptions × severities, teacher and student.

Digits have no natural shifted set, so their shift suite uses the synthetic shifts of
`edgeclip.data.shifts`. Photos (datasets whose `mirror_invariant` is set: a mirrored photo is the
same class) get what the robustness literature reports instead: the ten corruptions of
`edgeclip.data.corruptions` at severities 1..5 (Hendrycks & Dietterich 2019), top-1 per corruption
and severity, and the **mean over corruptions per severity**, with retention per severity.

Each corrupted image is made once and encoded by both models, so teacher and student see the same
pixels; its random draws come from (seed, corruption, severity, test index), so the set is the same
in every run. A full pass is 50× the test set per model; `images` evaluates a fixed, seeded,
class-stratified subset of the test split instead (reported with its size and the clean top-1 on
that same subset, so drops compare like with like).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import numpy as np
import torch

from edgeclip.data.base import ImageDataset, Subset
from edgeclip.data.corruptions import CORRUPTIONS, CORRUPTIONS_VERSION, SEVERITIES, CorruptedDataset
from edgeclip.data.sampling import stratified_split
from edgeclip.errors import UserError

SHIFT_FAMILIES = ("auto", "corruptions", "synthetic")


def shift_family(requested: str, test: ImageDataset) -> str:
    """`corruptions` or `synthetic`: `auto` picks corruptions for photos, synthetic shifts otherwise."""
    if requested not in SHIFT_FAMILIES:
        raise UserError(f"unknown shift set {requested!r}; choose from {', '.join(SHIFT_FAMILIES)}")
    if requested != "auto":
        return requested
    return "corruptions" if getattr(test, "mirror_invariant", False) else "synthetic"


def shift_subset(test: ImageDataset, images: int | None, seed: int) -> tuple[ImageDataset, list[int] | None]:
    """(`test` or a seeded class-stratified subset of about `images` of it, its indices or None)."""
    if images is None or images <= 0 or images >= len(test):
        return test, None

    _, chosen = stratified_split(list(test.labels), images / len(test), seed)
    return Subset(test, chosen), chosen


def shared_image_features(encoders: Mapping[str, Any], dataset: ImageDataset, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """(N, D) normalized embeddings per encoder; each image is loaded (and corrupted) once for all of them."""
    out: dict[str, list[torch.Tensor]] = {role: [] for role in encoders}
    for start in range(0, len(dataset), batch_size):
        images = [dataset.load(i) for i in range(start, min(start + batch_size, len(dataset)))]
        for role, encoder in encoders.items():
            batch = torch.from_numpy(np.stack([encoder.preprocess(image) for image in images]))
            out[role].append(encoder.encode_images(batch))
    return {role: torch.cat(parts) for role, parts in out.items()}


def corruption_shift(encoders: Mapping[str, Any], test: ImageDataset, top1: Callable[[str, torch.Tensor, np.ndarray], float],
                     *, seed: int = 0, images: int | None = None, clean: Mapping[str, float] | None = None,
                     say: Callable[[str], None] = lambda _m: None) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """(top-1 per role keyed by row name, details). Rows: `shift <corruption> s<k> top-1` for every
    corruption and severity, `shift mean s<k> top-1` (mean over the corruptions) per severity,
    `shift mean top-1` (mean over severities), and `shift clean top-1` on the subset when one is used.
    `clean` is the in-distribution top-1 on the whole test split (reused when no subset is drawn)."""
    data, indices = shift_subset(test, images, seed)
    labels = np.asarray(data.labels)
    acc: dict[str, dict[str, float]] = {}
    if indices is not None or clean is None:
        say(f"shift: clean subset of {len(data)} test images")
        feats = shared_image_features(encoders, data)
        clean = {role: top1(role, feats[role], labels) for role in encoders}
        if indices is not None:
            acc["shift clean top-1"] = dict(clean)
    total, done, started = len(CORRUPTIONS) * len(SEVERITIES), 0, time.perf_counter()
    for name in CORRUPTIONS:
        for severity in SEVERITIES:
            # Corrupt the whole test split, then take the subset: image i's draws key on its test index.
            corrupted = CorruptedDataset(test, name, severity, seed=seed)
            view = Subset(corrupted, indices) if indices is not None else corrupted
            feats = shared_image_features(encoders, view)
            acc[f"shift {name} s{severity} top-1"] = {role: top1(role, feats[role], labels) for role in encoders}
            done += 1
            eta = (time.perf_counter() - started) / done * (total - done)
            say(f"shift: {name} severity {severity} ({done}/{total}, ETA {eta:.0f} s)")
    per_severity = {}
    for severity in SEVERITIES:
        mean = {role: float(np.mean([acc[f"shift {n} s{severity} top-1"][role] for n in CORRUPTIONS])) for role in encoders}
        acc[f"shift mean s{severity} top-1"] = mean
        per_severity[severity] = {f"{role}_drop": clean[role] - mean[role] for role in encoders}
    acc["shift mean top-1"] = {role: float(np.mean([acc[f"shift mean s{s} top-1"][role] for s in SEVERITIES])) for role in encoders}
    details = {
        "family": "corruptions",
        "description": ("CIFAR-10-C-style corruptions implemented here (Hendrycks & Dietterich 2019 formulas and CIFAR "
                        "constants, our own seeded draws; not the released CIFAR-10-C arrays), applied to the real test "
                        "images at their own size before each model's preprocessing"),
        "corruptions": {name: category for name, (category, _) in CORRUPTIONS.items()},
        "severities": list(SEVERITIES), "version": CORRUPTIONS_VERSION, "seed": seed,
        "images": len(data), "test_images": len(test),
        "subset": None if indices is None else f"{len(data)} of {len(test)} test images, class-stratified, seed {seed}",
        "clean": dict(clean), "per_severity": per_severity,
    }
    return acc, details
