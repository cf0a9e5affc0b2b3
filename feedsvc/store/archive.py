"""The web archive's reads: digest listings, an item's cards and talks, full-text search, heartbeats.

Search runs on the index migration 0006 builds: SQLite FTS5 (`items_fts`, `cards_fts`, kept in sync by
triggers) or PostgreSQL GIN expression indexes (`ix_items_search`, `ix_digest_entries_search`); on both,
a title match weighs more than a body match, and a hit is an item (its own text and its cards' prose).
User input never reaches the query syntax: `fts_query` keeps only words and quoted phrases and quotes
each; PostgreSQL parses with `websearch_to_tsquery`, which accepts any text.

Imports `feedsvc.models` and `feedsvc.store` only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from feedsvc.models import Candidate, Card, Digest
from feedsvc.store import queries
from feedsvc.store.card_json import card_from_json
from feedsvc.store.delivery import code_hash
from feedsvc.store.tables import (
    DigestRow,
    EntryRow,
    HeartbeatRow,
    Item,
    ProfileRow,
    SubscriptionRow,
)

# The search index's objects, which the ORM metadata does not describe (the no-drift test skips them):
# SQLite's FTS5 tables (each with shadow tables named `<table>_*`) and PostgreSQL's expression indexes.
SEARCH_TABLES = ("items_fts", "cards_fts")
SEARCH_INDEXES = ("ix_items_search", "ix_digest_entries_search")
SEARCH_OBJECTS = frozenset(SEARCH_TABLES + SEARCH_INDEXES)


DAILY = DigestRow.span == "day"  # the archive shows the daily digests; a weekly bundle is its reader's own


def is_search_object(name: str | None) -> bool:
    """Whether a reflected table or index belongs to the search index (FTS5 shadow tables included)."""
    return bool(name) and (name in SEARCH_OBJECTS or any(name.startswith(f"{t}_") for t in SEARCH_TABLES))


# --- digests -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """One digest in a list: enough for the archive page, the Atom feed and the JSON API."""

    id: int
    profile: str
    day: date
    title: str
    summary: str
    created: datetime
    papers: int
    videos: int


def _listings(session: Session, rows: Sequence[tuple[DigestRow, str]]) -> list[Listing]:
    ids = [d.id for d, _ in rows]
    counts: dict[tuple[int, str], int] = {}
    if ids:
        kinds = session.execute(
            select(EntryRow.digest_id, Item.kind, func.count())
            .join(Item, Item.id == EntryRow.item_id)
            .where(EntryRow.digest_id.in_(ids))
            .group_by(EntryRow.digest_id, Item.kind)
        )
        counts = {(digest_id, kind): n for digest_id, kind, n in kinds}
    return [
        Listing(
            id=d.id,
            profile=name,
            day=d.day,
            title=d.title,
            summary=d.summary,
            created=d.created,
            papers=counts.get((d.id, "paper"), 0),
            videos=counts.get((d.id, "video"), 0),
        )
        for d, name in rows
    ]


def profile_names(session: Session) -> list[str]:
    """Every profile in the store, by name."""
    return list(session.scalars(select(ProfileRow.name).order_by(ProfileRow.name)))


def latest_digests(session: Session) -> list[Listing]:
    """Each profile's most recent digest, by profile name."""
    latest = (
        select(DigestRow.profile_id, func.max(DigestRow.day).label("day"))
        .where(DAILY)
        .group_by(DigestRow.profile_id)
        .subquery()
    )
    rows = session.execute(
        select(DigestRow, ProfileRow.name)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .join(latest, (latest.c.profile_id == DigestRow.profile_id) & (latest.c.day == DigestRow.day))
        .where(DAILY)
        .order_by(ProfileRow.name)
    ).all()
    return _listings(session, rows)


