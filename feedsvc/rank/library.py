"""Library similarity (provisional: replaced by the measured scorer of bench/citeulike.py).

`library_scores` scores candidates by their similarity to a reader's library: a blend of the weighted mean
similarity and the mean of the top-3 similarities. Imports nothing from feedsvc.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def recency_weights(ages_days: np.ndarray, half_life_days: float = 365.0) -> np.ndarray:
    return np.power(0.5, np.maximum(np.asarray(ages_days, dtype=float), 0.0) / half_life_days)


def library_scores(candidates, library, weights=None) -> np.ndarray:
    if library.shape[0] == 0:
        raise ValueError("an empty library has nothing to compare with")
    sims = candidates @ library.T
    sims = sims.toarray() if sparse.issparse(sims) else np.asarray(sims)
    w = np.ones(sims.shape[1]) if weights is None else np.asarray(weights, dtype=float)
    mean = sims @ w / max(w.sum(), 1e-12)
    k = min(3, sims.shape[1])
    top = -np.sort(-sims, axis=1)[:, :k].mean(axis=1)
    return 0.5 * mean + 0.5 * top
