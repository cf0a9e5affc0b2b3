"""A loopback HTTP server that replays recorded responses: for tests and the offline demo.

`ReplayServer(routes)` serves on 127.0.0.1 (a free port) from a daemon thread. A route is a `Reply`
or a function of the `Request` returning one; keys are URL paths, matched exactly, or as a prefix
when the key ends with `*` (the longest prefix wins). Replies carrying `ETag` / `Last-Modified`
answer 304 to a request whose `If-None-Match` / `If-Modified-Since` equals them. Every request is
kept in `server.requests`. Standard library only; imports nothing from feedsvc.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Request:
    """One request as the server saw it. `headers` keys are lower-case; `query` keeps the last value."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering (to provoke client time-outs)


Route = Reply | Callable[[Request], Reply]


def in_turn(*replies: Reply) -> Callable[[Request], Reply]:
    """A route answering with `replies` one after another, repeating the last one afterwards."""
    if not replies:
        raise ValueError("in_turn needs at least one reply")
    queue = list(replies)
    lock = threading.Lock()

    def route(_: Request) -> Reply:
        with lock:
            return queue.pop(0) if len(queue) > 1 else queue[0]

    return route


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _not_modified(reply: Reply, request: Request) -> bool:
    etag = _header(reply.headers, "etag")
    if etag is not None and request.headers.get("if-none-match") == etag:
        return True
    modified = _header(reply.headers, "last-modified")
    return modified is not None and request.headers.get("if-modified-since") == modified


class ReplayServer:
    """Serves `routes` on `url` until `stop()` (or the end of a `with` block)."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = dict(routes)
        self.requests: list[Request] = []
        self.url = ""
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def route_for(self, path: str) -> Route | None:
        if path in self.routes:
            return self.routes[path]
        prefixes = [k for k in self.routes if k.endswith("*") and path.startswith(k[:-1])]
        return self.routes[max(prefixes, key=len)] if prefixes else None

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> ReplayServer:
        if self._httpd is not None:
            return self
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                server._record(request)
                route = server.route_for(parts.path)
                if route is None:
                    reply = Reply(404, b"not found", {"Content-Type": "text/plain"})
                else:
                    reply = route(request) if callable(route) else route
                if reply.delay:
                    time.sleep(reply.delay)
                status, body = reply.status, reply.body
                if status == 200 and _not_modified(reply, request):
                    status, body = 304, b""
                try:
                    self.send_response(status)
                    for key, value in reply.headers.items():
                        if key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a time-out test)

            do_GET = _answer
            do_HEAD = _answer
            do_POST = _answer  # the body is on the Request (the LLM endpoint's test double reads it)

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name="replay-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
