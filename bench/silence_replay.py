"""Feedback that learns from silence, measured: a replay of the corpus days with a simulated reader.

Run from the repository root: `python bench/silence_replay.py [--corpus DIR] [--papers 3] [--follow 0.67]`.

Each corpus day (../shared/data/arxiv_corpus/dw-dengwei_daily, one announcement day a file) is a day's
pool; a profile with three threads (language models, computer vision, information theory and games) gets
`--papers` picks a day from the shipped ranker (`feedsvc.rank.ranker.rank_pool`, TF-IDF scorers: the
semantic scorer is left out to keep the replay quick and deterministic), never the same paper twice. The
simulated reader likes one thread's papers (ground truth: the paper's primary arXiv category, which the
ranker never sees), taps 👍 on every pick they like and ignores the rest. Run twice per liked thread: with
silence as a weak negative (the picks delivered and not voted on, `feedsvc.rank.learned`'s weights by
their age in days) and without (ignored picks stay unlabelled). Printed: the day from which the picks
follow the reader (the liked share of the picks, averaged over 3 days, reaches `--follow` and stays there
to the end), and the liked share over the last 10 days, as a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedsvc.models import Candidate, Feedback, Profile, Silence, Thread
from feedsvc.rank.evaluate import day_candidates
from feedsvc.rank.pool import build_pool
from feedsvc.rank.ranker import rank_pool, single_threaded_blas

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "arxiv_corpus" / "dw-dengwei_daily"
THREADS = {
    "Language models": (
        Thread(
            "Language models",
            "Large language models and natural language processing: reasoning, text generation, "
            "translation, instruction tuning and evaluation of language models.",
            ("language model", "LLM", "text", "NLP", "translation"),
        ),
        {"cs.CL"},
    ),
    "Computer vision": (
        Thread(
            "Computer vision",
            "Images and video: segmentation, detection, 3D reconstruction, image generation and "
            "vision-language models.",
            ("image", "video", "segmentation", "3D", "visual"),
        ),
        {"cs.CV", "cs.GR"},
    ),
    "Information and games": (
        Thread(
            "Information and games",
            "Information theory, coding, wireless communication and networks; game theory, auctions and "
            "mechanism design.",
            ("channel", "coding", "wireless", "game", "equilibrium", "auction"),
        ),
        {"cs.IT", "cs.GT", "cs.NI"},
    ),
}


@dataclass
class Reader:
    """What the simulated reader was sent (when), and their 👍 votes."""

    liked_categories: set[str]
    sent: dict[str, tuple[Candidate, date]] = field(default_factory=dict)
    votes: list[Feedback] = field(default_factory=list)

    def likes(self, c: Candidate) -> bool:
        return bool(c.categories) and c.categories[0] in self.liked_categories

    def silence(self, today: date) -> list[Silence]:
        voted = {f.candidate.key for f in self.votes}
        return [Silence(c, float((today - d).days)) for k, (c, d) in self.sent.items() if k not in voted]


def replay(
    days: list[tuple[date, list[Candidate]]], liked: str, papers: int, silence: bool, votes: bool = True
) -> list[float]:
    """The liked share of each day's picks; without `votes` the reader's taps are not given to the ranker
    (the baseline: what the profile alone picks)."""
    profile = Profile(name="replay", threads=tuple(t for t, _ in THREADS.values()), papers=papers)
    reader = Reader(THREADS[liked][1])
    shares = []
    for day, pool_items in days:
        now = datetime.combine(day, datetime.min.time(), UTC).replace(hour=12)
        pool = build_pool(pool_items, embedder=None)
        ranking = rank_pool(
            profile,
            pool,
            now=now,
            already_sent=set(reader.sent),
            feedback=reader.votes if votes else (),
            silence=reader.silence(day) if silence else (),
        )
        picks = [p.candidate for p in ranking.picks]
        shares.append(sum(reader.likes(c) for c in picks) / max(len(picks), 1))
        for c in picks:
            reader.sent[c.key] = (c, day)
            if reader.likes(c):
                reader.votes.append(Feedback(c, "up", liked))
    return shares


def follows_from(shares: list[float], level: float, window: int = 3) -> int | None:
    """The first day (1-based) from which the `window`-day mean liked share stays at or above `level`."""
    means = [float(np.mean(shares[max(0, i - window + 1) : i + 1])) for i in range(len(shares))]
    for i in range(len(means)):
        if all(m >= level for m in means[i:]):
            return i + 1
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--papers", type=int, default=3)
    parser.add_argument("--follow", type=float, default=0.67)
    args = parser.parse_args()
    days = [
        (date.fromisoformat(p.stem), day_candidates(args.corpus, p.stem))
        for p in sorted(args.corpus.glob("*.jsonl"))
    ]
    print(f"{len(days)} days, {sum(len(d) for _, d in days)} papers, {args.papers} picks a day\n")
    print(
        "| the reader likes | feedback | picks follow from day | liked picks, all days | liked share, "
        "last 10 days | liked picks per day |"
    )
    print("|---|---|---|---|---|---|")
    variants = {"none (baseline)": (False, False), "👍 only, silence ignored": (False, True)}
    variants["👍 and silence as weak negative"] = (True, True)
    with single_threaded_blas():
        for liked in THREADS:
            for name, (use_silence, use_votes) in variants.items():
                shares = replay(days, liked, args.papers, use_silence, use_votes)
                start = follows_from(shares, args.follow)
                counts = [round(s * args.papers) for s in shares]
                print(
                    f"| {liked} | {name} | {start if start is not None else 'never'} | "
                    f"{sum(counts)} of {len(counts) * args.papers} | {np.mean(shares[-10:]):.2f} | "
                    f"{''.join(map(str, counts))} |"
                )


if __name__ == "__main__":
    main()
