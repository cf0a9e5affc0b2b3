"""Single-runner locks: `job_lock(settings, engine, name)` has one holder at a time, a thread of this
process or another process (a PostgreSQL advisory lock keyed by name and schema, on any host; else an
`flock` on a file beside the SQLite file). A process that dies releases its locks. The scheduler takes
one per job; `collect` takes one per source, so two collects never fetch the same source at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from feedsvc.config import Settings

log = logging.getLogger(__name__)

LOCK_POLL_SECONDS = 1.0

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def lock_key(name: str, schema: str = "") -> int:
    """A stable signed 64-bit key for job `name` on the tables in `schema`: the same in every process and
    release (not `hash()`)."""
    digest = hashlib.blake2b(f"feedsvc:{schema}:job:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_path(settings: Settings, engine: Engine, name: str) -> Path:
    """The lock file of job `name`: `locks/` beside the SQLite file (the data directory by default)."""
    base = settings.data_dir
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        base = Path(url.database).parent
    return base / "locks" / f"{_UNSAFE.sub('_', name)}.lock"


def _engine_of(bind: Engine | sessionmaker[Session]) -> Engine:
    if isinstance(bind, Engine):
        return bind
    engine = bind.kw.get("bind")
    if not isinstance(engine, Engine):
        raise TypeError("job_lock needs an Engine or a sessionmaker bound to one")
    return engine


def _acquire(try_once: Callable[[], bool], wait: float, stop: Callable[[], bool] | None) -> bool:
    deadline = time.monotonic() + wait
    while True:
        if try_once():
            return True
        left = deadline - time.monotonic()
        if left <= 0 or (stop is not None and stop()):
            return False
        time.sleep(min(LOCK_POLL_SECONDS, left))


@contextmanager
def _advisory_lock(engine: Engine, name: str, wait: float, stop: Callable[[], bool] | None) -> Iterator[bool]:
    # A session-level lock on a connection of its own, in autocommit (never "idle in transaction"),
    # held until the job ends; a process that dies loses its connection and with it the lock.
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    held = False
    key = 0
    try:
        key = lock_key(name, conn.scalar(text("SELECT current_schema()")) or "")
        held = _acquire(
            lambda: bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})), wait, stop
        )
        yield held
    finally:
        try:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        except Exception as e:  # a lock that cannot be released must not go back to the pool with it
            log.warning("could not release advisory lock %d (%s): dropping the connection", key, e)
            conn.invalidate()
        finally:
            conn.close()


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def _file_lock(path: Path, wait: float, stop: Callable[[], bool] | None) -> Iterator[bool]:
    # flock belongs to the open file: a second open, in this process or another, cannot take it, and a
    # process that dies releases it. The file stays (removing lock files races); it names the holder.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    held = False
    try:
        held = _acquire(lambda: _try_flock(fd), wait, stop)
        if held:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode(), 0)
        yield held
    finally:
        if held:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def job_lock(
    settings: Settings,
    bind: Engine | sessionmaker[Session],
    name: str,
    *,
    wait: float = 0.0,
    stop: Callable[[], bool] | None = None,
) -> AbstractContextManager[bool]:
    """Hold job `name`'s single-runner lock for the `with` block; yields False if another holds it.

    PostgreSQL: `pg_try_advisory_lock(lock_key(name, current_schema()))` on a dedicated connection
    (advisory locks are per database; the schema in the key keeps deployments in two schemas apart).
    Otherwise `flock` on `lock_path(...)`. `wait` > 0 retries every second for that long (or until
    `stop()` is true) before giving up.
    """
    engine = _engine_of(bind)
    if engine.dialect.name == "postgresql":
        return _advisory_lock(engine, name, wait, stop)
    return _file_lock(lock_path(settings, engine, name), wait, stop)
