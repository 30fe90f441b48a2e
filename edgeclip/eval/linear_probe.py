"""Linear probe on frozen image features (paper 001 §3.3.3, CLIP's protocol).

scikit-learn logistic regression on L2-normalized frozen embeddings. The inverse regularisation
strength C is chosen on a validation split carved from the train split (stratified, fixed seed),
over a log-spaced sweep as CLIP does (CLIP refines with a binary search; a 1e-3..1e3 grid of 13
values is enough at these sizes); the chosen C is refit on the whole train split and scored once
on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeclip.data.sampling import stratified_split

DEFAULT_CS = tuple(float(c) for c in np.logspace(-3, 3, 13))


@dataclass
class ProbeResult:
    accuracy: float
    best_c: float
    validation: dict[float, float] = field(default_factory=dict)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                 cs: tuple[float, ...] = DEFAULT_CS, val_fraction: float = 0.2, seed: int = 0) -> ProbeResult:
    """Test top-1 of a logistic-regression probe whose C was picked on a validation split of train."""
    from sklearn.linear_model import LogisticRegression

    train_y = np.asarray(train_y)
    fit_idx, val_idx = stratified_split(train_y.tolist(), val_fraction, seed)
    scores: dict[float, float] = {}
    for c in cs:
        probe = LogisticRegression(C=c, max_iter=2000)
        probe.fit(train_x[fit_idx], train_y[fit_idx])
        scores[c] = float((probe.predict(train_x[val_idx]) == train_y[val_idx]).mean())
    best = max(cs, key=lambda c: (scores[c], -abs(np.log10(c))))  # ties: the least extreme C
    final = LogisticRegression(C=best, max_iter=2000).fit(train_x, train_y)
    return ProbeResult(float((final.predict(test_x) == np.asarray(test_y)).mean()), best, scores)