def list_digests(
    session: Session, profile: str, *, offset: int = 0, limit: int = 30
) -> tuple[list[Listing], int]:
    """A page of the profile's digests, newest first, and how many it has in all."""
    where = (ProfileRow.name == profile) & DAILY
    total = session.scalar(
        select(func.count())
        .select_from(DigestRow)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .where(where)
    )
    rows = session.execute(
        select(DigestRow, ProfileRow.name)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .where(where)
        .order_by(DigestRow.day.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return _listings(session, rows), int(total or 0)


def digest_id(session: Session, profile: str, day: date) -> int | None:
    """The id of the profile's digest of `day` (a published digest never changes, so neither does this)."""
    return session.scalar(
        select(DigestRow.id)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .where(ProfileRow.name == profile, DigestRow.day == day, DAILY)
    )


def digest_by_id(session: Session, digest_id: int) -> tuple[Digest, Listing] | None:
    """The digest with its listing, or None."""
    found = session.execute(
        select(DigestRow, ProfileRow.name)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .where(DigestRow.id == digest_id)
    ).first()
    if found is None:
        return None
    [listing] = _listings(session, [(found[0], found[1])])
    return queries.load_digest(session, found[0]), listing


def generation(session: Session) -> tuple[Any, ...]:
    """A token of everything the archive's search and feeds show: it changes when a digest, a profile or an
    item is added, and when an item is updated (every write of an item sets its `last_seen`)."""
    row = session.execute(
        select(
            select(func.max(DigestRow.id)).scalar_subquery(),
            select(func.count(DigestRow.id)).scalar_subquery(),
            select(func.max(ProfileRow.id)).scalar_subquery(),
            select(func.max(Item.id)).scalar_subquery(),
            select(func.max(Item.last_seen)).scalar_subquery(),
        )
    ).one()
    return tuple(row)


# --- items ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Appearance:
    """An item's card in one digest."""

    profile: str
    day: date
    digest_title: str
    position: int
    card: Card


def item(session: Session, key: str) -> Candidate | None:
    """The stored item under `key` (a discussion-only placeholder has `meta["placeholder"]`)."""
    return queries.items_by_keys(session, [key]).get(key)


def _appearances(session: Session, condition: Any) -> list[Appearance]:
    rows = session.execute(
        select(EntryRow.card, EntryRow.position, DigestRow.day, DigestRow.title, ProfileRow.name)
        .join(DigestRow, DigestRow.id == EntryRow.digest_id)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .join(Item, Item.id == EntryRow.item_id)
        .where(condition, DAILY)
        .order_by(DigestRow.day.desc(), ProfileRow.name, EntryRow.position)
    )
    return [
        Appearance(profile=name, day=day, digest_title=title, position=position, card=card_from_json(card))
        for card, position, day, title, name in rows
    ]


def appearances(session: Session, key: str) -> list[Appearance]:
    """Every card the item had, newest digest first."""
    return _appearances(session, Item.key == key)


def talks_for(session: Session, titles: Iterable[str]) -> list[Appearance]:
    """Video cards that are talks about a paper with one of these titles (their `talk_for`)."""
    titles = [t for t in dict.fromkeys(titles) if t]
    if not titles:
        return []
    return _appearances(session, EntryRow.card["talk_for"].as_string().in_(titles))


def keys_titled(session: Session, title: str, kind: str = "paper") -> list[str]:
    """The keys of items of `kind` with exactly this title (a talk's paper)."""
    return list(
        session.scalars(select(Item.key).where(Item.title == title, Item.kind == kind).order_by(Item.id))
    )


def paper_page(session: Session, key: str) -> tuple[int, dict[str, Any]] | None:
    """The page stored with the latest digest that picked the paper: (its entry's id, the page's data);
    None when no digest stored one (not a paper pick, read from the abstract only, or built before
    pages were stored)."""
    row = session.execute(
        select(EntryRow.id, EntryRow.page)
        .join(Item, Item.id == EntryRow.item_id)
        .where(Item.key == key, EntryRow.page.is_not(None))
        .order_by(EntryRow.id.desc())
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


# --- search --------------------------------------------------------------------------------------------

_TERM = re.compile(r'"([^"]*)"?|(\w+)', re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY = 200
MAX_TERMS = 16


# PostgreSQL's English stop words (tsearch_data/english.stop): dropped from queries on both databases, so
# that "graphs or trees" means the same everywhere (PostgreSQL ignores them; FTS5 would require them).
STOP_WORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her
    hers herself it its itself they them their theirs themselves what which who whom this that these those
    am is are was were be been being have has had having do does did doing a an the and but if or because
    as until while of at by for with about against between into through during before after above below to
    from up down in out on off over under again further then once here there when where why how all any
    both each few more most other some such no nor not only own same so than too very s t can will just don
    should now""".split()  # noqa: SIM905 (the list as PostgreSQL ships it, one string)
)


def search_terms(query: str) -> list[tuple[str, ...]]:
    """The query as a list of terms, each a tuple of words (a quoted phrase has several), stop words out."""
    terms: list[tuple[str, ...]] = []
    for m in _TERM.finditer(query[:MAX_QUERY]):
        words = tuple(w.lower() for w in _WORD.findall(m.group(1) if m.group(1) is not None else m.group(2)))
        if words and not all(w in STOP_WORDS for w in words) and words not in terms:
            terms.append(words)
    return terms[:MAX_TERMS]


def fts_query(query: str) -> str:
    """An FTS5 MATCH expression for user input: every word and phrase quoted, all required; "" if none.

    Operators (AND, OR, NOT, NEAR, `*`, `^`, column filters) typed by the user are searched as words."""
    return " ".join('"' + " ".join(words) + '"' for words in search_terms(query))


def _pg_query(query: str) -> str:
    """The text handed to websearch_to_tsquery (which never rejects input): quoted words and phrases only,
    so that nothing the user typed ("or", "-") acts as an operator."""
    return " ".join('"' + " ".join(words) + '"' for words in search_terms(query))


@dataclass(frozen=True)
class Hit:
    key: str
    kind: str
    title: str
    url: str
    text: str
    score: float
    placeholder: bool


@dataclass(frozen=True)
class SearchResults:
    hits: list[Hit]
    total: int
    terms: list[tuple[str, ...]]


_SQLITE_SEARCH = text(
    """
    WITH hits AS (
        SELECT rowid AS item_id, bm25(items_fts, 10.0, 1.0) AS score FROM items_fts WHERE items_fts MATCH :q
        UNION ALL
        SELECT e.item_id, c.score FROM (
            SELECT rowid AS entry_id, bm25(cards_fts, 10.0, 1.0) AS score
            FROM cards_fts WHERE cards_fts MATCH :q
        ) AS c JOIN digest_entries AS e ON e.id = c.entry_id
    )
    SELECT item_id, -min(score) AS score, count(*) OVER () AS total FROM hits
    GROUP BY item_id ORDER BY score DESC, item_id DESC LIMIT :limit OFFSET :offset
    """
)

# The expressions of migration 0006's indexes, repeated verbatim so that PostgreSQL uses them.
PG_ITEM_VECTOR = (
    "setweight(to_tsvector('english'::regconfig, title), 'A') || "
    "setweight(to_tsvector('english'::regconfig, text), 'B')"
)
PG_CARD_VECTOR = (
    "setweight(to_tsvector('english'::regconfig, coalesce(card ->> 'title', '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, "
    "coalesce(card ->> 'domain', '') || ' ' || coalesce(card ->> 'thread', '') || ' ' || "
    "coalesce(card ->> 'intuition', '') || ' ' || coalesce(card ->> 'punch_intro', '') || ' ' || "
    "jsonb_path_query_array(card::jsonb, '$.punch[*] ? (@.is_math == false).text')::text || ' ' || "
    "coalesce(card ->> 'significance', '') || ' ' || coalesce(card ->> 'talk_for', '')), 'B')"
)
PG_WEIGHTS = "'{0, 0, 0.1, 1}'::float4[]"  # D, C, B, A: a title (A) match counts ten times a body (B) one

_PG_SEARCH = text(
    f"""
    WITH q AS (SELECT websearch_to_tsquery('english'::regconfig, :q) AS query),
    hits AS (
        SELECT items.id AS item_id, ts_rank({PG_WEIGHTS}, {PG_ITEM_VECTOR}, q.query) AS score
        FROM items, q WHERE ({PG_ITEM_VECTOR}) @@ q.query
        UNION ALL
        SELECT digest_entries.item_id, ts_rank({PG_WEIGHTS}, {PG_CARD_VECTOR}, q.query)
        FROM digest_entries, q WHERE ({PG_CARD_VECTOR}) @@ q.query
    )
    SELECT item_id, max(score) AS score, count(*) OVER () AS total FROM hits
    GROUP BY item_id ORDER BY score DESC, item_id DESC LIMIT :limit OFFSET :offset
    """
)


def search(session: Session, query: str, *, offset: int = 0, limit: int = 20) -> SearchResults:
    """Items matching every word and phrase of `query`, best first: title matches above body matches."""
    terms = search_terms(query)
    if not terms:
        return SearchResults([], 0, [])
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        rows = session.execute(
            _SQLITE_SEARCH, {"q": fts_query(query), "limit": limit, "offset": offset}
        ).all()
    elif dialect == "postgresql":
        rows = session.execute(_PG_SEARCH, {"q": _pg_query(query), "limit": limit, "offset": offset}).all()
    else:
        raise NotImplementedError(f"full-text search is not implemented for {dialect}")
    if not rows:
        total = 0
        if offset:  # past the last page: count what there is
            rows_all = search(session, query, offset=0, limit=1)
            total = rows_all.total
        return SearchResults([], total, terms)
    scores = {item_id: float(score) for item_id, score, _ in rows}
    items = {i.id: i for i in session.scalars(select(Item).where(Item.id.in_(list(scores))))}
    hits = [
        Hit(
            key=i.key,
            kind=i.kind,
            title=i.title,
            url=i.url,
            text=i.text,
            score=scores[i.id],
            placeholder=bool(i.meta.get("placeholder")),
        )
        for item_id in scores
        if (i := items.get(item_id)) is not None
    ]
    return SearchResults(hits, int(rows[0][2]), terms)


def digests_of(session: Session, keys: Iterable[str]) -> dict[str, list[tuple[str, date]]]:
    """The (profile, day) of every digest each item appeared in, newest first."""
    keys = list(keys)
    if not keys:
        return {}
    rows = session.execute(
        select(Item.key, ProfileRow.name, DigestRow.day)
        .join(EntryRow, EntryRow.item_id == Item.id)
        .join(DigestRow, DigestRow.id == EntryRow.digest_id)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .where(Item.key.in_(keys), DAILY)
        .order_by(DigestRow.day.desc(), ProfileRow.name)
    )
    out: dict[str, list[tuple[str, date]]] = {}
    for key, name, day in rows:
        out.setdefault(key, []).append((name, day))
    return out


# --- subscriptions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """A subscription awaiting its confirmation, as its confirmation page shows it."""

    profile: str
    channel: str
    address: str
    expires: datetime
    used: datetime | None


def pending_subscription(session: Session, channel: str, code: str) -> Pending | None:
    """What a confirmation code would subscribe, without redeeming it (None for an unknown code)."""
    found = session.execute(
        select(SubscriptionRow, ProfileRow.name)
        .join(ProfileRow, ProfileRow.id == SubscriptionRow.profile_id)
        .where(SubscriptionRow.code_hash == code_hash(code), SubscriptionRow.channel == channel)
    ).first()
    if found is None:
        return None
    row, profile = found
    return Pending(profile, row.channel, row.address, row.expires, row.used)


# --- health --------------------------------------------------------------------------------------------


def ping(session: Session) -> None:
    """Raise unless the database answers."""
    session.execute(text("SELECT 1")).scalar_one()


@dataclass(frozen=True)
class Heartbeat:
    name: str
    beat: datetime
    detail: str


def heartbeat(session: Session, name: str, now: datetime, detail: str = "") -> None:
    """Record that the process `name` ("scheduler", "worker", "bot") is alive at `now`."""
    dialect = session.get_bind().dialect.name
    values = {"name": name, "beat": now, "detail": detail}
    if dialect in ("sqlite", "postgresql"):
        ins = (sqlite_insert if dialect == "sqlite" else pg_insert)(HeartbeatRow).values(**values)
        session.execute(
            ins.on_conflict_do_update(
                index_elements=["name"], set_={"beat": ins.excluded.beat, "detail": ins.excluded.detail}
            )
        )
    else:
        row = session.get(HeartbeatRow, name)
        if row is None:
            session.add(HeartbeatRow(**values))
        else:
            row.beat, row.detail = now, detail
    session.flush()


def heartbeats(session: Session) -> dict[str, Heartbeat]:
    """Every process's last heartbeat, by name."""
    return {
        r.name: Heartbeat(r.name, r.beat, r.detail)
        for r in session.scalars(select(HeartbeatRow).order_by(HeartbeatRow.name))
    }
