"""Issue 3 end to end: four sources into one bundle, discussions attached to their paper, the author-talk
check turning a real talk into a video pick, honest source health under injected failures.

The arXiv feed, and the HN / Lobsters / YouTube bodies not named otherwise, are the recorded snapshot the
demo replays. Bodies built here are marked "constructed": they copy the recorded shape of each API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from feedsvc.config import example_profiles_path, load_profiles
from feedsvc.demo import replay_settings, snapshot_routes
from feedsvc.models import Profile
from feedsvc.pipeline.collect import collect, source_health
from feedsvc.pipeline.digest import build_digests
from feedsvc.render.markdown import render_markdown
from feedsvc.replay import ReplayServer, Reply
from feedsvc.store import queries
from feedsvc.store.db import session_scope

DAY = date(2024, 11, 28)
NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)
JSON = {"Content-Type": "application/json"}
PAPER = "2411.18612"  # "Robust Offline Reinforcement Learning with ... f-Divergence Regularization"
PAPER_TITLE = "Robust Offline Reinforcement Learning with Linearly Structured $f$-Divergence Regularization"
QSFT_TITLE = "Q-SFT: Q-Learning for Language Models via Supervised Fine-Tuning"


def hn_hit(object_id: str, title: str, url: str | None, points: int, comments: int) -> dict:
    """constructed: one Algolia hit in the recorded answer's shape"""
    return {
        "objectID": object_id,
        "title": title,
        "url": url,
        "author": "someone",
        "points": points,
        "num_comments": comments,
        "created_at_i": int((NOW - timedelta(hours=3)).timestamp()),
        "created_at": (NOW - timedelta(hours=3)).isoformat().replace("+00:00", "Z"),
        "story_text": None,
        "_tags": ["story"],
    }


HN_ABOUT_PAPERS = json.dumps(
    {  # constructed
        "hits": [
            hn_hit(
                "42000001",
                "Robust offline RL with f-divergence regularization",
                f"https://arxiv.org/pdf/{PAPER}v1",
                412,
                97,
            ),
            hn_hit("42000002", QSFT_TITLE, "https://blog.example.org/q-sft-explained", 55, 12),
            hn_hit("42000003", "Show HN: A spreadsheet in Rust", "https://example.com/sheet", 120, 40),
        ],
        "nbHits": 3,
        "page": 0,
        "nbPages": 1,
        "hitsPerPage": 100,
    }
).encode()


@pytest.fixture
def profiles() -> list[Profile]:
    return load_profiles(example_profiles_path())


def serve(**overrides: object) -> ReplayServer:
    return ReplayServer({**snapshot_routes(), **overrides})


def test_an_hn_story_about_a_paper_becomes_that_papers_discussion(tmp_path, factory, profiles) -> None:
    with serve(**{"/api/v1/search_by_date": Reply(body=HN_ABOUT_PAPERS, headers=JSON)}) as server:
        settings = replay_settings(server.url, tmp_path)
        outcomes = {o.source: o for o in collect(settings, factory, profiles, now=NOW)}
        # only the unrelated story is a new item; the two about papers are discussions of them
        assert outcomes["hn"].status == "ok" and (outcomes["hn"].fetched, outcomes["hn"].new) == (3, 1)
        [built] = build_digests(settings, factory, profiles, day=DAY, now=NOW)
    cards = {c.key: c for c in built.digest.cards}
    paper = cards[f"arxiv:{PAPER}"]
    assert paper.title == PAPER_TITLE  # the story did not overwrite the paper
    [d] = paper.discussions
    assert (d.site, d.points, d.comments, d.url) == (
        "Hacker News",
        412,
        97,
        "https://news.ycombinator.com/item?id=42000001",
    )
    md = built.markdown
    assert (
        "**Discussion:** [412 points, 97 comments on Hacker News](https://news.ycombinator.com/item?id=42000001)"
        in md
    )
    assert "- **Hacker News:**" in md and "on today's picks" in md
    with session_scope(factory) as s:
        # the blog post titled like the Q-SFT paper was merged into the paper by its title
        assert queries.discussions_for(s, ["arxiv:2411.05193"])["arxiv:2411.05193"][0].points == 55
        # the unrelated story is an item of its own, and no paper was duplicated
        assert "url:https://example.com/sheet" in queries.items_by_keys(s, ["url:https://example.com/sheet"])
        assert len(queries.items_by_keys(s, [f"arxiv:{PAPER}"])) == 1


