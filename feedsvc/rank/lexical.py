"""Lexical scorer: TF-IDF cosine similarity of each candidate's title and abstract to each interest thread.

A thread's query text is its `about`, its keywords (weighted twice) and the titles and abstracts of its
seed papers. Imports only `feedsvc.models` and scikit-learn.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from feedsvc.models import Candidate, Thread

_TEX = re.compile(r"\$[^$]*\$|\\[a-zA-Z]+")


def candidate_text(c: Candidate) -> str:
    """Title twice (it is the densest statement of the topic) and the abstract, TeX stripped."""
    return _TEX.sub(" ", f"{c.title}. {c.title}. {c.text}")


def thread_text(thread: Thread, seeds: Mapping[str, Candidate]) -> str:
    parts = [thread.name, thread.about, *thread.keywords, *thread.keywords]
    for sid in thread.seed_papers:
        seed = seeds.get(f"arxiv:{sid}")
        if seed is not None:
            parts.append(candidate_text(seed))
    return _TEX.sub(" ", ". ".join(parts))


@dataclass(frozen=True)
class LexicalScores:
    """`scores[i, t]`: similarity of candidate i to thread t; `nearest[i, t]`: index of the closest seed
    paper of thread t (into `seed_keys[t]`) and its similarity."""

    scores: np.ndarray
    matched: list[list[tuple[str, ...]]]
    nearest: list[list[tuple[str | None, float]]]


def score(
    candidates: Sequence[Candidate],
    threads: Sequence[Thread],
    seeds: Mapping[str, Candidate],
    *,
    top_terms: int = 4,
) -> LexicalScores:
    """Score every candidate against every thread."""
    if not candidates or not threads:
        return LexicalScores(np.zeros((len(candidates), len(threads))), [], [])
    docs = [candidate_text(c) for c in candidates]
    queries = [thread_text(t, seeds) for t in threads]
    # terms in over half of a large pool say nothing about a thread; a tiny pool keeps every term
    max_df = 0.5 if len(docs) + len(queries) >= 20 else 1.0
    vectorizer = TfidfVectorizer(
        stop_words="english", ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_df=max_df, lowercase=True
    )
    vectorizer.fit(docs + queries)
    terms = vectorizer.get_feature_names_out()
    X = vectorizer.transform(docs)
    Q = vectorizer.transform(queries)
    scores = cosine_similarity(X, Q)

    matched: list[list[tuple[str, ...]]] = []
    for i in range(X.shape[0]):
        row: list[tuple[str, ...]] = []
        for t in range(Q.shape[0]):
            contrib = X[i].multiply(Q[t]).tocoo()
            order = np.argsort(-contrib.data)
            names: list[str] = []
            for j in order:
                term = str(terms[contrib.col[j]])
                if any(term in n or n in term for n in names):
                    continue  # "policy" after "policy gradient" adds nothing
                names.append(term)
                if len(names) == top_terms:
                    break
            row.append(tuple(names))
        matched.append(row)

    nearest: list[list[tuple[str | None, float]]] = []
    seed_lists = [[seeds[f"arxiv:{s}"] for s in t.seed_papers if f"arxiv:{s}" in seeds] for t in threads]
    seed_vecs = [
        vectorizer.transform([candidate_text(s) for s in lst]) if lst else None for lst in seed_lists
    ]
    for i in range(X.shape[0]):
        row_n: list[tuple[str | None, float]] = []
        for t, lst in enumerate(seed_lists):
            vecs = seed_vecs[t]
            if vecs is None:
                row_n.append((None, 0.0))
                continue
            sims = cosine_similarity(X[i], vecs)[0]
            k = int(np.argmax(sims))
            row_n.append((lst[k].title, float(sims[k])))
        nearest.append(row_n)
    return LexicalScores(scores, matched, nearest)
