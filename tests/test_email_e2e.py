"""Email end to end on both databases, through a real SMTP server (aiosmtpd on loopback) and the web
archive's signed endpoints (FastAPI's test client):

double opt-in (the confirmation mail, sent by the publish run's outbox; its link: GET changes nothing,
POST subscribes), the demo bundle arriving exactly once with its headers, parts, images and signed links,
a 👎 link that is stored and changes the next ranking, and RFC 8058's one-click unsubscribe, after which
nothing more arrives.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
from demo_day import demo_day
from fastapi.testclient import TestClient
from smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401  (the smtp_server fixture)

from feedsvc.models import VOTES
from feedsvc.pipeline.digest import build_digests
from feedsvc.pipeline.publish import publish
from feedsvc.pipeline.subscribe import request_email_subscription
from feedsvc.signing import read_token
from feedsvc.store import delivery, queries
from feedsvc.store.db import session_scope
from feedsvc.web.app import create_app

DAY = date(2024, 11, 28)
NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)
SECRET = "test-secret-key-for-signing-links"
READER = "reader@example.org"
BASE = "http://testserver"


@pytest.fixture
def world(tmp_path, factory, smtp_server: SmtpServer):
    with demo_day(
        factory,
        tmp_path / "data",
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_security="none",
        secret_key=SECRET,
        base_url=BASE,
        mail_from="Daily Feed <digest@feedsvc.example>",
    ) as day:
        client = TestClient(create_app(day.settings, factory, clock=lambda: NOW))
        yield day.settings, day.profile, day.digest, client


def links(text: str, kind: str) -> list[str]:
    return re.findall(rf"{re.escape(BASE)}/{kind}/[A-Za-z0-9_.\-]+", text)


def path(url: str) -> str:
    return urlsplit(url).path


def parts(msg: EmailMessage) -> tuple[str, str, list]:
    plain = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    images = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    return plain, html, images


def test_opt_in_receive_once_vote_and_unsubscribe(world, factory, smtp_server: SmtpServer) -> None:
    settings, profile, digest, client = world

    # double opt-in: the request, the confirmation mail the outbox sends, then its link
    request_email_subscription(settings, factory, READER, profile.name, NOW)
    assert smtp_server.received == []
    assert publish(settings, factory, now=NOW).confirmations == 1
    [confirmation] = smtp_server.received
    [confirm_url] = links(confirmation.message().get_body(preferencelist=("plain",)).get_content(), "confirm")
    assert client.get(path(confirm_url)).status_code == 200
    with session_scope(factory) as session:
        assert delivery.active_recipients(session) == []  # a GET (a mail scanner) subscribes nobody
    assert client.post(path(confirm_url)).status_code == 200
    with session_scope(factory) as session:
        [recipient] = delivery.active_recipients(session)
    assert (recipient.channel, recipient.address) == ("email", READER)

    # the bundle arrives once
    assert publish(settings, factory, now=NOW).sent == 1
    assert publish(settings, factory, now=NOW + timedelta(hours=1)).sent == 0
    [mail] = smtp_server.received[1:]
    msg = mail.message()
    assert mail.rcpt_tos == (READER,)
    assert msg["Message-ID"] and msg["Date"] and msg["Subject"].startswith("Daily Feed - 2024-11-28")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [unsubscribe_url] = re.findall(r"<([^>]+)>", msg["List-Unsubscribe"])
    assert read_token(SECRET, "unsubscribe", unsubscribe_url.rsplit("/", 1)[1]) == {"r": recipient.id}
    assert next(p.get_content_type() for p in msg.iter_parts()) == "text/plain"  # plain text first
    plain, html, images = parts(msg)
    for card in digest.cards:
        assert card.title[:40] in plain and card.url in plain
    assert len(images) == sum(1 for c in digest.cards for q in c.punch if q.is_math)
    for image in images:
        assert f"cid:{image['Content-ID'].strip('<>')}" in html
    assert "feedsvc-link:" not in plain + html

    # 👎 from the email on every card of the first card's thread: GET asks, POST records
    next_day = DAY + timedelta(days=1)
    [before] = build_digests(settings, factory, [profile], day=next_day, now=NOW, dry_run=True)
    feedback = links(html.replace("&amp;", "&"), "f")
    assert len(feedback) == len(VOTES) * len(digest.cards)
    voted = []
    for url in feedback:
        data = read_token(SECRET, "feedback", url.rsplit("/", 1)[1])
        assert data["r"] == recipient.id
        card = next(c for c in digest.cards if c.key == data["k"])
        if data["v"] != "down" or card.thread != digest.cards[0].thread:
            continue
        assert client.get(path(url)).status_code == 200
        with session_scope(factory) as session:
            assert card.key not in {f.candidate.key for f in queries.feedback_for(session, profile.name)}
        assert client.post(path(url)).status_code == 200
        voted.append(card.key)
    with session_scope(factory) as session:
        votes = {f.candidate.key: f.vote for f in queries.feedback_for(session, profile.name)}
    assert votes == {key: "down" for key in voted} and voted
    [after] = build_digests(settings, factory, [profile], day=next_day, now=NOW, dry_run=True)
    assert [c.key for c in before.digest.cards] != [c.key for c in after.digest.cards]

    # RFC 8058: the mail client's one-click POST unsubscribes; nothing more arrives
    answer = client.post(
        path(unsubscribe_url),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    with session_scope(factory) as session:
        assert delivery.active_recipients(session) == []
    build_digests(settings, factory, [profile], day=next_day, now=NOW)
    assert publish(settings, factory, now=NOW + timedelta(days=1)).enqueued == 0
    assert len(smtp_server.received) == 2


def test_forged_and_wrong_purpose_links_change_nothing(world, factory, smtp_server: SmtpServer) -> None:
    settings, profile, _digest, client = world
    request_email_subscription(settings, factory, READER, profile.name, NOW)
    publish(settings, factory, now=NOW)
    [confirm_url] = links(smtp_server.received[0].message().get_body(("plain",)).get_content(), "confirm")
    token = confirm_url.rsplit("/", 1)[1]
    assert client.post(f"/u/{token}").status_code == 400  # a confirm token is no unsubscribe token
    assert client.post(f"/confirm/{token[:-2]}xx").status_code == 400  # forged
    with session_scope(factory) as session:
        assert delivery.active_recipients(session) == []
    with pytest.raises(ValueError):
        request_email_subscription(settings, factory, "not an address\r\nBcc: x@y", profile.name, NOW)
