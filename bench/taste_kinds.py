"""Two ranking checks on a labelled taste set (issue 13): where the judged top picks stand in the
ranker's full ordering, and a paper-kind prior read from the profile's stated preference.

Run from the repository root: `.venv/bin/python bench/taste_kinds.py [LABELS_DIR] [--ranks]`.
`--ranks` prints, per (profile, day), the positions of the grade-2 papers in the ranker's ordering of the
whole day. Without it, the ranker is scored (hits@3, nDCG@10, as `feedsvc eval --labels`) with each
candidate's final score multiplied by 1 + alpha * sum over kinds of (the profile's stance on the kind, +1
wanted / -1 unwanted, from the words of its "A over B" sentence) * (the kind's cue in the paper: 1 in the
title, `abstract` weight in the abstract only), floored at 0.5. The kinds and their cue words are below.
The ranker is patched in this process only; nothing ships from here.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feedsvc.config import Settings  # noqa: E402
from feedsvc.models import Candidate  # noqa: E402
from feedsvc.rank import evaluate as ev  # noqa: E402
from feedsvc.rank import ranker  # noqa: E402
from feedsvc.rank.facets import read_facets  # noqa: E402
from feedsvc.rank.pool import build_pool  # noqa: E402
from feedsvc.rank.semantic import load_embedder  # noqa: E402

SHARED = next(
    (p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()), ROOT.parent / "shared"
)
# kind: (cue in a paper's title or abstract, the words a profile names it with)
KINDS = {
    "theory": (
        r"\b(?:theorems?|we prove|proofs?|lemma|upper bounds?|lower bounds?|convergence rates?|"
        r"regret bounds?|minimax|provabl\w*|guarantees?)\b",
        r"\b(?:theor\w*|proofs?|rates?|provabl\w*|guarantees?)\b",
    ),
    "benchmark": (
        r"\b(?:benchmarks?|leaderboards?)\b|\w+bench\b",
        r"\b(?:benchmarks?|leaderboards?|tuning)\b",
    ),
    "dataset": (r"\b(?:datasets?|corpus|corpora|we collect\w*|we release)\b", r"\bdatasets?\b"),
    "hardware": (r"\b(?:hardware|gripper|actuat\w*|mechanical design|low-cost)\b", r"\bhardware\b"),
    "analysis": (
        r"\b(?:we find|we show that|reveal\w*|analy[sz]\w*|insights?|explain\w*|why|causal\w*|mechanistic)\b",
        r"\b(?:analys[ie]s|insights?|explain\w*)\b",
    ),
    "method": (
        r"\b(?:we propose|we introduce|novel|our method|our approach|framework)\b",
        r"\b(?:method\w*|mechanism)\b",
    ),
}


def stance(about: str) -> dict[str, int]:
    f = read_facets(about)
    wanted, unwanted = " ".join(f.wanted), " ".join(f.unwanted)
    return {
        k: bool(re.search(p, wanted, re.I)) - bool(re.search(p, unwanted, re.I))
        for k, (_, p) in KINDS.items()
    }


def kinds(c: Candidate, abstract: float) -> dict[str, float]:
    out = {}
    for k, (cue, _) in KINDS.items():
        out[k] = 1.0 if re.search(cue, c.title, re.I) else abstract if re.search(cue, c.text, re.I) else 0.0
    return out


def patch(alpha: float, abstract: float, current: dict) -> None:
    original = ranker._final_scores

    def final_scores(blend, best_t, space, max_age, min_score):  # type: ignore[no-untyped-def]
        final = original(blend, best_t, space, max_age, min_score)
        for r, i in enumerate(space.idx):
            k = kinds(space.pool.candidates[int(i)], abstract)
            if np.isfinite(final[r]):
                final[r] *= max(0.5, 1 + alpha * sum(current["stance"][n] * k[n] for n in KINDS))
        return final

    ranker._final_scores = final_scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("labels", nargs="?", type=Path, default=SHARED / "data" / "taste_dev")
    ap.add_argument("--ranks", action="store_true")
    args = ap.parse_args()
    labelled = ev.read_labelled_set(args.labels)
    corpus = SHARED / "data" / "arxiv_corpus" / "dw-dengwei_daily"
    embedder = load_embedder(Settings())
    pools = {day: build_pool(ev.day_candidates(corpus, day), embedder=embedder) for day in labelled.days}
    current: dict = {}
    settings = (
        [(0.0, 0.5)]
        if args.ranks
        else [(0.0, 0.5), (0.1, 0.5), (0.2, 0.5), (0.3, 0.5), (0.2, 0.25), (0.2, 1.0)]
    )
    for alpha, abstract in settings:
        ranker._final_scores = ORIGINAL
        if alpha:
            patch(alpha, abstract, current)
        score = {p: ev.Score() for p in labelled.profiles}
        for day, pool in pools.items():
            now = datetime.fromisoformat(day).replace(tzinfo=UTC)
            for name, about in labelled.profiles.items():
                grades = labelled.grades[name].get(day)
                if grades is None:
                    continue
                current["stance"] = stance(about)
                with ranker.single_threaded_blas():
                    ids = ev.rank_ids(
                        ev.profile_of(name, about), pool, now=now, top=1000 if args.ranks else ev.TOP
                    )
                if args.ranks:
                    where = sorted(
                        ids.index(k) + 1 if k in ids else len(ids) + 1 for k, g in grades.items() if g == 2
                    )
                    print(f"{name:20s} {day} grade-2 papers at {where} of {len(ids)}")
                score[name].add(ids[: ev.TOP], grades)
        if not args.ranks:
            total = sum(score.values(), ev.Score())
            cells = " | ".join(f"{s.hits}/{s.best} {s.ndcg:.3f}" for s in score.values())
            overall = f"{total.hits}/{total.best} {total.ndcg:.3f}"
            print(f"| alpha {alpha}, abstract {abstract} | {cells} | {overall} |")


ORIGINAL = ranker._final_scores

if __name__ == "__main__":
    main()
