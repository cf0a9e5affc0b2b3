"""The LLM judge of the top 20 (issue 13) on a labelled taste set, against a real local model.

Run: `.venv/bin/python bench/bench_judge.py ../shared/data/taste_dev [--only NAME] [--days N] [--top 20]
[--threads 1] [--base-url URL --model NAME]` from the repository root, after `make llm`. Without
--base-url it starts llama.cpp's server with the packaged SmolLM2-135M-Instruct on loopback
(tests/llm_server.py); with it, it asks that endpoint (a 7B model, a hosted API). It scores what
`feedsvc eval --labels DIR --llm-judge` scores (the same rankers and pools: feedsvc, tfidf, embedding and the
judged ranker) and also prints, for docs/benchmarks.md:
- seconds per judgement (one request: the refused json_schema ask and the json_object one, on this server);
- the judge's grades against the human labels of the same papers (a confusion table; unlabelled = 0);
- how many papers could not be judged.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from llm_server import ALIAS, LlamaServer, find_tier  # noqa: E402

from feedsvc.cards.llm import client_from_settings  # noqa: E402
from feedsvc.config import Settings  # noqa: E402
from feedsvc.models import Profile, Scored  # noqa: E402
from feedsvc.rank.evaluate import (  # noqa: E402
    TOP,
    LabelledSet,
    evaluate,
    read_labelled_set,
    standard_rankers,
)
from feedsvc.rank.judge import Verdict  # noqa: E402
from feedsvc.rank.pool import Pool  # noqa: E402
from feedsvc.rank.public import Judging, rank_ids  # noqa: E402
from feedsvc.rank.semantic import load_embedder  # noqa: E402


class Timed:
    """The judge's verdicts with their seconds, against the labels of the pair being ranked."""

    def __init__(self, labelled: LabelledSet) -> None:
        self.labelled = labelled
        self.pair: tuple[str, str] = ("", "")
        self.since = time.monotonic()
        self.seconds: list[float] = []
        self.confusion: Counter[tuple[int, int | None]] = Counter()  # (label, judge grade or None)

    def on_judged(self, s: Scored, v: Verdict | None) -> None:
        now = time.monotonic()
        self.seconds.append(now - self.since)
        self.since = now
        profile, day = self.pair
        label = self.labelled.grades[profile][day].get(s.candidate.meta.get("id", ""), 0)
        self.confusion[(label, v.grade if v else None)] += 1
        print(f"  {profile} {day} {s.candidate.meta.get('id')} label {label} judge "
              f"{v.grade if v else '-'} {self.seconds[-1]:.1f}s", flush=True)  # fmt: skip

    def ranker(self, judging: Judging):
        def judged(profile: Profile, pool: Pool, now: datetime) -> list[str]:
            self.pair = (profile.name, now.date().isoformat())
            self.since = time.monotonic()
            return rank_ids(profile, pool, now=now, top=TOP, judging=judging)

        return judged


def run(labelled: LabelledSet, corpus: Path, base_url: str, model: str, top: int) -> None:
    settings = Settings(llm_base_url=base_url, llm_model=model, llm_timeout=300.0)  # type: ignore[call-arg]
    client = client_from_settings(settings)
    assert client is not None
    timed = Timed(labelled)
    rankers = standard_rankers(semantic=True) | {
        "llm-judge": timed.ranker(Judging(client, top, timed.on_judged))
    }
    started = time.monotonic()

    def show(p) -> None:
        print(f"{p.scorer:10s} {p.profile:22s} {p.day} hits@3={p.hits} nDCG@10={p.ndcg:.3f}", flush=True)

    report = evaluate(labelled, corpus, rankers, embedder=load_embedder(Settings()), on_pair=show)
    wall = time.monotonic() - started
    print(f"\n{len(timed.seconds)} judgements in {wall:.0f} s of evaluation")
    if timed.seconds:
        print(f"seconds per judgement: median {statistics.median(timed.seconds):.2f}, "
              f"mean {statistics.mean(timed.seconds):.2f}, max {max(timed.seconds):.2f}")  # fmt: skip
    print("\n| scorer | " + " | ".join(labelled.profiles) + " | overall |")
    print("|---|" + "---|" * (len(labelled.profiles) + 1))
    for scorer, by_profile in report.scores.items():
        cells = [f"{s.hits}/{s.best} {s.ndcg:.3f}" for s in by_profile.values()]
        o = report.overall(scorer)
        print(f"| {scorer} | " + " | ".join(cells) + f" | {o.hits}/{o.best} {o.ndcg:.3f} |")
    print("\njudge grade by label (rows: label 2/1/0; columns: judge 2/1/0/not judged)")
    for label in (2, 1, 0):
        row = [timed.confusion[(label, g)] for g in (2, 1, 0, None)]
        print(f"| label {label} | " + " | ".join(str(n) for n in row) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labels", type=Path)
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--only")
    ap.add_argument("--days", type=int, default=0)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--base-url", default="")
    ap.add_argument("--model", default=ALIAS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    labelled = read_labelled_set(args.labels).subset(args.only, args.days)
    corpus = args.corpus or args.labels.parent / "arxiv_corpus" / "dw-dengwei_daily"
    if args.base_url:
        run(labelled, corpus, args.base_url, args.model, args.top)
        return
    tier = find_tier()
    if tier.reason:
        sys.exit(tier.reason)
    with (
        tempfile.TemporaryDirectory() as tmp,
        LlamaServer(tier, Path(tmp) / "server.log", threads=args.threads) as s,
    ):
        run(labelled, corpus, s.base_url, ALIAS, args.top)


if __name__ == "__main__":
    main()
