"""Source runs and digest files that outlive a dead or failing process (issue 12, items 7 and 9): a killed
fetch's run does not stay "running", two collects at once fetch each source once, and a digest's row and
its Markdown file are stored together or not at all."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from test_cli import feedsvc
from test_cli_errors import env_for, one_error_line
from test_fulltext_cards import HTML, PROFILE, as_listed, html
from test_pipeline import DAY, FEED, NOW, RSS, routes, settings_for

from feedsvc.config import example_profiles_path, load_profiles
from feedsvc.demo import replay_settings
from feedsvc.models import Profile
from feedsvc.pipeline.collect import SOURCE_NAMES, collect, source_health
from feedsvc.pipeline.digest import build_digests
from feedsvc.replay import ReplayServer, Reply
from feedsvc.scheduler import pipeline_collect
from feedsvc.store import queries
from feedsvc.store.db import make_engine, session_factory, session_scope, upgrade
from feedsvc.store.tables import DigestRow, SourceRun

WAIT = 30.0  # the longest a test waits for a process (never reached when things work)


@pytest.fixture
def profiles() -> list[Profile]:
    return load_profiles(example_profiles_path())


def runs_of(factory, source: str) -> list[SourceRun]:
    with session_scope(factory) as s:
        return list(s.scalars(select(SourceRun).where(SourceRun.source == source).order_by(SourceRun.id)))


def killed_run(factory, source: str, started: datetime) -> int:
    """A run as a killed `feedsvc fetch` leaves it: started, never finished."""
    with session_scope(factory) as s:
        return queries.start_run(s, source, started)


# --- 1. a run whose process died ------------------------------------------------------------------------


def test_a_killed_runs_row_is_failed_when_that_source_runs_again(tmp_path, factory, profiles) -> None:
    dead = killed_run(factory, "arxiv", NOW - timedelta(minutes=1))  # recent: only the lock says it is dead
    with ReplayServer(routes()) as server:
        outcomes = {o.source: o for o in collect(settings_for(server, tmp_path), factory, profiles, now=NOW)}
    assert outcomes["arxiv"].status == "ok"
    first, second = runs_of(factory, "arxiv")
    assert first.id == dead
    assert (first.status, first.error) == ("failed", "interrupted (no end recorded)")
    assert first.finished is not None
    assert second.status == "ok"


def test_health_fails_a_run_running_longer_than_the_bound(tmp_path, factory) -> None:
    settings = replay_settings("http://127.0.0.1:9", tmp_path)  # the default bound: two hours
    killed_run(factory, "hn", NOW - timedelta(hours=3))
    live = killed_run(factory, "lobsters", NOW - timedelta(minutes=5))  # may still be running
    health = {h.source: h for h in source_health(settings, factory, now=NOW)}
    assert health["hn"].last_status == "failed"
    assert health["hn"].error == "interrupted (no end recorded)"
    assert health["hn"].failures == 1
    assert health["lobsters"].last_status == "never run"
    [lobsters] = runs_of(factory, "lobsters")
    assert (lobsters.id, lobsters.status, lobsters.finished) == (live, "running", None)


def test_a_killed_feedsvc_fetch_is_recorded_as_interrupted_by_the_next(tmp_path: Path) -> None:
    db = tmp_path / "feedsvc.db"
    env = {
        "FEEDSVC_DATA_DIR": str(tmp_path / "data"),
        "FEEDSVC_DATABASE_URL": f"sqlite:///{db}",
        "FEEDSVC_PROFILES_PATH": str(example_profiles_path()),
        "FEEDSVC_DISABLED_SOURCES": '["youtube", "hn", "lobsters"]',
        "FEEDSVC_ARXIV_ENRICH": "false",
        "FEEDSVC_HTTP_RETRIES": "0",
    }
    assert feedsvc("db", "upgrade", env=env).returncode == 0
    factory = session_factory(make_engine(f"sqlite:///{db}"))
    slow = Reply(body=FEED, headers=RSS, delay=WAIT)
    with ReplayServer({"/rss/*": slow}) as server:
        env["FEEDSVC_ARXIV_RSS_URL"] = f"{server.url}/rss"
        fetching = subprocess.Popen(
            [sys.executable, "-m", "feedsvc", "fetch"],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + WAIT
            while not runs_of(factory, "arxiv") and time.monotonic() < deadline:
                time.sleep(0.1)
            while not server.requests and time.monotonic() < deadline:
                time.sleep(0.1)  # the run is recorded and its request is on the wire
        finally:
            fetching.send_signal(signal.SIGKILL)
            fetching.wait(WAIT)
        [stuck] = runs_of(factory, "arxiv")
        assert stuck.status == "running"
        server.routes["/rss/*"] = Reply(body=FEED, headers=RSS)
        again = feedsvc("fetch", env=env)
    assert again.returncode == 0, again.stderr
    killed, ran = runs_of(factory, "arxiv")
    assert (killed.status, killed.error) == ("failed", "interrupted (no end recorded)")
    assert ran.status == "ok" and ran.fetched > 100


# --- 2. one fetch per source ----------------------------------------------------------------------------


def slow_routes(delay: float) -> dict:
    """The snapshot's routes, each answer `delay` seconds late: two collects started together overlap."""
    return {path: replace(r, delay=delay) if isinstance(r, Reply) else r for path, r in routes().items()}


