"""The learned per-reader model: logistic regression on the reader's own votes.

👍 and "more like this" items are positives ("more" counts double), 👎 and "less like this" negatives
("less" counts double), and the day's unlabelled candidates weak negatives, since most of a day's papers
are not for this reader. Silence is a weak negative too: an item delivered and never voted on, once its
digest is `SILENCE_AFTER_DAYS` old, weighs `SILENCE_WEIGHT` of a vote, halving every
`SILENCE_HALF_LIFE_DAYS` (`silence_weights`); no silent item weighs as much as one explicit vote, and all
of them together never more than half the explicit votes. With only negative votes there is nothing to fit,
and the model is a penalty on similarity to what the reader turned down (silence does not enter it). Its
weight in the blend grows with the number of votes (`takeover`); silence does not add to it. Imports only
feedsvc.models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from feedsvc.models import Feedback, Silence

UNLABELLED_WEIGHT = 0.05
LESS_WEIGHT = 2.0
MORE_WEIGHT = 2.0
POSITIVE = ("up", "more")
SILENCE_AFTER_DAYS = 3.0  # a digest this old whose item got no vote: the reader passed it over
SILENCE_WEIGHT = 0.3  # a fresh silence, as a share of one explicit vote (< 1: never outweighs a vote)
SILENCE_HALF_LIFE_DAYS = 14.0
SILENCE_TOTAL_SHARE = 0.5  # all silences together weigh at most half the explicit votes
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


def silence_weights(silence: Sequence[Silence], votes_weight: float) -> np.ndarray:
    """Each silent item's sample weight: 0 before `SILENCE_AFTER_DAYS`, then `SILENCE_WEIGHT` halving every
    `SILENCE_HALF_LIFE_DAYS`; scaled down together so that their sum is at most `SILENCE_TOTAL_SHARE` of
    `votes_weight`, the explicit votes' total weight."""
    age = np.array([s.age_days for s in silence], dtype=float) - SILENCE_AFTER_DAYS
    w = np.where(age >= 0, SILENCE_WEIGHT * 0.5 ** (np.maximum(age, 0) / SILENCE_HALF_LIFE_DAYS), 0.0)
    total, cap = float(w.sum()), SILENCE_TOTAL_SHARE * max(votes_weight, 0.0)
    return w * (cap / total) if total > cap else w


def _dense(m: np.ndarray | sparse.spmatrix) -> np.ndarray:
    return m.toarray() if sparse.issparse(m) else np.asarray(m)


def learned_scores(
    pool_vectors: np.ndarray | sparse.spmatrix,
    feedback: Sequence[Feedback],
    feedback_vectors: np.ndarray | sparse.spmatrix,
    silence: Sequence[Silence] = (),
    silence_vectors: np.ndarray | sparse.spmatrix | None = None,
) -> Learned | None:
    """Score the pool from the reader's votes and silences; `feedback_vectors[i]` represents `feedback[i]`
    in the pool's space (rows L2-normalised), `silence_vectors[i]` `silence[i]`. None without votes."""
    if not feedback:
        return None
    votes = np.array([f.vote for f in feedback])
    pos = np.isin(votes, POSITIVE)
    sims = _dense(pool_vectors @ feedback_vectors.T)  # (n, n_feedback) cosine similarities
    n = sims.shape[0]
    if pos.any():
        scores = _fit(pool_vectors, votes, feedback_vectors, silence, silence_vectors)
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


def _fit(
    pool_vectors: np.ndarray | sparse.spmatrix,
    votes: np.ndarray,
    feedback_vectors: np.ndarray | sparse.spmatrix,
    silence: Sequence[Silence],
    silence_vectors: np.ndarray | sparse.spmatrix | None,
) -> np.ndarray:
    """The logistic model's score of each pool row, the best of the day scaled to 1."""
    n = pool_vectors.shape[0]
    vote_w = np.select([votes == "less", votes == "more"], [LESS_WEIGHT, MORE_WEIGHT], 1.0)
    blocks = [feedback_vectors, pool_vectors]
    y = [np.isin(votes, POSITIVE).astype(int), np.zeros(n, dtype=int)]
    w = [vote_w, np.full(n, UNLABELLED_WEIGHT)]
    if silence and silence_vectors is not None:
        sw = silence_weights(silence, float(vote_w.sum()))
        keep = np.flatnonzero(sw > 0)
        if keep.size:
            blocks.append(silence_vectors[keep])
            y.append(np.zeros(keep.size, dtype=int))
            w.append(sw[keep])
    X = sparse.vstack(blocks) if sparse.issparse(pool_vectors) else np.vstack([_dense(b) for b in blocks])
    model = LogisticRegression(C=4.0, max_iter=500)
    model.fit(X, np.concatenate(y), sample_weight=np.concatenate(w))
    scores = model.predict_proba(pool_vectors)[:, 1]
    return scores / max(float(scores.max()), 1e-9)  # the best match of the day scores 1
