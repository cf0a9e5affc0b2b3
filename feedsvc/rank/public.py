"""The public ranking interface, for evaluation harnesses: profiles and candidates in, ranked ids out.

`feedsvc rank --profiles FILE --candidates FILE.jsonl --top K --json` calls `rank_candidates`; each JSONL
line holds `id, title, abstract, authors, categories, published` (published as an ISO date or time; id an
arXiv id or any string). The output, per profile, lists `id`, `score`, `thread`, `clears_bar` and
`reasons`, best first, chosen exactly as the digest chooses (the same scorers, bar, thread quotas and
diversity), except that the bar does not cut the list short: `clears_bar` says which picks the digest would
have sent. Lines that cannot be used (not JSON, not UTF-8, a field of the wrong type, a date in the future)
are reported with their number and cause, not fatal; `read_candidate_file` caps the line length and the
file size and names the file in the one-line error past a cap. Imports only feedsvc.models and feedsvc.rank.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from feedsvc.identity import ItemKey, arxiv_id
from feedsvc.models import Candidate, ConfigError, Profile, Scored
from feedsvc.rank.judge import Chat, Verdict, choose, judge_picks
from feedsvc.rank.pool import Pool, build_pool
from feedsvc.rank.ranker import MIN_SCORE, Ranking, rank_pool, single_threaded_blas
from feedsvc.rank.semantic import Embedder

REQUIRED = ("id", "title", "abstract")
MAX_LINE_BYTES = 1 << 20
MAX_FILE_BYTES = 256 << 20
FUTURE_SLACK = timedelta(days=2)  # a `published` later than now plus this is refused


@dataclass
class CandidateFile:
    candidates: list[Candidate] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _when(raw: Any, latest: datetime) -> datetime | None:
    if raw in (None, ""):
        return None
    text = str(raw)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = datetime.combine(date.fromisoformat(text[:10]), datetime.min.time())
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when > latest:
        raise ValueError(f"published {text[:40]!r} is in the future")
    return when


def _strings(row: dict, name: str, split: str | None) -> tuple[str, ...]:
    """A list-of-strings field; a single string is split on `split` (whitespace when None)."""
    raw = row.get(name) or []
    if isinstance(raw, str):
        return tuple(raw.split(split))
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ValueError(f"{name}: expected a list of strings, got {json.dumps(raw)[:60]}")
    return tuple(raw)


def _candidate(row: Any, latest: datetime, required: Sequence[str] = REQUIRED) -> Candidate:
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    missing = [k for k in required if not str(row.get(k) or "").strip()]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    raw_id = str(row["id"]).strip()
    found = arxiv_id(raw_id) or arxiv_id(f"arXiv:{raw_id}")
    return Candidate(
        key=ItemKey.arxiv(found[0]) if found else ItemKey.external(raw_id),
        kind="paper",
        title=str(row.get("title") or ""),
        text=str(row.get("abstract") or ""),
        url=f"https://arxiv.org/abs/{found[0]}" if found else str(row.get("url") or ""),
        source="candidates",
        authors=_strings(row, "authors", ", "),
        categories=_strings(row, "categories", None),
        published=_when(row.get("published"), latest),
        meta={"id": raw_id, **({"fulltext": str(row["fulltext"])} if row.get("fulltext") else {})},
    )


def _add_line(
    out: CandidateFile, n: int, line: str, latest: datetime, required: Sequence[str] = REQUIRED
) -> None:
    if not line.strip():
        return
    try:
        out.candidates.append(_candidate(json.loads(line), latest, required))
    except RecursionError:
        out.problems.append(f"line {n}: JSON nested too deeply")
    except (ValueError, TypeError) as e:
        out.problems.append(f"line {n}: {e}")


def read_candidates(lines: Iterable[str], *, latest: datetime | None = None) -> CandidateFile:
    """Parse candidate JSONL; a line with a problem is skipped and reported (line number and cause).
    `latest`: the latest acceptable `published` (default: now plus `FUTURE_SLACK`)."""
    latest = latest or datetime.now(UTC) + FUTURE_SLACK
    out = CandidateFile()
    for n, line in enumerate(lines, start=1):
        _add_line(out, n, line, latest)
    return out


def _capped_lines(path: Path, max_bytes: int, max_line: int) -> Iterator[bytes]:
    total = 0
    with path.open("rb") as f:
        for n, line in enumerate(iter(lambda: f.readline(max_line + 1), b""), start=1):
            total += len(line)
            if total > max_bytes:
                raise ConfigError(f"{path}: more than {max_bytes:,} bytes, the cap for a candidate file")
            if len(line.rstrip(b"\r\n")) > max_line:
                raise ConfigError(f"{path}: line {n} is longer than {max_line:,} bytes: not candidate JSONL")
            yield line


def read_candidate_file(
    path: Path,
    *,
    max_bytes: int = MAX_FILE_BYTES,
    max_line: int = MAX_LINE_BYTES,
    latest: datetime | None = None,
    required: Sequence[str] = REQUIRED,
) -> CandidateFile:
    """`read_candidates` on a file, within the caps (ConfigError naming the file past one, or when it
    cannot be read); a line that is not UTF-8 is skipped and reported with the byte and column.
    `required`: the fields a line must have (`feedsvc card` needs only `id`)."""
    latest = latest or datetime.now(UTC) + FUTURE_SLACK
    out = CandidateFile()
    try:
        for n, raw in enumerate(_capped_lines(path, max_bytes, max_line), start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                where = f"byte 0x{raw[e.start]:02x} at column {e.start + 1}"
                out.problems.append(f"line {n}: not UTF-8 ({where})")
                continue
            _add_line(out, n, line, latest, required)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    return out


def harness_ranking(profile: Profile, pool: Pool, *, now: datetime, top: int, seed: int = 0) -> Ranking:
    """The digest's choice of `top` picks, without exploration and without the bar cutting it short."""
    return rank_pool(
        replace(profile, explore=False),
        pool,
        now=now,
        limit=top,
        min_score=-np.inf,
        rng=np.random.default_rng(seed),
    )


