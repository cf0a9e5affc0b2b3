"""The ranking function: eligibility, vetoes, the never-twice ledger, the scorers blended, the quality bar,
and picks chosen by maximal marginal relevance within thread quotas (plus an optional exploration slot).

Scorers share one shape: a pool and a profile's threads in, a (candidates x threads) array of calibrated
scores in [0, 1] out. The blend is their weighted mean, with weights and each part written into the
reasons, so every score can be explained. `rank()` is the stable interface for one profile;
`rank_pool()` ranks many profiles against one pool. Imports only feedsvc.models and feedsvc.rank.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from feedsvc.identity import ItemKey
from feedsvc.models import VOTES, Candidate, Feedback, Profile, Scored, Thread
from feedsvc.rank import diversity
from feedsvc.rank.learned import learned_scores, takeover
from feedsvc.rank.library import library_scores, recency_weights
from feedsvc.rank.pool import Pool, build_pool
from feedsvc.rank.semantic import Embedder

MIN_SCORE = 0.3  # the bar: blended relevance x quality factor below this is not a pick, whatever the day
RECENCY_WEIGHT = 0.15  # at the far edge of the eligibility window a score keeps 85% of its value
NEAREST_SEED_MIN = 0.25  # calibrated library similarity below which a seed paper is not named as "close"
EXPLORE_MIN = 0.5  # an exploration pick must still reach half the bar

# calibration: raw similarity -> [0, 1], from the score distributions of real announcement days
# (docs/benchmarks.md): TF-IDF cosines of a good match run 0.1-0.25; MiniLM cosines of a day's median
# paper to a thread 0.15-0.23, of its top 1% 0.3-0.55.
LEXICAL_SCALE = (0.0, 0.2)
SEMANTIC_SCALE = (0.2, 0.65)
WEIGHTS = {"lexical": 1.0, "semantic": 1.5, "library": 1.0}


@dataclass(frozen=True)
class Ranking:
    """The picks and the counts the source-discovery note reports."""

    picks: list[Scored]
    considered: int
    eligible: int
    vetoed: int = 0
    already_sent: int = 0
    too_old: int = 0
    no_text: int = 0
    below_bar: int = 0
    vetoes: dict[str, int] = field(default_factory=dict)
    scorers: tuple[str, ...] = ()


def _calibrate(raw: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    lo, hi = scale
    return np.clip((raw - lo) / (hi - lo), 0.0, 1.0)


def _veto_term(terms: Collection[str], c: Candidate) -> str | None:
    haystack = f"{c.title}\n{c.text}".lower()
    authors = [a.lower() for a in c.authors]
    for term in terms:
        t = term.lower().strip()
        if t and (re.search(rf"(?<!\w){re.escape(t)}(?!\w)", haystack) or t in authors):
            return term
    return None


def thread_query(t: Thread) -> str:
    return ". ".join([t.name, t.about, *t.keywords, *t.keywords])


def _top_terms(pool: Pool, i: int, q: sparse.csr_matrix, k: int = 4) -> tuple[str, ...]:
    """The terms that contribute most to candidate i's similarity with the thread query q."""
    row = pool.X.indices[pool.X.indptr[i] : pool.X.indptr[i + 1]]
    data = pool.X.data[pool.X.indptr[i] : pool.X.indptr[i + 1]]
    qd = dict(zip(q.indices.tolist(), q.data.tolist(), strict=True))
    contrib = np.array([d * qd.get(int(j), 0.0) for j, d in zip(row, data, strict=True)])
    names: list[str] = []
    for jj in np.argsort(-contrib):
        if contrib[jj] <= 0:
            break
        term = str(pool.terms[row[jj]])
        if any(term in n or n in term for n in names):
            continue  # "policy" after "policy gradient" adds nothing
        names.append(term)
        if len(names) == k:
            break
    return tuple(names)


@dataclass
class _Parts:
    names: list[str]
    arrays: list[np.ndarray]  # each (n, T), calibrated
    weights: list[float]


