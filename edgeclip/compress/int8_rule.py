"""The one int8 rule, for `compress int8`, `export --precision int8` and `build`.

int8 is kept only when it keeps the fp32 model's decisions: top-1 agreement with the fp32 PyTorch
model of at least `INT8_AGREEMENT_BAR` on held-out images. An agreement is measured on a sample
(`export.parity_samples`, 64, parity images at export; the test split in a build), so the rule rejects when the sample
shows the agreement is below the bar beyond its sampling noise — the 95% Wilson upper bound of the
agreement is under 0.99 (90.6% of 128 images: bound 0.946, rejected; 63 of 64: bound 0.997, kept;
986 of 1000: bound 0.992, kept; 980 of 1000: bound 0.987, rejected).

What happens when it fails:
- the artifact is still written (to inspect and bench) but its manifest says `status: rejected`
  with the reason in `next_step` — never `ready` (export_model applies `judge_artifact`);
- `compress int8` and `export --precision int8` (the user asked for int8) exit 1 and name the fp32
  command to ship instead;
- `build` measures the row and its verdict falls back to the fastest passing row (fp32), saying why
  (compress/ship_rule.py applies this same rule, then asks that int8 be clearly faster).
Embeddings (towers) have no top-1: their int8 is judged by parity's cosine bar alone.
"""

from __future__ import annotations

import math
from typing import Any

INT8_AGREEMENT_BAR = 0.99
REJECTED = "rejected"
REJECTED_NOTE = "rejected at export: "  # how a bench row carries its artifact's rejection (bench/harness.py)
Z_95 = 1.96


def agreement_upper_bound(agreement: float, count: int, z: float = Z_95) -> float:
    """95% Wilson score upper bound of a proportion measured on `count` images."""
    if count <= 0:
        return 1.0
    denominator = 1 + z * z / count
    centre = agreement + z * z / (2 * count)
    spread = z * math.sqrt(agreement * (1 - agreement) / count + z * z / (4 * count * count))
    return min(1.0, (centre + spread) / denominator)


def agreement_problem(agreement: float | None, count: int | None) -> str | None:
    """Why int8 with this top-1 agreement (on `count` images) is rejected, or None when it holds."""
    if agreement is None:
        return None
    bound = agreement_upper_bound(agreement, count) if count else agreement
    if bound >= INT8_AGREEMENT_BAR:
        return None
    where = f" on {count} held-out images (95% upper bound {bound:.3f})" if count else " on the test images"
    return f"int8 changes decisions: top-1 agreement with its fp32 model {agreement:.4f} < {INT8_AGREEMENT_BAR}{where}"


def judge_artifact(manifest: dict[str, Any]) -> str | None:
    """Why an exported artifact must not be `ready`: parity failed, or (int8) the agreement rule failed."""
    parity = manifest.get("parity") or {}
    if parity.get("passed") is False:
        return f"parity against PyTorch failed ({parity.get('reason') or _parity_numbers(parity)})"
    if manifest.get("precision") == "int8" and parity.get("status") == "ran":
        return agreement_problem(parity.get("top1_agreement"), parity.get("num_inputs"))
    return None


def _parity_numbers(parity: dict[str, Any]) -> str:
    numbers = [f"cosine {parity['mean_cosine']:.4f}"] if parity.get("mean_cosine") is not None else []
    if parity.get("top1_agreement") is not None:
        numbers.append(f"top-1 agreement {parity['top1_agreement']:.4f}")
    return ", ".join(numbers) + f" vs thresholds {parity.get('thresholds')}"


def fallback_hint(model: str, backend: str) -> str:
    return (f"ship fp32 instead (edgeclip export --model {model} --backend {backend} --precision fp32), or keep more "
            "layers in float (edgeclip compress int8 --max-float-fraction / --ignored-scope)")