@dataclass(frozen=True)
class Judging:
    """The optional LLM judge of the harness: `client` grades the first `top` picks (rank/judge.py)."""

    client: Chat
    top: int = 20
    on_judged: Callable[[Scored, Verdict | None], None] | None = None


def harness_picks(
    profile: Profile, pool: Pool, *, now: datetime, top: int, seed: int = 0, judging: Judging | None = None
) -> list[Scored]:
    """`harness_ranking`'s picks; with `judging`, the first `judging.top` picks judged by the LLM and the
    first `top` of them taken within the thread quotas, as the digest does."""
    ranked = harness_ranking(profile, pool, now=now, top=judged_depth(top, judging), seed=seed).picks
    return judged_picks(ranked, profile, top, judging)


def judged_depth(top: int, judging: Judging | None) -> int:
    """How many picks to rank so that the judge sees its `top` and `top` can be taken after it."""
    return top if judging is None else max(top, judging.top)


def judged_picks(ranked: list[Scored], profile: Profile, top: int, judging: Judging | None) -> list[Scored]:
    """`ranked` judged (when `judging`), then the first `top` taken within the thread quotas."""
    if judging is None:
        return ranked[:top]
    judged = judge_picks(ranked, profile, judging.client, top=judging.top, on_judged=judging.on_judged)
    return choose(judged, profile, top)


def rank_ids(
    profile: Profile, pool: Pool, *, now: datetime, top: int, seed: int = 0, judging: Judging | None = None
) -> list[str]:
    """The ids `rank_candidates` lists for `profile`, best first."""
    picks = harness_picks(profile, pool, now=now, top=top, seed=seed, judging=judging)
    return [s.candidate.meta.get("id", s.candidate.key) for s in picks]


def rank_candidates(
    profiles: Sequence[Profile],
    candidates: Sequence[Candidate],
    *,
    top: int,
    now: datetime | None = None,
    embedder: Embedder | None = None,
    seed: int = 0,
    judging: Judging | None = None,
) -> dict[str, Any]:
    """Rank `candidates` for each profile; the JSON-ready result `feedsvc rank --json` prints. With
    `judging` the LLM judge re-orders the top picks first (`scorers` then ends with "llm-judge")."""
    if top < 1:
        raise ValueError("--top must be at least 1")
    now = now or max((c.published for c in candidates if c.published), default=datetime.now(UTC))
    pool = build_pool(candidates, embedder=embedder)
    result: dict[str, Any] = {"scorers": None, "now": now.isoformat(), "profiles": {}}
    depth = judged_depth(top, judging)
    with single_threaded_blas():
        rankings = [(p, harness_ranking(p, pool, now=now, top=depth, seed=seed)) for p in profiles]
    for profile, ranking in rankings:
        picks = judged_picks(ranking.picks, profile, top, judging)
        result["scorers"] = list(ranking.scorers) + (["llm-judge"] if judging is not None else [])
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
            for s in picks
        ]
    return result
