"""A blend of the ranking signals learned on a labelled taste set, scored leave-one-profile-out.

Run from the repository root: `python bench/taste_learned.py [LABELS_DIR] [--model minilm|DIR]
[--tokens N] [--also DIR] [--also-tokens N]`. Each (profile, day) pool gets one row per paper with the
signals of `bench/taste_directions.py`, z-scored within the pool: lexical and semantic cosine to the
profile, the best listed interest of each, the preference direction, and the quality factor;
`--also DIR` adds a second model's semantic cosine and best interest. For each profile a logistic
regression (balanced classes) is fitted on the other profiles' pools, with grade 2, or grade 1 and up,
as the positive class, and orders the held-out profile's pools; hits@3 and nDCG@10 as
`feedsvc eval --labels` computes them. Embeddings are cached under /tmp as in taste_directions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from taste_directions import lex, lex_facets, load_model, pref, sem, sem_facets, z

from feedsvc.rank import evaluate as ev
from feedsvc.rank.pool import build_pool
from feedsvc.rank.quality import quality
from feedsvc.rank.semantic import SentenceEmbedder

Row = tuple[str, list[str], dict[str, np.ndarray], dict[str, int]]  # profile, ids, signals, grades

SETS = {
    "lexical": ["lex"],
    "semantic": ["sem"],
    "lexical + semantic": ["lex", "sem"],
    "+ best interest of each": ["lex", "lexf", "sem", "semf"],
    "+ quality": ["lex", "lexf", "sem", "semf", "quality"],
    "+ quality + preference": ["lex", "lexf", "sem", "semf", "quality", "pref"],
}
ALSO_SETS = {
    "second model alone": ["sem2"],
    "+ quality, second model for semantic": ["lex", "lexf", "sem2", "semf2", "quality"],
    "+ quality, both models": ["lex", "lexf", "sem", "semf", "sem2", "semf2", "quality"],
}


class Cached:
    """An embedder whose vectors are kept in an .npz file, so that a second run embeds nothing."""

    def __init__(self, emb: SentenceEmbedder, tokens: int) -> None:
        self.emb, self.name = emb, emb.name
        self.path = Path(f"/tmp/taste_emb_{emb.name}_{tokens}.npz")
        self.cache = dict(np.load(self.path)) if self.path.exists() else {}

    def embed(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if f"t:{t}" not in self.cache]
        if todo:
            t0 = time.perf_counter()
            for t, v in zip(todo, self.emb.embed(todo), strict=True):
                self.cache[f"t:{t}"] = v
            if len(todo) > 50:
                print(f"{self.name}: embedded {len(todo)} in {time.perf_counter() - t0:.1f}s", flush=True)
        return np.stack([self.cache[f"t:{t}"] for t in texts])

    def save(self) -> None:
        np.savez(self.path, **self.cache)


def signal_rows(labelled: ev.LabelledSet, corpus: Path, main: Cached, also: Cached | None) -> list[Row]:
    rows: list[Row] = []
    for day in labelled.days:
        cands = ev.day_candidates(corpus, day)
        pool = build_pool(cands, embedder=main)
        ids = [c.meta.get("id", c.key) for c in pool.candidates]
        q = np.array([quality(c).value for c in pool.candidates])
        for name, about in labelled.profiles.items():
            grades = labelled.grades[name].get(day)
            if grades is None:
                continue
            p = ev.profile_of(name, about)
            s = {
                "lex": z(lex(p, pool)),
                "lexf": z(lex_facets(p, pool).max(axis=1)),
                "sem": z(sem(p, pool)),
                "semf": z(sem_facets(p, pool).max(axis=1)),
                "pref": z(pref(p, pool)),
                "quality": q,
            }
            if also is not None:
                other = build_pool(cands, embedder=also)
                s["sem2"] = z(sem(p, other))
                s["semf2"] = z(sem_facets(p, other).max(axis=1))
            rows.append((name, ids, s, grades))
    main.save()
    if also is not None:
        also.save()
    return rows


def leave_one_profile_out(rows: list[Row], keys: list[str], positive: int) -> dict[str, ev.Score]:
    scores: dict[str, ev.Score] = {}
    for held in dict.fromkeys(r[0] for r in rows):
        train = [r for r in rows if r[0] != held]
        X = np.vstack([np.column_stack([r[2][k] for k in keys]) for r in train])
        y = np.concatenate([[int(r[3].get(i, 0) >= positive) for i in r[1]] for r in train])
        model = LogisticRegression(class_weight="balanced", max_iter=2000).fit(X, y)
        scores[held] = ev.Score()
        for _, ids, s, grades in (r for r in rows if r[0] == held):
            order = np.argsort(-model.decision_function(np.column_stack([s[k] for k in keys])), kind="stable")
            scores[held].add([ids[int(i)] for i in order[: ev.TOP]], grades)
    return scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("labels", nargs="?", default="/work/shared/data/taste_dev")
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--also", default="", help="a second sentence-transformers model directory")
    ap.add_argument("--also-tokens", type=int, default=128)
    args = ap.parse_args()
    labels = Path(args.labels)
    labelled = ev.read_labelled_set(labels)
    main_emb = Cached(load_model(args.model, args.tokens), args.tokens)
    also = Cached(load_model(args.also, args.also_tokens), args.also_tokens) if args.also else None
    rows = signal_rows(labelled, labels.parent / "arxiv_corpus" / "dw-dengwei_daily", main_emb, also)
    names = list(labelled.profiles)
    print(
        f"\nleave-one-profile-out; {main_emb.name} at {args.tokens} tokens"
        + (f", {also.name}" if also else "")
    )
    print(f"| signals | positive | {' | '.join(names)} | overall |")
    print("|---" * (len(names) + 3) + "|")
    for label, keys in (SETS | (ALSO_SETS if also else {})).items():
        for positive in (2, 1):
            by = leave_one_profile_out(rows, keys, positive)
            cells = [f"{by[n].hits}/{by[n].best} {by[n].ndcg:.3f}" for n in names]
            o = sum(by.values(), ev.Score())
            print(f"| {label} | grade >= {positive} | {' | '.join(cells)} | {o.hits}/{o.best} {o.ndcg:.3f} |")


if __name__ == "__main__":
    main()
