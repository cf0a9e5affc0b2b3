"""Choosing the picks from scored candidates: maximal marginal relevance within thread quotas, and an
optional exploration slot whose thread is drawn by Thompson sampling over the reader's votes.

Imports only numpy; works on indices, so it knows nothing of papers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

MMR_LAMBDA = 0.75  # relevance against redundancy: 1 would ignore redundancy


def quotas(shares: Mapping[str, float], n: int) -> dict[str, int]:
    """Split `n` picks over threads by share (largest remainder)."""
    total = sum(shares.values()) or 1.0
    raw = {t: n * s / total for t, s in shares.items()}
    quota = {t: math.floor(v) for t, v in raw.items()}
    for t in sorted(raw, key=lambda k: raw[k] - quota[k], reverse=True):
        if sum(quota.values()) >= n:
            break
        quota[t] += 1
    return quota


def mmr(
    scores: np.ndarray,
    threads: Sequence[str],
    similarity: Callable[[int, int], float],
    quota: Mapping[str, int],
    k: int,
    lam: float = MMR_LAMBDA,
) -> list[int]:
    """Pick up to `k` of the candidates (indices into `scores`, all already above the bar): each step takes
    the best `lam * score - (1 - lam) * max similarity to the picks so far`, first within each thread's
    quota, then, when a thread has nothing left, from any thread."""
    left = dict(quota)
    chosen: list[int] = []
    pool = [i for i in np.argsort(-scores) if np.isfinite(scores[i])]
    for respect_quota in (True, False):
        while len(chosen) < k:
            best, best_value = -1, -np.inf
            for i in pool:
                if i in chosen or (respect_quota and left.get(threads[i], 0) <= 0):
                    continue
                redundancy = max((similarity(i, j) for j in chosen), default=0.0)
                value = lam * scores[i] - (1 - lam) * redundancy
                if value > best_value:
                    best, best_value = i, value
            if best < 0:
                break
            chosen.append(best)
            left[threads[best]] = left.get(threads[best], 0) - 1
    return chosen


def thompson_thread(
    threads: Sequence[str], ups: Mapping[str, int], downs: Mapping[str, int], rng: np.random.Generator
) -> str:
    """Draw each thread's chance of a 👍 from Beta(1 + ups, 1 + downs) and return the luckiest thread."""
    draws = {t: rng.beta(1 + ups.get(t, 0), 1 + downs.get(t, 0)) for t in threads}
    return max(draws, key=lambda t: draws[t])
