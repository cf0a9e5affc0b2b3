"""A day's candidate pool, represented once for every profile: a TF-IDF matrix and (optionally) sentence
embeddings. Profiles, seeds and feedback items are projected into the same spaces.

Building the pool is the expensive part of ranking; scoring a profile against it is a few sparse and dense
products, which is what lets one pool serve a thousand profiles. Imports only feedsvc.models and
feedsvc.rank.semantic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from feedsvc.models import Candidate
from feedsvc.rank.quality import Quality, quality
from feedsvc.rank.semantic import Embedder, embedding_text

_TEX = re.compile(r"\$[^$]*\$|\\[a-zA-Z]+")


def lexical_text(c: Candidate) -> str:
    """Title twice (the densest statement of the topic) and the abstract, TeX stripped."""
    return _TEX.sub(" ", f"{c.title}. {c.title}. {c.text}")


def clean_query(text: str) -> str:
    return _TEX.sub(" ", text)


@dataclass
class Pool:
    """The candidates and their vectors. `E` is None when no embedder is available."""

    candidates: list[Candidate]
    vectorizer: TfidfVectorizer
    X: sparse.csr_matrix
    E: np.ndarray | None
    embedder: Embedder | None = None
    terms: np.ndarray = field(default_factory=lambda: np.array([]))
    text_cache: dict[str, np.ndarray] = field(default_factory=dict)  # preload stored thread embeddings here
    fresh_texts: dict[str, np.ndarray] = field(default_factory=dict)  # embedded by this pool, to be stored
    _quality: dict[int, Quality] = field(default_factory=dict)

    def quality(self, i: int) -> Quality:
        if i not in self._quality:
            self._quality[i] = quality(self.candidates[i])
        return self._quality[i]

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.candidates]

    def tfidf(self, texts: Sequence[str]) -> sparse.csr_matrix:
        return normalize(self.vectorizer.transform([clean_query(t) for t in texts]))

    def tfidf_items(self, items: Sequence[Candidate]) -> sparse.csr_matrix:
        return normalize(self.vectorizer.transform([lexical_text(c) for c in items]))

    def embed(self, texts: Sequence[str]) -> np.ndarray | None:
        """Embeddings of free texts (thread descriptions), memoised for the pool's lifetime."""
        if self.embedder is None:
            return None
        missing = [t for t in dict.fromkeys(texts) if t not in self.text_cache]
        if missing:
            for t, v in zip(missing, self.embedder.embed(missing), strict=True):
                self.text_cache[t] = self.fresh_texts[t] = v
        return np.stack([self.text_cache[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    def embed_items(self, items: Sequence[Candidate], cached: Mapping[str, np.ndarray]) -> np.ndarray | None:
        if self.embedder is None:
            return None
        known = {c.key: cached[c.key] for c in items if c.key in cached}
        todo = [c for c in items if c.key not in known]
        if todo:
            for c, v in zip(todo, self.embedder.embed([embedding_text(c) for c in todo]), strict=True):
                known[c.key] = v
        return np.stack([known[c.key] for c in items]) if items else np.zeros((0, 384), np.float32)


def build_pool(
    candidates: Sequence[Candidate],
    *,
    embedder: Embedder | None = None,
    cached: Mapping[str, np.ndarray] | None = None,
    on_embedded: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> Pool:
    """Represent `candidates` once. Embeddings in `cached` are reused; new ones are handed to `on_embedded`
    (the pipeline stores them, so each candidate is embedded once)."""
    candidates = list(candidates)
    docs = [lexical_text(c) for c in candidates] or [""]
    # terms in over half of a large pool say nothing about a thread; a tiny pool keeps every term
    vectorizer = TfidfVectorizer(
        stop_words="english", ngram_range=(1, 2), sublinear_tf=True, max_df=0.5 if len(docs) >= 20 else 1.0
    )
    try:
        X = vectorizer.fit_transform(docs)
    except ValueError:  # no usable term at all (empty pool, or only stop words)
        vectorizer = TfidfVectorizer(analyzer=lambda _s: ["(none)"])
        X = vectorizer.fit_transform(docs)
    X = normalize(X[: len(candidates)]).tocsr() if candidates else sparse.csr_matrix((0, X.shape[1]))
    pool = Pool(candidates, vectorizer, X, None, embedder, vectorizer.get_feature_names_out())
    if embedder is not None:
        cached = dict(cached or {})
        before = set(cached)
        pool.E = pool.embed_items(candidates, cached)
        if on_embedded is not None and pool.E is not None:
            fresh = {c.key: pool.E[i] for i, c in enumerate(candidates) if c.key not in before}
            if fresh:
                on_embedded(fresh)
    return pool
