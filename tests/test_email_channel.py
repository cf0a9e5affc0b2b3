"""The email channel against a real SMTP server on loopback (aiosmtpd, tests/smtp_server.py).

What arrives is parsed back with the standard library (`policy.default`), never compared with the
channel's own output. The `Rendered` digests here are constructed by hand (the email renderer is written
separately): they carry the placeholder links and an inline PNG the renderer's contract promises.
"""

from __future__ import annotations

import html
import re
import struct
import zlib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from io import BytesIO
from urllib.parse import quote

import pytest
from smtp_server import SmtpServer, running_smtp, smtp_server_fixture  # noqa: F401  (the smtp_server fixture)

from feedsvc.deliver.email import EmailChannel, build_message, confirmation_message
from feedsvc.models import LINK_MARK, ConfigError, DeliveryError, Image, Recipient, Rendered
from feedsvc.signing import read_token

SECRET = "test-secret-for-signed-links-0123456789"
BASE = "https://feeds.example.org"
SENDER = "Fëed Sërvice <digest@feeds.example.org>"
NOW = datetime(2026, 6, 2, 7, 30, tzinfo=UTC)
SUBJECT = "Research digest — Tuesday 2 June: ∇θ J(θ) and 🧪 “quotes”"
ARXIV = "arxiv:2406.01234"
LINKY = "url:https://example.org/post?id=7&ref=feed"
READER = Recipient(profile="rl", channel="email", address="reader@example.org", id=42)
URL = re.compile(r"https://feeds\.example\.org/(f|u)/([A-Za-z0-9_\-.]*[A-Za-z0-9_\-])")


def tiny_png() -> bytes:
    """A real 2x1 RGB PNG, encoded by hand (signature, IHDR, IDAT, IEND with their CRCs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = b"\x00" + bytes([255, 0, 0, 0, 0, 255])  # filter byte 0, a red and a blue pixel
    header = struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


def placeholder(vote: str, key: str) -> str:
    return f"{LINK_MARK}fb/{vote}/{quote(key, safe='')}"


def constructed_rendered() -> Rendered:
    """A constructed email rendering with two cards' feedback links, unsubscribe and one equation image."""
    lines = [SUBJECT, "", "1. Offline RL with ∑ rewards — α < β & γ"]
    for key in (ARXIV, LINKY):
        lines.append(" ".join(f"{v}: {placeholder(v, key)}" for v in ("up", "down", "less")))
    lines += ["", f"Unsubscribe: {LINK_MARK}unsubscribe", ".a line starting with a dot survives"]
    cards = "".join(
        "<p>"
        + " ".join(f'<a href="{html.escape(placeholder(v, k))}">{v}</a>' for v in ("up", "down", "less"))
        for k in (ARXIV, LINKY)
    )
    page = (
        f"<html><body><h1>{html.escape(SUBJECT)}</h1>"
        '<p><img src="cid:eq1@feedsvc" alt="J(θ) = E[∑ γ^t r_t]"></p>'
        f'{cards}<p><a href="{LINK_MARK}unsubscribe">Unsubscribe</a></p></body></html>'
    )
    return Rendered(
        channel="email",
        body="\n".join(lines) + "\n",
        mime="text/plain",
        subject=SUBJECT,
        html=page,
        images=(Image(cid="eq1@feedsvc", png=tiny_png(), alt="J(θ) = E[∑ γ^t r_t]"),),
    )


def channel(server: SmtpServer, **kw: object) -> EmailChannel:
    args: dict[str, object] = dict(
        security="none", sender=SENDER, base_url=BASE, secret=SECRET, clock=lambda: NOW, timeout=10.0
    )
    args.update(kw)
    return EmailChannel(server.host, server.port, **args)  # type: ignore[arg-type]


def feedback_links(text: str) -> set[tuple[int, str, str]]:
    found = set()
    for kind, token in URL.findall(text):
        if kind == "f":
            data = read_token(SECRET, "feedback", token)
            found.add((data["r"], data["k"], data["v"]))
    return found


# aiosmtpd warns about AUTH without TLS; here it is loopback on purpose
AUTH_WITHOUT_TLS = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
EXPECTED_LINKS = {(42, key, vote) for key in (ARXIV, LINKY) for vote in ("up", "down", "less")}


# --- the message as it arrives --------------------------------------------------------------------------


