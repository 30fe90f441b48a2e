"""Per-layer int8 sensitivity and the mixed-precision search built on it (backend-independent).

A backend supplies a *revertible* quantized model: `layers()` (the quantized layers, named as the
backend names them) and `build(float_layers) -> run(batch)` (the quantized model with those layers
back in float). Then:

1. `rank_layers`: revert one layer at a time and measure how much closer to fp32 the outputs get
   on validation images (KL divergence of the class probabilities for classifiers, 1 − cosine for
   embeddings). The layers whose reversion helps most are the sensitive ones.
2. `search_float_layers`: revert the top-k for k = 1, 2, 4, … until the validation agreement with
   fp32 reaches the target, then bisect for the smallest such k. If even the allowed maximum does
   not reach it, the best found is returned with `target_met=False` — the caller keeps fp32.

Validation images must not be the calibration images (else the ranges were fit to them) nor the
held-out test images (else the reported agreement was tuned on).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from tqdm.auto import tqdm

RunFn = Callable[[np.ndarray], np.ndarray]


class Revertible(Protocol):
    backend: str

    def layers(self) -> list[str]: ...

    def build(self, float_layers: Sequence[str]) -> RunFn: ...


def run_all(run: RunFn, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    return np.concatenate([np.asarray(run(images[i:i + batch_size])) for i in range(0, len(images), batch_size)])


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def divergence(outputs: np.ndarray, reference: np.ndarray, logits: bool) -> float:
    """Mean KL(p_ref ‖ p_out) for logits; mean 1 − cosine for embeddings. 0 = identical."""
    if logits:
        log_ref, log_out = _log_softmax(reference), _log_softmax(outputs)
        return float((np.exp(log_ref) * (log_ref - log_out)).sum(axis=1).mean())
    a = reference.reshape(len(reference), -1).astype(np.float64)
    b = outputs.reshape(len(outputs), -1).astype(np.float64)
    cosine = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float((1 - cosine).mean())


def fidelity(outputs: np.ndarray, reference: np.ndarray, logits: bool) -> float:
    """Top-1 agreement for logits, mean cosine for embeddings (higher is better, 1 = identical)."""
    if logits:
        return float((outputs.argmax(1) == reference.argmax(1)).mean())
    return 1.0 - divergence(outputs, reference, logits=False)


@dataclass
class LayerScore:
    name: str
    divergence: float  # with only this layer in float
    gain: float  # divergence of the all-int8 model minus `divergence`


@dataclass
class SearchResult:
    float_layers: list[str]
    fidelity: float
    divergence: float
    target: float
    target_met: bool
    all_int8_fidelity: float
    candidates: int
    tried: list[dict[str, Any]] = field(default_factory=list)
    ranking: list[LayerScore] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        data = asdict(self)
        data["ranking"] = [asdict(score) for score in self.ranking[:top]]
        return data


def rank_layers(model: Revertible, images: np.ndarray, reference: np.ndarray, *, logits: bool,
                layers: Sequence[str] | None = None, progress: bool = False) -> tuple[list[LayerScore], float]:
    """Sensitivity ranking (most sensitive first) and the all-int8 divergence."""
    base = divergence(run_all(model.build([]), images), reference, logits)
    scores = []
    for name in tqdm(list(layers if layers is not None else model.layers()), desc="int8 sensitivity", disable=not progress,
                     leave=False, dynamic_ncols=True):
        value = divergence(run_all(model.build([name]), images), reference, logits)
        scores.append(LayerScore(name, value, base - value))
    scores.sort(key=lambda s: s.gain, reverse=True)
    return scores, base


def search_float_layers(model: Revertible, images: np.ndarray, reference: np.ndarray, *, logits: bool,
                        target: float, max_float: int, progress: bool = False) -> SearchResult:
    """Fewest most-sensitive layers in float that bring validation fidelity to `target` (module doc)."""
    started = time.perf_counter()
    candidates = model.layers()
    tried: list[dict[str, Any]] = []

    def evaluate(k: int, order: list[str]) -> tuple[float, float]:
        outputs = run_all(model.build(order[:k]), images)
        value, div = fidelity(outputs, reference, logits), divergence(outputs, reference, logits)
        tried.append({"float_layers": k, "fidelity": value, "divergence": div})
        return value, div

    all_int8, all_div = evaluate(0, [])
    if all_int8 >= target or max_float <= 0 or not candidates:
        return SearchResult([], all_int8, all_div, target, all_int8 >= target, all_int8, len(candidates), tried,
                            seconds=time.perf_counter() - started)
    ranking, _ = rank_layers(model, images, reference, logits=logits, layers=candidates, progress=progress)
    order = [score.name for score in ranking]
    limit = min(max_float, len(order))
    best_k, best = 0, (all_int8, all_div)
    low, high = 0, None
    k = 1
    while k <= limit:
        result = evaluate(k, order)
        if result[0] > best[0] or (result[0] == best[0] and result[1] < best[1]):
            best_k, best = k, result
        if result[0] >= target:
            high = k
            break
        low = k
        k = limit if k * 2 > limit and k < limit else k * 2
    if high is not None:  # bisect (low, high] for the smallest k that meets the target
        best_k, best = high, next((t["fidelity"], t["divergence"]) for t in reversed(tried) if t["float_layers"] == high)
        while high - low > 1:
            middle = (low + high) // 2
            result = evaluate(middle, order)
            if result[0] >= target:
                high, best_k, best = middle, middle, result
            else:
                low = middle
    return SearchResult(order[:best_k], best[0], best[1], target, best[0] >= target, all_int8, len(candidates), tried,
                        ranking, time.perf_counter() - started)