def test_a_story_about_a_paper_not_yet_in_the_store_waits_as_a_placeholder(
    tmp_path, factory, profiles
) -> None:
    body = json.dumps(
        {
            "hits": [
                hn_hit("42000009", "A paper from next week", "https://arxiv.org/abs/2412.00001", 300, 50)
            ],
            "nbHits": 1,
        }
    ).encode()  # constructed
    with serve(**{"/api/v1/search_by_date": Reply(body=body, headers=JSON)}) as server:
        settings = replay_settings(server.url, tmp_path)
        collect(settings, factory, profiles, now=NOW)
        [built] = build_digests(settings, factory, profiles, day=DAY, now=NOW, dry_run=True)
    assert "arxiv:2412.00001" not in {c.key for c in built.digest.cards}  # nothing to judge it by yet
    with session_scope(factory) as s:
        item = queries.items_by_keys(s, ["arxiv:2412.00001"])["arxiv:2412.00001"]
        assert item.meta["placeholder"] is True and item.text == ""
        assert queries.discussions_for(s, ["arxiv:2412.00001"])["arxiv:2412.00001"][0].points == 300


def youtube_talk_routes() -> dict[str, Reply]:
    """constructed: a search.list answer whose first result is a talk titled like today's top paper, and the
    videos.list answer for it (the shapes of the recorded YouTube bodies)"""
    snippet = {
        "publishedAt": "2024-11-29T10:00:00Z",
        "channelId": "UCabc",
        "channelTitle": "RL Seminar",
        "title": f"{PAPER_TITLE} (author talk)",
        "description": f"Talk on arXiv:{PAPER}.",
    }
    search = {
        "kind": "youtube#searchListResponse",
        "items": [
            {
                "kind": "youtube#searchResult",
                "id": {"kind": "youtube#video", "videoId": "abcdefghijk"},
                "snippet": snippet,
            }
        ],
    }
    videos = {
        "kind": "youtube#videoListResponse",
        "items": [
            {
                "kind": "youtube#video",
                "id": "abcdefghijk",
                "snippet": snippet,
                "contentDetails": {"duration": "PT41M5S"},
                "statistics": {"viewCount": "1234"},
            }
        ],
    }
    return {
        "/youtube/v3/search": Reply(body=json.dumps(search).encode(), headers=JSON),
        "/youtube/v3/videos": Reply(body=json.dumps(videos).encode(), headers=JSON),
    }


def test_the_author_talk_check_turns_a_real_talk_into_a_video_pick(tmp_path, factory, profiles) -> None:
    with serve(**youtube_talk_routes()) as server:
        settings = replay_settings(server.url, tmp_path)
        collect(settings, factory, profiles, now=NOW)
        [built] = build_digests(
            settings, factory, profiles, day=DAY + timedelta(days=1), now=NOW + timedelta(days=1)
        )
    videos = [c for c in built.digest.cards if c.kind == "video"]
    assert [v.key for v in videos] == ["youtube:abcdefghijk"]
    assert videos[0].talk_for == PAPER_TITLE and videos[0].time_cost == "41m"
    paper = next(c for c in built.digest.cards if c.title == PAPER_TITLE)
    # the talk's why says what it is, then why its paper matches (the paper card's words)
    assert paper.why.startswith("Matches your *")
    assert videos[0].why == f"A talk on *{PAPER_TITLE}*, which m" + paper.why[1:]
    assert f"found a talk, *{PAPER_TITLE} (author talk)* (arXiv id in description)" in built.digest.talk_check
    assert "**A talk about a paper in this digest:**" in built.markdown
    assert "3 paper picks + 1 video pick" in built.markdown
    with session_scope(factory) as s:  # the searches' quota units are recorded against today's budget
        assert queries.StoreQuota(s, "youtube", 10_000, NOW + timedelta(days=1)).used_before >= 300


def test_without_a_youtube_key_the_bundle_says_so_and_nothing_breaks(tmp_path, factory, profiles) -> None:
    with serve() as server:
        settings = replay_settings(server.url, tmp_path, youtube_api_key="")
        outcomes = {o.source: o for o in collect(settings, factory, profiles, now=NOW)}
        [built] = build_digests(settings, factory, profiles, day=DAY, now=NOW, dry_run=True)
    assert outcomes["youtube"].status == "empty" and "no YouTube API key" in outcomes["youtube"].note
    assert outcomes["arxiv"].status == "ok"
    assert "not run: no YouTube API key is configured" in built.digest.talk_check
    assert len(built.digest.cards) == 3


@pytest.fixture
def down_lobsters() -> Iterator[ReplayServer]:
    # constructed: Lobsters rate-limits us and asks for ten minutes
    with serve(
        **{"/hottest.json": Reply(status=429, body=b"Too many requests", headers={"Retry-After": "600"})}
    ) as s:
        yield s