def test_digest_arrives_with_headers_parts_and_signed_links(smtp_server: SmtpServer) -> None:
    with channel(smtp_server) as ch:
        message_id = ch.send(constructed_rendered(), READER)

    [got] = smtp_server.received
    assert got.mail_from == "digest@feeds.example.org"
    assert got.rcpt_tos == ("reader@example.org",)
    assert got.raw.isascii()  # 7-bit: no 8BITMIME or SMTPUTF8 needed anywhere
    msg = got.message()

    assert msg["Message-ID"] == message_id
    assert re.fullmatch(r"<[^<>@\s]+@feeds\.example\.org>", message_id)
    assert parsedate_to_datetime(msg["Date"]) == NOW
    assert msg["Subject"] == SUBJECT
    assert msg["From"].addresses[0].display_name == "Fëed Sërvice"
    assert msg["To"] == "reader@example.org"
    assert msg["List-Id"] == "feedsvc rl <rl.feeds.example.org>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert "Precedence" not in msg
    unsubscribe = re.fullmatch(r"<https://feeds\.example\.org/u/([A-Za-z0-9_\-.]+)>", msg["List-Unsubscribe"])
    assert unsubscribe, msg["List-Unsubscribe"]
    assert read_token(SECRET, "unsubscribe", unsubscribe.group(1)) == {"r": 42}

    # multipart/alternative: text/plain first, then multipart/related (the HTML and its image)
    assert msg.get_content_type() == "multipart/alternative"
    plain, related = msg.get_payload()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    page, image = related.get_payload()
    assert page.get_content_type() == "text/html"
    assert image.get_content_type() == "image/png"
    assert image["Content-ID"] == "<eq1@feedsvc>"
    assert image.get_content_disposition() == "inline"
    assert image.get_content() == tiny_png()
    text, markup = plain.get_content(), page.get_content()
    assert 'src="cid:eq1@feedsvc"' in markup

    # every placeholder became a signed link carrying this recipient, the card's key and the vote
    assert LINK_MARK not in text and LINK_MARK not in markup
    assert feedback_links(text) == EXPECTED_LINKS
    assert feedback_links(html.unescape(markup)) == EXPECTED_LINKS
    for body in (text, html.unescape(markup)):
        tokens = [t for kind, t in URL.findall(body) if kind == "u"]
        assert tokens and all(read_token(SECRET, "unsubscribe", t) == {"r": 42} for t in tokens)
    assert "α < β & γ" in text
    assert ".a line starting with a dot survives" in text  # SMTP dot-stuffing undone by the server


def test_the_inline_image_is_a_png_matplotlib_reads() -> None:
    image = pytest.importorskip("matplotlib.image")
    msg = build_message(constructed_rendered(), READER, sender=SENDER, base_url=BASE, secret=SECRET, now=NOW)
    png = next(p for p in msg.walk() if p.get_content_type() == "image/png").get_content()
    assert image.imread(BytesIO(png)).shape[:2] == (1, 2)


def test_long_unsubscribe_url_stays_one_unencoded_line() -> None:
    reader = Recipient(profile="a-long_profile-name", channel="email", address="r@example.org", id=10**12)
    msg = build_message(
        constructed_rendered(),
        reader,
        sender=SENDER,
        base_url=BASE + "/a/long/path/prefix",
        secret=SECRET,
        now=NOW,
    )
    line = next(raw for raw in msg.as_bytes().split(b"\r\n") if raw.lower().startswith(b"list-unsubscribe:"))
    assert len(line) > 78 and b"=?" not in line  # folding would have RFC 2047-encoded it
    token = re.search(rb"/u/([A-Za-z0-9_\-.]+)>", line)
    assert token and read_token(SECRET, "unsubscribe", token.group(1).decode()) == {"r": 10**12}


def test_a_raw_key_followed_by_punctuation_in_text() -> None:
    rendered = Rendered(
        channel="email",
        body=f"Liked it? {LINK_MARK}fb/up/{ARXIV}. Not for me: {LINK_MARK}fb/less/{ARXIV}, thanks\n",
        subject="digest",
    )
    msg = build_message(rendered, READER, sender=SENDER, base_url=BASE, secret=SECRET, now=NOW)
    text = msg.get_content()
    assert feedback_links(text) == {(42, ARXIV, "up"), (42, ARXIV, "less")}
    assert re.search(r"/f/[A-Za-z0-9_\-.]+[A-Za-z0-9_\-]\. Not for me", text)