def requests_of_one_collect(tmp_path: Path, profiles: list[Profile]) -> Counter[str]:
    """What one collect alone asks the snapshot's server, path by path (on a database of its own)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'alone' / 'feedsvc.db'}")
    upgrade(engine)
    with ReplayServer(routes()) as server:
        collect(settings_for(server, tmp_path / "alone"), session_factory(engine), profiles, now=NOW)
    engine.dispose()
    return Counter(r.path for r in server.requests)


@pytest.mark.parametrize("fresh_for", [None, timedelta(minutes=10)], ids=["forced", "min-interval"])
def test_two_collects_at_once_fetch_each_source_once(tmp_path, factory, profiles, fresh_for) -> None:
    results: list[list] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)
    with ReplayServer(slow_routes(0.3)) as server:
        settings = settings_for(server, tmp_path)

        def run() -> None:
            try:
                start.wait(WAIT)
                results.append(collect(settings, factory, profiles, now=NOW, fresh_for=fresh_for))
            except BaseException as e:  # re-raised below, in the test's thread
                errors.append(e)

        workers = [threading.Thread(target=run) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(WAIT)
    assert not errors, errors
    assert len(results) == 2
    assert Counter(r.path for r in server.requests) == requests_of_one_collect(tmp_path, profiles)
    for i, source in enumerate(SOURCE_NAMES):
        assert [r.status for r in runs_of(factory, source)] in (["ok"], ["empty"]), source
        # one of the two ran the source; the other found it fetched and said so
        assert sorted(outcomes[i].status == "fresh" for outcomes in results) == [False, True], source


def test_a_source_fetched_minutes_ago_is_not_fetched_again_unless_forced(tmp_path, factory, profiles) -> None:
    interval = timedelta(minutes=10)
    with ReplayServer(routes()) as server:
        settings = settings_for(server, tmp_path)
        first = collect(settings, factory, profiles, now=NOW, fresh_for=interval)
        asked = len(server.requests)
        soon = collect(settings, factory, profiles, now=NOW + timedelta(minutes=5), fresh_for=interval)
        assert len(server.requests) == asked
        later = collect(settings, factory, profiles, now=NOW + timedelta(minutes=11), fresh_for=interval)
        assert len(server.requests) > asked
        asked = len(server.requests)
        forced = collect(settings, factory, profiles, now=NOW + timedelta(minutes=12))
        assert len(server.requests) > asked
    assert {o.status for o in first} == {"ok", "empty"}
    assert [o.status for o in soon] == ["fresh"] * 4
    assert soon[0].note == "fetched at 18:00 UTC, less than 10 min before this run"
    assert "fresh" not in {o.status for o in later} | {o.status for o in forced}


def test_the_scheduler_fetch_skips_what_was_fetched_within_the_setting(tmp_path, factory, profiles) -> None:
    with ReplayServer(routes()) as server:
        settings = settings_for(server, tmp_path, fetch_min_interval_seconds=600)
        assert "fresh" not in pipeline_collect(settings, factory, profiles, NOW)
        asked = len(server.requests)
        again = pipeline_collect(settings, factory, profiles, NOW + timedelta(minutes=9))
        assert len(server.requests) == asked
    assert again == "arxiv fresh, youtube fresh, hn fresh, lobsters fresh"


# --- 3. a digest's row and its files, together ----------------------------------------------------------


def digest_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "digests").rglob("*.md") if p.is_file())


def stored_digests(factory) -> list[DigestRow]:
    with session_scope(factory) as s:
        return list(s.scalars(select(DigestRow)))


@pytest.fixture
def graphs(factory) -> list[Profile]:
    """The full-text test's reader, its two papers in the store: each pick gets a paper page."""
    with session_scope(factory) as s:
        queries.sync_profiles(s, PROFILE, NOW)
        papers = [as_listed("2012.15000"), as_listed("1606.09375")]
        queries.upsert_candidates(s, papers, run_id=None, now=NOW)
    return PROFILE


