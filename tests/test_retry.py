"""The one retry policy (feedsvc/retry.py), mostly through a real call site: SourceHttp over loopback HTTP.

Waits are recorded by `FakeSleep`, never slept. Replies built here are constructed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from fakes import FakeSleep

from feedsvc.config import Settings
from feedsvc.models import SourceError
from feedsvc.replay import ReplayServer, Reply, in_turn
from feedsvc.retry import LONGEST_PAUSE, GaveUp, RetryPolicy, Transient
from feedsvc.sources.http import SourceHttp


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"http_timeout": 5.0, "http_retries": 3, "http_max_wait": 60.0}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_a_retry_after_in_2099_is_capped_and_does_not_stall_the_run(caplog) -> None:
    sleep = FakeSleep()
    far = format_datetime(datetime(2099, 1, 1, tzinfo=UTC), usegmt=True)
    server = ReplayServer({"/x": Reply(429, b"", {"Retry-After": far})})
    with (
        caplog.at_level(logging.WARNING, logger="feedsvc.retry"),
        server,
        SourceHttp(settings(), source="test", sleep=sleep) as http,
        pytest.raises(SourceError) as err,
    ):
        http.get(server.url + "/x")
    assert sleep.calls == [] and len(server.requests) == 1  # no wait at all inside the run
    assert err.value.retry_after == LONGEST_PAUSE  # the pause the pipeline records: a day, not 2099
    assert "exceeds the 60 s limit" in err.value.cause
    assert f"capped at {LONGEST_PAUSE:.0f}s" in caplog.text


def test_jittered_back_off_stays_within_its_bounds_and_attempts_are_bounded() -> None:
    sleep = FakeSleep()
    server = ReplayServer({"/x": Reply(500, b"down")})
    config = settings(http_retries=4, http_max_wait=3.0, http_jitter=0.5)
    with server, SourceHttp(config, source="test", sleep=sleep) as http, pytest.raises(SourceError) as err:
        http.get(server.url + "/x")
    assert len(server.requests) == 5 and "after 5 attempts" in err.value.cause
    assert len(sleep.calls) == 4
    for wait, base in zip(sleep.calls, [1.0, 2.0, 3.0, 3.0], strict=True):
        assert base * 0.5 <= wait <= base


def test_jitter_draws_between_the_full_and_the_reduced_wait() -> None:
    assert RetryPolicy(max_wait=60.0, jitter=0.5, rand=lambda: 0.0).backoff(3) == 4.0
    assert RetryPolicy(max_wait=60.0, jitter=0.5, rand=lambda: 1.0).backoff(3) == 2.0
    assert RetryPolicy(max_wait=3.0, jitter=0.0, rand=lambda: 1.0).backoff(5) == 3.0


def test_the_log_line_is_the_same_everywhere_and_names_no_secret(caplog) -> None:
    sleep = FakeSleep()
    route = in_turn(Reply(503, b""), Reply(200, b"ok"))
    config = settings(http_jitter=0.0)
    with (
        caplog.at_level(logging.WARNING, logger="feedsvc.retry"),
        ReplayServer({"/x": route}) as server,
        SourceHttp(config, source="test", sleep=sleep) as http,
    ):
        assert http.get(server.url + "/x", params={"api_key": "SECRET", "q": "a"}).content == b"ok"
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (f"retrying GET {server.url}/x?q=a in 1.0s (attempt 2/4): HTTP 503 Service Unavailable")
    assert sleep.calls == [1.0]


def test_waits_are_bounded_in_total_not_only_each() -> None:
    sleep = FakeSleep()
    slow = Reply(429, b"", {"Retry-After": "40"})
    route = in_turn(slow, slow, Reply(200, b"ok"))
    with (
        ReplayServer({"/x": route}) as server,
        SourceHttp(settings(), source="t", sleep=sleep) as http,
        pytest.raises(SourceError) as err,
    ):
        http.get(server.url + "/x")
    assert sleep.calls == [40.0]  # 40 + 40 would pass the 60 s limit: the second wait is the caller's
    assert err.value.retry_after == 40.0 and len(server.requests) == 2


def test_without_defer_a_long_retry_after_is_cut_to_the_limit_and_logged(caplog) -> None:
    sleep = FakeSleep()
    answers = iter([Transient("rate limited", retry_after=3600.0)])

    def attempt() -> str:
        for answer in answers:
            raise answer
        return "done"

    policy = RetryPolicy(attempts=3, max_wait=30.0, jitter=0.0, sleep=sleep)
    with caplog.at_level(logging.WARNING, logger="feedsvc.retry"):
        assert policy.call("the test call", attempt, defer=False) == "done"
    assert sleep.calls == [30.0]
    assert "Retry-After 3600s capped at the 30s wait limit" in caplog.text
    assert "retrying the test call in 30.0s (attempt 2/3): rate limited" in caplog.text


def test_other_errors_are_not_retried_and_giving_up_says_how_often() -> None:
    sleep = FakeSleep()
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise KeyError("a bug, not a transient failure")

    policy = RetryPolicy(attempts=3, jitter=0.0, sleep=sleep)
    with pytest.raises(KeyError):
        policy.call("broken", broken)
    assert calls == [1] and sleep.calls == []

    def flaky() -> None:
        raise Transient("HTTP 502")

    with pytest.raises(GaveUp) as gave:
        policy.call("flaky", flaky)
    assert (gave.value.cause, gave.value.attempts, gave.value.too_long) == ("HTTP 502", 3, False)
    assert sleep.calls == [1.0, 2.0]
