"""Rendered pages kept in memory, and HTTP validation: ETag from the bytes, 304 on If-None-Match.

A published digest never changes, so its page is rendered once and kept (keyed by the digest's id, and
by profile and day for the lookup that precedes it); other pages are rendered per request and still get
an ETag, so a client that has them receives 304 and no body. Imports nothing from feedsvc.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, TypeVar

from starlette.requests import Request
from starlette.responses import Response

IMMUTABLE = "public, max-age=86400"  # a published digest (its HTML, JSON)
SHORT = "public, max-age=60"  # listings that change when a digest is published
REVALIDATE = "no-cache"  # may change at any time (item pages, search): always ask, 304 when unchanged
PRIVATE = "no-store"  # signed links' pages, health


@dataclass(frozen=True)
class Page:
    body: bytes
    media_type: str
    cache_control: str
    etag: str

    @classmethod
    def of(cls, body: bytes | str, media_type: str, cache_control: str) -> Page:
        data = body.encode("utf-8") if isinstance(body, str) else body
        return cls(data, media_type, cache_control, f'"{hashlib.sha256(data).hexdigest()[:32]}"')

    @cached_property
    def raw_validators(self) -> list[tuple[bytes, bytes]]:
        """ETag and Cache-Control as ASGI headers (what a 304 carries)."""
        return [(b"etag", self.etag.encode()), (b"cache-control", self.cache_control.encode())]

    @cached_property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """Every header of a 200 answer, as ASGI headers, built once per page."""
        return [
            *self.raw_validators,
            (b"content-type", self.media_type.encode()),
            (b"content-length", str(len(self.body)).encode()),
        ]


def not_modified(request: Request, etag: str) -> bool:
    """Whether the request's If-None-Match names `etag` (weak comparison, `*` included)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    wanted = etag.removeprefix("W/")
    return any(tag.strip() == "*" or tag.strip().removeprefix("W/") == wanted for tag in header.split(","))


def respond(request: Request, page: Page, status: int = 200) -> Response:
    """The page, or 304 Not Modified when the client already has these bytes."""
    headers = {"ETag": page.etag, "Cache-Control": page.cache_control}
    if status == 200 and not_modified(request, page.etag):
        return Response(status_code=304, headers=headers)
    return Response(page.body, status_code=status, media_type=page.media_type, headers=headers)


V = TypeVar("V")


class LRU(Generic[V]):
    """A bounded, thread-safe least-recently-used map (rendered pages, derived paper pages)."""

    def __init__(self, size: int = 1024) -> None:
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        value = self._values.get(key)  # a dict read is atomic; only the recency update takes the lock
        if value is not None:
            with self._lock:
                if key in self._values:
                    self._values.move_to_end(key)
        return value

    def put(self, value: V, *keys: Hashable) -> V:
        """Keep `value` under every one of `keys`."""
        with self._lock:
            for key in keys:
                self._values[key] = value
                self._values.move_to_end(key)
            while len(self._values) > self._size:
                self._values.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._values)


class Generation:
    """The store's generation: a token that changes whenever what the cached answers show may have changed
    (`read` asks the database). It is asked again at most every `ttl` seconds, however many requests come;
    answers cached under a token are used only while it is current, so a change made by any process (the
    worker, `feedsvc fetch`) shows within `ttl` seconds."""

    def __init__(self, read: Callable[[], Hashable], ttl: float = 1.0) -> None:
        self._read, self._ttl = read, ttl
        self._value: Hashable | None = None
        self._checked = -float("inf")
        self._lock = threading.Lock()

    def fresh(self) -> Hashable | None:
        """The token if it was read less than `ttl` seconds ago, else None (call `refresh`)."""
        return self._value if time.monotonic() - self._checked < self._ttl else None

    def refresh(self) -> Hashable:
        """Read the token (one reader at a time; the others take what it read)."""
        with self._lock:
            if (value := self.fresh()) is not None:
                return value
            self._value, self._checked = self._read(), time.monotonic()
            return self._value