def fulltext_server() -> ReplayServer:
    return ReplayServer(
        {f"/html/{p}": Reply(body=html(p), headers=HTML) for p in ("2012.15000", "1606.09375")}
    )


def test_a_digest_whose_commit_fails_leaves_no_file(tmp_path, factory, graphs) -> None:
    def disk_full(session) -> None:
        if session.scalars(select(DigestRow)).first() is not None:  # the commit that would store one
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full"))

    event.listen(factory, "before_commit", disk_full)
    with fulltext_server() as server, pytest.raises(OperationalError, match="disk is full"):
        build_digests(replay_settings(server.url, tmp_path), factory, graphs, day=DAY, now=NOW)
    event.remove(factory, "before_commit", disk_full)
    assert stored_digests(factory) == []
    assert digest_files(tmp_path) == []
    with fulltext_server() as server:  # once the disk has room, the same digest is built and written
        [built] = build_digests(replay_settings(server.url, tmp_path), factory, graphs, day=DAY, now=NOW)
    assert [r.day for r in stored_digests(factory)] == [DAY]
    assert [p.name for p in digest_files(tmp_path)] == ["2024-11-28.md", "1606.09375.md", "2012.15000.md"]
    assert built.path is not None and built.path.read_text(encoding="utf-8") == built.markdown


def test_a_digest_whose_file_cannot_be_written_is_not_stored(tmp_path, factory, graphs) -> None:
    blocked = tmp_path / "digests" / "graphs" / "2024-11-28.md"
    blocked.mkdir(parents=True)  # a directory where the file goes: the rename fails, even for root
    with fulltext_server() as server, pytest.raises(OSError):
        build_digests(replay_settings(server.url, tmp_path), factory, graphs, day=DAY, now=NOW)
    assert stored_digests(factory) == []
    assert digest_files(tmp_path) == []  # nor the paper pages written before it
    assert blocked.is_dir() and not any(blocked.parent.glob(".*.tmp"))


def test_a_full_disk_stores_no_digest_and_says_so_in_one_line(tmp_path: Path, full_disk: Path) -> None:
    db = tmp_path / "feedsvc.db"
    env = env_for(
        tmp_path,
        FEEDSVC_DATA_DIR=str(full_disk / "data"),
        FEEDSVC_DATABASE_URL=f"sqlite:///{db}",
        FEEDSVC_DISABLED_SOURCES='["arxiv", "hn", "lobsters", "youtube"]',
    )
    assert feedsvc("db", "upgrade", env=env).returncode == 0
    with (full_disk / "filler").open("wb") as f, pytest.raises(OSError):
        f.write(b"\0" * (2 << 20))  # the tmpfs is now full
    r = feedsvc("digest", env=env)
    assert r.returncode == 1
    assert "no space left on the device" in one_error_line(r)
    assert stored_digests(session_factory(make_engine(f"sqlite:///{db}"))) == []
    assert not list((full_disk / "data").rglob("*.md"))
