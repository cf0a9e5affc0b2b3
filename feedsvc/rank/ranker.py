"""The ranking function: eligibility, vetoes, the never-twice ledger, the scorers blended, the quality bar,
and picks chosen by maximal marginal relevance within thread quotas (plus an optional exploration slot).

Scorers share one shape: a pool and a profile's threads in, a (candidates x threads) array of calibrated
scores in [0, 1] out. The semantic scorer reads a thread's `about` as a person does: it scores the whole
thread and its best-matching listed interest (rank/facets.py) and averages the two. The blend is their
weighted mean, with weights and each part written into the reasons, so every score can be explained.
`rank()` is the stable interface for one profile; `rank_pool()` ranks many profiles against one pool.
Imports only feedsvc.models and feedsvc.rank.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from feedsvc.identity import ItemKey
from feedsvc.models import VOTES, Candidate, Feedback, Profile, Scored, Silence, Thread
from feedsvc.rank import diversity
from feedsvc.rank.concepts import shared_concepts
from feedsvc.rank.facets import read_facets, without_dislikes
from feedsvc.rank.learned import POSITIVE, Learned, learned_scores, takeover
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
    """The text both content scorers match a thread by: its name, its `about` without what the reader says
    they disfavour ("... over dataset papers" would otherwise pull dataset papers up), its keywords."""
    return ". ".join([t.name, without_dislikes(t.about), *t.keywords, *t.keywords])


@dataclass
class _Parts:
    """The scorers' calibrated (candidates x threads) arrays, by name, with their blend weights."""

    names: list[str] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)  # each (n, T), calibrated
    weights: list[float] = field(default_factory=list)

    def add(self, name: str, array: np.ndarray, weight: float) -> None:
        """Append one scorer's array and weight."""
        self.names.append(name)
        self.arrays.append(array)
        self.weights.append(weight)


@dataclass(frozen=True)
class _Eligible:
    """The pool rows still in the running (`idx`) and why the others are out."""

    idx: np.ndarray
    considered: int
    sent: int
    too_old: int
    no_text: int
    vetoes: dict[str, int]

    def ranking(self, picks: list[Scored], *, below_bar: int, scorers: tuple[str, ...]) -> Ranking:
        """The ranking of `picks` with these counts."""
        return Ranking(
            picks=picks,
            considered=self.considered,
            eligible=int(self.idx.size),
            vetoed=sum(self.vetoes.values()),
            already_sent=self.sent,
            too_old=self.too_old,
            no_text=self.no_text,
            below_bar=below_bar,
            vetoes=self.vetoes,
            scorers=scorers,
        )


@dataclass(frozen=True)
class _Space:
    """The eligible rows of the pool and the profile's threads: what every scoring step reads."""

    pool: Pool
    idx: np.ndarray
    X: sparse.csr_matrix  # TF-IDF rows of the eligible candidates
    threads: list[Thread]
    now: datetime


def _eligible(profile: Profile, pool: Pool, now: datetime, already_sent: Collection[str]) -> _Eligible:
    """Eligibility, as vector operations over the pool's arrays: first sightings, not sent, recent, with
    text, not vetoed by the profile."""
    n = len(pool.candidates)
    ok = pool.first.copy()
    considered = int(ok.sum())
    sent_mask = np.zeros(n, dtype=bool)
    if already_sent:
        sent_mask = ok & np.array([c.key in already_sent for c in pool.candidates], dtype=bool)
    ok &= ~sent_mask
    max_age = timedelta(days=profile.max_age_days)
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
    return _Eligible(
        np.flatnonzero(ok),
        considered,
        int(sent_mask.sum()),
        int(old_mask.sum()),
        int(no_text_mask.sum()),
        vetoes,
    )


def thread_interests(t: Thread) -> list[str]:
    """The interests a thread's `about` lists, when it lists more than one (else there is nothing to add
    to the whole-thread query)."""
    interests = read_facets(t.about).interests
    return list(interests) if len(interests) > 1 else []


