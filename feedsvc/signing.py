"""Signed links: feedback, unsubscribe, subscription confirmation and delivery settings, as URLs on the
web archive.

A token is an itsdangerous signature over a small JSON payload, salted per purpose so a feedback token
can never be replayed as an unsubscribe token. Shared by the email channel (which writes the links) and
the web archive and bot (which read them). Imports only `feedsvc.models`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from feedsvc.models import FeedsvcError

Purpose = Literal["feedback", "unsubscribe", "confirm", "settings"]
PATHS: dict[Purpose, str] = {"feedback": "f", "unsubscribe": "u", "confirm": "confirm", "settings": "s"}
MIN_SECRET = 32  # as documented: a secret of 32+ characters (e.g. secrets.token_urlsafe(32))


class BadToken(FeedsvcError):
    """A link's token is forged, damaged, for another purpose, or expired."""


def _serializer(secret: str, purpose: Purpose) -> URLSafeTimedSerializer:
    if len(secret) < MIN_SECRET:
        raise FeedsvcError(
            f"FEEDSVC_SECRET_KEY must be set to at least {MIN_SECRET} characters to sign links"
        )
    return URLSafeTimedSerializer(secret, salt=f"feedsvc.{purpose}")


def make_token(secret: str, purpose: Purpose, data: dict[str, Any]) -> str:
    return str(_serializer(secret, purpose).dumps(data))


def read_token(secret: str, purpose: Purpose, token: str, max_age: float | None = None) -> dict[str, Any]:
    """The payload of a valid token; `BadToken` with a reader-facing reason otherwise."""
    try:
        data = _serializer(secret, purpose).loads(token, max_age=max_age)
    except SignatureExpired as e:
        raise BadToken("this link has expired") from e
    except BadSignature as e:
        raise BadToken("this link is not valid (damaged or not ours)") from e
    if not isinstance(data, dict):
        raise BadToken("this link is not valid (damaged or not ours)")
    return data


def link(base_url: str, secret: str, purpose: Purpose, data: dict[str, Any]) -> str:
    """The URL of a signed action on the web archive, e.g. `https://host/u/<token>`."""
    return f"{base_url.rstrip('/')}/{PATHS[purpose]}/{make_token(secret, purpose, data)}"


def confirmation_code(secret: str, subscription_id: int) -> str:
    """The code of an email subscription's confirmation link, derived from its row id, so the outbox can
    mail the link later without the code ever being stored (the store keeps its hash)."""
    digest = hmac.new(secret.encode(), f"feedsvc.confirm:{subscription_id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]
