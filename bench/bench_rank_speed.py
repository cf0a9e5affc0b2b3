"""Ranking speed: one day's pool for many profiles, with the default scorers and cached embeddings.

Run: `.venv/bin/python bench/bench_rank_speed.py [--corpus DIR] [--semantic on|off]`. The pool is a real
announcement day from ../shared/data/arxiv_corpus (2026-05-19, 826 listings); the profiles are synthetic:
each has 3 threads drawn from 300 distinct thread descriptions, each made from a real paper of a
*different* day (its title as the thread's name and about text, its top TF-IDF terms as keywords). Embedding
the candidates and the thread texts is a once-per-item cost (cached in the store in production), timed
apart from ranking. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from feedsvc.config import Settings
from feedsvc.models import Candidate, Profile, Thread
from feedsvc.rank.evaluate import day_candidates
from feedsvc.rank.pool import build_pool
from feedsvc.rank.ranker import embedded_texts, rank_pool, single_threaded_blas
from feedsvc.rank.semantic import load_embedder

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "arxiv_corpus" / "dw-dengwei_daily"


def synthetic_threads(papers: list[Candidate], n: int, rng: np.random.Generator) -> list[Thread]:
    chosen = [papers[i] for i in rng.choice(len(papers), size=n, replace=False)]
    vec = TfidfVectorizer(stop_words="english", max_features=20000)
    X = vec.fit_transform([p.title + " " + p.text for p in chosen])
    terms = vec.get_feature_names_out()
    threads = []
    for i, p in enumerate(chosen):
        row = X[i].toarray()[0]
        keywords = tuple(str(terms[j]) for j in np.argsort(-row)[:5])
        threads.append(Thread(name=p.title[:60], about=p.title, keywords=keywords))
    return threads


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--semantic", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--profiles", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--candidates", type=int, nargs="+", default=[250, 500])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    day = day_candidates(args.corpus, "2026-05-19")
    other = day_candidates(args.corpus, "2026-06-02")
    threads = synthetic_threads(other, 300, rng)
    embedder = load_embedder(Settings(semantic=args.semantic))
    now = datetime(2026, 5, 19, 12, tzinfo=UTC)

    print(
        f"pool day 2026-05-19: {len(day)} unique papers; scorers: lexical"
        + (" + semantic (all-MiniLM-L6-v2, 128 tokens)" if embedder else " only")
    )
    cached: dict[str, np.ndarray] = {}
    text_cache: dict[str, np.ndarray] = {}
    if embedder is not None:
        t = time.perf_counter()
        vectors = embedder.embed([f"{c.title}. {c.text}" for c in day[: max(args.candidates)]])
        cached = {c.key: v for c, v in zip(day, vectors, strict=False)}
        print(f"embedding {len(cached)} candidates (once per item, cached): {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        texts = embedded_texts(threads)
        text_cache = dict(zip(texts, embedder.embed(texts), strict=True))
        print(
            f"embedding {len(texts)} thread descriptions (once per profile change, cached): "
            f"{time.perf_counter() - t:.1f} s"
        )
    print()
    print("| candidates | profiles | pool build | ranking all profiles | per profile | picks per profile |")
    print("|---|---|---|---|---|---|")
    for n_cand in args.candidates:
        pool_cands = day[:n_cand]
        for n_prof in args.profiles:
            profiles = [
                Profile(
                    name=f"p{i}",
                    threads=tuple(threads[j] for j in rng.choice(len(threads), 3, replace=False)),
                )
                for i in range(n_prof)
            ]
            t0 = time.perf_counter()
            pool = build_pool(pool_cands, embedder=embedder, cached=cached)
            pool.text_cache.update(text_cache)
            t1 = time.perf_counter()
            with single_threaded_blas():
                picks = [len(rank_pool(p, pool, now=now).picks) for p in profiles]
            t2 = time.perf_counter()
            per = (t2 - t1) / n_prof * 1000
            cells = [str(n_cand), str(n_prof), f"{t1 - t0:.2f} s", f"{t2 - t1:.2f} s", f"{per:.1f} ms"]
            print("| " + " | ".join([*cells, f"{np.mean(picks):.2f}"]) + " |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of the process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