def embedded_texts(threads: Sequence[Thread]) -> list[str]:
    """Every text the semantic scorer embeds for `threads` (their queries and listed interests): what a
    caller preloads from, and stores to, its text-embedding cache."""
    texts = [thread_query(t) for t in threads]
    for t in threads:
        texts += thread_interests(t)
    return list(dict.fromkeys(texts))


def _with_best_interest(
    whole: np.ndarray, threads: list[Thread], similarity: Callable[[list[str]], np.ndarray]
) -> np.ndarray:
    """Each thread's calibrated whole-query score averaged with its best interest's (issue 13: a paper
    that answers one listed interest well is not diluted by the others). `similarity(texts)` gives the
    calibrated (n, len(texts)) similarities of the candidates to `texts`."""
    out = whole.copy()
    for t, thread in enumerate(threads):
        if interests := thread_interests(thread):
            out[:, t] = (whole[:, t] + similarity(interests).max(axis=1)) / 2
    return out


def _content_parts(space: _Space) -> tuple[_Parts, sparse.csr_matrix]:
    """The lexical scorer (and the semantic one, the mean of the whole-thread match and the best listed
    interest's, when the pool has embeddings), and the threads' TF-IDF queries. The best interest helps
    the semantic scorer on every dev profile and hurts the lexical one (docs/benchmarks.md, issue 13)."""
    parts = _Parts()
    pool, threads = space.pool, space.threads
    queries = pool.tfidf([thread_query(t) for t in threads])

    parts.add("lexical", _calibrate((space.X @ queries.T).toarray(), LEXICAL_SCALE), WEIGHTS["lexical"])
    if pool.E is not None:
        E = pool.E if space.idx.size == len(pool.candidates) else pool.E[space.idx]

        def semantic(texts: list[str]) -> np.ndarray:
            return _calibrate(E @ pool.embed(texts).T, SEMANTIC_SCALE)

        whole = semantic([thread_query(t) for t in threads])
        parts.add("semantic", _with_best_interest(whole, threads, semantic), WEIGHTS["semantic"])
    return parts, queries


def _thread_library(
    thread: Thread, seeds: Mapping[str, Candidate], library: Mapping[str, Sequence[str]]
) -> list[Candidate]:
    """A thread's library: its seed papers, its imported papers and those imported for every thread."""
    keys = (
        [ItemKey.arxiv(s) for s in thread.seed_papers]
        + list(library.get(thread.name, ()))
        + list(library.get("", ()))
    )
    return [seeds[k] for k in dict.fromkeys(keys) if k in seeds]


