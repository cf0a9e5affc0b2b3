"""Subscribing, as the CLI, the web form and the bot share it: a one-time code a Telegram chat redeems
with `/start CODE`, and email's double opt-in (a pending subscription and the mailed confirmation link).
The profile a subscription names must be in the store first: `sync_profiles` mirrors the profile file.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from contextlib import ExitStack, closing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from feedsvc import signing
from feedsvc.config import Settings
from feedsvc.models import ConfigError, Profile
from feedsvc.pipeline.publish import email_channel, signing_secret
from feedsvc.store import delivery, queries
from feedsvc.store.db import session_scope

if TYPE_CHECKING:
    from feedsvc.deliver.email import EmailChannel

TELEGRAM_CODE_TTL = timedelta(hours=24)
EMAIL_CONFIRM_TTL = timedelta(days=7)
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


def request_email_subscription(
    settings: Settings,
    factory: sessionmaker[Session],
    address: str,
    profile: str,
    now: datetime | None = None,
    *,
    channel: EmailChannel | None = None,
) -> str:
    """Double opt-in, step one: store a pending subscription and mail its confirmation link.

    Returns the confirmation URL. Raises ConfigError when email is not configured, ValueError for a bad
    address, LookupError for an unknown profile.
    """
    now = now or datetime.now(UTC)
    address = valid_address(address)
    secret = signing_secret(settings, "email subscription")
    if channel is None and not settings.smtp_host:
        raise ConfigError(
            "email is not configured: set FEEDSVC_SMTP_HOST (and the other FEEDSVC_SMTP_* settings)"
        )
    code = secrets.token_urlsafe(16)
    with session_scope(factory) as session:
        delivery.create_subscription(session, profile, "email", code, now, EMAIL_CONFIRM_TTL, address=address)
    url = signing.link(settings.base_url, secret, "confirm", {"c": code})
    from feedsvc.deliver.email import confirmation_message

    message = confirmation_message(address, profile, url, sender=settings.mail_from, now=now)
    with ExitStack() as stack:
        email = channel if channel is not None else stack.enter_context(closing(email_channel(settings)))
        email.send_message(message)
    return url
