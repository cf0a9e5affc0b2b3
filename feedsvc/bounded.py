"""Reading one HTTP answer within bounds: at most `max_bytes` of decoded body, `deadline` seconds in all.

httpx's time-out is per read, so an upstream that drips a few bytes a second is never timed out, and
`response.content` holds whatever is sent, decompressed (1 MB of gzip can be 1 GiB). `fetch_bounded`
streams the answer instead, decoding it itself in pieces of at most 1 MiB, counting the decoded bytes
and the time spent as they arrive, and stops past either bound with `Refused`, whose message is one line
naming the bound. It asks only for gzip or deflate, refuses stacked or other encodings (`gzip, gzip`
multiplies a bomb), and follows redirects without reading their bodies (httpx reads them whole). Every
outbound read (the sources, the full text, the LLM endpoint) goes through it. Imports nothing from
feedsvc.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx

ACCEPT_ENCODING = "gzip, deflate"
_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})
_PIECE = 1 << 20  # the most one step of decoding may produce


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
    Raises `Refused` past a bound or for a body that does not decode; httpx's time-outs and transport
    errors pass through."""
    started = clock()
    built = client.build_request(method, url, **request)
    built.headers["Accept-Encoding"] = ACCEPT_ENCODING

    def check_deadline() -> None:
        if clock() - started > deadline:
            raise Refused(f"answer not complete within the {deadline:g} s deadline; gave up")

    response = _follow(client, client.send(built, stream=True, follow_redirects=False), check_deadline)
    try:
        chunks: list[bytes] = []
        size = 0
        for piece in _decoded(response, _coding(response)):
            size += len(piece)
            if size > max_bytes:
                raise Refused(f"answer larger than {size_label(max_bytes)} (decoded); refused")
            check_deadline()
            chunks.append(piece)
        return response, b"".join(chunks)
    finally:
        response.close()


def _follow(
    client: httpx.Client, response: httpx.Response, check_deadline: Callable[[], None]
) -> httpx.Response:
    """The end of the redirects from `response`, when `client` follows them, never reading a redirect's
    body; `Refused` past `client.max_redirects` or the deadline."""
    hops = 0
    while client.follow_redirects and response.next_request is not None:
        response.close()
        hops += 1
        if hops > client.max_redirects:
            raise Refused(f"more than {client.max_redirects} redirects; refused")
        check_deadline()
        response = client.send(response.next_request, stream=True, follow_redirects=False)
    return response


def _coding(response: httpx.Response) -> str:
    """The answer's one content coding ("" for none); `Refused` for stacked or unknown ones."""
    codings = [c.strip().lower() for c in response.headers.get_list("content-encoding", split_commas=True)]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > 1 or (codings and codings[0] not in _ENCODINGS):
        raise Refused(f"answer with content encoding {', '.join(codings)!r}; refused")
    return codings[0] if codings else ""


def _decoded(response: httpx.Response, coding: str) -> Iterator[bytes]:
    """The body as it arrives, decoded in pieces of at most `_PIECE` bytes (so a bomb never expands
    in one go); a body that does not decode is `Refused`."""
    if not coding:
        yield from response.iter_raw()
        return
    wbits = 47 if coding != "deflate" else 15  # gzip (or zlib) header; deflate: zlib, else raw below
    inflate = zlib.decompressobj(wbits)
    started = False
    for data in response.iter_raw():
        while data:
            try:
                piece = inflate.decompress(data, _PIECE)
            except zlib.error as e:
                if coding != "deflate" or started:
                    raise Refused(f"answer is not valid {coding}: {e}; refused") from None
                inflate, started = zlib.decompressobj(-15), True  # a raw deflate stream, as some send
                continue
            started = True
            yield piece
            data = inflate.unconsumed_tail
    yield inflate.flush()
