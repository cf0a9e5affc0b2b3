"""SourceHttp and the replay server, against a real loopback server (no mocks, no real network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from fakes import FakeSleep

from feedsvc.config import Settings
from feedsvc.models import SourceError
from feedsvc.replay import ReplayServer, Reply, in_turn
from feedsvc.retry import retry_after_seconds
from feedsvc.sources.http import MemoryValidators, SourceHttp, safe_url


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"http_timeout": 5.0, "http_retries": 3, "http_max_wait": 60.0}
    values["http_jitter"] = 0.0  # exact waits; the jitter is tested in test_retry.py
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def client(settings: Settings, sleep: FakeSleep, **kw: object) -> SourceHttp:
    return SourceHttp(settings, source="test", sleep=sleep, **kw)  # type: ignore[arg-type]


# --- the replay server ----------------------------------------------------------------------------------


def test_replay_routes_exact_prefix_and_unknown() -> None:
    routes = {
        "/a": Reply(body=b"exact"),
        "/files/*": Reply(body=b"prefix"),
        "/files/special*": Reply(body=b"longer prefix"),
    }
    with ReplayServer(routes) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url + "/a").content == b"exact"
        assert httpx.get(server.url + "/files/x.xml").content == b"prefix"
        assert httpx.get(server.url + "/files/special/1").content == b"longer prefix"
        assert httpx.get(server.url + "/a/b").status_code == 404
        assert httpx.get(server.url + "/a?x=1&y=two").status_code == 200
    assert [r.path for r in server.requests] == ["/a", "/files/x.xml", "/files/special/1", "/a/b", "/a"]
    assert server.requests[-1].query == {"x": "1", "y": "two"}


def test_replay_answers_304_to_matching_validators() -> None:
    reply = Reply(body=b"feed", headers={"ETag": '"v1"', "Last-Modified": "Thu, 28 Nov 2024 14:47:20 GMT"})
    with ReplayServer({"/f": reply}) as server:
        assert httpx.get(server.url + "/f", headers={"If-None-Match": '"v0"'}).status_code == 200
        r = httpx.get(server.url + "/f", headers={"If-None-Match": '"v1"'})
        assert (r.status_code, r.content) == (304, b"")
        r = httpx.get(server.url + "/f", headers={"If-Modified-Since": "Thu, 28 Nov 2024 14:47:20 GMT"})
        assert r.status_code == 304


# --- SourceHttp -----------------------------------------------------------------------------------------


def test_sends_user_agent_and_returns_body() -> None:
    sleep = FakeSleep()
    settings = make_settings(user_agent="feedsvc-test/1 (mailto:t@example.org)")
    reply = Reply(body=b"hello", headers={"Content-Type": "text/plain"})
    with ReplayServer({"/x": reply}) as server, client(settings, sleep) as http:
        r = http.get(server.url + "/x", params={"q": "a b"})
    assert (r.status, r.content, r.not_modified) == (200, b"hello", False)
    assert r.headers["content-type"] == "text/plain"
    assert server.requests[0].headers["user-agent"] == "feedsvc-test/1 (mailto:t@example.org)"
    assert server.requests[0].query == {"q": "a b"}
    assert sleep.calls == []


def test_500_then_success_retries_after_one_second() -> None:
    sleep = FakeSleep()
    route = in_turn(Reply(500, b"oops"), Reply(200, b"ok"))
    with ReplayServer({"/x": route}) as server, client(make_settings(), sleep) as http:
        r = http.get(server.url + "/x")
    assert r.content == b"ok"
    assert len(server.requests) == 2
    assert sleep.calls == [1.0]


def test_5xx_exhausted_names_status_and_attempts_with_capped_backoff() -> None:
    sleep = FakeSleep()
    settings = make_settings(http_retries=4, http_max_wait=3.0)
    server = ReplayServer({"/x": Reply(503, b"<html>down</html>")})
    with server, client(settings, sleep) as http, pytest.raises(SourceError) as err:
        http.get(server.url + "/x")
    assert err.value.source == "test"
    assert err.value.cause.startswith("HTTP 503 Service Unavailable after 5 attempts")
    assert len(server.requests) == 5
    assert sleep.calls == [1.0, 2.0, 3.0, 3.0]


def test_503_with_retry_after_seconds_waits_that_long() -> None:
    sleep = FakeSleep()
    route = in_turn(Reply(503, b"", {"Retry-After": "2"}), Reply(200, b"ok"))
    with ReplayServer({"/x": route}) as server, client(make_settings(), sleep) as http:
        assert http.get(server.url + "/x").content == b"ok"
    assert sleep.calls == [2.0]


def test_429_with_retry_after_http_date() -> None:
    sleep = FakeSleep()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    route = in_turn(Reply(429, b"", {"Retry-After": when}), Reply(200, b"ok"))
    with ReplayServer({"/x": route}) as server, client(make_settings(), sleep) as http:
        assert http.get(server.url + "/x").content == b"ok"
    assert len(sleep.calls) == 1
    assert 25.0 <= sleep.calls[0] <= 30.0


def test_429_retry_after_beyond_max_wait_fails_with_retry_after() -> None:
    sleep = FakeSleep()
    settings = make_settings(http_max_wait=60.0)
    server = ReplayServer({"/x": Reply(429, b"", {"Retry-After": "3600"})})
    with server, client(settings, sleep) as http, pytest.raises(SourceError) as err:
        http.get(server.url + "/x")
    assert err.value.retry_after == 3600.0
    assert "HTTP 429 Too Many Requests" in err.value.cause
    assert "3600" in err.value.cause
    assert len(server.requests) == 1
    assert sleep.calls == []


def test_404_fails_at_once_without_secrets_in_message() -> None:
    sleep = FakeSleep()
    server = ReplayServer({})
    with server, client(make_settings(), sleep) as http, pytest.raises(SourceError) as err:
        http.get(server.url + "/missing", params={"api_key": "SECRET123", "q": "cats", "token": "T0K"})
    assert err.value.cause.startswith("HTTP 404 Not Found")
    assert "SECRET123" not in str(err.value) and "T0K" not in str(err.value)
    assert "q=cats" in err.value.cause
    assert "\n" not in str(err.value)
    assert len(server.requests) == 1
    assert sleep.calls == []


def test_timeout_is_retried_then_reported() -> None:
    sleep = FakeSleep()
    settings = make_settings(http_timeout=0.3, http_retries=1)
    server = ReplayServer({"/slow": Reply(200, b"late", delay=1.0)})
    with server, client(settings, sleep) as http, pytest.raises(SourceError) as err:
        http.get(server.url + "/slow")
    assert err.value.cause.startswith("timed out after 0.3 s (2 attempts)")
    assert len(server.requests) == 2
    assert sleep.calls == [1.0]


def test_connection_refused_is_a_source_error() -> None:
    sleep = FakeSleep()
    server = ReplayServer({}).start()
    url = server.url
    server.stop()  # nothing listens on this port any more
    with client(make_settings(http_retries=1), sleep) as http, pytest.raises(SourceError) as err:
        http.get(url + "/x")
    assert err.value.cause.startswith("connection failed: ConnectError")
    assert "(2 attempts)" in err.value.cause
    assert sleep.calls == [1.0]


def test_conditional_get_sends_validators_and_returns_not_modified() -> None:
    sleep = FakeSleep()
    validators = MemoryValidators()
    reply = Reply(body=b"<rss/>", headers={"ETag": '"abc"', "Last-Modified": "Thu, 28 Nov 2024 14:47:20 GMT"})
    server = ReplayServer({"/feed": reply})
    with server, client(make_settings(), sleep, validators=validators) as http:
        first = http.get(server.url + "/feed", conditional=True)
        second = http.get(server.url + "/feed", conditional=True)
        plain = http.get(server.url + "/feed")
    assert (first.status, first.not_modified, first.content) == (200, False, b"<rss/>")
    assert validators.get(server.url + "/feed") == ('"abc"', "Thu, 28 Nov 2024 14:47:20 GMT")
    assert "if-none-match" not in server.requests[0].headers
    assert server.requests[1].headers["if-none-match"] == '"abc"'
    assert server.requests[1].headers["if-modified-since"] == "Thu, 28 Nov 2024 14:47:20 GMT"
    assert (second.status, second.not_modified, second.content) == (304, True, b"")
    assert "if-none-match" not in server.requests[2].headers  # not conditional: no validators sent
    assert plain.content == b"<rss/>"


def test_retry_after_parsing_and_safe_url() -> None:
    now = datetime(2024, 11, 28, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Thu, 28 Nov 2024 12:01:30 GMT", now) == 90.0
    assert retry_after_seconds("Thu, 28 Nov 2024 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
    assert safe_url("https://h/p?key=s&x=1&API_KEY=t") == "https://h/p?x=1"
    assert safe_url("https://h/p") == "https://h/p"
