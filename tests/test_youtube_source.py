"""YouTubeSource (httpx, the YouTube Data API v3) against recorded API bodies on a loopback replay server.

`base_url` is the replay server, so requests arrive at `/youtube/v3/<method>`. Recorded bytes live in
tests/fixtures/youtube/ (see PROVENANCE.md there); everything built in this file (search bodies with arXiv
ids, 5xx replies, paper Candidates) is marked "constructed". No real network.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeSleep

from feedsvc.config import Settings
from feedsvc.models import Candidate, SourceError
from feedsvc.replay import ReplayServer, Reply, Route, in_turn
from feedsvc.sources.youtube import (
    NO_KEY_NOTE,
    MemoryQuota,
    YouTubeSource,
    duration_seconds,
    talk_match,
    uploads_playlist,
)

FIXTURES = Path(__file__).parent / "fixtures" / "youtube"
JSON = {"Content-Type": "application/json; charset=UTF-8"}
KEY = "AIzaTEST-not-a-real-key-0123456789"  # constructed
CHANNEL = "UC_x5XG1OV2P6uZZ5FSM9Ttw"  # Google Developers (the recorded playlist's channel)
SINCE = datetime(2010, 1, 1, tzinfo=UTC)

PLAYLIST = "pyyoutube_playlistItems_list_paged_1.json"
VIDEOS = "videos_list_2items_snippet_contentDetails_statistics.json"
SEARCH_SURF = "pyyoutube_search_list_by_keywords_p1.json"
SEARCH_CHANNEL = "pyyoutube_search_list_videos_by_channel.json"
ERR_NOT_CONFIGURED = "error_403_accessNotConfigured_projectid_redacted.json"
ERR_PERMISSION = "pyyoutube_error_permission_resp.json"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def recorded(name: str, status: int = 200) -> Reply:
    return Reply(status, fixture(name), dict(JSON))


class Rig:
    def __init__(self, routes: dict[str, Route], **settings: object) -> None:
        self.server = ReplayServer(routes).start()
        values: dict[str, object] = {"http_timeout": 5.0, "http_retries": 2, "http_max_wait": 60.0}
        values["http_jitter"] = 0.0  # exact waits; the jitter is tested in test_retry.py
        values.update(settings)
        self.settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        self.sleep = FakeSleep()

    def source(self, **kw: Any) -> YouTubeSource:
        kw.setdefault("api_key", KEY)
        return YouTubeSource(self.settings, base_url=self.server.url, sleep=self.sleep, **kw)

    def paths(self) -> list[str]:
        return [r.path for r in self.server.requests]


@pytest.fixture
def rigs() -> Iterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.server.stop()


def make(rigs: list[Rig], routes: dict[str, Route], **settings: object) -> Rig:
    rig = Rig(routes, **settings)
    rigs.append(rig)
    return rig


def api_routes(**extra: Route) -> dict[str, Route]:
    routes: dict[str, Route] = {
        "/youtube/v3/playlistItems": recorded(PLAYLIST),
        "/youtube/v3/videos": recorded(VIDEOS),
        "/youtube/v3/search": recorded(SEARCH_SURF),
    }
    routes.update({f"/youtube/v3/{k}": v for k, v in extra.items()})
    return routes


def paper(
    title: str, *, authors: tuple[str, ...] = (), key: str = "arxiv:2411.17702", **kw: Any
) -> Candidate:
    """A constructed paper Candidate (for the talk check)."""
    return Candidate(
        key=key,
        kind="paper",
        title=title,
        text="",
        url=f"https://arxiv.org/abs/{key.removeprefix('arxiv:')}",
        source="arxiv",
        authors=authors,
        **kw,
    )


def search_body(*items: dict[str, Any]) -> bytes:
    """A constructed search.list answer (current shape, with publishTime)."""
    return json.dumps({"kind": "youtube#searchListResponse", "items": list(items)}).encode()


def search_item(video_id: str, title: str, description: str, published: str) -> dict[str, Any]:
    """A constructed search.list item."""
    return {
        "kind": "youtube#searchResult",
        "id": {"kind": "youtube#video", "videoId": video_id},
        "snippet": {
            "publishedAt": published,
            "publishTime": published,
            "channelId": "UCconstructed",
            "title": title,
            "description": description,
            "channelTitle": "Constructed Channel",
        },
    }


# --- helpers ---------------------------------------------------------------------------------------------


def test_duration_and_uploads_playlist() -> None:
    assert duration_seconds("PT1H9M3S") == 4143
    assert duration_seconds("PT21M3S") == 1263
    assert duration_seconds("PT1M30S") == 90
    assert duration_seconds("P1DT2M") == 86520
    assert duration_seconds("P0D") == 0
    assert duration_seconds("nonsense") is None and duration_seconds(None) is None
    assert uploads_playlist(CHANNEL) == "UU_x5XG1OV2P6uZZ5FSM9Ttw"
    assert uploads_playlist("@GoogleDevelopers") is None


def test_memory_quota_spends_and_resets_daily() -> None:
    now = [datetime(2024, 11, 28, 12, 0, tzinfo=UTC)]
    quota = MemoryQuota(150, clock=lambda: now[0])
    assert quota.spend(100) and quota.remaining == 50
    assert not quota.spend(100) and quota.remaining == 50  # refused: nothing taken
    assert quota.spend(50) and quota.remaining == 0
    now[0] = datetime(2024, 11, 29, 9, 0, tzinfo=UTC)  # 01:00 in California: a new quota day
    assert quota.remaining == 150


# --- fetch -----------------------------------------------------------------------------------------------


def test_no_key_is_an_empty_result_with_a_notice() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    for key in (None, "", "  "):
        source = YouTubeSource(settings, api_key=key, channels=[CHANNEL], topic_queries=["x"])
        fetched = source.fetch(SINCE)
        assert (fetched.status, fetched.candidates, fetched.note) == ("empty", [], NO_KEY_NOTE)
        check = source.find_talk(paper("Some paper"))
        assert (check.searched, check.found) == (False, None)
        assert check.reason == NO_KEY_NOTE


def test_uploads_playlist_and_videos_parsed_short_videos_dropped(rigs: list[Rig]) -> None:
    rig = make(rigs, api_routes())
    quota = MemoryQuota(10_000)
    fetched = rig.source(channels=[CHANNEL], min_duration_s=240, quota=quota).fetch(SINCE)

    assert rig.paths() == ["/youtube/v3/playlistItems", "/youtube/v3/videos"]
    listing, videos = rig.server.requests
    assert listing.query["playlistId"] == "UU_x5XG1OV2P6uZZ5FSM9Ttw"
    assert listing.query["key"] == KEY  # the key really travels in the URL (and so must not reach messages)
    # the 10 recorded uploads, asked for in one videos.list batch
    assert videos.query["id"].split(",")[:3] == ["CvTApw9X8aA", "Yh4EKaUY3gg", "S-MbpQiwfls"]
    assert len(videos.query["id"].split(",")) == 10
    assert videos.query["part"] == "snippet,contentDetails,statistics"
    assert quota.remaining == 10_000 - 2

    # the recorded videos.list body: a 21-minute TED talk and a 90-second clip (dropped)
    [talk] = fetched.candidates
    assert talk.key == "youtube:Ks-_Mh1QhMc" and talk.kind == "video" and talk.source == "youtube"
    assert talk.title == "Your body language may shape who you are | Amy Cuddy"
    assert talk.url == "https://www.youtube.com/watch?v=Ks-_Mh1QhMc"
    assert talk.authors == ("TED",)
    assert talk.published == datetime(2012, 10, 1, 15, 27, 35, tzinfo=UTC)
    assert talk.text.startswith("Body language affects how others see us")
    assert talk.meta == {
        "duration_s": 1263,
        "views": 23278951,
        "channel": "TED",
        "channel_id": "UCAuUUnT6oDeKwE6v1NGQxug",
    }
    assert fetched.status == "ok" and fetched.scanned == 10
    assert "1 shorter than 240 s dropped" in fetched.note
    assert "(10 uploads listed)" in fetched.note


def test_min_duration_zero_keeps_the_clip(rigs: list[Rig]) -> None:
    rig = make(rigs, api_routes())
    fetched = rig.source(channels=[CHANNEL], min_duration_s=60).fetch(SINCE)
    durations = {c.key: c.meta["duration_s"] for c in fetched.candidates}
    assert durations == {"youtube:Ks-_Mh1QhMc": 1263, "youtube:GvgqDSnpRQM": 90}


def test_search_budget_exhausted_skips_searches_and_cheap_calls_go_on(rigs: list[Rig]) -> None:
    rig = make(rigs, api_routes())
    quota = MemoryQuota(150)  # constructed budget: one channel read + one search + one videos.list
    source = rig.source(
        channels=[CHANNEL], topic_queries=["surfing", "reinforcement learning", "robots"], quota=quota
    )
    fetched = source.fetch(SINCE)

    assert rig.paths() == ["/youtube/v3/playlistItems", "/youtube/v3/search", "/youtube/v3/videos"]
    search = rig.server.requests[1].query
    assert (search["q"], search["type"], search["publishedAfter"]) == (
        "surfing",
        "video",
        "2010-01-01T00:00:00Z",
    )
    assert (
        "search budget exhausted (49 units left, a search costs 100): 2 topic searches skipped"
        in fetched.note
    )
    # ids from the playlist and the recorded search are detailed in one cheap call
    assert len(rig.server.requests[2].query["id"].split(",")) == 10 + 25
    assert [c.key for c in fetched.candidates] == ["youtube:Ks-_Mh1QhMc"]
    assert quota.remaining == 48


def test_no_budget_for_any_search_still_reads_channels(rigs: list[Rig]) -> None:
    rig = make(rigs, api_routes())
    source = rig.source(channels=[CHANNEL], topic_queries=["a", "b"], quota=MemoryQuota(99), search_budget=1)
    fetched = source.fetch(SINCE)
    assert "/youtube/v3/search" not in rig.paths()
    assert rig.paths() == ["/youtube/v3/playlistItems", "/youtube/v3/videos"]
    assert "1 topic searches skipped" in fetched.note
    assert "1 topic queries beyond the search budget" in fetched.note
    assert len(fetched.candidates) == 1


@pytest.mark.parametrize(
    ("name", "reason", "message"),
    [
        (
            ERR_NOT_CONFIGURED,
            "accessNotConfigured",
            "YouTube Data API v3 has not been used in project 69696969",
        ),
        (ERR_PERMISSION, "SERVICE_UNAVAILABLE", "The caller does not have permission"),
    ],
)
def test_403_recorded_error_names_reason_without_key(
    rigs: list[Rig], caplog: pytest.LogCaptureFixture, name: str, reason: str, message: str
) -> None:
    rig = make(rigs, api_routes(playlistItems=recorded(name, 403)))
    caplog.set_level(logging.DEBUG, logger="httpx")
    with pytest.raises(SourceError) as err:
        rig.source(channels=[CHANNEL]).fetch(SINCE)
    cause = err.value.cause
    assert err.value.source == "youtube"
    assert cause.startswith(f"YouTube API HTTP 403 {reason}: {message}")
    assert cause.endswith("(playlistItems.list)")
    assert KEY not in str(err.value) and "key=" not in str(err.value)
    assert "\n" not in str(err.value)
    assert len(rig.server.requests) == 1  # 403 is not retried
    assert rig.sleep.calls == []
    assert KEY not in caplog.text  # httpx logs the request URL: redacted
    assert rig.server.requests[0].query["key"] == KEY


def test_quota_exceeded_names_reason_and_when_to_retry(rigs: list[Rig]) -> None:
    # constructed: no standalone recorded quotaExceeded body exists (see PROVENANCE.md); the shape follows
    # the recorded 403 bodies with the documented reason
    body = (
        b'{"error":{"code":403,"message":"The request cannot be completed because you have exceeded your '
        b'<a href=\\"/youtube/v3/getting-started#quota\\">quota</a>.","errors":[{"message":"quota",'
        b'"domain":"youtube.quota","reason":"quotaExceeded"}]}}'
    )
    rig = make(rigs, api_routes(playlistItems=Reply(403, body, dict(JSON))))
    with pytest.raises(SourceError) as err:
        rig.source(channels=[CHANNEL]).fetch(SINCE)
    assert err.value.cause.startswith("YouTube API HTTP 403 quotaExceeded: The request cannot be completed")
    assert err.value.retry_after is not None and 0 < err.value.retry_after <= 25 * 3600
    assert KEY not in str(err.value)


def test_5xx_then_success_is_retried(rigs: list[Rig]) -> None:
    # constructed 503 (Google's backendError shape), then the recorded playlist
    unavailable = Reply(
        503, b'{"error":{"code":503,"message":"Backend Error","errors":[{"reason":"backendError"}]}}', JSON
    )
    rig = make(rigs, api_routes(playlistItems=in_turn(unavailable, recorded(PLAYLIST))))
    fetched = rig.source(channels=[CHANNEL]).fetch(SINCE)
    assert len(fetched.candidates) == 1
    assert rig.paths().count("/youtube/v3/playlistItems") == 2
    assert rig.sleep.calls == [1.0]


def test_5xx_exhausted_is_a_source_error(rigs: list[Rig]) -> None:
    rig = make(rigs, api_routes(videos=Reply(500, b"<html>oops</html>", {"Content-Type": "text/html"})))
    with pytest.raises(SourceError) as err:
        rig.source(channels=[CHANNEL]).fetch(SINCE)
    assert err.value.cause == "YouTube API HTTP 500 after 3 attempts (videos.list)"
    assert rig.sleep.calls == [1.0, 2.0]


def test_timeout_is_a_source_error(rigs: list[Rig]) -> None:
    slow = Reply(200, fixture(PLAYLIST), dict(JSON), delay=1.0)
    rig = make(rigs, api_routes(playlistItems=slow), http_timeout=0.3, http_retries=1)
    with pytest.raises(SourceError) as err:
        rig.source(channels=[CHANNEL]).fetch(SINCE)
    assert err.value.cause == "YouTube API timed out after 0.3 s (2 attempts) (playlistItems.list)"
    assert KEY not in str(err.value)
    assert rig.sleep.calls == [1.0]


def test_malformed_json_is_a_source_error(rigs: list[Rig]) -> None:
    truncated = Reply(200, fixture(VIDEOS)[:700], dict(JSON))  # constructed: the recorded body cut short
    rig = make(rigs, api_routes(videos=truncated))
    with pytest.raises(
        SourceError, match=r"malformed answer from the YouTube API: .*\(videos.list\)$"
    ) as err:
        rig.source(channels=[CHANNEL]).fetch(SINCE)
    assert KEY not in str(err.value)


# --- the author-talk check -------------------------------------------------------------------------------


def test_talk_check_accepts_title_match_from_recorded_search(rigs: list[Rig]) -> None:
    rig = make(rigs, api_routes(search=recorded(SEARCH_CHANNEL)))
    quota = MemoryQuota(10_000)
    # constructed paper whose title matches a recorded search result (Bud7XR8crWw, 2018-10-08)
    p = paper("Adding Caching to the Hacker News App", published=datetime(2018, 9, 1, tzinfo=UTC))
    check = rig.source(quota=quota).find_talk(p)

    assert check.query == '"Adding Caching to the Hacker News App"'
    assert check.searched is True
    assert check.reason == "accepted: paper title contained in video title"
    assert check.found is not None and check.found.key == "youtube:Bud7XR8crWw"
    assert check.found.title.startswith("Adding Caching to the Hacker News App (The Boring Flutter")
    search = rig.server.requests[0].query
    assert (search["q"], search["type"], search["publishedAfter"]) == (
        check.query,
        "video",
        "2018-09-01T00:00:00Z",
    )
    assert quota.remaining == 10_000 - 100 - 1  # the search and one videos.list for details


def test_talk_check_refuses_video_published_before_the_paper(rigs: list[Rig]) -> None:
    rig = make(rigs, api_routes(search=recorded(SEARCH_CHANNEL)))
    p = paper(
        "Adding Caching to the Hacker News App", published=datetime(2019, 1, 1, tzinfo=UTC)
    )  # constructed
    check = rig.source().find_talk(p)
    assert check.searched and check.found is None
    assert check.reason.startswith("refused: 'Adding Caching to the Hacker News App")
    assert "published before the paper" in check.reason


def test_talk_check_author_surname_with_title_overlap(rigs: list[Rig]) -> None:
    rig = make(rigs, api_routes(search=recorded(SEARCH_CHANNEL)))
    title = "Breaking News Performance at the Guardian in 1000ms"  # constructed paper title
    when = datetime(2014, 1, 1, tzinfo=UTC)
    source = rig.source()
    by_author = source.find_talk(paper(title, authors=("Patrick Hamann",), published=when))
    assert by_author.found is not None and by_author.found.key == "youtube:dfweWyVScaI"
    assert by_author.reason == "accepted: author surname 'hamann' and 60% title-word overlap"
    other = source.find_talk(paper(title, authors=("Jane Doe",), published=when))
    assert other.found is None
    assert other.reason == "no talk among the 5 videos the search returned"


def test_talk_check_refuses_unrelated_results(rigs: list[Rig]) -> None:
    rig = make(rigs, api_routes())  # the recorded surfing search
    check = rig.source().find_talk(
        paper("Diffusion Policies for Offline Reinforcement Learning")
    )  # constructed
    assert check.searched and check.found is None
    # what was searched and found, without naming an unrelated video as "closest"
    assert check.reason == "no talk among the 25 videos the search returned"
    assert "'" not in check.reason and "closest" not in check.reason


def test_talk_check_arxiv_id_in_description_and_too_short_refused(rigs: list[Rig]) -> None:
    # constructed search answer: two videos whose descriptions cite the paper's arXiv id; the recorded
    # videos.list body gives their real durations (90 s clip first, then the 21-minute talk)
    body = search_body(
        search_item("GvgqDSnpRQM", "A clip", "Teaser for arXiv:2411.17702", "2024-12-01T10:00:00Z"),
        search_item(
            "Ks-_Mh1QhMc", "Full talk", "Paper: https://arxiv.org/abs/2411.17702v2", "2024-12-02T10:00:00Z"
        ),
    )
    rig = make(rigs, api_routes(search=Reply(200, body, dict(JSON))))
    p = paper("An unrelated-sounding paper title", published=datetime(2024, 11, 26, tzinfo=UTC))
    check = rig.source().find_talk(p)
    assert check.reason == "accepted: arXiv id in description"
    assert check.found is not None and check.found.key == "youtube:Ks-_Mh1QhMc"
    assert check.found.meta["duration_s"] == 1263  # details from the recorded videos.list
    assert rig.paths() == ["/youtube/v3/search", "/youtube/v3/videos", "/youtube/v3/videos"]


def test_talk_check_budget_exhausted_runs_no_search(rigs: list[Rig]) -> None:
    rig = make(rigs, api_routes())
    check = rig.source(quota=MemoryQuota(99)).find_talk(paper("Any title"))
    assert (check.searched, check.found) == (False, None)
    assert check.reason.startswith("budget exhausted: search not run")
    assert rig.server.requests == []


def test_talk_match_rules() -> None:
    p = paper("Attention Is All You Need", authors=("Ashish Vaswani",), key="arxiv:1706.03762")
    video = Candidate(  # constructed
        key="youtube:x",
        kind="video",
        title="Attention is all you need (paper explained)",
        text="",
        url="",
        source="youtube",
    )
    assert talk_match(p, video) == "paper title contained in video title"
    unrelated = Candidate(  # constructed
        key="youtube:y",
        kind="video",
        title="Attention span of goldfish",
        text="1706.037620 is not it",
        url="",
        source="youtube",
    )
    assert talk_match(p, unrelated) is None