def test_non_ascii_subject_and_sender_round_trip(smtp_server: SmtpServer) -> None:
    subject = "Ünïcode digest: 数学 ∮ E·dA = Q/ε₀ — " + "long " * 20
    rendered = Rendered(channel="email", body="Grüße, ∑ and 数学\n", subject=subject)
    with channel(smtp_server) as ch:
        ch.send(rendered, READER)
    msg = smtp_server.received[0].message()
    assert msg["Subject"] == subject
    assert msg.get_content().splitlines() == ["Grüße, ∑ and 数学"]  # base64 text keeps canonical CRLF
    assert str(msg["From"]) == SENDER


# --- the connection -------------------------------------------------------------------------------------


def test_one_connection_carries_many_sends(smtp_server: SmtpServer) -> None:
    readers = [Recipient("rl", "email", f"reader{i}@example.org", i) for i in range(5)]
    with channel(smtp_server) as ch:
        ids = [ch.send(constructed_rendered(), r) for r in readers]
    assert smtp_server.connections == 1
    assert [m.rcpt_tos for m in smtp_server.received] == [(r.address,) for r in readers]
    assert {m.connection for m in smtp_server.received} == {1}
    assert len(set(ids)) == 5
    assert [m.message()["Message-ID"] for m in smtp_server.received] == ids


def test_a_dropped_idle_connection_is_reopened_and_the_message_arrives_once(smtp_server: SmtpServer) -> None:
    smtp_server.drop_after = 1  # the server closes each connection after one message
    first, second = (Recipient("rl", "email", f"r{i}@example.org", i) for i in (1, 2))
    with channel(smtp_server) as ch:
        id1 = ch.send(constructed_rendered(), first)
        id2 = ch.send(constructed_rendered(), second)  # finds the connection dead, reopens it
    assert [m.rcpt_tos for m in smtp_server.received] == [(first.address,), (second.address,)]
    assert [m.message()["Message-ID"] for m in smtp_server.received] == [id1, id2]
    assert [m.connection for m in smtp_server.received] == [1, 2]
    assert smtp_server.connections == 2


def test_a_421_on_an_idle_connection_is_retried_once_on_a_new_one(smtp_server: SmtpServer) -> None:
    with channel(smtp_server) as ch:
        ch.send(constructed_rendered(), READER)
        smtp_server.refuse["later@example.org"] = "421 4.4.2 idle too long, closing"
        with pytest.raises(DeliveryError) as failed:
            ch.send(constructed_rendered(), Recipient("rl", "email", "later@example.org", 7))
    # the reused connection got 421: reopened once; the fresh one got 421 too, so it is a retryable error
    assert smtp_server.connections == 2
    assert not failed.value.gone
    assert "421" in str(failed.value)
    assert len(smtp_server.received) == 1


def test_a_reply_lost_after_the_data_is_not_resent(smtp_server: SmtpServer) -> None:
    smtp_server.lose_reply_to = {1}  # the server keeps message 1 but cuts the line before answering
    with channel(smtp_server) as ch:
        with pytest.raises(DeliveryError) as failed:
            ch.send(constructed_rendered(), READER)
        assert len(smtp_server.received) == 1 and smtp_server.connections == 1  # no second copy
        assert "may have been delivered" in str(failed.value)
        assert not failed.value.gone
        assert failed.value.external_id == smtp_server.received[0].message()["Message-ID"]
        ch.send(constructed_rendered(), READER)  # the channel itself recovers on a new connection
    assert len(smtp_server.received) == 2 and smtp_server.connections == 2


def test_no_server_is_a_retryable_error() -> None:
    with running_smtp() as server:
        host, port = server.host, server.port
    ch = EmailChannel(host, port, security="none", sender=SENDER, base_url=BASE, secret=SECRET)
    with pytest.raises(DeliveryError) as failed:
        ch.send(constructed_rendered(), READER)
    assert "cannot connect" in str(failed.value) and not failed.value.gone


