"""The public ranking interface, for evaluation harnesses: profiles and candidates in, ranked ids out.

`feedsvc rank --profiles FILE --candidates FILE.jsonl --top K --json` calls `rank_candidates`; each JSONL
line holds `id, title, abstract, authors, categories, published` (published as an ISO date or time; id an
arXiv id or any string). The output, per profile, lists `id`, `score`, `thread`, `clears_bar` and
`reasons`, best first, chosen exactly as the digest chooses (the same scorers, bar, thread quotas and
diversity), except that the bar does not cut the list short: `clears_bar` says which picks the digest would
have sent. Lines that cannot be used are reported, not fatal. Imports only feedsvc.models and feedsvc.rank.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from feedsvc.identity import ItemKey, arxiv_id
from feedsvc.models import Candidate, Profile
from feedsvc.rank.pool import build_pool
from feedsvc.rank.ranker import MIN_SCORE, rank_pool, single_threaded_blas
from feedsvc.rank.semantic import Embedder

REQUIRED = ("id", "title", "abstract")


@dataclass
class CandidateFile:
    candidates: list[Candidate] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _when(raw: Any) -> datetime | None:
    if raw in (None, ""):
        return None
    text = str(raw)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = datetime.combine(date.fromisoformat(text[:10]), datetime.min.time())
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read_candidates(lines: Iterable[str]) -> CandidateFile:
    """Parse candidate JSONL; a line with a problem is skipped and reported (line number and cause)."""
    out = CandidateFile()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            missing = [k for k in REQUIRED if not str(row.get(k) or "").strip()]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            raw_id = str(row["id"]).strip()
            found = arxiv_id(raw_id) or arxiv_id(f"arXiv:{raw_id}")
            authors = row.get("authors") or []
            out.candidates.append(
                Candidate(
                    key=ItemKey.arxiv(found[0]) if found else ItemKey.external(raw_id),
                    kind="paper",
                    title=str(row["title"]),
                    text=str(row["abstract"]),
                    url=f"https://arxiv.org/abs/{found[0]}" if found else str(row.get("url") or ""),
                    source="candidates",
                    authors=tuple(authors if isinstance(authors, list) else str(authors).split(", ")),
                    categories=tuple(row.get("categories") or ()),
                    published=_when(row.get("published")),
                    meta={"id": raw_id},
                )
            )
        except (ValueError, TypeError) as e:
            out.problems.append(f"line {n}: {e}")
    return out


def rank_candidates(
    profiles: Sequence[Profile],
    candidates: Sequence[Candidate],
    *,
    top: int,
    now: datetime | None = None,
    embedder: Embedder | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Rank `candidates` for each profile; the JSON-ready result `feedsvc rank --json` prints."""
    if top < 1:
        raise ValueError("--top must be at least 1")
    now = now or max((c.published for c in candidates if c.published), default=datetime.now(UTC))
    pool = build_pool(candidates, embedder=embedder)
    result: dict[str, Any] = {"scorers": None, "now": now.isoformat(), "profiles": {}}
    with single_threaded_blas():
        rankings = [
            (
                profile,
                rank_pool(
                    replace(profile, explore=False),
                    pool,
                    now=now,
                    limit=top,
                    min_score=-np.inf,
                    rng=np.random.default_rng(seed),
                ),
            )
            for profile in profiles
        ]
    for profile, ranking in rankings:
        result["scorers"] = list(ranking.scorers)
        result["profiles"][profile.name] = [
            {
                "id": s.candidate.meta.get("id", s.candidate.key),
                "score": s.score,
                "thread": s.thread,
                "clears_bar": s.score >= MIN_SCORE,
                "reasons": [
                    f"thread '{s.thread}'",
                    *([f"matched: {', '.join(s.matched)}"] if s.matched else []),
                    *s.reasons,
                ],
            }
            for s in ranking.picks
        ]
    return result
