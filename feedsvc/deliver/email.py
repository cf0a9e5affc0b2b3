"""The email channel: a rendered digest as a MIME message, sent over one reused SMTP connection.

`build_message` turns an email `Rendered` into an `EmailMessage` for one recipient: the placeholder
links (`feedsvc-link:fb/<vote>/<key>`, `feedsvc-link:unsubscribe`) become signed URLs, the plain text
comes first, then the HTML with its inline PNG equations (multipart/related, `cid:` references). In a
placeholder the item key is percent-encoded (`urllib.parse.quote(key, safe="")`); keys without `%` or
URL delimiters may also appear raw. Placeholders of any other form are left alone, never signed.

Headers: From, To, Subject, Date, Message-ID, List-Id (RFC 2919), List-Unsubscribe with the signed HTTPS
URL and List-Unsubscribe-Post (RFC 8058 one-click), and `Auto-Submitted: auto-generated`: RFC 3834 asks
for it on messages made by periodic automatic processes, and its one standard effect is that vacation
and other auto-responders stay silent. No `Precedence: bulk`: never standardised, RFC 2076 calls it
discouraged, and the List-* headers already say what it tried to say. A CR or LF in a header value, an
address that is not a plain ASCII (or IDNA) address, fails the build: no header injection. The message
is 7-bit (quoted-printable or base64 bodies, RFC 2047 headers), so no server extension is needed; bare
CR and LF never reach the wire (no SMTP smuggling).

`EmailChannel` keeps one smtplib connection open across sends, under a lock. Retries: a connection that
sat idle and died (disconnect, reset, or 421 before the message went out) is reopened and the message
sent once more, immediately; a failure on a fresh connection is a retryable `DeliveryError`. Once the
message's final dot has been written the server may have accepted it, so a connection lost before its
reply is never retried here: the error says the message may have been delivered (a later retry by the
outbox can then duplicate it). Recipient refusals 550/551/553 (or enhanced codes 5.1.x, 5.2.1) are
`gone`; policy refusals (5.7.x) are not. Imports only `feedsvc.models`, `feedsvc.retry` and
`feedsvc.signing`.
"""

from __future__ import annotations

import contextlib
import html
import ipaddress
import re
import smtplib
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import SMTP, EmailPolicy
from email.utils import format_datetime, make_msgid
from functools import cache
from types import TracebackType
from typing import Literal
from urllib.parse import unquote, urlsplit

from feedsvc.models import LINK_MARK, VOTES, ConfigError, DeliveryError, PartSent, Recipient, Rendered
from feedsvc.retry import GaveUp, RetryPolicy, Transient
from feedsvc.signing import MIN_SECRET, link

Security = Literal["starttls", "tls", "none"]
_PLACEHOLDER = re.compile(
    re.escape(LINK_MARK)
    + rf"(?:fb/(?P<vote>{'|'.join(VOTES)})/(?P<key>[^\s\"'<>()\[\]]+)|(?P<unsub>unsubscribe)\b"
    + r"|(?P<settings>settings)\b)"
)
_TRAILING = ".,;:!?"  # sentence punctuation after a placeholder in plain text is not part of the key
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
_GONE_ENHANCED = {(1, 0), (1, 1), (1, 2), (1, 3), (1, 6), (1, 10), (2, 1)}
_GONE_CODES = {550, 551, 553}
_DROPS = (smtplib.SMTPServerDisconnected, ConnectionError, ssl.SSLZeroReturnError, ssl.SSLEOFError)


# --- the message ----------------------------------------------------------------------------------------


class _AsIsHeader(UnstructuredHeader):
    """A URL header written on one line as given: folding would RFC 2047-encode a long URL and break it."""

    def fold(self, *, policy: EmailPolicy) -> str:  # type: ignore[override]
        line = f"{self.name}: {self}"
        if not line.isascii() or len(line) > 998:
            raise ValueError(f"{self.name} must be ASCII and under 998 characters")
        return line + policy.linesep


