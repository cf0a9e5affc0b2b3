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
    # per-candidate arrays, computed once, so a profile's eligibility is a few vector operations
    published: np.ndarray = field(default_factory=lambda: np.zeros(0))  # POSIX seconds, NaN when unknown
    has_text: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    first: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # first occurrence of its key
    _analyze: Callable[[str], list[str]] | None = None
    _vocab: dict[str, int] = field(default_factory=dict)
    _idf: np.ndarray | None = None
    _df: np.ndarray | None = None  # how many candidates hold each term, counted on first use

    def __post_init__(self) -> None:
        self.published = np.array(
            [c.published.timestamp() if c.published else np.nan for c in self.candidates], dtype=float
        )
        self.has_text = np.array([bool(c.text.strip()) for c in self.candidates], dtype=bool)
        seen: set[str] = set()
        first = []
        for c in self.candidates:
            first.append(c.key not in seen)
            seen.add(c.key)
        self.first = np.array(first, dtype=bool)

    def quality(self, i: int) -> Quality:
        if i not in self._quality:
            self._quality[i] = quality(self.candidates[i])
        return self._quality[i]

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.candidates]

    def doc_share(self, j: int) -> float:
        """The share of the pool's candidates that hold term `j`."""
        if self._df is None:
            self._df = np.bincount(self.X.indices, minlength=self.X.shape[1])
        return float(self._df[j]) / max(1, self.X.shape[0])

    def tfidf(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """TF-IDF rows for short texts (thread descriptions) in the pool's space: the fitted analyzer,
        vocabulary and idf applied directly (what `vectorizer.transform` does, without its per-call
        overhead, which dominates when a thousand profiles each bring three short texts)."""
        if self._analyze is None:
            self._analyze = self.vectorizer.build_analyzer()
            self._vocab = self.vectorizer.vocabulary_
            self._idf = getattr(self.vectorizer, "idf_", None)
        rows, cols, vals = [], [], []
        for r, text in enumerate(texts):
            counts: dict[int, int] = {}
            for term in self._analyze(clean_query(text)):
                j = self._vocab.get(term)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            if not counts:
                continue
            js = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=float, count=len(counts)))  # sublinear tf
            w = tf * (self._idf[js] if self._idf is not None else 1.0)
            w /= np.linalg.norm(w)
            rows += [r] * len(js)
            cols += js.tolist()
            vals += w.tolist()
        return sparse.csr_matrix((vals, (rows, cols)), shape=(len(texts), len(self._vocab)))

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