def rank_pool(
    profile: Profile,
    pool: Pool,
    *,
    now: datetime,
    seeds: Mapping[str, Candidate] | None = None,
    seed_vectors: Mapping[str, np.ndarray] | None = None,
    library: Mapping[str, Sequence[str]] | None = None,
    already_sent: Collection[str] = (),
    feedback: Sequence[Feedback] = (),
    limit: int | None = None,
    min_score: float = MIN_SCORE,
    rng: np.random.Generator | None = None,
) -> Ranking:
    """Pick up to `limit` (default `profile.papers`) of the pool's candidates for `profile`.

    `seeds` holds the seed and library papers by key; a thread's library is its `seed_papers` plus
    `library[thread name]` and `library[""]` (imported for every thread)."""
    seeds = seeds or {}
    limit = profile.papers if limit is None else limit
    max_age = timedelta(days=profile.max_age_days)
    threads = list(profile.threads)
    n = len(pool.candidates)

    # eligibility, as vector operations over the pool's arrays ----------------------------------------------
    ok = pool.first.copy()
    considered = int(ok.sum())
    sent_mask = np.zeros(n, dtype=bool)
    if already_sent:
        sent_mask = ok & np.array([c.key in already_sent for c in pool.candidates], dtype=bool)
    ok &= ~sent_mask
    lo, hi = (now - max_age).timestamp(), (now + timedelta(days=1)).timestamp()
    dated = ~np.isnan(pool.published)
    old_mask = ok & dated & ~((pool.published >= lo) & (pool.published <= hi))
    ok &= ~old_mask
    no_text_mask = ok & ~pool.has_text  # known only from a discussion so far: nothing to judge it by
    ok &= ~no_text_mask
    vetoes: dict[str, int] = {}
    if profile.exclude:
        for i in np.flatnonzero(ok):
            if term := _veto_term(profile.exclude, pool.candidates[i]):
                vetoes[term] = vetoes.get(term, 0) + 1
                ok[i] = False
    sent, too_old, no_text = int(sent_mask.sum()), int(old_mask.sum()), int(no_text_mask.sum())
    idx = np.flatnonzero(ok)
    if not threads or idx.size == 0:
        return Ranking([], considered, int(idx.size), sum(vetoes.values()), sent, too_old, no_text, 0, vetoes)

    # the scorers ------------------------------------------------------------------------------------------
    parts = _Parts([], [], [])
    queries = pool.tfidf([thread_query(t) for t in threads])
    X = pool.X if idx.size == n else pool.X[idx]
    parts.names.append("lexical")
    parts.arrays.append(_calibrate((X @ queries.T).toarray(), LEXICAL_SCALE))
    parts.weights.append(WEIGHTS["lexical"])
    if pool.E is not None:
        E = pool.E if idx.size == n else pool.E[idx]
        T = pool.embed([thread_query(t) for t in threads])
        parts.names.append("semantic")
        parts.arrays.append(_calibrate(E @ T.T, SEMANTIC_SCALE))
        parts.weights.append(WEIGHTS["semantic"])
    lib_scores = np.zeros((idx.size, len(threads)))
    nearest_seed: list[list[str | None]] = [[None] * len(threads) for _ in range(idx.size)]
    has_library = False
    library = library or {}
    for t, thread in enumerate(threads):
        keys = (
            [ItemKey.arxiv(s) for s in thread.seed_papers]
            + list(library.get(thread.name, ()))
            + list(library.get("", ()))
        )
        lib = [seeds[k] for k in dict.fromkeys(keys) if k in seeds]
        if not lib:
            continue
        has_library = True
        ages = np.array([(now - s.published).days if s.published else 0 for s in lib], dtype=float)
        weights = recency_weights(ages)
        if pool.E is not None:
            vecs = (
                np.stack([seed_vectors[s.key] for s in lib])
                if seed_vectors and all(s.key in seed_vectors for s in lib)
                else pool.embed_items(lib, seed_vectors or {})
            )
            raw = library_scores(pool.E[idx], vecs, weights)
            sims = pool.E[idx] @ vecs.T
            cal = _calibrate(raw, SEMANTIC_SCALE)
        else:
            vecs = pool.tfidf_items(lib)
            raw = library_scores(X, vecs, weights)
            sims = (X @ vecs.T).toarray()
            cal = _calibrate(raw, LEXICAL_SCALE)
        lib_scores[:, t] = cal
        best = sims.argmax(axis=1)
        for r in range(idx.size):
            if cal[r] >= NEAREST_SEED_MIN:
                nearest_seed[r][t] = lib[int(best[r])].title
    if has_library:
        parts.names.append("library")
        parts.arrays.append(lib_scores)
        parts.weights.append(WEIGHTS["library"])
    learned = None
    if feedback:
        fb = [f.candidate for f in feedback]
        space, fvecs = (
            (pool.E[idx], pool.embed_items(fb, seed_vectors or {}))
            if pool.E is not None
            else (X, pool.tfidf_items(fb))
        )
        learned = learned_scores(space, feedback, fvecs)
        if learned is not None:
            parts.names.append("learned")
            parts.arrays.append(np.repeat(learned.scores[:, None], len(threads), axis=1))
            # at HALF_TAKEOVER votes the reader's own model weighs as much as all content scorers together
            share = takeover(learned.votes)
            parts.weights.append(sum(parts.weights) * share / max(1 - share, 1e-6))

    # blend, vetoes per thread, recency, quality -------------------------------------------------------------
    w = np.array(parts.weights)
    blend = sum(a * wi for a, wi in zip(parts.arrays, w, strict=True)) / w.sum()
    for t, thread in enumerate(threads):
        if thread.exclude:
            for r, i in enumerate(idx):
                if _veto_term(thread.exclude, pool.candidates[i]):
                    blend[r, t] = -np.inf
    best_t = blend.argmax(axis=1)
    relevance = blend[np.arange(idx.size), best_t]
    # quality is judged only where it can matter: a paper whose relevance alone cannot reach the bar misses it
    age = np.nan_to_num((now.timestamp() - pool.published[idx]) / max(max_age.total_seconds(), 1.0), nan=0.0)
    recency = 1.0 - RECENCY_WEIGHT * np.clip(age, 0.0, 1.0)
    final = np.where(np.isfinite(relevance), relevance * recency, -np.inf)
    contender = final >= min_score * 0.7 if np.isfinite(min_score) else np.isfinite(final)
    for r in np.flatnonzero(contender):
        final[r] *= 0.7 + 0.3 * pool.quality(int(idx[r])).value
    final[~contender & np.isfinite(final)] *= 0.7
    above = final >= min_score
    below = int(np.sum(np.isfinite(final) & ~above))

    # choose ---------------------------------------------------------------------------------------------
    thread_names = [threads[t].name for t in best_t]
    # MMR works on the candidates that cleared the bar: their similarities in one product
    contenders = np.flatnonzero(above)
    space = (pool.E[idx] if pool.E is not None else X)[contenders]
    block = space @ space.T
    block = block.toarray() if sparse.issparse(block) else np.asarray(block)
    explore = profile.explore and limit > 1
    quota = diversity.quotas({t.name: t.share for t in threads}, limit - (1 if explore else 0))
    chosen = [
        int(contenders[j])
        for j in diversity.mmr(
            final[contenders],
            [thread_names[r] for r in contenders],
            block,
            quota,
            limit - (1 if explore else 0),
        )
    ]
    exploring: int | None = None
    if explore:
        ups: dict[str, int] = {}
        downs: dict[str, int] = {}
        for f in feedback:
            if f.thread:
                (ups if f.vote == "up" else downs)[f.thread] = (ups if f.vote == "up" else downs).get(
                    f.thread, 0
                ) + 1
        lucky = diversity.thompson_thread(
            [t.name for t in threads], ups, downs, rng or np.random.default_rng()
        )
        lt = next(t for t, th in enumerate(threads) if th.name == lucky)
        options = [
            r for r in np.argsort(-blend[:, lt]) if r not in chosen and final[r] >= EXPLORE_MIN * min_score
        ]
        if options:
            exploring = int(options[0])
            thread_names[exploring] = lucky
            chosen.append(exploring)

    picks = []
    for r in chosen:
        i = int(idx[r])
        c = pool.candidates[i]
        t = next(k for k, th in enumerate(threads) if th.name == thread_names[r])
        parts_text = ", ".join(f"{nm} {a[r, t]:.2f}" for nm, a in zip(parts.names, parts.arrays, strict=True))
        reasons = [
            f"blend of {parts_text} (weights "
            + ", ".join(f"{nm} {wi:.2f}" for nm, wi in zip(parts.names, w, strict=True))
            + ")"
        ]
        q = pool.quality(i)
        if q.reasons:
            reasons.append("quality: " + ", ".join(q.reasons))
        if learned is not None and learned.nearest[r] is not None:
            title, vote, sim = learned.nearest[r]  # type: ignore[misc]
            verb = VOTES[vote].verb if vote in VOTES else vote
            reasons.append(f"closest voted paper: *{title}*, which you {verb} (similarity {sim:.2f})")
        if r == exploring:
            reasons.append(
                f"exploration slot: thread '{thread_names[r]}' drawn by Thompson sampling over your votes"
            )
        picks.append(
            Scored(
                candidate=c,
                score=round(float(final[r]), 4),
                thread=thread_names[r],
                matched=_top_terms(pool, i, queries[t]),
                nearest_seed=nearest_seed[r][t],
                reasons=tuple(reasons),
                exploration=r == exploring,
            )
        )
    picks.sort(key=lambda s: s.score, reverse=True)  # MMR chose the set; it is shown best first
    return Ranking(
        picks=picks,
        considered=considered,
        eligible=int(idx.size),
        vetoed=sum(vetoes.values()),
        already_sent=sent,
        too_old=too_old,
        no_text=no_text,
        below_bar=below,
        vetoes=vetoes,
        scorers=tuple(parts.names),
    )


