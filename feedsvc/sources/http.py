"""The HTTP client every source uses: User-Agent, time-outs, size cap, retries with back-off, Retry-After,
ETags.

`SourceHttp.get` returns a `Response` or raises `SourceError(source, one-line cause)`. 5xx answers, 429,
time-outs and transport errors are retried under the one policy (`feedsvc.retry`: up to
`settings.http_retries` more tries, jittered back-off 1 s, 2 s, 4 s ... capped by `http_max_wait`); a
429/503 with `Retry-After` waits that long when it is within `http_max_wait`, else fails at once with
`retry_after` set; other 4xx fail at once (unless `retry_4xx`). With `conditional=True` the request
carries the validators remembered for the URL, and a 304 comes back as `Response(not_modified=True)`.
Every answer is streamed through `feedsvc.bounded`: past `http_max_bytes` decoded (or the `max_bytes` a
call asks for) or `http_deadline` seconds in all, it is refused at once, without retries. A Retry-After
longer than a day is recorded as a day, and the message says it was capped.
Waiting goes through the injected `sleep`, so tests never wait.
Imports only feedsvc.models, feedsvc.config, feedsvc.bounded and feedsvc.retry (never feedsvc.store).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from feedsvc.bounded import Refused, fetch_bounded
from feedsvc.config import Settings
from feedsvc.models import SourceError
from feedsvc.retry import GaveUp, RetryPolicy, Transient, retry_after_seconds

_SECRET_PARAMS = frozenset({"key", "token", "api_key", "apikey", "access_token"})


class Validators(Protocol):
    """Persisted ETag / Last-Modified per URL; the pipeline passes a store-backed one."""

    def get(self, url: str) -> tuple[str | None, str | None] | None: ...

    def put(self, url: str, etag: str | None, last_modified: str | None) -> None: ...


class MemoryValidators:
    """Validators kept in a dict: for tests and runs without a store."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[str | None, str | None]] = {}

    def get(self, url: str) -> tuple[str | None, str | None] | None:
        return self._data.get(url)

    def put(self, url: str, etag: str | None, last_modified: str | None) -> None:
        self._data[url] = (etag, last_modified)


@dataclass(frozen=True)
class Response:
    status: int
    content: bytes
    headers: Mapping[str, str]
    url: str
    not_modified: bool = False


def safe_url(url: str) -> str:
    """`url` without query parameters that carry secrets (key, token, api_key ...), for messages."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in _SECRET_PARAMS
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))


def _reason(response: httpx.Response) -> str:
    phrase = response.reason_phrase
    if not phrase:
        try:
            phrase = HTTPStatus(response.status_code).phrase
        except ValueError:
            phrase = ""
    return f"HTTP {response.status_code} {phrase}".rstrip()


class SourceHttp:
    """One `httpx.Client` for one source; close it with `close()` or a `with` block."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: str,
        validators: Validators | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.source = source
        self.validators: Validators = validators if validators is not None else MemoryValidators()
        self.timeout = settings.http_timeout
        self.max_wait = settings.http_max_wait
        self.max_bytes = settings.http_max_bytes
        self.deadline = settings.http_deadline
        self.retry = RetryPolicy.from_settings(settings, sleep=sleep)
        self._client = httpx.Client(
            headers={"User-Agent": settings.user_agent},
            timeout=settings.http_timeout,
            follow_redirects=True,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SourceHttp:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _fail(self, cause: str, url: str, *, retry_after: float | None = None) -> SourceError:
        return SourceError(self.source, f"{cause} (GET {safe_url(url)})", retry_after=retry_after)

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        conditional: bool = False,
        retry_4xx: bool = False,
        max_bytes: int | None = None,
    ) -> Response:
        """GET `url` (`max_bytes`: this call's cap instead of `http_max_bytes`)."""
        full = str(httpx.URL(url, params=params)) if params else url
        headers: dict[str, str] = {}
        if conditional:
            known = self.validators.get(full)
            if known:
                etag, modified = known
                if etag:
                    headers["If-None-Match"] = etag
                if modified:
                    headers["If-Modified-Since"] = modified
        try:
            return self.retry.call(
                f"GET {safe_url(full)}",
                lambda: self._try(full, headers, conditional, retry_4xx, max_bytes or self.max_bytes),
            )
        except GaveUp as e:
            if e.too_long:
                asked = "beyond a day" if e.capped else f"{e.retry_after:.0f} s"
                limit = f"Retry-After {asked} exceeds the {self.max_wait:.0f} s limit"
                if e.capped:
                    limit += "; next try capped at 1 day"
                raise self._fail(f"{e.cause}; {limit}", full, retry_after=e.retry_after) from None
            n = e.attempts
            tries = f"after {n} attempts" if e.cause.startswith("HTTP") else f"({n} attempts)"
            raise self._fail(f"{e.cause} {tries}", full, retry_after=e.retry_after) from None

    def _try(
        self, full: str, headers: dict[str, str], conditional: bool, retry_4xx: bool, max_bytes: int
    ) -> Response:
        """One GET: the response, or `Transient` for time-outs, transport errors, 5xx, 429 (any 4xx with
        `retry_4xx`); `SourceError` for an answer past the size cap or the deadline."""
        try:
            response, content = fetch_bounded(
                self._client, "GET", full, headers=headers, max_bytes=max_bytes, deadline=self.deadline
            )
        except Refused as e:
            raise self._fail(str(e), full) from None
        except httpx.TimeoutException:
            raise Transient(f"timed out after {self.timeout} s") from None
        except httpx.TransportError as e:
            raise Transient(f"connection failed: {type(e).__name__}: {e}".splitlines()[0]) from None
        status = response.status_code
        if status == 304 and conditional:
            return Response(304, b"", response.headers, str(response.url), not_modified=True)
        if 200 <= status < 300:
            if conditional and status == 200:
                etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
                if etag or modified:
                    self.validators.put(full, etag, modified)
            return Response(status, content, response.headers, str(response.url))
        if status >= 500 or status == 429 or (retry_4xx and status >= 400):
            wait = retry_after_seconds(response.headers.get("Retry-After")) if status in (429, 503) else None
            raise Transient(_reason(response), retry_after=wait)
        raise self._fail(_reason(response), full)
