"""Engines, sessions and migrations. Nothing is created at import time: the caller passes a URL.

Imports only `feedsvc.store.tables` from feedsvc (and Alembic, which runs `migrations/`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import tenacity
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Insert


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite files get their directory created and foreign keys switched on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=5000")
            # WAL: the web archive reads while a worker writes; NORMAL is durable in WAL mode but for a
            # power cut's last transactions, and spares an fsync per delivery recorded
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def insert_or_skip(session: Session, table: Table) -> Insert:
    """An INSERT for `table` that skips rows a unique constraint already holds (`ON CONFLICT DO NOTHING`, on
    SQLite and PostgreSQL): two writers adding the same row at once both succeed, and the row exists once.
    Add `.values(...)` or `.from_select(...)`; `on_conflict_do_nothing()` is applied last by the caller."""
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic's config pointing at the migrations shipped in the package (`migrations/` in the repo)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("feedsvc.migrations")))
    if engine is not None:
        cfg.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return cfg


def wait_until_reachable(engine: Engine, timeout: float, poll: float = 1.0) -> None:
    """Return once the database behind `engine` accepts a connection; after `timeout` seconds of refusals
    (a server still starting), raise the last `OperationalError`."""

    def connect() -> None:
        with engine.connect():
            pass

    tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(OperationalError),
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(poll),
        reraise=True,
    )(connect)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind `engine` to `revision`."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
