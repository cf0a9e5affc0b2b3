"""The Telegram channel: sends a rendered digest's parts to a chat through python-telegram-bot's `Bot`.

`TelegramChannel(token, base_url=...)` owns one asyncio event loop (an `asyncio.Runner`) for its
lifetime and exposes PTB's async `Bot` synchronously; call `close()` when done. Threads may share it
(calls are serialised); inside a running event loop (a PTB handler) call it via `asyncio.to_thread`.

Each part goes out in order with parse mode HTML and link previews off; under the last part of each
card sits an inline keyboard: a button per vote (`feedsvc.models.VOTES`: 👍, 👎, "More like this",
"Less like this"), and "∑ Equation image" when the card has a key equation (`Rendered.equations`).
Callback data (at most 64 bytes):
`f:<recipient id>:<u|d|m|l>:<item key>` for a vote and `e:<recipient id>:<item key>` for the equation;
a key that would not fit is replaced by `h` + the first 16 hex digits of its SHA-1 (`key_hash`).

Rate limits: at most one message per `chat_interval` seconds per chat and `global_rate` per second overall
(spacing, with the injected clock and sleep). Telegram's answers become `DeliveryError`s: RetryAfter is
waited out (if the waits stay within `max_wait`, else `retry_after` is set); Forbidden (blocked, kicked,
deactivated) and "chat not found" set `gone`; network errors and time-outs are retried with back-off
(`feedsvc.retry`'s policy, `retries` more tries), then raised. `sent_parts` on the error says how many
parts arrived (counting `start`), so a retry resumes with `start=sent_parts` and no part is sent twice.
The token never reaches a log line or an error message: a filter on PTB's and httpx's loggers replaces it
while the channel is open.

Imports only `feedsvc.models`, `feedsvc.identity`, `feedsvc.retry`, `feedsvc.redaction` and
python-telegram-bot (never `feedsvc.render`: what the channel needs besides the parts, the renderer puts in
the `Rendered`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest

from feedsvc.identity import ItemKey
from feedsvc.models import VOTES, ConfigError, DeliveryError, PartSent, Recipient, Rendered
from feedsvc.redaction import SecretRedactor, redact
from feedsvc.retry import GaveUp, RetryPolicy, Transient

CALLBACK_LIMIT = 64  # bytes, Telegram's limit for callback_data
CAPTION_LIMIT = 1024  # UTF-16 units
Action = Literal["up", "down", "more", "less", "equation"]  # a vote's name, or the equation button
_CODES = {v.code: v.name for v in VOTES.values()}
_VOTE = re.compile(rf"f:(\d+):([{''.join(_CODES)}]):(.+)", re.S)
_EQUATION = re.compile(r"e:(\d+):(.+)", re.S)
_HASH = re.compile(r"h[0-9a-f]{16}")
LOGGERS = ("httpx", "telegram.Bot", "telegram.request.BaseRequest", "telegram.request.HTTPXRequest")
T = TypeVar("T")


# --- callback data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Callback:
    """A tap on one of our buttons. Exactly one of `key` and `key_hash` is set (`key_hash` when the key
    did not fit in 64 bytes: match it with `key_hash(key)` over the digest's cards)."""

    recipient_id: int
    action: Action
    key: str = ""
    key_hash: str = ""


def key_hash(key: str) -> str:
    """The short stand-in for an item key in callback data: `h` + 16 hex digits of its SHA-1."""
    return "h" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def callback_data(recipient_id: int, action: str, key: str) -> str:
    """`f:<id>:<u|d|l>:<key>` for action up/down/less, `e:<id>:<key>` for equation; at most 64 bytes."""
    if action == "equation":
        prefix = f"e:{int(recipient_id)}:"
    elif action in VOTES:
        prefix = f"f:{int(recipient_id)}:{VOTES[action].code}:"
    else:
        raise ValueError(f"unknown callback action {action!r}")
    data = prefix + key
    if not ItemKey(key).scheme or len(data.encode("utf-8")) > CALLBACK_LIMIT:  # a hash has no scheme
        data = prefix + key_hash(key)
    return data


def parse_callback(data: str | None) -> Callback | None:
    """Our callback data back as a `Callback`; None for anything else (a client can send any data)."""
    if not data or len(data.encode("utf-8")) > CALLBACK_LIMIT:
        return None
    vote = _VOTE.fullmatch(data)
    if vote:
        rid, code, rest = int(vote.group(1)), vote.group(2), vote.group(3)
        action: Action = _CODES[code]  # type: ignore[assignment]
    else:
        equation = _EQUATION.fullmatch(data)
        if equation is None:
            return None
        rid, rest, action = int(equation.group(1)), equation.group(2), "equation"
    if ItemKey(rest).scheme:
        return Callback(rid, action, key=rest)
    if _HASH.fullmatch(rest):
        return Callback(rid, action, key_hash=rest)
    return None


def vote_keyboard(
    recipient_id: int, key: str, has_equation: bool, voted: str | None = None
) -> InlineKeyboardMarkup:
    """The buttons under a card; `voted` (a vote's name) is shown ticked, e.g. "👎 ✓"."""
    row = [
        InlineKeyboardButton(
            f"{v.button} ✓" if v.name == voted else v.button,
            callback_data=callback_data(recipient_id, v.name, key),
        )
        for v in VOTES.values()
    ]
    rows = [row]
    if has_equation:
        rows.append(
            [
                InlineKeyboardButton(
                    "∑ Equation image", callback_data=callback_data(recipient_id, "equation", key)
                )
            ]
        )
    return InlineKeyboardMarkup(rows)


def card_has_equation(rendered: Rendered, key: str) -> bool:
    """Whether the card `key` has a key equation to offer as an image."""
    return bool(rendered.equations.get(key))


# --- the channel ------------------------------------------------------------------------------------------


def _utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def _clip_utf16(s: str, limit: int) -> str:
    """`s` within `limit` UTF-16 units, cut at a character boundary with "…" when it was longer (lone
    surrogates, which Telegram would refuse, become U+FFFD)."""
    s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if _utf16_len(s) <= limit:
        return s
    out: list[str] = []
    used = 1  # the ellipsis
    for ch in s:
        used += _utf16_len(ch)
        if used > limit:
            break
        out.append(ch)
    return "".join(out) + "…"


def _chat_id(address: str) -> int | str:
    s = str(address).strip()
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    if re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,}", s):
        return s
    raise DeliveryError(f"telegram: {s!r} is not a chat id or @channel name", gone=True)


