"""Email subscription requests on both databases (issue 12, item 4): repeats are idempotent (one pending
subscription, at most one confirmation mail per resend window), each address and each client is rate
limited (429 with Retry-After, nothing queued), and the confirmation mail goes through the outbox: the
request only records it, the publish run sends it with the deliveries' retry and back-off, so an SMTP
server that never answers cannot stall the web app.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401  (the smtp_server fixture)
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from feedsvc.config import Settings
from feedsvc.models import Profile, Thread
from feedsvc.pipeline.publish import publish
from feedsvc.pipeline.subscribe import (
    ADDRESS_LIMIT,
    CLIENT_LIMIT,
    RESEND_AFTER,
    TooMany,
    request_email_subscription,
    sync_profiles,
)
from feedsvc.signing import read_token
from feedsvc.store import delivery
from feedsvc.store.tables import SubscriptionRow
from feedsvc.web.app import create_app

NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)
SECRET = "test-secret-key-for-signing-links-0123"
BASE = "https://feeds.example.org"
READER = "reader@example.org"
PROFILES = [Profile("graphs", (Thread("gnn", keywords=("graph",)),)), Profile("talks", (Thread("t"),))]


def settings_for(tmp_path: Path, db_url: str, **kw: Any) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=tmp_path,
        database_url=db_url,
        secret_key=SECRET,
        base_url=BASE,
        smtp_security="none",
        mail_from="feedsvc <feedsvc@example.org>",
    )
    values.update(kw)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def store(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    sync_profiles(factory, PROFILES, NOW)
    return factory


@pytest.fixture
def settings(tmp_path, db_url, smtp_server: SmtpServer) -> Settings:
    return settings_for(tmp_path, db_url, smtp_host=smtp_server.host, smtp_port=smtp_server.port)


def pending_rows(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(SubscriptionRow)) or 0


def confirm_links(smtp: SmtpServer) -> list[str]:
    texts = [m.message().get_body(("plain",)).get_content() for m in smtp.received]  # type: ignore[union-attr]
    return [u for t in texts for u in re.findall(rf"{re.escape(BASE)}/confirm/\S+", t)]


def test_repeats_make_one_pending_subscription_and_one_mail_per_window(
    settings, store, smtp_server: SmtpServer
) -> None:
    for _ in range(5):
        request_email_subscription(settings, store, READER, "graphs", NOW, client="198.51.100.7")
    assert smtp_server.received == []  # the request only records; the outbox sends
    assert pending_rows(store) == 1
    assert publish(settings, store, now=NOW).confirmations == 1
    assert publish(settings, store, now=NOW + timedelta(minutes=1)).confirmations == 0
    assert len(smtp_server.received) == 1

    inside = NOW + RESEND_AFTER - timedelta(seconds=1)
    assert request_email_subscription(settings, store, READER, "graphs", inside, client="x") is False
    assert publish(settings, store, now=inside).confirmations == 0
    later = NOW + RESEND_AFTER
    assert request_email_subscription(settings, store, READER, "graphs", later, client="x") is True
    assert publish(settings, store, now=later).confirmations == 1
    assert pending_rows(store) == 1
    first, second = confirm_links(smtp_server)
    code = read_token(SECRET, "confirm", first.rsplit("/", 1)[1])
    assert read_token(SECRET, "confirm", second.rsplit("/", 1)[1]) == code  # one pending subscription
    with TestClient(create_app(settings, store, clock=lambda: later), base_url=BASE) as c:
        assert c.post(first.removeprefix(BASE)).status_code == 200
    with store() as s:
        [recipient] = delivery.recipients_at(s, "email", READER)
    assert recipient.profile == "graphs"


def test_an_address_gets_at_most_three_confirmation_mails_a_day(settings, store, smtp_server) -> None:
    mails, window = ADDRESS_LIMIT
    times = [NOW + i * RESEND_AFTER for i in range(mails)]
    for when in times:
        assert request_email_subscription(settings, store, READER, "graphs", when, client=str(when)) is True
        assert publish(settings, store, now=when).confirmations == 1
    late = times[-1] + RESEND_AFTER
    for profile in ("graphs", "talks"):  # per address, whatever the profile
        with pytest.raises(TooMany) as caught:
            request_email_subscription(settings, store, READER.upper(), profile, late, client="y")
        assert caught.value.retry_after == int((NOW + window - late).total_seconds())
    publish(settings, store, now=late)
    assert len(smtp_server.received) == mails
    assert request_email_subscription(settings, store, READER, "talks", NOW + window, client="z") is True
    assert publish(settings, store, now=NOW + window).confirmations == 1


def test_a_client_is_limited_whatever_the_addresses(settings, store, smtp_server) -> None:
    posts, window = CLIENT_LIMIT
    peer = "203.0.113.9"
    for i in range(posts):
        when = NOW + timedelta(seconds=i)
        request_email_subscription(settings, store, f"r{i}@example.org", "graphs", when, client=peer)
    with pytest.raises(TooMany) as caught:
        request_email_subscription(
            settings, store, "one-more@example.org", "graphs", NOW + timedelta(seconds=60), client=peer
        )
    assert caught.value.retry_after == int(window.total_seconds()) - 60
    request_email_subscription(settings, store, "one-more@example.org", "graphs", NOW, client="192.0.2.1")
    assert publish(settings, store, now=NOW + timedelta(seconds=60)).confirmations == posts + 1
    assert "one-more@example.org" in {m.rcpt_tos[0] for m in smtp_server.received}


def test_the_form_answers_the_same_and_429_over_the_limit(tmp_path, db_url, store, smtp_server) -> None:
    settings = settings_for(tmp_path, db_url, smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    posts, window = CLIENT_LIMIT
    with TestClient(create_app(settings, store, clock=lambda: NOW), base_url=BASE) as c:
        answers = [c.post("/subscribe", data={"address": READER, "profile": "graphs"}) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert answers[0].text == answers[1].text and "Check your inbox" in answers[0].text
        for i in range(posts - 2):
            assert c.post("/subscribe", data={"address": f"r{i}@example.org", "profile": "graphs"}).is_success
        over = c.post("/subscribe", data={"address": "late@example.org", "profile": "graphs"})
    assert over.status_code == 429 and over.headers["Retry-After"] == str(int(window.total_seconds()))
    assert "Too many requests" in over.text
    assert smtp_server.received == []
    publish(settings, store, now=NOW)
    sent_to = [m.rcpt_tos[0] for m in smtp_server.received]
    assert sorted(sent_to) == sorted([READER, *(f"r{i}@example.org" for i in range(posts - 2))])


@contextmanager
def hanging_smtp() -> Iterator[socket.socket]:
    """A listening socket that never answers: a client connects (the kernel accepts) and waits forever."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