# --- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "gone"),
    [
        ("550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown", True),
        ("550 No such user here", True),
        ("551 User not local", True),
        ("553 5.1.3 Bad recipient address syntax", True),
        ("550 5.2.1 The email account that you tried to reach is disabled", True),
        ("550 5.7.1 Message rejected as spam by content filter", False),  # policy: not the reader's fault
        ("552 5.2.2 Mailbox full", False),
        ("450 4.2.1 Mailbox busy, try again", False),
        ("451 4.7.1 Greylisted, please try again later", False),
    ],
)
def test_a_refused_recipient(smtp_server: SmtpServer, reply: str, gone: bool) -> None:
    smtp_server.refuse["gone@example.org"] = reply
    with channel(smtp_server) as ch:
        with pytest.raises(DeliveryError) as failed:
            ch.send(constructed_rendered(), Recipient("rl", "email", "gone@example.org", 5))
        assert failed.value.gone is gone
        assert reply.split()[0] in str(failed.value)
        ch.send(constructed_rendered(), READER)  # the same connection goes on
    assert [m.rcpt_tos for m in smtp_server.received] == [(READER.address,)]
    assert smtp_server.connections == 1


def test_a_temporary_data_refusal_is_retryable(smtp_server: SmtpServer) -> None:
    smtp_server.data_replies = ["451 4.3.0 Local error in processing, try again"]
    with channel(smtp_server) as ch:
        with pytest.raises(DeliveryError) as failed:
            ch.send(constructed_rendered(), READER)
        assert not failed.value.gone and "451" in str(failed.value)
        assert smtp_server.received == []
        ch.send(constructed_rendered(), READER)
    assert len(smtp_server.received) == 1 and smtp_server.connections == 1


# --- authentication and TLS ----------------------------------------------------------------------------


@AUTH_WITHOUT_TLS
def test_auth_with_the_right_password() -> None:
    with running_smtp(auth=("digest-bot", "correct horse battery")) as server:
        with channel(server, username="digest-bot", password="correct horse battery") as ch:
            ch.send(constructed_rendered(), READER)
        assert server.logins == ["digest-bot"]
        assert len(server.received) == 1


@AUTH_WITHOUT_TLS
def test_auth_with_a_wrong_password_fails_clearly_without_the_password() -> None:
    with running_smtp(auth=("digest-bot", "correct horse battery")) as server:
        with (
            channel(server, username="digest-bot", password="Tr0ub4dor&3") as ch,
            pytest.raises(DeliveryError) as failed,
        ):
            ch.send(constructed_rendered(), READER)
        message = str(failed.value)
        assert "login as 'digest-bot' refused" in message and "535" in message
        assert "Tr0ub4dor" not in message and "Tr0ub4dor" not in repr(failed.value.args)
        assert server.received == [] and server.logins == []


@AUTH_WITHOUT_TLS
def test_no_login_where_the_server_requires_one() -> None:
    with running_smtp(auth=("digest-bot", "correct horse battery")) as server:
        with channel(server) as ch, pytest.raises(DeliveryError) as failed:
            ch.send(constructed_rendered(), READER)
        assert "530" in str(failed.value) and not failed.value.gone
        assert server.received == []


def test_starttls_then_auth() -> None:
    with running_smtp(auth=("digest-bot", "correct horse battery"), tls="starttls") as server:
        with channel(
            server,
            security="starttls",
            username="digest-bot",
            password="correct horse battery",
            ssl_context=server.client_context,
        ) as ch:
            ch.send(constructed_rendered(), READER)
            ch.send(constructed_rendered(), READER)
        assert server.logins == ["digest-bot"]
        assert len(server.received) == 2 and server.connections == 1


def test_starttls_refuses_an_untrusted_certificate() -> None:
    with running_smtp(tls="starttls") as server:
        with channel(server, security="starttls") as ch, pytest.raises(DeliveryError) as failed:
            ch.send(constructed_rendered(), READER)  # the default context does not trust a self-signed cert
        assert "TLS failed" in str(failed.value)
        assert server.received == []


def test_starttls_is_required_when_asked_for(smtp_server: SmtpServer) -> None:
    with channel(smtp_server, security="starttls") as ch, pytest.raises(DeliveryError) as failed:
        ch.send(constructed_rendered(), READER)
    assert "does not offer STARTTLS" in str(failed.value)
    assert smtp_server.received == []


def test_implicit_tls() -> None:
    with running_smtp(tls="implicit") as server:
        with channel(server, security="tls", ssl_context=server.client_context) as ch:
            ch.send(constructed_rendered(), READER)
        assert len(server.received) == 1