def _retry_seconds(e: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the int will become a timedelta
        warnings.simplefilter("ignore")
        value = e.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramChannel:
    """A `Channel` for Telegram chats (see the module docstring). `base_url` is the Bot API's root
    (default https://api.telegram.org); PTB is given `base_url + "/bot"` and appends token and method."""

    name = "telegram"

    def __init__(
        self,
        token: str,
        *,
        base_url: str = "",
        chat_interval: float = 1.0,
        global_rate: float = 25.0,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retries: int = 3,
        jitter: float = 0.5,
        timeout: float = 10.0,
    ) -> None:
        if not token or not token.strip():
            raise ConfigError("telegram: no bot token configured (FEEDSVC_TELEGRAM_BOT_TOKEN)")
        self._token = token.strip()
        self._redact = SecretRedactor([self._token], mask="<token>")
        for name in LOGGERS:  # before the Bot exists: its constructor logs the URL with the token
            logging.getLogger(name).addFilter(self._redact)
        api = (base_url or "https://api.telegram.org").rstrip("/")
        self._request = HTTPXRequest(
            connection_pool_size=4,
            read_timeout=timeout,
            write_timeout=timeout,
            connect_timeout=timeout,
            pool_timeout=timeout,
        )
        self._updates_request = HTTPXRequest(connection_pool_size=1)
        self._bot = Bot(
            self._token,
            base_url=f"{api}/bot",
            request=self._request,
            get_updates_request=self._updates_request,
        )
        self._runner = asyncio.Runner()
        self._lock = threading.Lock()  # one call on the event loop at a time
        self._rate_lock = threading.Lock()
        self._chat_interval = max(0.0, chat_interval)
        self._spacing = 1.0 / global_rate if global_rate > 0 else 0.0
        self._max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._retry = RetryPolicy(max(0, retries) + 1, max_wait, jitter, sleep)
        self._chat_next: dict[int | str, float] = {}
        self._global_next = float("-inf")
        self._closed = False

    # --- the Channel protocol ------------------------------------------------------------------------------

    def send(
        self, rendered: Rendered, recipient: Recipient, *, start: int = 0, on_part: PartSent | None = None
    ) -> str:
        """Send `rendered.parts[start:]` to `recipient.address`; the message ids joined by ","."""
        chat = _chat_id(recipient.address)
        parts = rendered.parts or ((rendered.body,) if rendered.body else ())
        keys = tuple(rendered.part_keys) + ("",) * (len(parts) - len(rendered.part_keys))
        ids: list[str] = []
        for i in range(max(0, start), len(parts)):
            key = keys[i]
            last_of_card = bool(key) and (i + 1 == len(parts) or keys[i + 1] != key)
            markup = (
                vote_keyboard(recipient.id, key, card_has_equation(rendered, key)) if last_of_card else None
            )
            text = parts[i]
            try:
                message = self._call(
                    lambda text=text, markup=markup: self._bot.send_message(
                        chat,
                        text,
                        parse_mode=ParseMode.HTML,
                        link_preview_options=LinkPreviewOptions(is_disabled=True),
                        reply_markup=markup,
                    ),
                    chat=chat,
                )
            except DeliveryError as e:
                raise DeliveryError(
                    f"{e} (part {i + 1} of {len(parts)})",
                    retry_after=e.retry_after,
                    gone=e.gone,
                    sent_parts=i,
                    external_id=",".join(ids),
                ) from e
            ids.append(str(message.message_id))
            if on_part is not None:
                on_part(i + 1, ids[-1])
        return ",".join(ids)

    # --- what the bot needs ---------------------------------------------------------------------------------

    def send_photo(self, chat_id: int | str, png: bytes, caption: str = "") -> str:
        """Send an image (the equation rendered as PNG) with a plain-text caption; the message id."""
        chat = _chat_id(str(chat_id))
        message = self._call(
            lambda: self._bot.send_photo(chat, png, caption=_clip_utf16(caption, CAPTION_LIMIT) or None),
            chat=chat,
        )
        return str(message.message_id)

    def edit_keyboard(self, chat_id: int | str, message_id: int, markup: InlineKeyboardMarkup | None) -> None:
        """Replace a message's buttons (after a vote). Telegram's "message is not modified" is success."""
        chat = _chat_id(str(chat_id))
        try:
            self._call(
                lambda: self._bot.edit_message_reply_markup(chat, int(message_id), reply_markup=markup)
            )
        except DeliveryError as e:
            if "not modified" not in str(e):
                raise

    def answer_callback(self, callback_query_id: str, text: str = "") -> None:
        """Stop the button's spinner, optionally with a short toast (at most 200 characters)."""
        self._call(lambda: self._bot.answer_callback_query(callback_query_id, text=text[:200] or None))

    def close(self) -> None:
        """Close the HTTP clients and the event loop; the channel cannot send afterwards."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            try:
                self._runner.run(self._shutdown())
            finally:
                self._runner.close()
                for name in LOGGERS:
                    logging.getLogger(name).removeFilter(self._redact)

    def __enter__(self) -> TelegramChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- inside ----------------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        await self._request.shutdown()
        await self._updates_request.shutdown()

    def _wait_turn(self, chat: int | str) -> None:
        """Reserve the next slot this chat and the global rate allow, then sleep until it."""
        with self._rate_lock:
            now = self._clock()
            at = max(now, self._chat_next.get(chat, now), self._global_next)
            self._chat_next[chat] = at + self._chat_interval
            self._global_next = at + self._spacing
            if len(self._chat_next) > 10_000:  # forget chats whose interval is long over
                self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}
        if at > now:
            self._sleep(at - now)

    def _clean(self, e: BaseException) -> str:
        return redact(str(e), [self._token], mask="<token>")

    def _run(self, make: Callable[[], Awaitable[T]]) -> T:
        if self._closed:
            raise DeliveryError("telegram: the channel is closed")

        async def call() -> T:
            return await make()

        with self._lock:
            return self._runner.run(call())

    def _call(self, make: Callable[[], Awaitable[T]], *, chat: int | str | None = None) -> T:
        """One API call under the retry policy: rate-limited when it sends to `chat`, Telegram's errors as
        DeliveryError; a flood wait beyond `max_wait` is left to the caller (`retry_after`)."""
        try:
            return self._retry.call("Telegram Bot API call", lambda: self._try(make, chat))
        except GaveUp as e:
            if e.retry_after is not None:
                raise DeliveryError(
                    f"telegram: flood control, retry after {e.retry_after:g} s", retry_after=e.retry_after
                ) from e
            raise DeliveryError(f"telegram: {e.cause} (after {e.attempts} tries)") from e

    def _try(self, make: Callable[[], Awaitable[T]], chat: int | str | None) -> T:
        """One try: `Transient` for flood control and network errors (time-outs too), else DeliveryError."""
        if chat is not None:
            self._wait_turn(chat)
        try:
            return self._run(make)
        except RetryAfter as e:
            seconds = _retry_seconds(e)
            raise Transient(f"flood control, retry after {seconds:g} s", retry_after=seconds) from e
        except Forbidden as e:
            raise DeliveryError(f"telegram: {self._clean(e)}", gone=True) from e
        except ChatMigrated as e:
            raise DeliveryError(f"telegram: the group is now chat {e.new_chat_id}", gone=True) from e
        except InvalidToken as e:
            raise DeliveryError("telegram: the bot token was rejected") from e
        except BadRequest as e:  # before NetworkError: PTB's BadRequest is one
            message = self._clean(e)
            raise DeliveryError(f"telegram: {message}", gone="chat not found" in message.lower()) from e
        except NetworkError as e:  # also TimedOut
            raise Transient(self._clean(e)) from e
        except TelegramError as e:
            raise DeliveryError(f"telegram: {self._clean(e)}") from e
