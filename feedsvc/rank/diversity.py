"""Choosing the picks from scored candidates: maximal marginal relevance within thread quotas, and an
optional exploration slot whose thread is drawn by Thompson sampling over the reader's votes.

Imports only numpy; works on indices, so it knows nothing of papers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

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
    similarity: np.ndarray,
    quota: Mapping[str, int],
    k: int,
    lam: float = MMR_LAMBDA,
) -> list[int]:
    """Pick up to `k` of the candidates (indices into `scores`; -inf marks those below the bar): each step
    takes the best `lam * score - (1 - lam) * max similarity to the picks so far`, first within each
    thread's quota, then, when a thread has nothing left, from any thread. `similarity` is the
    (n x n) similarity matrix of the candidates."""
    n = len(scores)
    names = sorted(set(threads))
    code = np.array([names.index(t) for t in threads], dtype=int) if n else np.zeros(0, int)
    left = np.array([quota.get(t, 0) for t in names], dtype=int)
    redundancy = np.zeros(n)
    available = np.isfinite(scores)
    chosen: list[int] = []
    for respect_quota in (True, False):
        while len(chosen) < k:
            allowed = available & (left[code] > 0) if respect_quota else available
            if not allowed.any():
                break
            value = np.where(allowed, lam * scores - (1 - lam) * redundancy, -np.inf)
            best = int(np.argmax(value))
            chosen.append(best)
            available[best] = False
            left[code[best]] -= 1
            redundancy = np.maximum(redundancy, similarity[best])
    return chosen


def thompson_thread(
    threads: Sequence[str], ups: Mapping[str, int], downs: Mapping[str, int], rng: np.random.Generator
) -> str:
    """Draw each thread's chance of a 👍 from Beta(1 + ups, 1 + downs) and return the luckiest thread."""
    draws = {t: rng.beta(1 + ups.get(t, 0), 1 + downs.get(t, 0)) for t in threads}
    return max(draws, key=lambda t: draws[t])
