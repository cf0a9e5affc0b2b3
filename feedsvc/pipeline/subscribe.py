"""Subscribing, as the CLI, the web form and the bot share it: a one-time code a Telegram chat redeems
with `/start CODE`, and email's double opt-in (a pending subscription and the mailed confirmation link).
The profile a subscription names must be in the store first: `sync_profiles` mirrors the profile file.

An email request only writes to the store: the confirmation mail waits in the outbox for the publish
run (`feedsvc.pipeline.publish.send_confirmations`), so no SMTP server can stall the caller. The rate
limits count the recorded requests (the `confirmations` rows), so every web worker agrees.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from feedsvc import signing
from feedsvc.config import Settings
from feedsvc.models import ConfigError, Profile
from feedsvc.pipeline.publish import signing_secret
from feedsvc.store import delivery, queries
from feedsvc.store.db import session_scope

TELEGRAM_CODE_TTL = timedelta(hours=24)
EMAIL_CONFIRM_TTL = timedelta(days=7)
RESEND_AFTER = timedelta(minutes=15)  # a repeated request mails the same link again after this
ADDRESS_LIMIT = (3, timedelta(days=1))  # confirmation mails to one address, whatever the profile
CLIENT_LIMIT = (10, timedelta(minutes=10))  # requests from one client (the socket peer)
_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")


def sync_profiles(
    factory: sessionmaker[Session], profiles: Sequence[Profile], now: datetime | None = None
) -> None:
    """Mirror `profiles` from the profile file into the store, so subscriptions can name them."""
    with session_scope(factory) as session:
        queries.sync_profiles(session, profiles, now or datetime.now(UTC))


def new_telegram_code(factory: sessionmaker[Session], profile: str, now: datetime | None = None) -> str:
    """A one-time code a chat sends as `/start CODE` to subscribe to `profile` (valid 24 hours)."""
    now = now or datetime.now(UTC)
    code = secrets.token_urlsafe(12)
    with session_scope(factory) as session:
        delivery.create_subscription(session, profile, "telegram", code, now, TELEGRAM_CODE_TTL)
    return code


def valid_address(address: str) -> str:
    """The address, trimmed, if it looks like a deliverable mailbox; ValueError otherwise."""
    value = address.strip()
    if len(value) > 254 or not _ADDRESS.match(value):
        raise ValueError(f"{address!r} is not an email address")
    return value


class TooMany(Exception):
    """A request over a rate limit: nothing was recorded or sent; `retry_after` seconds until it may be."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, max(1, retry_after)


def request_email_subscription(
    settings: Settings,
    factory: sessionmaker[Session],
    address: str,
    profile: str,
    now: datetime | None = None,
    *,
    client: str = "",
) -> bool:
    """Double opt-in, step one: record the request, and a confirmation mail for the outbox to send.

    Repeats are idempotent: one pending subscription per address and profile, and while its mail is unsent
    or younger than RESEND_AFTER a repeat queues nothing. Returns whether a mail was queued. Raises
    TooMany over `client`'s limit (CLIENT_LIMIT; "" is not limited) or the address's (ADDRESS_LIMIT),
    ConfigError when email is not configured, ValueError for a bad address, LookupError for an unknown
    profile.
    """
    now = now or datetime.now(UTC)
    address = valid_address(address)
    secret = signing_secret(settings, "email subscription")
    if not settings.smtp_host:
        raise ConfigError(
            "email is not configured: set FEEDSVC_SMTP_HOST (and the other FEEDSVC_SMTP_* settings)"
        )
    with session_scope(factory) as session:
        if client:
            _check(delivery.requests_by(session, client, now - CLIENT_LIMIT[1]), CLIENT_LIMIT, now, "client")
        sid = delivery.pending_email_subscription(session, profile, address, now)
        if sid is None:  # created with a throwaway code, then given the one the outbox can derive again
            sid = delivery.create_subscription(
                session, profile, "email", secrets.token_urlsafe(16), now, EMAIL_CONFIRM_TTL, address=address
            )
            delivery.set_code(session, sid, signing.confirmation_code(secret, sid))
        last, unsent = delivery.mail_queued(session, sid)
        mail = not unsent and (last is None or now - last >= RESEND_AFTER)
        if mail:
            _check(delivery.mails_to(session, address, now - ADDRESS_LIMIT[1]), ADDRESS_LIMIT, now, "address")
            delivery.extend_subscription(session, sid, now + EMAIL_CONFIRM_TTL)
        delivery.record_confirmation(session, sid, client, now, mail=mail)
    return mail


def _check(times: Sequence[datetime], limit: tuple[int, timedelta], now: datetime, who: str) -> None:
    """Raise TooMany when `times` (oldest first, inside the window) already hold `limit`'s count."""
    count, window = limit
    if len(times) >= count:
        wait = times[len(times) - count] + window - now
        raise TooMany(f"too many subscription requests for this {who}", int(wait.total_seconds()))