def connected(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def test_a_hanging_smtp_server_cannot_stall_the_web_app(tmp_path, db_url, store) -> None:
    with hanging_smtp() as smtp:
        port = smtp.getsockname()[1]
        settings = settings_for(tmp_path, db_url, smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=0.5)
        with TestClient(create_app(settings, store, clock=lambda: NOW), base_url=BASE) as c:
            r = c.post("/subscribe", data={"address": READER, "profile": "graphs"})
            assert r.status_code == 200 and "Check your inbox" in r.text
            assert c.get("/search", params={"q": "graph"}).status_code == 200
        assert not connected(smtp)  # the request never opened an SMTP connection
        report = publish(
            settings, store, now=NOW
        )  # the outbox does, gives up after its timeout, retries later
        assert report.confirmations == 0 and connected(smtp)
    with store() as s:
        [state] = delivery.confirmations(s)
    assert state.status == "failed" and state.attempts == 1 and state.due > NOW


def test_the_cli_queues_through_the_outbox_and_sends_at_once(tmp_path, smtp_server: SmtpServer) -> None:
    from test_cli import feedsvc

    env = {
        "FEEDSVC_DATA_DIR": str(tmp_path),
        "FEEDSVC_DATABASE_URL": f"sqlite:///{tmp_path / 'feedsvc.db'}",
        "FEEDSVC_PROFILES_PATH": str(Path(__file__).parents[1] / "feedsvc/sample/profiles.example.toml"),
        "FEEDSVC_SECRET_KEY": SECRET,
        "FEEDSVC_SMTP_HOST": smtp_server.host,
        "FEEDSVC_SMTP_PORT": str(smtp_server.port),
        "FEEDSVC_SMTP_SECURITY": "none",
    }
    assert feedsvc("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    first = feedsvc("subscribe", "email", READER, "--profile", "seed-reader", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "mailed to" in first.stdout and [m.rcpt_tos for m in smtp_server.received] == [(READER,)]
    again = feedsvc("subscribe", "email", READER, "--profile", "seed-reader", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "not sent again" in again.stdout
    assert len(smtp_server.received) == 1


def test_the_publish_run_forgets_finished_requests_after_a_week(settings, store, smtp_server) -> None:
    request_email_subscription(settings, store, READER, "graphs", NOW, client="198.51.100.7")
    request_email_subscription(settings, store, READER, "graphs", NOW, client="198.51.100.7")  # a repeat
    publish(settings, store, now=NOW)
    with store() as s:
        assert sorted(c.status for c in delivery.confirmations(s)) == ["repeat", "sent"]
    publish(settings, store, now=NOW + timedelta(days=7))
    with store() as s:
        assert len(delivery.confirmations(s)) == 2  # not older than a week yet
    publish(settings, store, now=NOW + timedelta(days=7, seconds=1))
    with store() as s:
        assert delivery.confirmations(s) == []
