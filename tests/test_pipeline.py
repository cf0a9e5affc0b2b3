"""The pipeline end to end over real loopback HTTP replaying recorded arXiv responses, on both databases."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from feedsvc.config import Settings, example_profiles_path, load_profiles
from feedsvc.demo import replay_settings, snapshot_routes
from feedsvc.models import Fetched, Profile
from feedsvc.pipeline.collect import collect
from feedsvc.pipeline.digest import build_digests
from feedsvc.replay import ReplayServer, Reply, in_turn
from feedsvc.sources import build_sources
from feedsvc.store import queries
from feedsvc.store.db import session_scope

FIX = Path(__file__).parent / "fixtures" / "arxiv"
FEED = gzip.decompress((FIX / "rss_all_archives_2024-11-28.xml.gz").read_bytes())
EMPTY = (FIX / "rss_empty_test_archive_2024-11-28.xml").read_bytes()
RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}
DAY = date(2024, 11, 28)
NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)


@pytest.fixture
def profiles() -> list[Profile]:
    return load_profiles(example_profiles_path())


def routes(**overrides: Reply | object) -> dict:
    """The demo's snapshot (recorded arXiv, HN, Lobsters, YouTube bodies), with some endpoints replaced."""
    return {**snapshot_routes(), **overrides}


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer(routes()) as s:
        yield s


def settings_for(server: ReplayServer, tmp_path: Path, **kw) -> Settings:
    return replay_settings(server.url, tmp_path, **kw)


def test_fetch_then_digest_end_to_end(server, tmp_path, factory, profiles) -> None:
    settings = settings_for(server, tmp_path)
    outcomes = {o.source: o for o in collect(settings, factory, profiles, now=NOW)}
    assert list(outcomes) == ["arxiv", "youtube", "hn", "lobsters"]
    outcome = outcomes["arxiv"]
    assert (outcome.source, outcome.status, outcome.scanned) == ("arxiv", "ok", 1504)
    # the recorded HN (2014), Lobsters (2023-11) and YouTube (2012-13) answers are all older than the window
    assert [outcomes[s].status for s in ("youtube", "hn", "lobsters")] == ["empty", "empty", "empty"]
    assert outcomes["lobsters"].scanned == 34 and outcomes["hn"].scanned == 20
    assert outcome.fetched == outcome.new > 100
    [built] = build_digests(settings, factory, profiles, day=DAY, now=NOW)

    feed_ids = {e.link.rsplit("/", 1)[1] for e in feedparser.parse(FEED).entries}
    assert [c.kind for c in built.digest.cards] == ["paper"] * 3
    assert "0 of 2 video picks" in built.digest.shortfall
    assert built.digest.talk_check.startswith(
        "searched YouTube by the exact titles of today's 3 paper picks."
    )
    # what was searched and found: each title once, the misses in one sentence, no unrelated video named
    note = built.digest.talk_check
    assert "closest" not in note and note.count("no talk among the 25 videos the search returned") == 1
    assert all(note.count(f"*{c.title}*") == 1 for c in built.digest.cards)
    for c in built.digest.cards:
        assert c.key.removeprefix("arxiv:") in feed_ids  # real papers from the recorded snapshot
        assert c.why and c.intuition and c.punch
    assert built.path == tmp_path / "digests" / "seed-reader" / "2024-11-28.md"
    assert built.path.read_text(encoding="utf-8") == built.markdown
    assert "scanned 1504 items, kept" in built.markdown
    with session_scope(factory) as s:
        assert queries.find_digest(s, "seed-reader", DAY) is not None


def test_a_digest_is_immutable_and_never_repeats_a_paper(server, tmp_path, factory, profiles) -> None:
    settings = settings_for(server, tmp_path)
    collect(settings, factory, profiles, now=NOW)
    [first] = build_digests(settings, factory, profiles, day=DAY, now=NOW)
    [again] = build_digests(settings, factory, profiles, day=DAY, now=NOW + timedelta(hours=1))
    assert again.existed and again.markdown == first.markdown
    [next_day] = build_digests(settings, factory, profiles, day=DAY + timedelta(days=1), now=NOW)
    assert next_day.digest.cards
    assert not {c.key for c in first.digest.cards} & {c.key for c in next_day.digest.cards}
    assert "3 already sent" in next_day.digest.sources[0].note


