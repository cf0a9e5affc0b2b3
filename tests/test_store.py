"""The store on SQLite and PostgreSQL: migrations, no drift, upserts, runs, the ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

from feedsvc.models import Candidate, Card, Digest, Profile, Quote, SourceReport, Thread
from feedsvc.store import archive, queries
from feedsvc.store.db import current_revision, session_scope
from feedsvc.store.tables import Base, Item, Sighting

NOW = datetime(2024, 11, 28, 18, 0, tzinfo=UTC)


def paper(key: str, version: int | None = 1, title: str = "A paper", **kw) -> Candidate:
    return Candidate(
        key=key,
        kind="paper",
        title=title,
        text=kw.pop("text", "An abstract."),
        url=f"https://arxiv.org/abs/{key[6:]}",
        source="arxiv",
        authors=("A. Author",),
        categories=("cs.LG",),
        published=kw.pop("published", NOW),
        version=version,
        meta=kw.pop("meta", {"announce_type": "new"}),
    )


def _not_search_index(obj, name, type_, reflected, compare_to) -> bool:
    """Leave out the search index of migration 0006, which the ORM metadata does not describe: SQLite's
    FTS5 virtual tables (items_fts, cards_fts and their shadow tables) and PostgreSQL's GIN expression
    indexes (ix_items_search, ix_digest_entries_search). Everything else is compared."""
    return not (type_ in ("table", "index") and reflected and archive.is_search_object(name))


def test_upgrade_head_creates_every_table_and_no_drift(engine) -> None:
    assert current_revision(engine) == "0010_cadence"
    names = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= names
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": _not_search_index})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations drifted: {diff}"


def test_a_replacement_updates_the_item_and_never_duplicates_it(factory) -> None:
    with session_scope(factory) as s:
        assert queries.upsert_candidates(
            s, [paper("arxiv:2411.00001", 1, "Old title")], run_id=None, now=NOW
        ) == (1, 1)
    later = NOW + timedelta(days=3)
    v2 = paper("arxiv:2411.00001", 2, "New title", published=later, meta={"announce_type": "replace"})
    with session_scope(factory) as s:
        assert queries.upsert_candidates(s, [v2], run_id=None, now=later) == (1, 0)
    with session_scope(factory) as s:
        items = s.scalars(select(Item)).all()
        assert len(items) == 1
        item = items[0]
        assert (item.title, item.version) == ("New title", 2)
        assert item.published == NOW  # the first-version date is kept: a v2 is not a new paper
        assert item.meta["announce_type"] == "replace"
        assert s.scalar(select(func.count()).select_from(Sighting)) == 2


def test_an_older_version_seen_later_does_not_overwrite_a_newer_one(factory) -> None:
    with session_scope(factory) as s:
        queries.upsert_candidates(s, [paper("arxiv:2411.00002", 3, "v3 title")], run_id=None, now=NOW)
        queries.upsert_candidates(s, [paper("arxiv:2411.00002", 1, "v1 title")], run_id=None, now=NOW)
    with session_scope(factory) as s:
        assert s.scalar(select(Item.title)) == "v3 title"


def test_times_come_back_timezone_aware(factory) -> None:
    with session_scope(factory) as s:
        queries.upsert_candidates(s, [paper("arxiv:2411.00003")], run_id=None, now=NOW)
    with session_scope(factory) as s:
        [c] = queries.items_published_between(s, NOW - timedelta(days=1), NOW + timedelta(days=1))
        assert c.published == NOW and c.published.tzinfo is not None


def test_runs_record_status_and_failure_streaks(factory) -> None:
    with session_scope(factory) as s:
        r1 = queries.start_run(s, "arxiv", NOW)
        queries.finish_run(s, r1, status="ok", now=NOW, scanned=10, fetched=5, new=5)
        r2 = queries.start_run(s, "arxiv", NOW + timedelta(hours=1))
        queries.finish_run(s, r2, status="failed", now=NOW + timedelta(hours=1), error="HTTP 503")
        r3 = queries.start_run(s, "arxiv", NOW + timedelta(hours=2))
        queries.finish_run(s, r3, status="failed", now=NOW + timedelta(hours=2), error="timed out")
    with session_scope(factory) as s:
        latest = queries.latest_runs(s)["arxiv"]
        assert (latest.status, latest.error) == ("failed", "timed out")
        assert queries.failing_since(s, "arxiv") == NOW + timedelta(hours=1)


def test_validators_persist_per_url(factory) -> None:
    with session_scope(factory) as s:
        v = queries.StoreValidators(s, NOW)
        assert v.get("https://rss.arxiv.org/rss/cs.LG") is None
        v.put("https://rss.arxiv.org/rss/cs.LG", '"abc"', "Thu, 28 Nov 2024 14:47:20 GMT")
    with session_scope(factory) as s:
        assert queries.StoreValidators(s, NOW).get("https://rss.arxiv.org/rss/cs.LG") == (
            '"abc"',
            "Thu, 28 Nov 2024 14:47:20 GMT",
        )


def _digest(profile: str, day: date, keys: list[str]) -> Digest:
    cards = tuple(
        Card(
            key=k,
            kind="paper",
            title=k,
            url="https://arxiv.org/abs/x",
            domain="ML",
            time_cost="~2min",
            intuition="i",
            punch_intro="p",
            punch=(Quote("x = 1", "abstract", True),),
            significance="s",
            why="w",
            thread="T",
            score=0.5,
        )
        for k in keys
    )
    return Digest(
        profile=profile,
        day=day,
        title=f"Daily Feed - {day}",
        summary="s",
        cards=cards,
        papers_wanted=3,
        videos_wanted=2,
        talk_check="t",
        sources=(SourceReport("arXiv", "ok", 10, 5, len(keys), "note"),),
    )


def test_digests_round_trip_and_feed_the_never_twice_ledger(factory) -> None:
    prof = Profile(name="p1", threads=(Thread(name="T"),), channels={"markdown": {"dir": "out"}})
    with session_scope(factory) as s:
        queries.sync_profiles(s, [prof], NOW)
        queries.upsert_candidates(
            s, [paper("arxiv:2411.00010"), paper("arxiv:2411.00011")], run_id=None, now=NOW
        )
        d = _digest("p1", date(2024, 11, 28), ["arxiv:2411.00010"])
        queries.save_digest(s, d, "# md", NOW)
    with session_scope(factory) as s:
        row = queries.find_digest(s, "p1", date(2024, 11, 28))
        assert row is not None and row.markdown == "# md"
        assert queries.load_digest(s, row) == d
        assert queries.sent_keys(s, "p1", before=date(2024, 11, 29)) == {"arxiv:2411.00010"}
        assert queries.sent_keys(s, "p1", before=date(2024, 11, 28)) == set()  # rebuilding that day itself
        assert queries.sent_keys(s, "other", before=date(2024, 11, 29)) == set()
