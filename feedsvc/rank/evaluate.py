"""Ranking quality on a labelled taste set: hits@3 and nDCG@10, per profile and overall, for the ranker
and the two references (TF-IDF cosine and embedding cosine to the profile text), in one run.

The format and the definitions are those of `../shared/eval/taste.py`: a directory with `profiles.json`
(name -> free-text profile) and `labels-<name>.json` (day -> {arXiv id: grade}; 2 = a top pick, 1 =
related, 0 or absent = not relevant; keys starting with `_` are notes). A day's candidates are the unique
papers of `<corpus>/<day>.jsonl`, published that day. hits@3 counts grade-2 papers among the first three
(best possible: min(3, number of grade-2 papers)); nDCG@10 uses the grades as gains, averaged over
(profile, day) pairs. Imports only feedsvc.models and feedsvc.rank.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from feedsvc.models import Candidate, ConfigError, Profile, Thread
from feedsvc.rank.pool import Pool, build_pool
from feedsvc.rank.public import Judging, rank_ids, read_candidates
from feedsvc.rank.ranker import single_threaded_blas
from feedsvc.rank.semantic import Embedder

TOP = 10

# a scorer under evaluation: a one-thread profile and a day's pool in, ids best first out
Ranker = Callable[[Profile, Pool, datetime], list[str]]


@dataclass(frozen=True)
class LabelledSet:
    """Profiles (name -> text) and their grades (name -> day -> id -> grade)."""

    profiles: dict[str, str]
    grades: dict[str, dict[str, dict[str, int]]]

    @property
    def days(self) -> list[str]:
        return sorted({day for by_day in self.grades.values() for day in by_day})

    def subset(self, profile: str | None = None, days: int = 0) -> LabelledSet:
        """Only `profile` (all when None) and the first `days` labelled days (all when 0); ConfigError
        when there is no such profile."""
        if profile is not None and profile not in self.profiles:
            raise ConfigError(f"no labelled profile '{profile}' (there are: {', '.join(self.profiles)})")
        names = [profile] if profile is not None else list(self.profiles)
        keep = set(self.days[: days or None])
        return LabelledSet(
            {n: self.profiles[n] for n in names},
            {n: {d: g for d, g in self.grades[n].items() if d in keep} for n in names},
        )


def read_labelled_set(path: Path) -> LabelledSet:
    """The labelled set in `path` (ConfigError when a file is missing or not the expected JSON)."""
    try:
        profiles = json.loads((path / "profiles.json").read_text(encoding="utf-8"))
        grades = {}
        for name in profiles:
            raw = json.loads((path / f"labels-{name}.json").read_text(encoding="utf-8"))
            grades[name] = {
                day: {str(k): int(v) for k, v in lab.items()}
                for day, lab in raw.items()
                if not day.startswith("_")
            }
    except (OSError, ValueError, AttributeError, TypeError) as e:
        raise ConfigError(f"{path}: not a labelled set ({e})") from None
    return LabelledSet({str(k): str(v) for k, v in profiles.items()}, grades)


def day_candidates(corpus: Path, day: str) -> list[Candidate]:
    """The unique papers of `<corpus>/<day>.jsonl` as candidates published that day (taste.py's pool)."""
    seen: set[str] = set()
    rows = []
    for line in (corpus / f"{day}.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        if d["id"] in seen:
            continue
        seen.add(d["id"])
        rows.append(
            {
                "id": d["id"],
                "title": d["title"],
                "abstract": d["summary"],
                "authors": d["authors"],
                "categories": d["categories"],
                "published": f"{day}T00:00:00Z",
            }
        )
    return read_candidates((json.dumps(r) for r in rows), latest=datetime.max.replace(tzinfo=UTC)).candidates


def profile_of(name: str, about: str) -> Profile:
    """The one-thread profile taste.py writes for a labelled profile."""
    return Profile(name=name, threads=(Thread(name=name, about=about),), papers=3, videos=0)


def hits_at_3(ids: Sequence[str], grades: Mapping[str, int]) -> int:
    return sum(1 for i in ids[:3] if grades.get(i) == 2)


def best_hits_at_3(grades: Mapping[str, int]) -> int:
    return min(3, sum(1 for g in grades.values() if g == 2))


def ndcg_at_10(ids: Sequence[str], grades: Mapping[str, int]) -> float:
    dcg = sum(grades.get(i, 0) / math.log2(k + 2) for k, i in enumerate(ids[:10]))
    ideal = sorted(grades.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(k + 2) for k, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


@dataclass
class Score:
    """hits@3 (of the best possible) and the nDCG@10 of each (profile, day) pair."""

    hits: int = 0
    best: int = 0
    ndcgs: list[float] = field(default_factory=list)

    @property
    def ndcg(self) -> float:
        return sum(self.ndcgs) / len(self.ndcgs) if self.ndcgs else 0.0

    def add(self, ids: Sequence[str], grades: Mapping[str, int]) -> None:
        self.hits += hits_at_3(ids, grades)
        self.best += best_hits_at_3(grades)
        self.ndcgs.append(ndcg_at_10(ids, grades))

    def __add__(self, other: Score) -> Score:
        return Score(self.hits + other.hits, self.best + other.best, self.ndcgs + other.ndcgs)


@dataclass(frozen=True)
class PairResult:
    scorer: str
    profile: str
    day: str
    ids: list[str]
    hits: int
    ndcg: float


@dataclass
class Report:
    """Per scorer: a Score per profile, and every pair's result."""

    scores: dict[str, dict[str, Score]] = field(default_factory=dict)
    pairs: list[PairResult] = field(default_factory=list)

    def overall(self, scorer: str) -> Score:
        return sum(self.scores[scorer].values(), Score())


def ranker_ids(profile: Profile, pool: Pool, now: datetime) -> list[str]:
    """feedsvc's ranking, exactly as `feedsvc rank --top 10 --json` returns it."""
    return rank_ids(profile, pool, now=now, top=TOP)


def judged_ranker(judging: Judging) -> Ranker:
    """feedsvc's ranking with the LLM judge: the first `judging.top` picks judged, the first ten kept, as
    `feedsvc rank --top 10 --llm-judge --json` returns it."""

    def ranker(profile: Profile, pool: Pool, now: datetime) -> list[str]:
        return rank_ids(profile, pool, now=now, top=TOP, judging=judging)

    return ranker


def _ids_by(pool: Pool, scores: np.ndarray) -> list[str]:
    order = np.argsort(-scores, kind="stable")[:TOP]
    return [pool.candidates[int(i)].meta.get("id", pool.candidates[int(i)].key) for i in order]


def tfidf_ids(profile: Profile, pool: Pool, now: datetime) -> list[str]:
    """Reference: cosine of each paper's TF-IDF (title twice and abstract, fitted on the day) to the text."""
    query = pool.tfidf([profile.threads[0].about])
    return _ids_by(pool, (pool.X @ query.T).toarray()[:, 0])


def embedding_ids(profile: Profile, pool: Pool, now: datetime) -> list[str]:
    """Reference: cosine of each paper's embedding (title and abstract) to the profile text's."""
    assert pool.E is not None
    query = pool.embed([profile.threads[0].about])
    assert query is not None
    return _ids_by(pool, pool.E @ query[0])


def evaluate(
    labelled: LabelledSet,
    corpus: Path,
    rankers: Mapping[str, Ranker],
    *,
    embedder: Embedder | None = None,
    on_pair: Callable[[PairResult], None] | None = None,
) -> Report:
    """Score every ranker on every (profile, day) pair; one pool per day serves them all."""
    report = Report({name: {p: Score() for p in labelled.profiles} for name in rankers})
    for day in labelled.days:
        pool = build_pool(day_candidates(corpus, day), embedder=embedder)
        now = datetime.fromisoformat(day).replace(tzinfo=UTC)
        for name, about in labelled.profiles.items():
            grades = labelled.grades[name].get(day)
            if grades is None:
                continue
            profile = profile_of(name, about)
            for scorer, ranker in rankers.items():
                with single_threaded_blas():
                    ids = ranker(profile, pool, now)
                report.scores[scorer][name].add(ids, grades)
                pair = PairResult(scorer, name, day, ids, hits_at_3(ids, grades), ndcg_at_10(ids, grades))
                report.pairs.append(pair)
                if on_pair is not None:
                    on_pair(pair)
    return report


def standard_rankers(semantic: bool) -> dict[str, Ranker]:
    """The ranker and its references: TF-IDF, and embedding cosine when there is an embedder."""
    rankers: dict[str, Ranker] = {"feedsvc": ranker_ids, "tfidf": tfidf_ids}
    if semantic:
        rankers["embedding"] = embedding_ids
    return rankers