def single_threaded_blas() -> threadpool_limits:
    """Ranking's matrix products are small; on a 2-core machine BLAS threads cost more than they give, and
    beside torch's own thread pool (the semantic scorer) they fight: 40 ms a profile instead of 5
    (docs/benchmarks.md). Wrap loops over many profiles in this."""
    return threadpool_limits(limits=1, user_api="blas")


def rank(
    profile: Profile,
    candidates: Sequence[Candidate],
    *,
    now: datetime,
    seeds: Mapping[str, Candidate] | None = None,
    library: Mapping[str, Sequence[str]] | None = None,
    already_sent: Collection[str] = (),
    feedback: Sequence[Feedback] = (),
    limit: int | None = None,
    min_score: float = MIN_SCORE,
    embedder: Embedder | None = None,
    cached: Mapping[str, np.ndarray] | None = None,
    rng: np.random.Generator | None = None,
) -> Ranking:
    """Rank `candidates` for one profile (builds the pool; see `rank_pool` to share one across profiles)."""
    pool = build_pool(candidates, embedder=embedder, cached=cached)
    return rank_pool(
        profile,
        pool,
        now=now,
        seeds=seeds,
        library=library,
        seed_vectors=cached,
        already_sent=already_sent,
        feedback=feedback,
        limit=limit,
        min_score=min_score,
        rng=rng,
    )
