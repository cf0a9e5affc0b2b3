"""Library scorer: how close each candidate paper is to one reader's own library, by content alone.

The score is a Rocchio query: the library centroid (optionally weighted per item, e.g. by
`recency_weights`) minus `background_weight` times the centroid of the candidate pool. Words that every
paper in the pool uses are taken out of the query, words that set the library apart from the pool are
kept; each candidate's score is its dot product with that query. Because the rows are L2-normalised, with
`background_weight=0` this is exactly the mean cosine similarity to the library items, and the returned
scores stay on that scale (the subtracted part is centred on the pool).

An optional second, dense view of the same items (`project` onto a `latent_basis`, a truncated SVD of
the pool: ~300-dimensional LSA) adds the same Rocchio query there, which matches papers that share a topic
but few words.

`weight_counts` builds the bag-of-words representation the scorer was tuned on (sublinear TF, IDF raised
to a power, L2 rows). Measured on citeulike-t in `bench/citeulike.py`, see `docs/benchmarks_citeulike.md`.

Uses no other reader's data and imports nothing from the store: only numpy, scipy and scikit-learn.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize

Matrix = np.ndarray | sp.spmatrix | sp.sparray

BACKGROUND_WEIGHT = 2.0  # how much of the pool's centroid is subtracted from the library centroid
LATENT_WEIGHT = 0.3  # weight of the LSA-space score next to the bag-of-words score
IDF_POWER = 1.5  # rare words count for more than plain TF-IDF gives them


def weight_counts(counts: Matrix, *, idf_power: float = IDF_POWER) -> sp.csr_matrix:
    """Word counts (documents × vocabulary) to sublinear TF × IDF**idf_power, L2-normalised rows.

    IDF is sklearn's smooth IDF, `ln((1 + n) / (1 + df)) + 1`, computed on `counts` itself.
    """
    X = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    if X.nnz and X.data.min() < 0:
        raise ValueError("counts must be non-negative")
    X.eliminate_zeros()
    X.data = 1.0 + np.log(X.data)
    n = X.shape[0]
    df = np.bincount(X.indices, minlength=X.shape[1])
    idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0) ** idf_power
    out = normalize(X @ sp.diags(idf), norm="l2", copy=False).tocsr()
    out.sort_indices()
    return out


def latent_basis(pool: Matrix, dims: int = 300, *, seed: int = 0) -> np.ndarray:
    """Orthonormal LSA basis (dims × vocabulary) of a pool of rows, for `library_scores(latent=...)`."""
    dims = min(dims, min(pool.shape) - 1)
    if dims < 1:
        raise ValueError("the pool is too small for a latent basis")
    return TruncatedSVD(dims, random_state=seed, n_iter=5).fit(pool).components_


def project(rows: Matrix, basis: np.ndarray) -> np.ndarray:
    """Rows in the latent space of `basis`, L2-normalised (the `latent` view of `library_scores`)."""
    return normalize(np.asarray(rows @ basis.T))


def recency_weights(ages_days: np.ndarray | list[float], half_life_days: float = 365.0) -> np.ndarray:
    """Weight 1 for a paper added today, 1/2 at `half_life_days`, 1/4 at twice that (negative ages: 1)."""
    if half_life_days <= 0:
        raise ValueError("half_life_days must be positive")
    ages = np.clip(np.asarray(ages_days, dtype=np.float64), 0.0, None)
    return np.power(0.5, ages / half_life_days)


def _row_mean(M: Matrix, w: np.ndarray | None = None) -> np.ndarray:
    if w is None:
        return np.asarray(M.mean(axis=0)).ravel()
    return np.asarray(M.T @ w).ravel() / w.sum()


def _rocchio(candidates: Matrix, library: Matrix, w: np.ndarray, background_weight: float) -> np.ndarray:
    scores = np.asarray(candidates @ _row_mean(library, w)).ravel()
    if background_weight:
        # the same ranking as `candidates @ (centroid - b * background)`; centring the subtracted part keeps
        # the pool's average score equal to its average mean-cosine, so callers can calibrate on that scale
        penalty = np.asarray(candidates @ _row_mean(candidates)).ravel()
        scores = scores - background_weight * (penalty - penalty.mean())
    return scores


def library_scores(
    candidates: Matrix,
    library: Matrix,
    weights: np.ndarray | list[float] | None = None,
    *,
    background_weight: float = BACKGROUND_WEIGHT,
    latent: tuple[Matrix, Matrix] | None = None,
    latent_weight: float = LATENT_WEIGHT,
) -> np.ndarray:
    """Score each candidate row against the library rows; higher is closer. Returns shape (n_candidates,).

    `candidates` and `library` are row matrices in the same space (sparse TF-IDF or dense embeddings) with
    L2-normalised rows. `weights` (one non-negative number per library row, not all zero) weight the
    library centroid; None means all 1. `latent` is the same candidates and library in a second, dense
    view (`project` onto a `latent_basis`, or sentence embeddings); its Rocchio score, brought to the
    spread of the first, is added with `latent_weight`. The background centroid is that of `candidates`,
    so score a whole day's pool at once rather than one paper at a time.
    """
    w = _check(candidates, library, weights)
    if candidates.shape[0] == 0:
        return np.zeros(0)
    scores = _rocchio(candidates, library, w, background_weight)
    if latent is not None and latent_weight:
        zc, zl = latent
        _check(zc, zl, w)
        if zc.shape[0] != candidates.shape[0] or zl.shape[0] != library.shape[0]:
            raise ValueError("the latent view must hold the same candidates and library items")
        z = _rocchio(zc, zl, w, background_weight)
        spread = float(np.std(z))
        if spread > 0:
            scores = scores + latent_weight * (z - z.mean()) * (float(np.std(scores)) / spread)
    return scores


def _check(candidates: Matrix, library: Matrix, weights: np.ndarray | list[float] | None) -> np.ndarray:
    if library.shape[0] == 0:
        raise ValueError("the library is empty: there is nothing to score against")
    if candidates.shape[1] != library.shape[1]:
        raise ValueError(
            f"candidates have {candidates.shape[1]} columns but the library has {library.shape[1]}"
        )
    if weights is None:
        return np.ones(library.shape[0])
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.shape[0] != library.shape[0]:
        raise ValueError(f"{w.shape[0]} weights for {library.shape[0]} library items")
    if (w < 0).any() or not w.sum() > 0:
        raise ValueError("weights must be non-negative and not all zero")
    return w
