"""What one request for a large study list costs: the list assembled from the store, its web page, its
JSON and its Markdown export, for a library of `--papers` real arXiv papers (issue 17).

Run: `.venv/bin/python bench/bench_study.py [--papers 1000] [--corpus DIR]` from the repository root. The
papers are the first `--papers` of the corpus's daily files (default `../shared/data/arxiv_corpus/
dw-dengwei_daily`, real arXiv listings), imported into a fresh SQLite store as one profile's library,
none of them read yet (so every difficulty is computed from the abstract, the slower case); a tenth of
them also voted 👍. Each figure is the median of `--repeat` runs, in a single process, but the first view
(one run: each unread paper's difficulty computed from its abstract, then remembered in the process).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from feedsvc.config import Settings
from feedsvc.models import Profile, Thread
from feedsvc.pipeline.study import study_list
from feedsvc.rank.public import read_candidates
from feedsvc.render.study import study_markdown
from feedsvc.store import queries
from feedsvc.store.db import make_engine, session_factory, session_scope, upgrade
from feedsvc.web.app import create_app

NOW = datetime(2026, 6, 20, tzinfo=UTC)
CORPUS = Path("../shared/data/arxiv_corpus/dw-dengwei_daily")


def median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def load(corpus: Path, n: int) -> list:
    """The first `n` papers of the corpus's daily files (their `summary` is the abstract)."""
    lines = []
    for f in sorted(corpus.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            d["abstract"] = d.pop("summary", "")
            d["published"] = f"{f.stem}T00:00:00+00:00"
            lines.append(json.dumps(d))
    unique = {c.key: c for c in reversed(read_candidates(lines, latest=NOW).candidates)}  # first sighting
    papers = list(reversed(unique.values()))[:n]
    if not papers:
        raise SystemExit(f"no papers in {corpus}: pass --corpus DIR")
    return papers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--papers", type=int, default=1000)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    papers = load(args.corpus, args.papers)
    profile = Profile(name="reader", threads=(Thread(name="All", about="everything"),))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/feedsvc.db"
        engine = make_engine(url)
        upgrade(engine)
        factory = session_factory(engine)
        with session_scope(factory) as session:
            queries.sync_profiles(session, [profile], NOW)
            queries.upsert_candidates(session, papers, run_id=None, now=NOW)
            keys = [p.key for p in papers]
            queries.add_to_library(session, "reader", keys, thread="", origin="bench", now=NOW)
            for key in keys[::10]:
                queries.record_feedback(session, "reader", key, "up", channel="cli", now=NOW)
        settings = Settings(_env_file=None, data_dir=Path(tmp), database_url=url)  # type: ignore[call-arg]
        client = TestClient(create_app(settings, factory))

        def assemble() -> object:
            with factory() as session:
                return study_list(session, "reader")

        cold = median_ms(assemble, 1)  # the first view computes each unread paper's difficulty
        shelf = assemble()
        assert shelf is not None and shelf.total == len(papers)
        figures = {
            "study_list, first view": cold,
            "study_list (store + difficulty)": median_ms(assemble, args.repeat),
            "GET /library/reader (HTML, page 1 of 20)": median_ms(
                lambda: client.get("/library/reader"), args.repeat
            ),
            "GET /api/library/reader (JSON, page 1)": median_ms(
                lambda: client.get("/api/library/reader"), args.repeat
            ),
            "Markdown export (render only)": median_ms(lambda: study_markdown(shelf, ""), args.repeat),
        }
        engine.dispose()
    print(f"{len(papers)} papers on one study list, none read yet; median of {args.repeat}:")
    for name, ms in figures.items():
        print(f"  {name:34s} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