def test_dry_run_stores_and_writes_nothing(server, tmp_path, factory, profiles) -> None:
    settings = settings_for(server, tmp_path)
    collect(settings, factory, profiles, now=NOW)
    [built] = build_digests(settings, factory, profiles, day=DAY, now=NOW, dry_run=True)
    assert built.path is None and built.digest.cards
    assert not (tmp_path / "digests").exists()
    with session_scope(factory) as s:
        assert queries.find_digest(s, "seed-reader", DAY) is None


def test_no_announcement_is_not_an_error(tmp_path, factory, profiles) -> None:
    with ReplayServer(routes(**{"/rss/*": Reply(body=EMPTY, headers=RSS)})) as server:
        outcome = collect(settings_for(server, tmp_path), factory, profiles, now=NOW)[0]
    assert (outcome.source, outcome.status, outcome.error) == ("arxiv", "empty", None)
    assert "no announcement" in outcome.note
    [built] = build_digests(settings_for(server, tmp_path), factory, profiles, day=DAY, now=NOW)
    assert built.digest.cards == ()
    assert "no announcement" in built.markdown and "failed" not in built.markdown
    assert "0 of 3 paper picks" in built.markdown


def test_a_failing_source_is_recorded_and_the_digest_uses_what_is_stored(tmp_path, factory, profiles) -> None:
    # constructed: an HTML 503 page from a proxy in place of the feed, after one good day
    down = Reply(
        status=503,
        body=b"<html><body>Service Unavailable</body></html>",
        headers={"Content-Type": "text/html"},
    )
    with ReplayServer(routes(**{"/rss/*": in_turn(Reply(body=FEED, headers=RSS), down)})) as server:
        settings = settings_for(server, tmp_path)
        ok = collect(settings, factory, profiles, now=NOW)[0]
        failed = collect(settings, factory, profiles, now=NOW + timedelta(hours=1))[0]
    assert ok.status == "ok" and failed.status == "failed"
    assert failed.error and "503" in failed.error
    [built] = build_digests(settings, factory, profiles, day=DAY, now=NOW)
    assert len(built.digest.cards) == 3
    note = built.digest.sources[0].note
    assert note.startswith("failed since ") and "503" in note and "using what the store already had" in note


def test_one_crashing_source_never_stops_the_others(server, tmp_path, factory, profiles) -> None:
    class Broken:  # a source with a bug: the pipeline must record it and go on
        name = "broken"
        units_spent = 0

        def close(self) -> None:
            pass

        def fetch(self, since: datetime) -> Fetched:
            raise KeyError("hits")

    def sources(settings, profs, validators, quota):
        return [Broken(), *build_sources(settings, profs, validators, quota)]

    outcomes = collect(settings_for(server, tmp_path), factory, profiles, now=NOW, make_sources=sources)
    assert [(o.source, o.status) for o in outcomes][:2] == [("broken", "failed"), ("arxiv", "ok")]
    assert outcomes[0].error == "unexpected KeyError: 'hits'"
    with session_scope(factory) as s:
        runs = queries.latest_runs(s)
        assert runs["broken"].status == "failed" and runs["arxiv"].fetched > 100


def test_exclude_terms_of_the_profile_veto_papers(server, tmp_path, factory, profiles) -> None:
    settings = settings_for(server, tmp_path)
    collect(settings, factory, profiles, now=NOW)
    [built] = build_digests(settings, factory, profiles, day=DAY, now=NOW, dry_run=True)
    first = built.digest.cards[0]
    strict = [replace(profiles[0], exclude=(*profiles[0].exclude, first.title))]
    [vetoed] = build_digests(settings, factory, strict, day=DAY, now=NOW, dry_run=True)
    assert first.key not in {c.key for c in vetoed.digest.cards}
    assert "vetoed by exclude terms" in vetoed.digest.sources[0].note
