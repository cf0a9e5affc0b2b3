"""Full-text search on SQLite (FTS5) and PostgreSQL (tsvector GIN indexes), on the demo's real store:
title matches rank above body matches, cards are searched with their items, the index follows inserts
and updates through the store's ordinary writes, pagination, and hostile input never breaks the query.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import PG_ADMIN_URL
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from test_web import NOW, PROFILE, build_demo, settings_for

from feedsvc.demo import SNAPSHOT_DAY
from feedsvc.models import Candidate
from feedsvc.store import archive, queries
from feedsvc.store.db import make_engine, session_factory, session_scope
from feedsvc.web.app import create_app

HOSTILE_QUERIES = [
    '"',
    '""',
    "AND OR",
    "OR",
    "NOT",
    "*",
    "^",
    "-",
    "+",
    "(",
    ")",
    "'); drop table items; --",
    "NEAR(a b)",
    "title:graph",
    "graph*",
    "a:b:c",
    "\\",
    "\x00",
    "%",
    "_",
    "!!",
    "& | ! <->",
    "é" * 300,
    "x" * 5000,
    "graph OR",
    "-graph",
    '"unclosed phrase',
    "‘quoted’ «words»",
]


@dataclasses.dataclass(frozen=True)
class Store:
    dialect: str
    url: str
    data_dir: Path


@pytest.fixture(scope="module")
def sqlite_demo(tmp_path_factory: pytest.TempPathFactory) -> Store:
    data_dir = tmp_path_factory.mktemp("search-sqlite")
    build_demo(data_dir)
    return Store("sqlite", f"sqlite:///{data_dir / 'feedsvc.db'}", data_dir)


@pytest.fixture(scope="module")
def pg_demo(tmp_path_factory: pytest.TempPathFactory, pg_admin: Engine) -> Iterator[Store]:
    """The demo built into a fresh PostgreSQL schema (the pipeline writes it, as in production)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with pg_admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    data_dir = tmp_path_factory.mktemp("search-pg")
    build_demo(data_dir, url)
    yield Store("postgresql", url, data_dir)
    with pg_admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, sessionmaker[Session]]]:
    """The demo store on each database; changes a test makes are its own (a copy, or rolled back)."""
    if request.param == "sqlite":
        demo: Store = request.getfixturevalue("sqlite_demo")
        shutil.copy(demo.data_dir / "feedsvc.db", tmp_path / "feedsvc.db")
        engine = make_engine(f"sqlite:///{tmp_path / 'feedsvc.db'}")
        yield demo, session_factory(engine)
        engine.dispose()
        return
    demo = request.getfixturevalue("pg_demo")
    engine = make_engine(demo.url)
    with engine.connect() as conn:  # every session of the test joins this transaction, rolled back at the end
        outer = conn.begin()
        yield demo, sessionmaker(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")
        outer.rollback()
    engine.dispose()


def paper(key: str, title: str, body: str) -> Candidate:
    return Candidate(
        key=key,
        kind="paper",
        title=title,
        text=body,
        url=f"https://arxiv.org/abs/{key[6:]}",
        source="arxiv",
        version=1,
        published=NOW,
    )


def keys(results: archive.SearchResults) -> list[str]:
    return [h.key for h in results.hits]


def test_a_title_match_ranks_above_a_body_only_match(store) -> None:
    _, factory = store
    title_hit = paper("arxiv:2411.90001", "Zymurgic operators for sparse attention", "We study attention.")
    body_hit = paper(
        "arxiv:2411.90002",
        "Sparse attention revisited",
        "Zymurgic ideas, zymurgic methods and zymurgic tricks, zymurgic all the way.",
    )
    with session_scope(factory) as s:
        queries.upsert_candidates(s, [body_hit, title_hit], run_id=None, now=NOW)
    with factory() as s:
        found = archive.search(s, "zymurgic")
        assert keys(found) == [title_hit.key, body_hit.key] and found.total == 2
        assert found.hits[0].score > found.hits[1].score
        assert keys(archive.search(s, "ZYMURGIC sparse")) == [
            title_hit.key,
            body_hit.key,
        ]  # both words needed
        assert keys(archive.search(s, '"sparse attention" zymurgic')) == [title_hit.key, body_hit.key]
        assert keys(archive.search(s, '"attention sparse" zymurgic')) == []  # a phrase keeps its order


def test_on_real_data_every_title_match_comes_before_every_body_only_match(store) -> None:
    _, factory = store
    with factory() as s:
        found = archive.search(s, "spectral", limit=100)
    assert found.total == len(found.hits) > 5
    in_title = [bool(re.search(r"\bspectral", h.title, re.I)) for h in found.hits]
    assert any(in_title) and not all(in_title)
    assert in_title == sorted(in_title, reverse=True), [h.title for h in found.hits]
    for h in found.hits:  # every hit really contains the word (stemmed: spectral, spectrally...)
        assert re.search(r"spectral", f"{h.title} {h.text}", re.I), h.key


def test_cards_are_searched_with_their_items(store) -> None:
    _, factory = store
    with factory() as s:
        assert archive.search(s, "quokkaesque").total == 0
        base = queries.load_digest(s, queries.find_digest(s, PROFILE, SNAPSHOT_DAY))  # type: ignore[arg-type]
    card = dataclasses.replace(base.cards[0], significance="A quokkaesque result about relational graphs.")
    with session_scope(factory) as s:  # a later digest with that card: its prose enters the index
        queries.save_digest(
            s, dataclasses.replace(base, day=SNAPSHOT_DAY + timedelta(days=1), cards=(card,)), "", NOW
        )
    with factory() as s:
        found = archive.search(s, "quokkaesque")
        assert keys(found) == [card.key] and found.total == 1
        assert archive.digests_of(s, [card.key])[card.key][0] == (PROFILE, SNAPSHOT_DAY + timedelta(days=1))


def test_the_index_follows_updates_of_an_item(store) -> None:
    _, factory = store
    v1 = paper("arxiv:2411.90003", "Wombatic flows", "First version.")
    v2 = dataclasses.replace(v1, title="Numbatic flows", text="Second version.", version=2)
    with session_scope(factory) as s:
        queries.upsert_candidates(s, [v1], run_id=None, now=NOW)
    with session_scope(factory) as s:
        queries.upsert_candidates(s, [v2], run_id=None, now=NOW)
    with factory() as s:
        assert archive.search(s, "wombatic").total == 0
        assert keys(archive.search(s, "numbatic")) == [v1.key]
        if s.get_bind().dialect.name == "sqlite":  # the external-content FTS5 index matches its table
            s.execute(text("INSERT INTO items_fts (items_fts, rank) VALUES ('integrity-check', 1)"))
            s.execute(text("INSERT INTO cards_fts (cards_fts, rank) VALUES ('integrity-check', 1)"))


def test_pages_of_results_are_disjoint_and_counted(store) -> None:
    _, factory = store
    with factory() as s:
        first = archive.search(s, "learning", limit=10)
        second = archive.search(s, "learning", offset=10, limit=10)
        past = archive.search(s, "learning", offset=first.total + 10, limit=10)
    assert first.total == second.total == past.total > 20
    assert len(first.hits) == len(second.hits) == 10 and not set(keys(first)) & set(keys(second))
    assert past.hits == []


def test_hostile_queries_never_break_the_query(store) -> None:
    _, factory = store
    with factory() as s:
        for q in HOSTILE_QUERIES:
            found = archive.search(s, q)  # raises on a syntax error: the test fails
            assert found.total >= len(found.hits), q
        assert s.execute(text("SELECT count(*) FROM items")).scalar_one() > 300  # nothing was dropped
        assert archive.search(s, "graph OR").total == archive.search(s, "graph or").total


def test_the_search_page_on_both_databases(store, tmp_path) -> None:
    demo, factory = store
    app = create_app(settings_for(tmp_path, database_url=demo.url), factory)
    with TestClient(app) as c:
        page = c.get("/search", params={"q": "spectral filtering"})
        assert page.status_code == 200 and "/item/arxiv:1606.09375" in page.text
        assert "<mark>" in page.text
        for q in HOSTILE_QUERIES:
            assert c.get("/search", params={"q": q}).status_code == 200, q
        many = c.get("/search", params={"q": "learning"})
        assert "Page 1 of" in many.text and "page=2" in many.text
        assert c.get("/search", params={"q": "learning", "page": 2}).status_code == 200


def test_the_query_syntax_is_built_from_words_only() -> None:
    assert archive.fts_query('graph "neural networks" -x OR y*') == '"graph" "neural networks" "x" "y"'
    assert archive.fts_query("the AND of OR not") == ""  # operators and stop words only: nothing to search
    assert archive.fts_query("'); drop table items; --") == '"drop" "table" "items"'
    assert archive.fts_query('" * ^ ( ) :') == ""
    assert archive.search_terms("Graph graph GRAPH") == [("graph",)]
    assert len(archive.search_terms(" ".join(f"w{i}" for i in range(100)))) == archive.MAX_TERMS


def test_postgresql_uses_the_expression_indexes(pg_demo) -> None:
    """The search repeats the migration's index expressions exactly: PostgreSQL can use both indexes."""
    engine = make_engine(pg_demo.url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(
                row[0]
                for row in conn.execute(
                    text("EXPLAIN " + str(archive._PG_SEARCH)), {"q": "graph", "limit": 20, "offset": 0}
                )
            )
    finally:
        engine.dispose()
    assert "ix_items_search" in plan and "ix_digest_entries_search" in plan, plan


def test_search_and_feed_pages_are_kept_until_the_store_changes(store, tmp_path, monkeypatch) -> None:
    from feedsvc.web.cache import Generation

    demo, factory = store
    app = create_app(settings_for(tmp_path, database_url=demo.url), factory)
    st = app.state.web
    st.generation = Generation(st._read_generation, ttl=0.0)  # the generation is read on every request
    calls = {"search": 0, "list_digests": 0}
    for name in calls:
        real = getattr(archive, name)

        def counting(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(archive, name, counting)
    with TestClient(app) as c:
        first = c.get("/search", params={"q": "quokkatic"})
        again = c.get("/search", params={"q": "quokkatic"})
        assert first.text == again.text and "arxiv:2411.90009" not in first.text
        assert calls["search"] == 1  # the repeat was answered from memory
        assert (
            c.get(
                "/search", params={"q": "quokkatic"}, headers={"If-None-Match": first.headers["etag"]}
            ).status_code
            == 304
        )
        feed = c.get(f"/d/{PROFILE}/atom.xml")
        assert feed.status_code == 200 and c.get(f"/d/{PROFILE}/atom.xml").text == feed.text
        assert calls["list_digests"] == 1
        with session_scope(factory) as s:  # a fetch brings a new paper: the next request sees it
            queries.upsert_candidates(
                s, [paper("arxiv:2411.90009", "Quokkatic transport", "New.")], run_id=None, now=NOW
            )
        assert "arxiv:2411.90009" in c.get("/search", params={"q": "quokkatic"}).text
        assert calls["search"] == 2
        assert c.get(f"/d/{PROFILE}/atom.xml").status_code == 200 and calls["list_digests"] == 2
        assert c.get("/d/nobody/atom.xml").status_code == 404


def test_the_generation_is_read_at_most_once_per_ttl() -> None:
    import time

    from feedsvc.web.cache import Generation

    reads = []
    generation = Generation(lambda: reads.append(1) or len(reads), ttl=0.2)
    assert generation.fresh() is None
    assert generation.refresh() == 1 and generation.refresh() == 1 and generation.fresh() == 1
    time.sleep(0.25)
    assert generation.fresh() is None and generation.refresh() == 2 and len(reads) == 2