@cache
def message_policy() -> EmailPolicy:
    """`email.policy.SMTP` (CRLF), 7-bit bodies, List-Unsubscribe never folded."""
    registry = HeaderRegistry()
    registry.map_to_type("list-unsubscribe", _AsIsHeader)
    registry.map_to_type("list-unsubscribe-post", _AsIsHeader)
    return SMTP.clone(cte_type="7bit", header_factory=registry)


def _no_breaks(field: str, value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise DeliveryError(f"email {field} contains a line break: refused (header injection): {value!r}")
    return value


def _address(raw: str, field: str) -> Address:
    """A bare address (`a@b.org`) as an `Address`, domain IDNA-encoded; DeliveryError(gone) if unusable."""
    if any(c in raw for c in "\r\n\0"):
        raise DeliveryError(
            f"email {field} contains a line break: refused (header injection): {raw!r}", gone=True
        )
    local, at, domain = raw.strip().rpartition("@")
    try:
        if not at or not local or not domain:
            raise ValueError("no local part or domain")
        domain = domain.encode("idna").decode("ascii")
        if not local.isascii():
            raise ValueError("a non-ASCII local part needs SMTPUTF8, which feedsvc does not use")
        addr = Address(addr_spec=f"{local}@{domain}")
    except (ValueError, UnicodeError, IndexError, HeaderParseError) as e:
        raise DeliveryError(f"email {field} {raw!r} is not a usable address: {e}", gone=True) from None
    if any(c.isspace() for c in addr.addr_spec):
        raise DeliveryError(f"email {field} {raw!r} is not a usable address", gone=True)
    return addr


def parse_sender(sender: str) -> Address:
    """`feedsvc <feedsvc@example.org>` or `feedsvc@example.org` as an `Address`; ConfigError if not one."""
    if any(c in sender for c in "\r\n\0"):
        raise ConfigError(f"FEEDSVC_MAIL_FROM contains a line break: {sender!r}")
    msg = EmailMessage(policy=message_policy())
    try:
        msg["From"] = sender
        addresses = msg["From"].addresses
    except (ValueError, IndexError) as e:
        raise ConfigError(f"FEEDSVC_MAIL_FROM is not an address: {sender!r} ({e})") from None
    if len(addresses) != 1 or not addresses[0].domain or not addresses[0].username:
        raise ConfigError(
            f"FEEDSVC_MAIL_FROM must be one address like 'feedsvc <me@example.org>': {sender!r}"
        )
    if not addresses[0].addr_spec.isascii():
        raise ConfigError(f"FEEDSVC_MAIL_FROM must be an ASCII address: {sender!r}")
    return addresses[0]


def _signed(rendered_text: str, recipient: Recipient, base_url: str, secret: str, *, in_html: bool) -> str:
    def replace(m: re.Match[str]) -> str:
        if m.group("unsub"):
            url = link(base_url, secret, "unsubscribe", {"r": recipient.id})
            tail = ""
        elif m.group("settings"):
            url = link(base_url, secret, "settings", {"r": recipient.id})
            tail = ""
        else:
            raw = m.group("key")
            key = raw.rstrip(_TRAILING)
            tail = raw[len(key) :]
            if in_html:
                key = html.unescape(key)
            url = link(base_url, secret, "feedback", {"r": recipient.id, "k": unquote(key), "v": m["vote"]})
        return (html.escape(url, quote=True) if in_html else url) + tail

    return _PLACEHOLDER.sub(replace, rendered_text)


def _base_headers(
    msg: EmailMessage, *, sender: str, to: Address, subject: str, now: datetime, domain: str
) -> None:
    if now.tzinfo is None:
        raise ValueError("the Date of an email needs an aware datetime")
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = _no_breaks("subject", subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Auto-Submitted"] = "auto-generated"


def build_message(
    rendered: Rendered,
    recipient: Recipient,
    *,
    sender: str,
    base_url: str,
    secret: str,
    domain: str | None = None,
    now: datetime,
) -> EmailMessage:
    """The digest mail for one recipient. `domain` (default: the sender's) names Message-ID and List-Id.

    Raises DeliveryError for an unusable recipient address (gone) or a header value with a line break.
    """
    if rendered.channel != "email" or not rendered.subject:
        raise ValueError(
            f"not an email rendering (channel {rendered.channel!r}, subject {rendered.subject!r})"
        )
    from_addr = parse_sender(sender)
    to = _address(recipient.address, "recipient")
    domain = domain or from_addr.domain
    msg = EmailMessage(policy=message_policy())
    _base_headers(msg, sender=sender, to=to, subject=rendered.subject, now=now, domain=domain)
    msg["List-Id"] = f"feedsvc {recipient.profile} <{recipient.profile}.{domain}>"
    unsubscribe = link(base_url, secret, "unsubscribe", {"r": recipient.id})
    msg["List-Unsubscribe"] = f"<{unsubscribe}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

    msg.set_content(_signed(rendered.body, recipient, base_url, secret, in_html=False))
    if rendered.html:
        msg.add_alternative(_signed(rendered.html, recipient, base_url, secret, in_html=True), subtype="html")
        html_part = msg.get_payload()[1]
        for image in rendered.images:
            if not image.cid or any(c.isspace() or c in "<>\0" for c in image.cid):
                raise ValueError(f"not a usable Content-ID: {image.cid!r}")
            html_part.add_related(image.png, "image", "png", cid=f"<{image.cid}>", disposition="inline")
    return msg


def confirmation_message(
    address: str, profile: str, confirm_url: str, *, sender: str, now: datetime
) -> EmailMessage:
    """The double opt-in mail: plain text and a simple HTML alternative with the confirmation link."""
    if urlsplit(confirm_url).scheme not in ("http", "https"):
        raise ValueError(f"the confirmation link must be an http(s) URL: {confirm_url!r}")
    _no_breaks("confirmation link", confirm_url)
    from_addr = parse_sender(sender)
    to = _address(address, "address")
    msg = EmailMessage(policy=message_policy())
    _base_headers(
        msg,
        sender=sender,
        to=to,
        subject=f"Confirm your subscription to the feedsvc digest “{profile}”",
        now=now,
        domain=from_addr.domain,
    )
    text = (
        f"Someone, hopefully you, asked to receive the research digest “{profile}” at {to.addr_spec}.\n\n"
        f"To confirm, open this link:\n\n{confirm_url}\n\n"
        "If it was not you, ignore this message: nothing will be sent unless the link is opened.\n"
    )
    msg.set_content(text)
    e = html.escape
    msg.add_alternative(
        "<!doctype html>\n<html><body>\n"
        f"<p>Someone, hopefully you, asked to receive the research digest “{e(profile)}” at "
        f"{e(to.addr_spec)}.</p>\n"
        f'<p><a href="{e(confirm_url, quote=True)}">Confirm the subscription</a></p>\n'
        "<p>If it was not you, ignore this message: nothing will be sent unless the link is opened.</p>\n"
        "</body></html>\n",
        subtype="html",
    )
    return msg


def wire_bytes(msg: EmailMessage) -> bytes:
    """The message as DATA: CRLF line ends only (a bare CR or LF becomes CRLF), 7-bit."""
    raw = msg.as_bytes(policy=message_policy())
    raw = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    if not raw.isascii():
        raise ValueError("the message is not 7-bit; build it with message_policy()")
    return raw


# --- the channel ----------------------------------------------------------------------------------------


# a dead idle connection is reopened and the message sent once more, at once (the one retry policy, no wait)
_RECONNECT = RetryPolicy(attempts=2, max_wait=0.0, jitter=0.0)


class _Stale(Exception):
    """The connection died before the message's final dot was written: the server cannot have it."""


def _text(resp: bytes | str) -> str:
    s = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return " ".join(s.split())


def _is_gone(code: int, reply: str) -> bool:
    m = _ENHANCED.match(reply)
    if m:
        return m.group(1) == "5" and (int(m.group(2)), int(m.group(3))) in _GONE_ENHANCED
    return code in _GONE_CODES


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmailChannel:
    """Sends digests and confirmations over SMTP, one connection reused across sends (thread-safe)."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security,
        username: str = "",
        password: str = "",
        timeout: float = 30.0,
        sender: str,
        base_url: str,
        secret: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not host:
            raise ConfigError("FEEDSVC_SMTP_HOST is empty: email cannot be sent")
        if security not in ("starttls", "tls", "none"):
            raise ConfigError(f"FEEDSVC_SMTP_SECURITY must be starttls, tls or none, not {security!r}")
        if len(secret) < MIN_SECRET:
            raise ConfigError(
                f"FEEDSVC_SECRET_KEY must be set (at least {MIN_SECRET} characters): "
                "email carries signed feedback and unsubscribe links"
            )
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise ConfigError(f"FEEDSVC_BASE_URL must be an http(s) URL for the links in email: {base_url!r}")
        if username and not password:
            raise ConfigError("FEEDSVC_SMTP_USERNAME is set but FEEDSVC_SMTP_PASSWORD is empty")
        if username and security == "none" and not _loopback(host):
            raise ConfigError(
                f"refusing to send the SMTP password to {host} unencrypted: "
                "set FEEDSVC_SMTP_SECURITY to starttls or tls"
            )
        self.sender = sender
        self.envelope_from = parse_sender(sender).addr_spec
        self.host, self.port, self.security, self.timeout = host, port, security, timeout
        self.base_url, self.clock = base_url, clock
        self._username, self._password, self._secret = username, password, secret
        self._ssl = ssl_context
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return f"SMTP {self.host}:{self.port}"

    # -- public ----------------------------------------------------------------------------------------

    def send(
        self, rendered: Rendered, recipient: Recipient, *, start: int = 0, on_part: PartSent | None = None
    ) -> str:
        """Send the digest to one recipient; return its Message-ID. An email is one part: with `start` >= 1
        it went out already and nothing is sent ("" is returned)."""
        if start >= 1:
            return ""
        msg = build_message(
            rendered,
            recipient,
            sender=self.sender,
            base_url=self.base_url,
            secret=self._secret,
            now=self.clock(),
        )
        message_id = self.send_message(msg)
        if on_part is not None:
            on_part(1, message_id)
        return message_id

    def send_message(self, msg: EmailMessage) -> str:
        """Send a built message (e.g. `confirmation_message`) to its one To address; return its Message-ID."""
        to = msg["To"].addresses if msg["To"] is not None else ()
        if len(to) != 1:
            raise ValueError("send_message sends to exactly one To address")
        message_id = str(msg["Message-ID"] or "")
        self._deliver(wire_bytes(msg), to[0].addr_spec, message_id)
        return message_id

    def close(self) -> None:
        with self._lock:
            self._discard(polite=True)

    def __enter__(self) -> EmailChannel:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- connection ------------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _fail(self, what: str, *, gone: bool = False, external_id: str = "") -> DeliveryError:
        return DeliveryError(self._scrub(f"{self.where}: {what}"), gone=gone, external_id=external_id)

    def _context(self) -> ssl.SSLContext:
        return self._ssl or ssl.create_default_context()

    def _open(self) -> smtplib.SMTP:
        conn: smtplib.SMTP | None = None
        try:
            if self.security == "tls":
                conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context())
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            conn.ehlo_or_helo_if_needed()
            if self.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise self._fail(
                        "the server does not offer STARTTLS; not sending in clear text "
                        "(FEEDSVC_SMTP_SECURITY=none is for a local relay)"
                    )
                conn.starttls(context=self._context())
                conn.ehlo()
            if self._username:
                conn.login(self._username, self._password)
            return conn
        except DeliveryError:
            self._close_quietly(conn)
            raise
        except smtplib.SMTPAuthenticationError as e:
            self._close_quietly(conn)
            raise self._fail(
                f"login as {self._username!r} refused ({e.smtp_code} {_text(e.smtp_error)}): "
                "check FEEDSVC_SMTP_USERNAME and FEEDSVC_SMTP_PASSWORD"
            ) from None
        except smtplib.SMTPNotSupportedError as e:
            self._close_quietly(conn)
            raise self._fail(
                f"{e} (login needs AUTH; with STARTTLS most servers offer it only after)"
            ) from None
        except smtplib.SMTPResponseException as e:
            self._close_quietly(conn)
            raise self._fail(f"refused the connection: {e.smtp_code} {_text(e.smtp_error)}") from None
        except (smtplib.SMTPException, ssl.SSLError, ssl.CertificateError, OSError) as e:
            self._close_quietly(conn)
            kind = "TLS failed" if isinstance(e, ssl.SSLError | ssl.CertificateError) else "cannot connect"
            raise self._fail(f"{kind}: {type(e).__name__}: {e}") from None

    @staticmethod
    def _close_quietly(conn: smtplib.SMTP | None) -> None:
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def _discard(self, *, polite: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if polite:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.quit()
        self._close_quietly(conn)

    # -- one message -----------------------------------------------------------------------------------

    def _deliver(self, payload: bytes, rcpt: str, message_id: str) -> None:
        with self._lock:
            try:
                _RECONNECT.call("SMTP send", lambda: self._send_once(payload, rcpt, message_id))
            except GaveUp as e:  # the fresh connection died too
                cause = f"connection closed before the message was sent ({e.cause}); retry later"
                raise self._fail(cause) from None

    def _send_once(self, payload: bytes, rcpt: str, message_id: str) -> None:
        """One try; `Transient` when an idle, reused connection turned out dead (send again, freshly)."""
        reused = self._conn is not None
        if self._conn is None:
            self._conn = self._open()
        try:
            self._transaction(self._conn, payload, rcpt, message_id)
        except _Stale as e:
            self._discard()
            if reused:
                raise Transient(str(e)) from None
            raise self._fail(f"connection closed before the message was sent ({e}); retry later") from None
        except BaseException:
            if self._conn is not None and not self._usable(self._conn):
                self._discard()
            raise

    @staticmethod
    def _usable(conn: smtplib.SMTP) -> bool:
        return getattr(conn, "sock", None) is not None

    def _transaction(self, conn: smtplib.SMTP, payload: bytes, rcpt: str, message_id: str) -> None:
        # Before the final dot: any drop is _Stale (safe to send again). After it: never resend here.
        try:
            code, resp = conn.mail(self.envelope_from)
            if code != 250:
                self._refused(conn, "MAIL FROM", code, resp, rcpt)
            code, resp = conn.rcpt(rcpt)
            if code not in (250, 251):
                self._refused(conn, "RCPT TO", code, resp, rcpt, recipient_reply=True)
            code, resp = conn.docmd("DATA")
            if code != 354:
                self._refused(conn, "DATA", code, resp, rcpt)
            body = re.sub(rb"(?m)^\.", b"..", payload)
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            conn.send(body + b".\r\n")
        except _DROPS as e:
            raise _Stale(f"{type(e).__name__}: {e}") from None
        except OSError as e:  # a time-out or another socket error: the connection is in an unknown state
            self._discard()
            raise self._fail(f"{type(e).__name__} before the message was sent: {e}; retry later") from None
        try:
            code, resp = conn.getreply()
        except (smtplib.SMTPException, OSError) as e:
            self._discard()
            raise self._fail(
                f"connection lost after the message was sent, before the server confirmed it ({e}): "
                f"it may have been delivered; a retry may duplicate {message_id}",
                external_id=message_id,
            ) from None
        if code != 250:
            if code == 421:
                self._discard()
            raise self._fail(f"refused the message to {rcpt}: {code} {_text(resp)}")

    def _refused(
        self,
        conn: smtplib.SMTP,
        stage: str,
        code: int,
        resp: bytes,
        rcpt: str,
        *,
        recipient_reply: bool = False,
    ) -> None:
        reply = _text(resp)
        if code == 421:  # the server is closing this connection (often: it had timed out while idle)
            raise _Stale(f"421 {reply}")
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            self._discard()  # the refusal below still stands; the next send opens a new connection
        gone = recipient_reply and 500 <= code < 600 and _is_gone(code, reply)
        what = "refused the recipient" if recipient_reply else f"refused {stage} for"
        raise self._fail(f"{what} {rcpt}: {code} {reply}", gone=gone)
