"""`feedsvc publish` under faults, as a real process against a real SMTP server on loopback:

- killed with SIGKILL half-way and run again: every recipient gets the digest, at most the messages that
  were in flight (one per SMTP connection) arrive twice (the documented repeat), nothing is lost;
- an SMTP server that drops connections and answers 451: the deliveries are retried and arrive once.
On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from demo_day import demo_day
from smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401  (the smtp_server fixture)

from feedsvc.demo import replay_settings
from feedsvc.pipeline.publish import publish
from feedsvc.store import delivery, queries
from feedsvc.store.db import session_scope

DAY = date(2024, 11, 28)
NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)
SECRET = "test-secret-key-for-signing-links"
READERS = 30


@pytest.fixture
def subscribed(tmp_path, factory):
    """The demo day's digest in the store and READERS email recipients of its profile."""
    with demo_day(factory, tmp_path / "data") as day:
        profile = day.profile
    with session_scope(factory) as session:
        for i in range(READERS):
            p = replace(profile, channels={"email": {"to": f"reader{i:02d}@example.org"}})
            queries.sync_profiles(session, [p], NOW)
    return profile


def env_for(db_url: str, smtp: SmtpServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    env.update(
        FEEDSVC_DATABASE_URL=db_url,
        FEEDSVC_DATA_DIR=str(tmp_path / "data"),
        FEEDSVC_SMTP_HOST=smtp.host,
        FEEDSVC_SMTP_PORT=str(smtp.port),
        FEEDSVC_SMTP_SECURITY="none",
        FEEDSVC_SECRET_KEY=SECRET,
        FEEDSVC_BASE_URL="http://127.0.0.1:9",
        **extra,
    )
    return env


def arrivals(smtp: SmtpServer) -> Counter[str]:
    return Counter(to for r in smtp.received for to in r.rcpt_tos)


@pytest.mark.parametrize("threads", [1, 4])
def test_a_publish_killed_half_way_loses_nothing_and_repeats_at_most_what_was_in_flight(
    subscribed, db_url, factory, smtp_server: SmtpServer, tmp_path, threads: int
) -> None:
    """With one SMTP connection at most the one message in flight repeats; with N, at most N."""
    smtp_server.data_delay = 0.05  # slow enough to kill the run in the middle
    env = env_for(
        db_url,
        smtp_server,
        tmp_path,
        FEEDSVC_DELIVERY_LEASE_SECONDS="1",
        FEEDSVC_SMTP_CONNECTIONS=str(threads),
    )
    run = subprocess.Popen([sys.executable, "-m", "feedsvc", "publish"], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    kill_at = READERS // 3 + 1  # not at a claim boundary (claims come in fours), so some rows are held
    while len(smtp_server.received) < kill_at and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.005)
    assert run.poll() is None, "publish finished before it could be killed"
    run.send_signal(signal.SIGKILL)
    run.wait()
    first = len(smtp_server.received)
    assert kill_at <= first < READERS
    with session_scope(factory) as session:
        counts = delivery.delivery_counts(session)
    assert counts.get("sending", 0) >= 1  # the killed worker's claimed rows wait for their lease to end

    time.sleep(1.2)  # the lease of the dead worker runs out
    # the live run takes a lease longer than any send: a 1 s lease of its own could run out mid-send on a
    # loaded machine, and its own other thread would then send that row a second time
    env["FEEDSVC_DELIVERY_LEASE_SECONDS"] = "120"
    again = subprocess.run(
        [sys.executable, "-m", "feedsvc", "publish"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    got = arrivals(smtp_server)
    assert set(got) == {f"reader{i:02d}@example.org" for i in range(READERS)}  # nothing lost
    twice = [to for to, n in got.items() if n > 1]
    assert len(twice) <= threads and max(got.values()) <= 2  # at most what was in flight
    with session_scope(factory) as session:
        assert delivery.delivery_counts(session) == {"sent": READERS}
    # and a third run sends nothing at all
    third = subprocess.run(
        [sys.executable, "-m", "feedsvc", "publish"], env=env, capture_output=True, text=True, timeout=120
    )
    assert third.returncode == 0 and sum(arrivals(smtp_server).values()) == sum(got.values())


def test_dropped_connections_and_451_are_retried_and_arrive_once(
    subscribed, factory, smtp_server: SmtpServer, tmp_path
) -> None:
    smtp_server.drop_after = 4  # the server hangs up after every 4th message
    smtp_server.data_replies = ["451 4.3.0 try again later"] * 3  # and refuses the first three for now
    settings = replay_settings(
        "http://127.0.0.1:9",
        tmp_path / "data",
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_security="none",
        secret_key=SECRET,
        delivery_retry_seconds=60,
    )
    first = publish(settings, factory, now=NOW)
    assert (first.sent, first.retrying) == (READERS - 3, 3)
    with session_scope(factory) as session:
        failed = delivery.deliveries(session, status="failed")
    assert len(failed) == 3 and all("451" in f.last_error for f in failed)
    second = publish(settings, factory, now=NOW + timedelta(seconds=60))
    assert (second.sent, second.retrying) == (3, 0)
    got = arrivals(smtp_server)
    assert len(got) == READERS and set(got.values()) == {1}
    assert smtp_server.connections > READERS // 4  # it did reconnect after each drop