def _library_similarity(
    space: _Space, lib: list[Candidate], seed_vectors: Mapping[str, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Each eligible candidate's calibrated, recency-weighted library score, and its similarity to each
    library paper."""
    pool = space.pool
    ages = np.array([(space.now - s.published).days if s.published else 0 for s in lib], dtype=float)
    weights = recency_weights(ages)
    if pool.E is not None:
        vecs = (
            np.stack([seed_vectors[s.key] for s in lib])
            if seed_vectors and all(s.key in seed_vectors for s in lib)
            else pool.embed_items(lib, seed_vectors or {})
        )
        raw = library_scores(pool.E[space.idx], vecs, weights)
        sims = pool.E[space.idx] @ vecs.T
        return _calibrate(raw, SEMANTIC_SCALE), sims
    vecs = pool.tfidf_items(lib)
    raw = library_scores(space.X, vecs, weights)
    sims = (space.X @ vecs.T).toarray()
    return _calibrate(raw, LEXICAL_SCALE), sims


def _library_part(
    space: _Space,
    seeds: Mapping[str, Candidate],
    seed_vectors: Mapping[str, np.ndarray] | None,
    library: Mapping[str, Sequence[str]],
) -> tuple[np.ndarray | None, list[list[str | None]]]:
    """The library scorer's array (None when no thread has a library) and, per candidate and thread, the
    title of the closest library paper when it is close enough to name."""
    size, threads = space.idx.size, space.threads
    lib_scores = np.zeros((size, len(threads)))
    nearest_seed: list[list[str | None]] = [[None] * len(threads) for _ in range(size)]
    has_library = False
    for t, thread in enumerate(threads):
        lib = _thread_library(thread, seeds, library)
        if not lib:
            continue
        has_library = True
        cal, sims = _library_similarity(space, lib, seed_vectors)
        lib_scores[:, t] = cal
        best = sims.argmax(axis=1)
        for r in range(size):
            if cal[r] >= NEAREST_SEED_MIN:
                nearest_seed[r][t] = lib[int(best[r])].title
    return (lib_scores if has_library else None), nearest_seed


def _add_learned(
    parts: _Parts,
    space: _Space,
    feedback: Sequence[Feedback],
    seed_vectors: Mapping[str, np.ndarray] | None,
    silence: Sequence[Silence] = (),
) -> Learned | None:
    """Add the reader's own model, learned from their votes (and silences), to `parts`; None when it
    cannot be learned."""
    pool = space.pool
    fb = [f.candidate for f in feedback] + [s.candidate for s in silence]
    space_, vecs = (
        (pool.E[space.idx], pool.embed_items(fb, seed_vectors or {}))
        if pool.E is not None
        else (space.X, pool.tfidf_items(fb))
    )
    k = len(feedback)
    learned = learned_scores(space_, feedback, vecs[:k], silence, vecs[k:] if silence else None)
    if learned is not None:
        # at HALF_TAKEOVER votes the reader's own model weighs as much as all content scorers together
        share = takeover(learned.votes)
        parts.add(
            "learned",
            np.repeat(learned.scores[:, None], len(space.threads), axis=1),
            sum(parts.weights) * share / max(1 - share, 1e-6),
        )
    return learned


def _blend(parts: _Parts, space: _Space) -> np.ndarray:
    """The scorers' weighted mean per candidate and thread, -inf where a thread vetoes the candidate."""
    w = np.array(parts.weights)
    blend = sum(a * wi for a, wi in zip(parts.arrays, w, strict=True)) / w.sum()
    for t, thread in enumerate(space.threads):
        if thread.exclude:
            for r, i in enumerate(space.idx):
                if _veto_term(thread.exclude, space.pool.candidates[i]):
                    blend[r, t] = -np.inf
    return blend


def _final_scores(
    blend: np.ndarray, best_t: np.ndarray, space: _Space, max_age: timedelta, min_score: float
) -> np.ndarray:
    """Each candidate's score in its best thread, discounted for age and weighted by its quality."""
    pool, idx = space.pool, space.idx
    relevance = blend[np.arange(idx.size), best_t]
    # quality is judged only where it can matter: a paper whose relevance alone cannot reach the bar misses it
    age = np.nan_to_num(
        (space.now.timestamp() - pool.published[idx]) / max(max_age.total_seconds(), 1.0), nan=0.0
    )
    recency = 1.0 - RECENCY_WEIGHT * np.clip(age, 0.0, 1.0)
    final = np.where(np.isfinite(relevance), relevance * recency, -np.inf)
    contender = final >= min_score * 0.7 if np.isfinite(min_score) else np.isfinite(final)
    for r in np.flatnonzero(contender):
        final[r] *= 0.7 + 0.3 * pool.quality(int(idx[r])).value
    final[~contender & np.isfinite(final)] *= 0.7
    return final


@dataclass(frozen=True)
class _Scores:
    """Everything the scorers said about the eligible candidates."""

    parts: _Parts
    queries: sparse.csr_matrix  # the threads' TF-IDF queries, one row each
    nearest_seed: list[list[str | None]]  # per candidate and thread
    learned: Learned | None
    blend: np.ndarray  # (n, T)
    best_t: np.ndarray  # each candidate's best thread
    final: np.ndarray  # each candidate's score in its best thread


def _score(
    space: _Space,
    *,
    seeds: Mapping[str, Candidate],
    seed_vectors: Mapping[str, np.ndarray] | None,
    library: Mapping[str, Sequence[str]],
    feedback: Sequence[Feedback],
    max_age: timedelta,
    min_score: float,
    silence: Sequence[Silence] = (),
) -> _Scores:
    """Run the scorers, blend them and apply the per-thread vetoes, recency and quality."""
    parts, queries = _content_parts(space)
    lib_scores, nearest_seed = _library_part(space, seeds, seed_vectors, library)
    if lib_scores is not None:
        parts.add("library", lib_scores, WEIGHTS["library"])
    learned = _add_learned(parts, space, feedback, seed_vectors, silence) if feedback else None
    blend = _blend(parts, space)
    best_t = blend.argmax(axis=1)
    final = _final_scores(blend, best_t, space, max_age, min_score)
    return _Scores(parts, queries, nearest_seed, learned, blend, best_t, final)


def _mmr_choice(
    space: _Space, final: np.ndarray, above: np.ndarray, thread_names: list[str], k: int
) -> list[int]:
    """The rows maximal marginal relevance picks among those that cleared the bar, within thread quotas."""
    quota = diversity.quotas({t.name: t.share for t in space.threads}, k)
    # MMR works on the candidates that cleared the bar: their similarities in one product
    contenders = np.flatnonzero(above)
    vectors = (space.pool.E[space.idx] if space.pool.E is not None else space.X)[contenders]
    block = vectors @ vectors.T
    block = block.toarray() if sparse.issparse(block) else np.asarray(block)
    chosen = diversity.mmr(final[contenders], [thread_names[r] for r in contenders], block, quota, k)
    return [int(contenders[j]) for j in chosen]


def _votes_by_thread(feedback: Sequence[Feedback]) -> tuple[dict[str, int], dict[str, int]]:
    """Up votes and other votes per thread."""
    ups: dict[str, int] = {}
    downs: dict[str, int] = {}
    for f in feedback:
        if f.thread:
            counts = ups if f.vote in POSITIVE else downs
            counts[f.thread] = counts.get(f.thread, 0) + 1
    return ups, downs


def _exploration_pick(
    space: _Space,
    scores: _Scores,
    chosen: list[int],
    feedback: Sequence[Feedback],
    min_score: float,
    rng: np.random.Generator | None,
) -> tuple[int | None, str]:
    """A thread drawn by Thompson sampling over the votes, and its best candidate not yet chosen (if any
    reaches `EXPLORE_MIN` of the bar)."""
    threads = space.threads
    ups, downs = _votes_by_thread(feedback)
    lucky = diversity.thompson_thread([t.name for t in threads], ups, downs, rng or np.random.default_rng())
    lt = next(t for t, th in enumerate(threads) if th.name == lucky)
    options = [
        r
        for r in np.argsort(-scores.blend[:, lt])
        if r not in chosen and scores.final[r] >= EXPLORE_MIN * min_score
    ]
    return (int(options[0]) if options else None), lucky


def _choose(
    space: _Space,
    scores: _Scores,
    above: np.ndarray,
    *,
    explore: bool,
    limit: int,
    feedback: Sequence[Feedback],
    min_score: float,
    rng: np.random.Generator | None,
) -> tuple[list[int], list[str], int | None]:
    """The chosen rows, each row's thread name, and the exploration row (None without one)."""
    thread_names = [space.threads[t].name for t in scores.best_t]
    explore = explore and limit > 1
    chosen = _mmr_choice(space, scores.final, above, thread_names, limit - (1 if explore else 0))
    exploring: int | None = None
    if explore:
        exploring, lucky = _exploration_pick(space, scores, chosen, feedback, min_score, rng)
        if exploring is not None:
            thread_names[exploring] = lucky
            chosen.append(exploring)
    return chosen, thread_names, exploring


def _reasons(
    scores: _Scores, r: int, t: int, quality: tuple[str, ...], exploration: str | None
) -> tuple[str, ...]:
    """Why row r was picked in thread t: the blend's parts and weights, quality, the closest voted paper,
    and the exploration slot's thread when it is one."""
    parts, learned = scores.parts, scores.learned
    parts_text = ", ".join(f"{nm} {a[r, t]:.2f}" for nm, a in zip(parts.names, parts.arrays, strict=True))
    w = np.array(parts.weights)
    reasons = [
        f"blend of {parts_text} (weights "
        + ", ".join(f"{nm} {wi:.2f}" for nm, wi in zip(parts.names, w, strict=True))
        + ")"
    ]
    if quality:
        reasons.append("quality: " + ", ".join(quality))
    if learned is not None and learned.nearest[r] is not None:
        title, vote, sim = learned.nearest[r]  # type: ignore[misc]
        verb = VOTES[vote].verb if vote in VOTES else vote
        reasons.append(f"closest voted paper: *{title}*, which you {verb} (similarity {sim:.2f})")
    if exploration is not None:
        reasons.append(f"exploration slot: thread '{exploration}' drawn by Thompson sampling over your votes")
    return tuple(reasons)


def _nearest_vote(scores: _Scores, r: int) -> tuple[str, str] | None:
    """(title, vote) of the voted paper closest to row r, if any."""
    nearest = scores.learned.nearest[r] if scores.learned is not None else None
    return None if nearest is None else (nearest[0], nearest[1])


def _picks(
    space: _Space, scores: _Scores, chosen: list[int], thread_names: list[str], exploring: int | None
) -> list[Scored]:
    """The chosen rows as scored picks with their reasons, best first."""
    picks = []
    for r in chosen:
        i = int(space.idx[r])
        t = next(k for k, th in enumerate(space.threads) if th.name == thread_names[r])
        picks.append(
            Scored(
                candidate=space.pool.candidates[i],
                score=round(float(scores.final[r]), 4),
                thread=thread_names[r],
                matched=shared_concepts(space.pool, i, scores.queries[t]),
                nearest_seed=scores.nearest_seed[r][t],
                nearest_vote=_nearest_vote(scores, r),
                reasons=_reasons(
                    scores, r, t, space.pool.quality(i).reasons, thread_names[r] if r == exploring else None
                ),
                exploration=r == exploring,
            )
        )
    picks.sort(key=lambda s: s.score, reverse=True)  # MMR chose the set; it is shown best first
    return picks


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
    silence: Sequence[Silence] = (),
) -> Ranking:
    """Pick up to `limit` (default `profile.papers`) of the pool's candidates for `profile`.

    `seeds` holds the seed and library papers by key; a thread's library is its `seed_papers` plus
    `library[thread name]` and `library[""]` (imported for every thread). `silence`: what the reader was
    sent and never voted on, the learned scorer's weak negatives."""
    limit = profile.papers if limit is None else limit
    threads = list(profile.threads)
    el = _eligible(profile, pool, now, already_sent)
    idx = el.idx
    if not threads or idx.size == 0:
        return el.ranking([], below_bar=0, scorers=())
    space = _Space(pool, idx, pool.X if idx.size == len(pool.candidates) else pool.X[idx], threads, now)
    scores = _score(
        space,
        seeds=seeds or {},
        seed_vectors=seed_vectors,
        library=library or {},
        feedback=feedback,
        max_age=timedelta(days=profile.max_age_days),
        min_score=min_score,
        silence=silence,
    )
    above = scores.final >= min_score
    chosen, thread_names, exploring = _choose(
        space,
        scores,
        above,
        explore=profile.explore,
        limit=limit,
        feedback=feedback,
        min_score=min_score,
        rng=rng,
    )
    picks = _picks(space, scores, chosen, thread_names, exploring)
    below_bar = int(np.sum(np.isfinite(scores.final) & ~above))
    return el.ranking(picks, below_bar=below_bar, scorers=tuple(scores.parts.names))


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
    silence: Sequence[Silence] = (),
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
        silence=silence,
    )
