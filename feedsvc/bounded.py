"""Reading one HTTP answer within bounds: at most `max_bytes` of decoded body, `deadline` seconds in all.

httpx's time-out is per read, so an upstream that drips a few bytes a second is never timed out, and
`response.content` holds whatever is sent, decompressed (1 MB of gzip can be 1 GiB). `fetch_bounded` streams
the answer instead, counting the decoded bytes and the time spent as they arrive, and stops past either
bound with `Refused`, whose message is one line naming the bound. It asks only for gzip or deflate and
refuses stacked encodings (`gzip, gzip` multiplies a bomb), so one network read decodes to at most about
a thousand times its size. Every outbound read (the sources, the full text, the LLM endpoint) goes
through it. Imports nothing from feedsvc.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

ACCEPT_ENCODING = "gzip, deflate"
_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})


class Refused(Exception):
    """An answer broke a bound; the message is one line ("answer larger than 32 MiB (decoded); refused")."""


def size_label(n: int) -> str:
    """`n` bytes for a message: "32 MiB" when it is a whole number of MiB, else "20,000,000 bytes"."""
    return f"{n >> 20} MiB" if n and n % (1 << 20) == 0 else f"{n:,} bytes"


def fetch_bounded(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    max_bytes: int,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    **request: Any,
) -> tuple[httpx.Response, bytes]:
    """Send one request with `client` (`request`: httpx's params, headers, json) and read its answer
    within the bounds: the response (closed; for its status, headers and URL) and its decoded body.
    Raises `Refused` past a bound; httpx's time-outs and transport errors pass through."""
    started = clock()
    built = client.build_request(method, url, **request)
    built.headers["Accept-Encoding"] = ACCEPT_ENCODING
    response = client.send(built, stream=True)
    try:
        _check_encoding(response)
        return response, _read_body(response, max_bytes, deadline, started, clock)
    finally:
        response.close()


def _check_encoding(response: httpx.Response) -> None:
    codings = [c.strip().lower() for c in response.headers.get_list("content-encoding", split_commas=True)]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > 1 or (codings and codings[0] not in _ENCODINGS):
        raise Refused(f"answer with content encoding {', '.join(codings)!r}; refused")


def _read_body(
    response: httpx.Response, max_bytes: int, deadline: float, started: float, clock: Callable[[], float]
) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise Refused(f"answer larger than {size_label(max_bytes)} (decoded); refused")
        if clock() - started > deadline:
            raise Refused(f"answer not complete within the {deadline:g} s deadline; gave up")
        chunks.append(chunk)
    return b"".join(chunks)
