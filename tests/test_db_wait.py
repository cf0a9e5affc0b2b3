"""`feedsvc db upgrade --wait`: a container started beside its database waits for the server to answer.

The late server is the real PostgreSQL at 127.0.0.1:5432 behind a loopback TCP relay that starts
listening only after a delay (as a database container still initialising)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from sqlalchemy.exc import OperationalError
from test_cli import feedsvc

from feedsvc.store.db import current_revision, make_engine, upgrade, wait_until_reachable

pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        dst.close()


@contextmanager
def late_postgres(port: int, delay: float) -> Iterator[None]:
    """Relay 127.0.0.1:`port` to PostgreSQL, listening only after `delay` seconds."""
    stop = threading.Event()

    def serve() -> None:
        if stop.wait(delay):
            return
        with socket.create_server(("127.0.0.1", port)) as server:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(("127.0.0.1", 5432))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _via(url: str, port: int) -> str:
    """`url` with its host and port replaced by the relay's."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{port}"
    return parts._replace(netloc=netloc).geturl()


def test_waits_for_a_server_that_starts_late_then_migrates(pg_url: str) -> None:
    port = _free_port()
    engine = make_engine(_via(pg_url, port))
    try:
        with late_postgres(port, delay=1.5):
            start = time.monotonic()
            wait_until_reachable(engine, timeout=20, poll=0.2)
            assert time.monotonic() - start >= 1.4
            upgrade(engine)
            assert current_revision(engine) is not None
    finally:
        engine.dispose()


def test_gives_up_after_the_timeout_with_the_last_error(pg_url: str) -> None:
    engine = make_engine(_via(pg_url, _free_port()))
    start = time.monotonic()
    with pytest.raises(OperationalError):
        wait_until_reachable(engine, timeout=1.0, poll=0.2)
    assert 1.0 <= time.monotonic() - start < 10
    engine.dispose()


def test_the_command_waits_then_fails_in_one_line(pg_url: str) -> None:
    done = feedsvc("db", "upgrade", "--wait", "1", env={"FEEDSVC_DATABASE_URL": _via(pg_url, _free_port())})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: migration failed") and "refused" in lines[0], lines
