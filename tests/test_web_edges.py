"""Web edges from issue 12: relative trailing-slash redirects (no Host echo), signed tokens redacted from
the error log, scraped titles and authors isolated from bidi controls (items constructed here)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from feedsvc.config import Settings
from feedsvc.models import Candidate
from feedsvc.signing import make_token
from feedsvc.store import queries
from feedsvc.store.db import make_engine, session_factory, session_scope, upgrade
from feedsvc.web import actions
from feedsvc.web.app import create_app

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
