"""The offline demo: the whole pipeline on a bundled snapshot of real recorded arXiv responses.

A loopback replay server serves the snapshot (`feedsvc/sample/`, see its PROVENANCE.md) in place of
arxiv.org; the arXiv source fetches it over real HTTP, the store is a fresh SQLite file, the profile is
the bundled example. Imports `feedsvc.pipeline`, `feedsvc.replay` and `feedsvc.store`.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

from feedsvc import pipeline
from feedsvc.config import Settings, example_profiles_path, load_profiles
from feedsvc.replay import ReplayServer, Reply
from feedsvc.store.db import make_engine, session_factory, upgrade

SNAPSHOT_DAY = date(2024, 11, 28)  # the announcement day the recorded arXiv feed is from
SNAPSHOT_NOW = datetime(2024, 11, 28, 18, 0, tzinfo=UTC)


@dataclass(frozen=True)
class DemoResult:
    built: list[pipeline.Built]
    outcomes: list[pipeline.RunOutcome]
    data_dir: Path


def snapshot_routes() -> dict[str, Reply]:
    """The replayed responses: the recorded all-archives RSS feed answers every `/rss/...` request (the
    arXiv source keeps only the profile's categories, as it does with a real per-category feed)."""
    sample = resources.files("feedsvc.sample")
    feed = gzip.decompress(sample.joinpath("arxiv_rss_2024-11-28.xml.gz").read_bytes())
    return {
        "/rss/*": Reply(
            status=200,
            body=feed,
            headers={
                "Content-Type": "application/rss+xml; charset=utf-8",
                "Last-Modified": "Thu, 28 Nov 2024 14:47:20 GMT",
            },
        )
    }


def run_demo(data_dir: Path, progress: pipeline.Progress | None = None) -> DemoResult:
    """Run fetch and digest on the snapshot into a fresh `data_dir`; returns what was built."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    profiles = load_profiles(example_profiles_path())
    with ReplayServer(snapshot_routes()) as server:
        settings = Settings(
            data_dir=data_dir,
            database_url="",
            profiles_path=example_profiles_path(),
            arxiv_rss_url=f"{server.url}/rss",
            # no recorded API response exists for the snapshot's papers, so the demo does not ask for one
            arxiv_enrich=False,
            http_retries=1,
        )
        engine = make_engine(settings.resolved_database_url())
        try:
            upgrade(engine)
            factory = session_factory(engine)
            outcomes = pipeline.collect(settings, factory, profiles, now=SNAPSHOT_NOW, progress=progress)
            built = pipeline.build_digests(settings, factory, profiles, day=SNAPSHOT_DAY, now=SNAPSHOT_NOW)
        finally:
            engine.dispose()
    return DemoResult(built=built, outcomes=outcomes, data_dir=data_dir)
