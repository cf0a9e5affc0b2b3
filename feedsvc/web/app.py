"""The web archive's application factory: `create_app(settings, factory=None) -> FastAPI`.

Server-rendered HTML (no JavaScript), a strict Content-Security-Policy and the other protective headers
on every response, HTML error pages (JSON under /api and /healthz), trailing-slash redirects relative (never
built from the Host header), signed tokens redacted from logged paths. With no `factory` the app opens the
configured database itself and closes it at shutdown. Imports the web modules and the store: an edge.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feedsvc.config import Settings
from feedsvc.store.db import make_engine, session_factory
from feedsvc.web import actions, cadence, feeds, health, library, pages
from feedsvc.web.cache import LRU, PRIVATE, Page, respond
from feedsvc.web.deps import WebState
from feedsvc.web.templating import make_environment, render

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def security_headers(https: bool) -> list[tuple[bytes, bytes]]:
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",  # signed links' tokens never leave in a Referer
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    }
    if https:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]


class SecurityHeaders:
    """Pure ASGI middleware adding the protective headers to every HTTP response (cheap: no body copy)."""

    def __init__(self, app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> None:
        self.app, self.headers = app, headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


_PERMALINK = re.compile(r"^/d/([^/]+)/(\d{4}-\d\d-\d\d)$")


class PublishedPages:
    """Pure ASGI: a published digest's page already rendered is answered straight from memory, before
    routing (the benchmarked path); anything else, and a page not rendered yet, goes on to the app."""

    def __init__(self, app: ASGIApp, pages: LRU[Page]) -> None:
        self.app, self.pages = app, pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            m = _PERMALINK.match(scope["path"])
            page = self.pages.get(("digest.html", m[1], m[2])) if m else None
            if page is not None:
                await _send_page(scope, send, page)
                return
        await self.app(scope, receive, send)


async def _send_page(scope: Scope, send: Send, page: Page) -> None:
    for name, value in scope["headers"]:
        if name == b"if-none-match" and _names(value, page.etag.encode()):
            await send({"type": "http.response.start", "status": 304, "headers": page.raw_validators})
            await send({"type": "http.response.body", "body": b""})
            return
    await send({"type": "http.response.start", "status": 200, "headers": page.raw_headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else page.body})


def _names(if_none_match: bytes, etag: bytes) -> bool:
    return any(t.strip().removeprefix(b"W/") in (etag, b"*") for t in if_none_match.split(b","))


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path == "/healthz"


_SIGNED_PATH = re.compile(r"^/(f|u|confirm)/[^/]+")


def loggable_path(path: str) -> str:
    """`path` with a signed token (vote, unsubscribe, confirmation links) replaced by `[token]`."""
    return _SIGNED_PATH.sub(r"/\1/[token]", path)


def _slash_redirect(request: Request) -> Response | None:
    """A relative redirect to the same path with its trailing slash added or removed, when that path has a
    route (Starlette's own redirect is absolute, built from the request's Host header)."""
    path = request.url.path
    other = path[:-1] if path.endswith("/") and path != "/" else path + "/"
    scope = {**request.scope, "path": other}
    if not any(route.matches(scope)[0] != Match.NONE for route in request.app.router.routes):
        return None
    query = request.url.query
    return RedirectResponse(other + (f"?{query}" if query else ""), 307)  # the path includes any root_path


def _error(request: Request, status: int, text: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": text}, status_code=status, headers={"Cache-Control": PRIVATE})
    st: WebState = request.app.state.web
    heading = {404: "Not found", 405: "Not allowed", 400: "Bad request"}.get(status, "Something went wrong")
    body = render(st.templates, "message.html.j2", heading=heading, text=text, tone="error")
    return respond(request, Page.of(body, "text/html; charset=utf-8", PRIVATE), status=status)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What `feedsvc serve` and `run` give uvicorn: httptools, and the protective headers as the server's own
    default headers, so that the 400s uvicorn writes for requests it cannot parse carry them too. The app
    is then made with `headers_by_server=True`, so no response carries them twice."""
    headers = security_headers(settings.base_url.startswith("https://"))
    return {
        "http": "httptools",
        "headers": [(name.decode(), value.decode()) for name, value in headers],
        "proxy_headers": True,
        "access_log": False,  # a log line per request costs more than serving a cached page
    }


def create_app(
    settings: Settings,
    factory: sessionmaker[Session] | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    headers_by_server: bool = False,
) -> FastAPI:
    """The archive app. `factory`: sessions on an existing database (else the configured one is opened
    here and disposed of at shutdown); `clock`: the time the app acts at (tests pass a fixed one);
    `headers_by_server`: the server adds the protective headers (`uvicorn_options`), the app does not."""
    engine = None
    if factory is None:
        engine = make_engine(settings.resolved_database_url())
        factory = session_factory(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if engine is not None:
            engine.dispose()

    root = urlsplit(settings.base_url).path.rstrip("/")
    app = FastAPI(
        title="feedsvc archive",
        summary="Past digests, their cards and papers, searchable; JSON API and Atom feeds.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
        redirect_slashes=False,  # see _slash_redirect
    )
    app.state.web = WebState(
        settings=settings,
        factory=factory,
        clock=clock or (lambda: datetime.now(UTC)),
        templates=make_environment(root),
        feed_templates=make_environment(settings.base_url.rstrip("/")),
    )
    # the last added is the outermost: every response, the fast path's too, gets the protective headers
    app.add_middleware(PublishedPages, pages=app.state.web.pages)
    if not headers_by_server:
        app.add_middleware(
            SecurityHeaders, headers=security_headers(settings.base_url.startswith("https://"))
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        text = exc.detail if isinstance(exc.detail, str) and exc.status_code != 405 else "Not allowed here."
        if exc.status_code == 404 and exc.detail == "Not Found":
            redirect = _slash_redirect(request)
            if redirect is not None:
                return redirect
            text = "There is nothing at this address."
        return _error(request, exc.status_code, text)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(str(e.get("loc", ("?",))[-1]) for e in exc.errors())
        return _error(request, 400, f"The request's {fields} is not valid.")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", loggable_path(request.url.path))
        response = _error(request, 500, "Something went wrong on our side; the error was logged.")
        for name, value in [] if headers_by_server else security_headers(False):
            response.headers[name.decode()] = value.decode()
        return response

    # Order matters: /d/{profile}/atom.xml (feeds) must be tried before /d/{profile}/{day} (pages).
    app.include_router(feeds.router)
    app.include_router(health.router)
    app.include_router(actions.router)
    app.include_router(library.router)
    app.include_router(cadence.router)
    app.include_router(pages.router)
    return app


def asgi_app() -> Any:  # pragma: no cover - for `uvicorn --factory feedsvc.web.app:asgi_app`
    """The app for the configured settings (reads the environment when called, not when imported)."""
    return create_app(Settings())
