"""Benchmark of the walking skeleton on the recorded snapshot: fetch into SQLite, rank, cards, render.

Run: `make bench` (or `.venv/bin/python bench/bench_pipeline.py`). Prints a Markdown table for
docs/benchmarks.md. Times are wall-clock medians of --repeat runs on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from feedsvc.config import Settings, example_profiles_path, load_profiles
from feedsvc.demo import SNAPSHOT_DAY, SNAPSHOT_NOW, snapshot_routes
from feedsvc.pipeline.collect import collect
from feedsvc.pipeline.digest import build_digests
from feedsvc.replay import ReplayServer
from feedsvc.store.db import make_engine, session_factory, upgrade


def once(tmp: Path) -> dict[str, float]:
    profiles = load_profiles(example_profiles_path())
    with ReplayServer(snapshot_routes()) as server:
        settings = Settings(
            data_dir=tmp, arxiv_rss_url=f"{server.url}/rss", arxiv_enrich=False, http_retries=1
        )
        engine = make_engine(settings.resolved_database_url())
        upgrade(engine)
        factory = session_factory(engine)
        t0 = time.perf_counter()
        collect(settings, factory, profiles, now=SNAPSHOT_NOW)
        t1 = time.perf_counter()
        build_digests(settings, factory, profiles, day=SNAPSHOT_DAY, now=SNAPSHOT_NOW, dry_run=True)
        t2 = time.perf_counter()
        engine.dispose()
    return {
        "fetch + store (1,504 announced, 367 kept)": t1 - t0,
        "rank + cards + render (1 profile)": t2 - t1,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(once(Path(tmp)))
    tracemalloc.start()  # one more run, traced, for memory only (tracing slows it down)
    with tempfile.TemporaryDirectory() as tmp:
        once(Path(tmp))
    peak = tracemalloc.get_traced_memory()[1]
    print(f"| stage | median of {args.repeat} | min |")
    print("|---|---|---|")
    for stage in runs[0]:
        values = [r[stage] for r in runs]
        print(f"| {stage} | {statistics.median(values) * 1000:.0f} ms | {min(values) * 1000:.0f} ms |")
    print(f"\nPeak Python heap (tracemalloc, one extra run): {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
