"""The ranking function: eligibility, vetoes, the never-twice ledger, scoring, the quality bar and picks
spread across the profile's threads.

`rank()` is the stable interface later scorers plug into: candidates and a profile in, a `Ranking` out.
Imports only `feedsvc.models` and `feedsvc.rank.lexical`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from feedsvc.models import Candidate, Profile, Scored
from feedsvc.rank import lexical

MIN_SCORE = (
    0.05  # TF-IDF cosine below which a paper does not clear the bar (about the 95th percentile of a day)
)
RECENCY_WEIGHT = 0.15  # at the far edge of the eligibility window a score keeps 85% of its value
NEAREST_SEED_MIN = 0.04  # below this a seed paper is not named as "close"


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


def _veto_term(terms: Collection[str], c: Candidate) -> str | None:
    haystack = f"{c.title}\n{c.text}".lower()
    authors = [a.lower() for a in c.authors]
    for term in terms:
        t = term.lower().strip()
        if not t:
            continue
        if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", haystack) or t in authors:
            return term
    return None


def _recency(c: Candidate, now: datetime, max_age: timedelta) -> float:
    if c.published is None:
        return 1.0
    age = max((now - c.published).total_seconds(), 0.0) / max(max_age.total_seconds(), 1.0)
    return 1.0 - RECENCY_WEIGHT * min(age, 1.0)


def _quotas(profile: Profile, n: int) -> dict[str, int]:
    """Split `n` picks over the threads by share (largest remainder), at least one each while picks last."""
    total = sum(t.share for t in profile.threads) or 1.0
    raw = {t.name: n * t.share / total for t in profile.threads}
    quota = {name: math.floor(v) for name, v in raw.items()}
    for name in sorted(raw, key=lambda k: raw[k] - quota[k], reverse=True):
        if sum(quota.values()) >= n:
            break
        quota[name] += 1
    return quota


def rank(
    profile: Profile,
    candidates: Sequence[Candidate],
    *,
    now: datetime,
    seeds: Mapping[str, Candidate] | None = None,
    already_sent: Collection[str] = (),
    limit: int | None = None,
    min_score: float = MIN_SCORE,
) -> Ranking:
    """Pick up to `limit` (default: `profile.papers`) candidates for `profile`, spread across its threads."""
    seeds = seeds or {}
    limit = profile.papers if limit is None else limit
    max_age = timedelta(days=profile.max_age_days)
    eligible: list[Candidate] = []
    vetoes: dict[str, int] = {}
    too_old = sent = no_text = 0
    seen: set[str] = set()
    for c in candidates:
        if c.key in seen:
            continue
        seen.add(c.key)
        if c.key in already_sent:
            sent += 1
            continue
        if c.published is not None and not (now - max_age <= c.published <= now + timedelta(days=1)):
            too_old += 1
            continue
        if not c.text.strip():  # known only from a discussion so far: nothing to judge it by
            no_text += 1
            continue
        term = _veto_term(profile.exclude, c)
        if term:
            vetoes[term] = vetoes.get(term, 0) + 1
            continue
        eligible.append(c)

    threads = list(profile.threads)
    lex = lexical.score(eligible, threads, seeds)
    scored: list[Scored] = []
    below = 0
    for i, c in enumerate(eligible):
        best_t, best = -1, -1.0
        for t, thread in enumerate(threads):
            if _veto_term(thread.exclude, c):
                continue
            s = float(lex.scores[i, t]) * _recency(c, now, max_age)
            if s > best:
                best_t, best = t, s
        if best_t < 0:
            vetoes["(thread exclude)"] = vetoes.get("(thread exclude)", 0) + 1
            continue
        if best < min_score:
            below += 1
            continue
        seed_title, seed_sim = lex.nearest[i][best_t]
        scored.append(
            Scored(
                candidate=c,
                score=round(best, 4),
                thread=threads[best_t].name,
                matched=lex.matched[i][best_t],
                nearest_seed=seed_title if seed_sim >= NEAREST_SEED_MIN else None,
                reasons=(f"lexical similarity {best:.3f} to thread '{threads[best_t].name}'",),
            )
        )
    scored.sort(key=lambda s: s.score, reverse=True)

    picks: list[Scored] = []
    quota = _quotas(profile, limit)
    for s in scored:  # first pass: each thread up to its quota
        if len(picks) < limit and quota.get(s.thread, 0) > 0:
            picks.append(s)
            quota[s.thread] -= 1
    for s in scored:  # second pass: a thread with nothing good leaves its place to the next best
        if len(picks) >= limit:
            break
        if s not in picks:
            picks.append(s)
    picks.sort(key=lambda s: s.score, reverse=True)
    return Ranking(
        picks=picks,
        considered=len(seen),
        eligible=len(eligible),
        vetoed=sum(vetoes.values()),
        already_sent=sent,
        too_old=too_old,
        no_text=no_text,
        below_bar=below,
        vetoes=vetoes,
    )