def test_retry_after_and_back_off_are_respected_and_reported(
    tmp_path, factory, profiles, down_lobsters
) -> None:
    settings = replay_settings(down_lobsters.url, tmp_path, backoff_minutes=30)
    first = {o.source: o for o in collect(settings, factory, profiles, now=NOW)}
    assert first["lobsters"].status == "failed" and "429" in (first["lobsters"].error or "")
    assert first["arxiv"].status == "ok"  # one failing source never stops the others
    soon = {o.source: o for o in collect(settings, factory, profiles, now=NOW + timedelta(minutes=5))}
    assert soon["lobsters"].status == "backoff" and soon["hn"].status == "empty"
    later = NOW + timedelta(minutes=11)
    assert {o.source: o for o in collect(settings, factory, profiles, now=later)}[
        "lobsters"
    ].status == "failed"
    # two failures in a row: 30 minutes of back-off from the second, then 60 after a third
    health = {h.source: h for h in source_health(settings, factory, now=later + timedelta(minutes=1))}
    lob = health["lobsters"]
    assert (lob.last_status, lob.failures, lob.failing_since) == ("failed", 2, NOW)
    assert lob.next_try is not None and lob.next_try > later + timedelta(minutes=20)
    assert "429" in (lob.error or "") and health["arxiv"].failures == 0
    # arXiv's later fetches were conditional: the unchanged feed answered 304, which is not a failure
    assert health["arxiv"].last_status == "empty" and "304" in health["arxiv"].note
    assert health["arxiv"].next_try is None


def test_a_disabled_source_is_not_run(tmp_path, factory, profiles) -> None:
    with serve() as server:
        settings = replay_settings(server.url, tmp_path, disabled_sources=["hn", "youtube"])
        outcomes = {o.source: o.status for o in collect(settings, factory, profiles, now=NOW)}
        health = {h.source: h for h in source_health(settings, factory, now=NOW)}
    assert outcomes == {"arxiv": "ok", "youtube": "disabled", "hn": "disabled", "lobsters": "empty"}
    assert not health["hn"].enabled and health["hn"].last_status == "never run"


def test_scraped_html_never_reaches_the_markdown(tmp_path, factory, profiles) -> None:
    body = json.dumps(
        {
            "hits": [
                hn_hit(
                    "42000010",
                    '<script>alert("x")</script>About the paper',  # constructed
                    f"https://arxiv.org/abs/{PAPER}",
                    99,
                    9,
                )
            ]
        }
    ).encode()
    with serve(**{"/api/v1/search_by_date": Reply(body=body, headers=JSON)}) as server:
        settings = replay_settings(server.url, tmp_path)
        collect(settings, factory, profiles, now=NOW)
        [built] = build_digests(settings, factory, profiles, day=DAY, now=NOW, dry_run=True)
    md = render_markdown(built.digest).body
    assert "<script" not in md.lower() and "99 points, 9 comments on Hacker News" in md


def test_feedsvc_sources_prints_the_health_table(tmp_path, factory, profiles, down_lobsters, engine) -> None:
    from typer.testing import CliRunner

    from feedsvc.cli import app

    settings = replay_settings(down_lobsters.url, tmp_path)
    collect(settings, factory, profiles, now=datetime.now(UTC))
    env = {"FEEDSVC_DATABASE_URL": engine.url.render_as_string(hide_password=False), "COLUMNS": "250"}
    result = CliRunner().invoke(app, ["sources"], env=env)
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 5}
    assert "failing since" in lines["lobsters"] and "429" in lines["lobsters"]
    assert "ok" in lines["arxiv"] and "never run" not in lines["arxiv"]
    assert "llm" not in lines  # no LLM endpoint configured: no row
    with session_scope(factory) as s:  # an LLM card writer's run, as the digest records it
        run = queries.start_run(s, "llm", datetime.now(UTC))
        note = "2 of 3 cards written by the LLM; tokens 1200 in, 300 out"
        queries.finish_run(s, run, status="ok", now=datetime.now(UTC), fetched=3, note=note, units=1500)
        s.commit()
    env["FEEDSVC_LLM_BASE_URL"] = "http://127.0.0.1:9/v1"
    result = CliRunner().invoke(app, ["sources"], env=env)
    rows = [line for line in result.output.splitlines() if line.count("│") > 5]
    [llm] = [line for line in rows if line.split("│")[1].strip() == "llm"]
    assert "ok" in llm and "2 of 3 cards written" in llm and "tokens in the last 24 h: 1500" in llm
