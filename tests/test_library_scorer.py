"""The library scorer (feedsvc.rank.library) on synthetic matrices built here: random word counts shaped
like citeulike-t's bag of words (~20 distinct words per document) and small hand-made dense embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from feedsvc.rank.library import (
    latent_basis,
    library_scores,
    project,
    recency_weights,
    weight_counts,
)


def synthetic_counts(n_docs: int = 300, vocab: int = 500, seed: int = 0) -> sp.csr_matrix:
    """Synthetic bag of words: each document draws ~20 distinct words from one of 5 topics' halves of the
    vocabulary (Zipf-like within a topic), counts 1-4."""
    rng = np.random.default_rng(seed)
    rows, cols, vals = [], [], []
    for d in range(n_docs):
        topic = d % 5
        words = rng.choice(vocab // 5, size=20, replace=False) + topic * (vocab // 5)
        words = np.unique(np.concatenate([words, rng.choice(vocab, size=3)]))
        rows += [d] * len(words)
        cols += words.tolist()
        vals += rng.integers(1, 5, size=len(words)).tolist()
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_docs, vocab), dtype=float)


@pytest.fixture(scope="module")
def X() -> sp.csr_matrix:
    return weight_counts(synthetic_counts())


def test_weight_counts_gives_unit_rows_and_favours_rare_words() -> None:
    counts = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]))
    X = weight_counts(counts)
    assert np.allclose(np.sqrt(X.multiply(X).sum(axis=1)).A.ravel(), 1.0)
    assert X[0, 1] > X[0, 0]  # word 1 is in one document, word 0 in all four
    assert weight_counts(counts, idf_power=2.0)[0, 1] > X[0, 1]
    with pytest.raises(ValueError, match="non-negative"):
        weight_counts(sp.csr_matrix(np.array([[-1.0, 1.0]])))


def test_an_item_identical_to_a_library_item_ranks_first(X) -> None:
    library = X[[7, 42, 100]]
    scores = library_scores(X, library)
    assert scores.shape == (X.shape[0],)
    assert int(np.argmax(scores)) in {7, 42, 100}
    # leave the library's own rows out: a fresh copy of item 42 among other candidates comes first
    others = X[[i for i in range(X.shape[0]) if i not in (7, 42, 100)]]
    pool = sp.vstack([others, X[42]]).tocsr()
    assert int(np.argmax(library_scores(pool, library))) == pool.shape[0] - 1


def test_without_background_it_is_the_mean_cosine(X) -> None:
    library = X[[1, 2, 3, 9]]
    expected = (X @ library.T).toarray().mean(axis=1)
    assert np.allclose(library_scores(X, library, background_weight=0.0), expected)


def test_the_background_ranks_like_centroid_minus_pool_centroid_and_keeps_the_mean_cosine_scale(X) -> None:
    library = X[[5, 10, 15]]
    got = library_scores(X, library, background_weight=2.0)
    query = np.asarray(library.mean(axis=0)).ravel() - 2.0 * np.asarray(X.mean(axis=0)).ravel()
    assert np.array_equal(np.argsort(-got, kind="stable"), np.argsort(-(X @ query), kind="stable"))
    assert np.isclose(got.mean(), library_scores(X, library, background_weight=0.0).mean())
    assert not np.allclose(got, library_scores(X, library, background_weight=0.0))


def test_weights_change_the_order() -> None:
    # dense "embeddings": library item a points along axis 0, item b along axis 1
    library = np.eye(3)[:2]
    candidates = normalize(np.array([[0.9, 0.1, 0.4], [0.1, 0.9, 0.4], [0.0, 0.0, 1.0]]))
    even = library_scores(candidates, library, background_weight=0.0)
    assert np.isclose(even[0], even[1])
    towards_a = library_scores(candidates, library, [1.0, 0.1])
    towards_b = library_scores(candidates, library, [0.1, 1.0])
    assert towards_a[0] > towards_a[1]
    assert towards_b[1] > towards_b[0]


def test_recency_weighted_library_prefers_the_recent_items_topic(X) -> None:
    # library: two topic-0 items (d % 5 == 0) read long ago, one topic-1 item read today
    library = X[[0, 5, 1]]
    ages = np.array([2000.0, 2000.0, 0.0])
    topic_of_top = [
        int(np.argmax(library_scores(X[10:], library, w))) % 5 for w in (None, recency_weights(ages))
    ]
    assert topic_of_top == [0, 1]


def test_latent_view_blends_in_and_is_checked(X) -> None:
    basis = latent_basis(X, 20)
    assert basis.shape == (20, X.shape[1])
    Z = project(X, basis)
    assert np.allclose(np.linalg.norm(Z, axis=1), 1.0)
    lib = [3, 8, 13]
    plain = library_scores(X, X[lib])
    assert np.allclose(library_scores(X, X[lib], latent=(Z, Z[lib]), latent_weight=0.0), plain)
    blended = library_scores(X, X[lib], latent=(Z, Z[lib]), latent_weight=1.0)
    assert blended.shape == plain.shape and not np.allclose(blended, plain)
    with pytest.raises(ValueError, match="same candidates"):
        library_scores(X, X[lib], latent=(Z[:10], Z[lib]))


def test_edge_cases_raise_clear_errors(X) -> None:
    with pytest.raises(ValueError, match="library is empty"):
        library_scores(X, X[[]])
    with pytest.raises(ValueError, match="library is empty"):
        library_scores(np.eye(3), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="columns"):
        library_scores(X, np.ones((2, 7)))
    with pytest.raises(ValueError, match="2 weights for 3"):
        library_scores(X, X[[1, 2, 3]], [1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        library_scores(X, X[[1, 2]], [1.0, -1.0])
    with pytest.raises(ValueError, match="not all zero"):
        library_scores(X, X[[1, 2]], [0.0, 0.0])
    assert library_scores(X[[]], X[[1]]).shape == (0,)
    one = library_scores(X[[4]], X[[4]])
    assert one.shape == (1,) and np.isclose(one[0], 1.0)  # a pool of one: nothing to subtract


def test_recency_weights() -> None:
    w = recency_weights([0, 365, 730, -10])
    assert np.allclose(w, [1.0, 0.5, 0.25, 1.0])
    assert np.allclose(recency_weights(np.array([30.0]), half_life_days=30), [0.5])
    assert np.all(np.diff(recency_weights(np.arange(0, 3000, 100))) < 0)
    with pytest.raises(ValueError, match="positive"):
        recency_weights([1.0], half_life_days=0)
