"""Secrets kept out of what a person reads: log records and the CLI's error lines.

A library's exception text may quote a secret it was given (python-telegram-bot's `InvalidToken` names the
token; a request URL may carry an API key). The edges install `SecretRedactor` on the root log handlers and
pass every error line through `redact`, with the secret values from the settings. The Telegram channel uses
the same filter on the loggers that see its token. Imports nothing from feedsvc.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "<redacted>"
MIN_LENGTH = 6  # shorter values (a test's "x") would blank out ordinary words


def redact(text: str, secrets: Iterable[str], mask: str = MASK) -> str:
    """`text` with every occurrence of each secret (and of a bot token's part after its colon) masked."""
    for secret in sorted({s for s in secrets if len(s) >= MIN_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, mask)
        _, _, tail = secret.partition(":")  # a Telegram token "123456:AAE..." is sometimes quoted in part
        if len(tail) >= MIN_LENGTH:
            text = text.replace(tail, mask)
    return text


class SecretRedactor(logging.Filter):
    """A handler filter that masks the given secrets in every record it passes, including tracebacks."""

    def __init__(self, secrets: Iterable[str], mask: str = MASK) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if len(s) >= MIN_LENGTH)
        self.mask = mask

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix; logging reports it
            return True
        clean = redact(message, self.secrets, self.mask)
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact(text, self.secrets, self.mask), None
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install(secrets: Iterable[str], logger: logging.Logger | None = None) -> SecretRedactor:
    """Masks `secrets` on every handler of `logger` (the root logger by default); returns the filter."""
    redactor = SecretRedactor(secrets)
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(redactor)
    return redactor
