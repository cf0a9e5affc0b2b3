"""What a request handler receives: the app's state, a session, the settings and the clock, as typed
dependency aliases (`SessionDep`, `StateDep`, ...). Nothing here is built at import time: `create_app`
puts a `WebState` on `app.state.web`. Imports `feedsvc.config`, `feedsvc.signing` and `feedsvc.web.cache`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from jinja2 import Environment
from sqlalchemy.orm import Session, sessionmaker

from feedsvc.config import Settings
from feedsvc.signing import MIN_SECRET
from feedsvc.store import archive
from feedsvc.web.cache import LRU, Generation, Page


@dataclass
class WebState:
    settings: Settings
    factory: sessionmaker[Session]
    clock: Callable[[], datetime]
    templates: Environment  # links relative to the site (`root`-prefixed paths)
    feed_templates: Environment  # absolute links (the Atom feed's entries)
    pages: LRU[Page] = field(default_factory=lambda: LRU(1024))
    papers: LRU[Any] = field(default_factory=lambda: LRU(64))  # breakdowns derived from stored full texts
    searches: LRU[Page] = field(default_factory=lambda: LRU(512))  # search pages, by generation and query
    generation: Generation = field(init=False)

    def __post_init__(self) -> None:
        self.generation = Generation(self._read_generation)

    def _read_generation(self) -> tuple[Any, ...]:
        with self.factory() as session:
            return archive.generation(session)

    async def current_generation(self) -> Any:
        """The store's generation (`cache.Generation`), read in a worker thread when it is due."""
        value = self.generation.fresh()
        return value if value is not None else await run_in_threadpool(self.generation.refresh)

    @property
    def secret(self) -> str | None:
        """The signing secret, or None when it is not configured (the write endpoints then answer 503)."""
        value = self.settings.secret_key.get_secret_value()
        return value if len(value) >= MIN_SECRET else None


def get_state(request: Request) -> WebState:
    return request.app.state.web


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request; a handler that writes commits itself, anything else is rolled back."""
    session = get_state(request).factory()
    try:
        yield session
    finally:
        session.close()


def get_settings(request: Request) -> Settings:
    return get_state(request).settings


def get_now(request: Request) -> datetime:
    return get_state(request).clock()


StateDep = Annotated[WebState, Depends(get_state)]
SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
NowDep = Annotated[datetime, Depends(get_now)]
