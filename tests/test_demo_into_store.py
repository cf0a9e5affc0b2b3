"""`feedsvc demo --into-store`: the demo into a running service's store (PostgreSQL here, as in the compose
stack) and data directory, wiping neither."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import feedsvc

from feedsvc.demo import SNAPSHOT_DAY
from feedsvc.store import archive
from feedsvc.store.db import make_engine, session_factory

pytestmark = pytest.mark.postgres


def test_the_demo_goes_into_the_configured_store_and_keeps_the_data_dir(pg_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "keep").mkdir(parents=True)
    (data / "keep" / "mine.txt").write_text("the service's own file")
    done = feedsvc(
        "demo",
        "--into-store",
        env={
            "FEEDSVC_DATABASE_URL": pg_url,
            "FEEDSVC_DATA_DIR": str(data),
            # a service's own choice, as in the compose stack: the demo replays every source regardless
            "FEEDSVC_DISABLED_SOURCES": '["arxiv", "youtube", "hn", "lobsters"]',
        },
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (data / "keep" / "mine.txt").read_text() == "the service's own file"
    assert (data / "digests" / "seed-reader" / f"{SNAPSHOT_DAY}.md").is_file()
    assert not (data / "feedsvc.db").exists() and not (tmp_path / "data" / "demo").exists()
    engine = make_engine(pg_url)
    try:
        with session_factory(engine)() as session:
            for profile in ("seed-reader", "graph-learning"):
                digest_id = archive.digest_id(session, profile, SNAPSHOT_DAY)
                assert digest_id is not None, profile
                found = archive.digest_by_id(session, digest_id)
                assert found is not None and found[0].cards, f"{profile}: a digest without cards"
    finally:
        engine.dispose()