# --- refused before anything is sent --------------------------------------------------------------------


@pytest.mark.parametrize("subject", ["Digest\r\nBcc: victim@example.org", "Digest\nBcc: victim@example.org"])
def test_a_line_break_in_the_subject_is_refused(smtp_server: SmtpServer, subject: str) -> None:
    rendered = Rendered(channel="email", body="hello\n", subject=subject)
    with channel(smtp_server) as ch, pytest.raises(DeliveryError) as failed:
        ch.send(rendered, READER)
    assert "header injection" in str(failed.value)
    assert smtp_server.received == [] and smtp_server.connections == 0


@pytest.mark.parametrize(
    "address", ["reader@example.org\r\nBcc: victim@example.org", "reader@example.org\nX: y", "not an address"]
)
def test_an_unusable_address_is_refused_as_gone(smtp_server: SmtpServer, address: str) -> None:
    with channel(smtp_server) as ch, pytest.raises(DeliveryError) as failed:
        ch.send(constructed_rendered(), Recipient("rl", "email", address, 3))
    assert failed.value.gone
    assert smtp_server.received == []


def test_an_idna_domain_is_encoded() -> None:
    msg = build_message(
        constructed_rendered(),
        Recipient("rl", "email", "leser@bücher.example", 1),
        sender=SENDER,
        base_url=BASE,
        secret=SECRET,
        now=NOW,
    )
    assert msg["To"] == "leser@xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"secret": ""}, "FEEDSVC_SECRET_KEY"),
        ({"secret": "short"}, "FEEDSVC_SECRET_KEY"),
        ({"secret": "x" * 31}, "at least 32 characters"),  # the documented minimum, enforced
        ({"sender": "feedsvc <a@b.org>\r\nBcc: x@y.org"}, "FEEDSVC_MAIL_FROM"),
        ({"sender": "nobody"}, "FEEDSVC_MAIL_FROM"),
        ({"base_url": "feeds.example.org"}, "FEEDSVC_BASE_URL"),
        ({"security": "ssl"}, "FEEDSVC_SMTP_SECURITY"),
        ({"username": "me"}, "FEEDSVC_SMTP_PASSWORD"),
    ],
)
def test_bad_settings_fail_at_construction(kw: dict[str, str], needle: str) -> None:
    args: dict[str, object] = dict(security="none", sender=SENDER, base_url=BASE, secret=SECRET)
    args.update(kw)
    with pytest.raises(ConfigError, match=needle):
        EmailChannel("127.0.0.1", 25, **args)  # type: ignore[arg-type]


def test_a_password_is_never_sent_in_clear_to_a_remote_host() -> None:
    with pytest.raises(ConfigError, match="unencrypted"):
        EmailChannel(
            "smtp.example.org", 25, security="none", username="u", password="p",
            sender=SENDER, base_url=BASE, secret=SECRET,
        )  # fmt: skip


# --- progress and confirmation --------------------------------------------------------------------------


def test_progress_is_reported_and_a_sent_mail_is_not_sent_again(smtp_server: SmtpServer) -> None:
    progress: list[tuple[int, str]] = []
    with channel(smtp_server) as ch:
        message_id = ch.send(constructed_rendered(), READER, on_part=lambda n, ext: progress.append((n, ext)))
        assert ch.send(constructed_rendered(), READER, start=1) == ""
    assert progress == [(1, message_id)]
    assert len(smtp_server.received) == 1


def test_confirmation_mail(smtp_server: SmtpServer) -> None:
    confirm = "https://feeds.example.org/confirm/abc.DEF-123?x=1&y=<2>"
    msg = confirmation_message("new.reader@example.org", "rl", confirm, sender=SENDER, now=NOW)
    assert isinstance(msg, EmailMessage)
    with channel(smtp_server) as ch:
        message_id = ch.send_message(msg)
    [got] = smtp_server.received
    assert got.rcpt_tos == ("new.reader@example.org",)
    received = got.message()
    assert received["Message-ID"] == message_id
    assert "rl" in received["Subject"] and "List-Unsubscribe" not in received
    plain = received.get_body(("plain",))
    page = received.get_body(("html",))
    assert plain is not None and page is not None
    assert confirm in plain.get_content()
    assert f'href="{html.escape(confirm, quote=True)}"' in page.get_content()
    assert "<2>" not in page.get_content()
