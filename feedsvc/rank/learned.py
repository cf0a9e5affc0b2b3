"""The learned per-reader model: logistic regression on the reader's own votes.

👍 items are positives, 👎 and "less like this" negatives ("less" counts double), and the day's unlabelled
candidates weak negatives, since most of a day's papers are not for this reader. With only negative votes
there is nothing to fit, and the model is a penalty on similarity to what the reader turned down. Its
weight in the blend grows with the number of votes (`takeover`). Imports only feedsvc.models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from feedsvc.models import Feedback

UNLABELLED_WEIGHT = 0.05
LESS_WEIGHT = 2.0
HALF_TAKEOVER = 8  # votes at which the learned model weighs as much as the content scorers


@dataclass(frozen=True)
class Learned:
    scores: np.ndarray  # (n_candidates,), in [0, 1]
    nearest: list[
        tuple[str, str, float] | None
    ]  # per candidate: (title, vote, similarity) of the closest voted item
    votes: int


def takeover(votes: int) -> float:
    """The learned model's share of the blend: 0 with no votes, 1/2 at HALF_TAKEOVER, towards 1 after."""
    return votes / (votes + HALF_TAKEOVER)


def _dense(m: np.ndarray | sparse.spmatrix) -> np.ndarray:
    return m.toarray() if sparse.issparse(m) else np.asarray(m)


def learned_scores(
    pool_vectors: np.ndarray | sparse.spmatrix,
    feedback: Sequence[Feedback],
    feedback_vectors: np.ndarray | sparse.spmatrix,
) -> Learned | None:
    """Score the pool from the reader's votes; `feedback_vectors[i]` represents `feedback[i]` in the pool's
    space (rows L2-normalised). None without votes."""
    if not feedback:
        return None
    votes = np.array([f.vote for f in feedback])
    pos = votes == "up"
    sims = _dense(pool_vectors @ feedback_vectors.T)  # (n, n_feedback) cosine similarities
    n = sims.shape[0]
    if pos.any():
        X = (
            sparse.vstack([feedback_vectors, pool_vectors])
            if sparse.issparse(pool_vectors)
            else np.vstack([_dense(feedback_vectors), _dense(pool_vectors)])
        )
        y = np.concatenate([pos.astype(int), np.zeros(n, dtype=int)])
        w = np.concatenate([np.where(votes == "less", LESS_WEIGHT, 1.0), np.full(n, UNLABELLED_WEIGHT)])
        model = LogisticRegression(C=4.0, max_iter=500)
        model.fit(X, y, sample_weight=w)
        scores = model.predict_proba(pool_vectors)[:, 1]
        scores = scores / max(float(scores.max()), 1e-9)  # the best match of the day scores 1
    else:  # only 👎 / "less like this": a penalty for resembling them
        scores = 1.0 - np.clip(sims.max(axis=1), 0.0, 1.0)
    nearest: list[tuple[str, str, float] | None] = []
    for i in range(n):
        j = int(np.argmax(sims[i])) if sims.shape[1] else -1
        if j >= 0 and sims[i, j] > 0:
            nearest.append((feedback[j].candidate.title, str(votes[j]), float(sims[i, j])))
        else:
            nearest.append(None)
    return Learned(scores=np.asarray(scores, dtype=float), nearest=nearest, votes=len(feedback))
