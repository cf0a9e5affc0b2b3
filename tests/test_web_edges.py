"""Web edges from issue 12: relative trailing-slash redirects (no Host echo), signed tokens redacted from
the error log, scraped titles and authors isolated from bidi controls (items constructed here)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from feedsvc.config import Settings
from feedsvc.models import Candidate
from feedsvc.signing import make_token
from feedsvc.store import queries
from feedsvc.store.db import make_engine, session_factory, session_scope, upgrade
from feedsvc.web import actions
from feedsvc.web.app import CSP, create_app, uvicorn_options

SECRET = "test-secret-0123456789-abcdefghij"
NOW = datetime(2026, 6, 2, 12, tzinfo=UTC)
RLO_TITLE = "Safe title \u202eexe.gpj"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'feedsvc.db'}"
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=url, secret_key=SECRET)  # type: ignore[call-arg]
    engine = make_engine(url)
    upgrade(engine)
    factory = session_factory(engine)
    paper = Candidate(
        key="arxiv:2401.00001",
        kind="paper",
        title=RLO_TITLE,
        text="An abstract.",
        url="https://arxiv.org/abs/2401.00001",
        source="arxiv",
        authors=("A. \u202eAuthor", "B. Writer"),
        published=NOW,
    )
    with session_scope(factory) as s:
        queries.upsert_candidates(s, [paper], run_id=None, now=NOW)
    with TestClient(create_app(settings, factory, clock=lambda: NOW), raise_server_exceptions=False) as c:
        yield c
    engine.dispose()


def test_trailing_slash_redirect_is_relative_and_ignores_host(client: TestClient) -> None:
    r = client.get("/search/?q=x", headers={"host": "evil.example"}, follow_redirects=False)
    assert r.status_code in (307, 308)
    assert r.headers["location"] == "/search?q=x"
    assert client.get("/nothing-here/", follow_redirects=False).status_code == 404


def test_a_crash_logs_no_signed_token(client: TestClient, monkeypatch, caplog) -> None:
    def crash(*_a, **_k):
        raise RuntimeError("database went away")

    monkeypatch.setattr(actions, "_vote", crash)
    token = make_token(SECRET, "feedback", {"r": 1, "k": "arxiv:2401.00001", "v": "up"})
    with caplog.at_level(logging.ERROR):
        r = client.get(f"/f/{token}")
    assert r.status_code == 500
    logged = "\n".join(rec.getMessage() + (rec.exc_text or "") for rec in caplog.records)
    assert "unhandled error on /f/" in logged and "database went away" in logged
    assert token not in logged and token[:12] not in logged


def test_scraped_titles_and_authors_are_bidi_isolated(client: TestClient) -> None:
    page = client.get("/item/arxiv:2401.00001").text
    assert "\u202e" in page  # kept verbatim ...
    for line in page.splitlines():  # ... but never outside an isolating <bdi> in the page's body
        if "\u202e" in line and "<title>" not in line:
            before = line.split("\u202e")[0]
            assert before.count("<bdi>") > before.count("</bdi>"), line
    results = client.get("/search?q=safe").text
    assert "<bdi>" in results and "\u202e" in results


def test_uvicorn_s_own_400_carries_the_protective_headers_and_pages_carry_them_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'feedsvc.db'}"
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=url, secret_key=SECRET)  # type: ignore[call-arg]
    engine = make_engine(url)
    upgrade(engine)
    app = create_app(settings, session_factory(engine), headers_by_server=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if server.started:
                break
            threading.Event().wait(0.02)
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n")  # uvicorn answers 400
            answer = raw.recv(65536).lower()
        assert answer.startswith(b"http/1.1 400")
        assert b"content-security-policy: default-src 'none'" in answer
        assert b"x-content-type-options: nosniff" in answer
        page = httpx.get(f"http://127.0.0.1:{port}/healthz")
        assert page.headers.get_list("content-security-policy") == [CSP]
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
        engine.dispose()
