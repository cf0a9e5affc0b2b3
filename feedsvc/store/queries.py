"""Every read and write the pipeline, CLI and web make: the only place SQL is spoken.

Functions take a Session and plain values, and return feedsvc.models types or plain values.
Imports `feedsvc.models`, `feedsvc.identity` and its own package; never sources, rank, cards, render or
deliver.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from feedsvc.identity import ItemKey
from feedsvc.models import (
    VOTES,
    Candidate,
    Card,
    Digest,
    Discussion,
    Feedback,
    Profile,
    Silence,
    SourceReport,
)
from feedsvc.store.card_json import card_from_json, card_to_json
from feedsvc.store.db import insert_or_skip
from feedsvc.store.tables import (
    DeliveryRow,
    DigestRow,
    EmbeddingRow,
    EntryRow,
    FeedbackRow,
    FullTextRow,
    HttpValidator,
    Item,
    LibraryRow,
    ProfileRow,
    RecipientRow,
    Sighting,
    SourceRun,
    TextEmbeddingRow,
)

# --- items ---------------------------------------------------------------------------------------------


def _to_candidate(item: Item) -> Candidate:
    return Candidate(
        key=item.key,
        kind=item.kind,  # type: ignore[arg-type]
        title=item.title,
        text=item.text,
        url=item.url,
        source=str(item.meta.get("source", "")),
        authors=tuple(item.authors),
        categories=tuple(item.categories),
        published=item.published,
        updated=item.updated,
        version=item.version,
        meta=dict(item.meta),
    )


def _newer(candidate: Candidate, item: Item) -> bool:
    if candidate.version is not None and item.version is not None:
        return candidate.version >= item.version
    return True


def _is_discussion(c: Candidate) -> bool:
    return c.kind == "link" and bool(c.meta.get("about"))


def upsert_candidates(
    session: Session, candidates: Iterable[Candidate], *, run_id: int | None, now: datetime
) -> tuple[int, int]:
    """Store what a source brought: new items inserted, known ones updated (a v2 replaces v1's fields,
    never duplicates it), a sighting recorded for each. A story about a paper or video (a link whose
    `meta["about"]` names it) is stored as a sighting of that item, a *discussion*, never as an item of its
    own; when the item is not in the store yet, a placeholder (no text, `meta["placeholder"]`) holds the
    discussion until its own source brings it. Returns (fetched, new items)."""
    batch: dict[str, Candidate] = {}
    discussions: list[Candidate] = []
    for c in candidates:
        if _is_discussion(c):
            discussions.append(c)
        else:
            batch[c.key] = c  # the last sighting of a key within one run wins
    if not batch and not discussions:
        return 0, 0
    wanted = list(batch) + [str(d.meta["about"]) for d in discussions]
    existing = {i.key: i for i in session.scalars(select(Item).where(Item.key.in_(wanted)))}
    for d in discussions:
        _store_discussion(session, d, existing, run_id=run_id, now=now)
    new = 0
    for key, c in batch.items():
        item = existing.get(key)
        if item is None:
            item = _new_item(c, now)
            session.add(item)
            new += 1
        else:
            _update_item(item, c, now)
        session.flush()
        session.add(
            Sighting(item_id=item.id, source=c.source, run_id=run_id, seen_at=now, fields=dict(c.meta))
        )
    session.flush()
    return len(batch) + len(discussions), new


def _store_discussion(
    session: Session, d: Candidate, existing: dict[str, Item], *, run_id: int | None, now: datetime
) -> None:
    """Record discussion `d` as a sighting of the item it is about, adding a placeholder item if needed."""
    about = str(d.meta["about"])
    item = existing.get(about)
    if item is None:
        item = Item(
            key=about,
            kind="video" if ItemKey(about).is_youtube else "paper",
            title=d.title,
            text="",
            authors=[],
            categories=[],
            url=ItemKey(about).page_url() or d.url,
            published=None,
            updated=None,
            version=None,
            meta={"placeholder": True, "source": d.source},
            first_seen=now,
            last_seen=now,
        )
        session.add(item)
        session.flush()
        existing[about] = item
    fields = {**d.meta, "title": d.title, "url": d.url}
    session.add(Sighting(item_id=item.id, source=d.source, run_id=run_id, seen_at=now, fields=fields))


def _new_item(c: Candidate, now: datetime) -> Item:
    """A new stored item for candidate `c`, first seen now."""
    return Item(
        key=c.key,
        kind=c.kind,
        title=c.title,
        text=c.text,
        authors=list(c.authors),
        categories=list(c.categories),
        url=c.url,
        published=c.published,
        updated=c.updated,
        version=c.version,
        meta={**c.meta, "source": c.source},
        first_seen=now,
        last_seen=now,
    )


def _update_item(item: Item, c: Candidate, now: datetime) -> None:
    """Update a known item from a new sighting: a newer version's fields, the metadata merged, a placeholder
    replaced by the real item."""
    if _newer(c, item):
        item.title = c.title or item.title
        item.text = c.text or item.text
        item.authors = list(c.authors) or item.authors
        item.categories = list(c.categories) or item.categories
        item.updated = c.updated or item.updated
        item.version = c.version if c.version is not None else item.version
        # the first-version date, once known, is kept: a replacement does not make a paper new
        if item.published is None or (c.published and c.published < item.published):
            item.published = c.published
    item.meta = {**item.meta, **{k: v for k, v in c.meta.items() if v not in (None, "")}}
    if item.meta.get("placeholder"):
        item.meta = {**item.meta, "placeholder": False, "source": c.source}
        item.kind, item.url = c.kind, c.url
    item.last_seen = now


SITES = {"hn": "Hacker News", "lobsters": "Lobsters"}


def discussions_for(session: Session, keys: Iterable[str]) -> dict[str, list[Discussion]]:
    """The Hacker News and Lobsters threads about each item, one per thread (its latest counts)."""
    keys = list(keys)
    if not keys:
        return {}
    rows = session.execute(
        select(Item.key, Sighting)
        .join(Sighting, Sighting.item_id == Item.id)
        .where(Item.key.in_(keys), Sighting.source.in_(list(SITES)))
        .order_by(Sighting.id)
    )
    found: dict[str, dict[str, Discussion]] = {}
    for key, s in rows:
        f = s.fields
        url = str(f.get("discussion_url") or f.get("url") or "")
        if not url:
            continue
        found.setdefault(key, {})[url] = Discussion(
            site=SITES[s.source],
            url=url,
            points=int(f.get("points") or 0),
            comments=int(f.get("comments") or 0),
            title=str(f.get("title") or ""),
        )
    return {k: sorted(v.values(), key=lambda d: -d.points) for k, v in found.items()}


def titles_since(session: Session, since: datetime) -> dict[str, str]:
    """Titles of the papers and videos first seen since `since`, keyed by item key (for near-duplicates)."""
    rows = session.execute(
        select(Item.key, Item.title).where(Item.kind.in_(("paper", "video")), Item.first_seen >= since)
    )
    return {key: title for key, title in rows}


def items_published_between(
    session: Session, start: datetime, end: datetime, kinds: Sequence[str] = ("paper",)
) -> list[Candidate]:
    """Items of `kinds` published in [start, end]; items without a date count by when first seen."""
    when = func.coalesce(Item.published, Item.first_seen)
    rows = session.scalars(
        select(Item).where(Item.kind.in_(kinds), when >= start, when <= end).order_by(Item.id)
    )
    return [_to_candidate(i) for i in rows]


def items_by_keys(session: Session, keys: Iterable[str]) -> dict[str, Candidate]:
    keys = list(keys)
    if not keys:
        return {}
    return {i.key: _to_candidate(i) for i in session.scalars(select(Item).where(Item.key.in_(keys)))}


def count_items(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Item)) or 0


# --- source runs and HTTP validators --------------------------------------------------------------------

INTERRUPTED = "interrupted (no end recorded)"  # the error of a run whose process died mid-run


def start_run(session: Session, source: str, now: datetime) -> int:
    run = SourceRun(source=source, started=now, status="running")
    session.add(run)
    session.flush()
    return run.id


def finish_run(
    session: Session,
    run_id: int,
    *,
    status: str,
    now: datetime,
    scanned: int = 0,
    fetched: int = 0,
    new: int = 0,
    error: str | None = None,
    note: str = "",
    retry_at: datetime | None = None,
    units: int = 0,
) -> None:
    run = session.get(SourceRun, run_id)
    if run is None:
        raise LookupError(f"source run {run_id} does not exist")
    run.status, run.finished, run.scanned, run.fetched, run.new = status, now, scanned, fetched, new
    run.error, run.note, run.retry_at, run.units = error, note, retry_at, units
    session.flush()


def fail_interrupted_runs(
    session: Session, now: datetime, *, source: str | None = None, started_before: datetime | None = None
) -> int:
    """Record as failed (`INTERRUPTED`, finished `now`) the runs still "running" that no process will
    finish: of `source` (else of every source) begun before `started_before` (else whenever). How many."""
    stmt = update(SourceRun).where(SourceRun.status == "running")
    if source is not None:
        stmt = stmt.where(SourceRun.source == source)
    if started_before is not None:
        stmt = stmt.where(SourceRun.started < started_before)
    done = session.execute(
        stmt.values(status="failed", finished=now, error=INTERRUPTED),
        execution_options={"synchronize_session": False},
    )
    return done.rowcount


def last_good_run(session: Session, source: str, exclude_notes: Sequence[str] = ()) -> SourceRun | None:
    """The latest ok or empty run of `source` (leaving out runs whose note is in `exclude_notes`)."""
    return session.scalars(
        select(SourceRun)
        .where(SourceRun.source == source, SourceRun.status.in_(("ok", "empty")))
        .where(SourceRun.note.not_in(list(exclude_notes)) if exclude_notes else True)
        .order_by(SourceRun.id.desc())
        .limit(1)
    ).first()


def latest_runs(session: Session, exclude_notes: Sequence[str] = ()) -> dict[str, SourceRun]:
    """The most recent finished run of each source (leaving out runs whose note is in `exclude_notes`)."""
    latest = (
        select(SourceRun.source, func.max(SourceRun.id).label("id"))
        .where(SourceRun.finished.is_not(None))
        .where(SourceRun.note.not_in(list(exclude_notes)) if exclude_notes else True)
        .group_by(SourceRun.source)
        .subquery()
    )
    rows = session.scalars(select(SourceRun).join(latest, SourceRun.id == latest.c.id))
    return {r.source: r for r in rows}


def failure_streak(session: Session, source: str) -> list[SourceRun]:
    """The current streak of failed runs of `source`, newest first (empty if its last run did not fail)."""
    runs = session.scalars(
        select(SourceRun)
        .where(SourceRun.source == source, SourceRun.finished.is_not(None))
        .order_by(SourceRun.id.desc())
        .limit(100)
    ).all()
    streak = []
    for run in runs:
        if run.status != "failed":
            break
        streak.append(run)
    return streak


def failing_since(session: Session, source: str) -> datetime | None:
    """When the current streak of failed runs of `source` began, or None if its last run did not fail."""
    streak = failure_streak(session, source)
    return streak[-1].started if streak else None


def last_success(session: Session, source: str) -> datetime | None:
    return session.scalar(
        select(func.max(SourceRun.finished)).where(
            SourceRun.source == source, SourceRun.status.in_(("ok", "empty"))
        )
    )


class StoreValidators:
    """ETag / Last-Modified per URL kept in the store (the sources' `Validators` protocol)."""

    def __init__(self, session: Session, now: datetime) -> None:
        self._session, self._now = session, now

    def get(self, url: str) -> tuple[str | None, str | None] | None:
        row = self._session.get(HttpValidator, url)
        return (row.etag, row.last_modified) if row else None

    def put(self, url: str, etag: str | None, last_modified: str | None) -> None:
        row = self._session.get(HttpValidator, url)
        if row is None:
            self._session.add(
                HttpValidator(url=url, etag=etag, last_modified=last_modified, updated=self._now)
            )
        else:
            row.etag, row.last_modified, row.updated = etag, last_modified, self._now
        self._session.flush()


# --- profiles, recipients, digests ---------------------------------------------------------------------


def sync_profiles(session: Session, profiles: Sequence[Profile], now: datetime) -> dict[str, int]:
    """Mirror the profile file into the store; returns profile name -> id."""
    ids: dict[str, int] = {}
    for p in profiles:
        config = _jsonable(asdict(p))
        new = insert_or_skip(session, ProfileRow.__table__).values(name=p.name, config=config, updated=now)
        session.execute(new.on_conflict_do_nothing())  # another writer may be adding it at the same time
        row = session.scalars(select(ProfileRow).where(ProfileRow.name == p.name)).one()
        if row.config != config:
            row.config, row.updated = config, now
        session.flush()
        ids[p.name] = row.id
        for channel, opts in p.channels.items():
            address = str(opts.get("dir") or opts.get("to") or opts.get("chat_id") or "")
            if address:
                recipient = insert_or_skip(session, RecipientRow.__table__).values(
                    profile_id=row.id, channel=channel, address=address, created=now, active=True
                )
                session.execute(recipient.on_conflict_do_nothing())
    session.flush()
    return ids


def sent_keys(session: Session, profile: str, before: date) -> set[str]:
    """The never-twice ledger of the daily digests: every item key already in one of the profile's daily
    digests before `before` (a weekly bundle's ledger is its recipients': `feedsvc.store.cadence`)."""
    rows = session.scalars(
        select(Item.key)
        .join(EntryRow, EntryRow.item_id == Item.id)
        .join(DigestRow, DigestRow.id == EntryRow.digest_id)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .where(ProfileRow.name == profile, DigestRow.day < before, DigestRow.span == "day")
    )
    return set(rows)


def find_digest(session: Session, profile: str, day: date, span: str = "day") -> DigestRow | None:
    return session.scalar(
        select(DigestRow)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .where(ProfileRow.name == profile, DigestRow.day == day, DigestRow.span == span)
    )


def save_digest(
    session: Session,
    digest: Digest,
    markdown: str,
    now: datetime,
    pages: Mapping[str, dict[str, Any]] | None = None,
) -> int:
    """Store a digest and its cards, with each paper pick's page from `pages` (item key -> page data); a
    digest is immutable, so saving the same (profile, day, span) twice fails."""
    profile_id = session.scalar(select(ProfileRow.id).where(ProfileRow.name == digest.profile))
    if profile_id is None:
        raise LookupError(f"profile {digest.profile!r} is not in the store; sync the profiles first")
    row = DigestRow(
        profile_id=profile_id,
        day=digest.day,
        span=digest.span,
        title=digest.title,
        summary=digest.summary,
        markdown=markdown,
        data=_jsonable(
            {
                "talk_check": digest.talk_check,
                "shortfall": digest.shortfall,
                "papers_wanted": digest.papers_wanted,
                "videos_wanted": digest.videos_wanted,
                "sources": [asdict(s) for s in digest.sources],
            }
        ),
        created=now,
    )
    session.add(row)
    session.flush()
    rows = session.execute(select(Item.key, Item.id).where(Item.key.in_([c.key for c in digest.cards])))
    item_ids = {key: item_id for key, item_id in rows}
    for position, card in enumerate(digest.cards, start=1):
        session.add(
            EntryRow(
                digest_id=row.id,
                item_id=item_ids[card.key],
                position=position,
                thread=card.thread,
                score=card.score,
                card=card_to_json(card),
                page=(pages or {}).get(card.key),
            )
        )
    session.flush()
    return row.id


def load_digest(session: Session, row: DigestRow) -> Digest:
    """Rebuild the `Digest` a row was saved from."""
    profile = session.get(ProfileRow, row.profile_id)
    entries = session.scalars(
        select(EntryRow).where(EntryRow.digest_id == row.id).order_by(EntryRow.position)
    )
    cards = [card_from_json(e.card) for e in entries]
    d = row.data
    return Digest(
        profile=profile.name if profile else "",
        day=row.day,
        title=row.title,
        summary=row.summary,
        cards=tuple(cards),
        papers_wanted=int(d.get("papers_wanted", 0)),
        videos_wanted=int(d.get("videos_wanted", 0)),
        talk_check=str(d.get("talk_check", "")),
        sources=tuple(SourceReport(**s) for s in d.get("sources", [])),
        shortfall=str(d.get("shortfall", "")),
        span=row.span,
    )


def _jsonable(value: Any) -> Any:
    """Tuples to lists, dates to ISO strings: what a JSON column can hold."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def units_since(session: Session, source: str, start: datetime) -> int:
    """The units (API quota, LLM tokens) that `source`'s runs started since `start` recorded."""
    used = session.scalar(
        select(func.coalesce(func.sum(SourceRun.units), 0)).where(
            SourceRun.source == source, SourceRun.started >= start
        )
    )
    return int(used or 0)


class StoreQuota:
    """A source's daily API budget (the YouTube source's `QuotaBudget`), counted from the units its runs
    recorded today (midnight to midnight Pacific time, as YouTube counts) plus what this run has spent."""

    ZONE = ZoneInfo("America/Los_Angeles")

    def __init__(self, session: Session, source: str, daily_units: int, now: datetime) -> None:
        day = now.astimezone(self.ZONE).date()
        start = datetime.combine(day, time.min, self.ZONE).astimezone(UTC)
        self.daily_units, self.used_before, self.spent = daily_units, units_since(session, source, start), 0

    @property
    def remaining(self) -> int:
        return max(0, self.daily_units - self.used_before - self.spent)

    def spend(self, units: int) -> bool:
        if units > self.remaining:
            return False
        self.spent += units
        return True


# --- embeddings, libraries, feedback -------------------------------------------------------------------


def embeddings_for(session: Session, keys: Iterable[str], model: str) -> dict[str, np.ndarray]:
    keys = list(keys)
    if not keys:
        return {}
    rows = session.execute(
        select(Item.key, EmbeddingRow.vector)
        .join(EmbeddingRow, EmbeddingRow.item_id == Item.id)
        .where(Item.key.in_(keys), EmbeddingRow.model == model)
    )
    return {key: np.frombuffer(vector, dtype=np.float32) for key, vector in rows}


def save_embeddings(session: Session, vectors: Mapping[str, np.ndarray], model: str, now: datetime) -> int:
    """Store embeddings of items already in the store (others are skipped); returns how many were stored."""
    ids = dict(session.execute(select(Item.key, Item.id).where(Item.key.in_(list(vectors)))).all())
    have = set(
        session.scalars(
            select(EmbeddingRow.item_id).where(
                EmbeddingRow.item_id.in_(list(ids.values())), EmbeddingRow.model == model
            )
        )
    )
    stored = 0
    for key, vec in vectors.items():
        item_id = ids.get(key)
        if item_id is None or item_id in have:
            continue
        session.add(
            EmbeddingRow(
                item_id=item_id, model=model, vector=np.asarray(vec, np.float32).tobytes(), created=now
            )
        )
        stored += 1
    session.flush()
    return stored


def add_to_library(
    session: Session,
    profile: str,
    keys: Iterable[str],
    *,
    thread: str,
    origin: str,
    now: datetime,
    tags: Mapping[str, Sequence[str]] | None = None,
) -> int:
    """Add stored items to a profile's imported library, with the file's tags per key (a repeat import
    adds tags it did not have); returns how many were new to it."""
    profile_id = session.scalar(select(ProfileRow.id).where(ProfileRow.name == profile))
    if profile_id is None:
        raise LookupError(f"profile {profile!r} is not in the store; sync the profiles first")
    tags = tags or {}
    added = 0
    for key in dict.fromkeys(keys):
        item_id = session.scalar(select(Item.id).where(Item.key == key))
        if item_id is None:
            raise LookupError(f"{key} is not in the store")
        row = session.scalar(
            select(LibraryRow).where(
                LibraryRow.profile_id == profile_id,
                LibraryRow.item_id == item_id,
                LibraryRow.thread == thread,
            )
        )
        new_tags = list(tags.get(key, ()))
        if row is None:
            session.add(
                LibraryRow(
                    profile_id=profile_id,
                    item_id=item_id,
                    thread=thread,
                    origin=origin,
                    added=now,
                    tags=new_tags,
                )
            )
            added += 1
        elif set(new_tags) - set(row.tags or ()):
            row.tags = list(dict.fromkeys([*(row.tags or ()), *new_tags]))
    session.flush()
    return added


def library_of(session: Session, profile: str) -> dict[str, list[str]]:
    """A profile's imported library: thread name ("" for every thread) -> item keys."""
    rows = session.execute(
        select(LibraryRow.thread, Item.key)
        .join(Item, Item.id == LibraryRow.item_id)
        .join(ProfileRow, ProfileRow.id == LibraryRow.profile_id)
        .where(ProfileRow.name == profile)
        .order_by(LibraryRow.id)
    )
    out: dict[str, list[str]] = {}
    for thread, key in rows:
        out.setdefault(thread, []).append(key)
    return out


def record_feedback(
    session: Session,
    profile: str,
    key: str,
    vote: str,
    *,
    channel: str,
    now: datetime,
    recipient_id: int | None = None,
) -> None:
    """One vote, from any channel, into the one feedback table."""
    if vote not in VOTES:
        raise ValueError(f"vote must be one of {', '.join(VOTES)}, not {vote!r}")
    profile_id = session.scalar(select(ProfileRow.id).where(ProfileRow.name == profile))
    if profile_id is None:
        raise LookupError(f"profile {profile!r} is not in the store")
    item_id = session.scalar(select(Item.id).where(Item.key == key))
    if item_id is None:
        raise LookupError(f"{key} is not in the store")
    session.add(
        FeedbackRow(
            profile_id=profile_id,
            recipient_id=recipient_id,
            item_id=item_id,
            vote=vote,
            channel=channel,
            created=now,
        )
    )
    session.flush()


def feedback_for(session: Session, profile: str) -> list[Feedback]:
    """A profile's votes, the latest per item, with the item and the thread it was picked under."""
    rows = session.execute(
        select(FeedbackRow, Item)
        .join(Item, Item.id == FeedbackRow.item_id)
        .join(ProfileRow, ProfileRow.id == FeedbackRow.profile_id)
        .where(ProfileRow.name == profile)
        .order_by(FeedbackRow.id)
    )
    latest: dict[str, tuple[str, Item]] = {}
    for fb, item in rows:
        latest[item.key] = (fb.vote, item)
    threads = dict(
        session.execute(
            select(Item.key, EntryRow.thread)
            .join(EntryRow, EntryRow.item_id == Item.id)
            .join(DigestRow, DigestRow.id == EntryRow.digest_id)
            .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
            .where(ProfileRow.name == profile, Item.key.in_(list(latest)))
        ).all()
    )
    return [
        Feedback(candidate=_to_candidate(item), vote=vote, thread=threads.get(key, ""))
        for key, (vote, item) in latest.items()
    ]


def silence_for(session: Session, profile: str, now: datetime, *, within_days: int = 120) -> list[Silence]:
    """What the profile's readers were sent (deliveries marked sent, within `within_days`) and never voted
    on, each with its age in days since it was first sent: the learned scorer's weak negatives."""
    since = now - timedelta(days=within_days)
    voted = (
        select(FeedbackRow.item_id)
        .join(ProfileRow, ProfileRow.id == FeedbackRow.profile_id)
        .where(ProfileRow.name == profile)
    )
    rows = session.execute(
        select(Item, func.min(DeliveryRow.sent))
        .join(EntryRow, EntryRow.item_id == Item.id)
        .join(DigestRow, DigestRow.id == EntryRow.digest_id)
        .join(DeliveryRow, DeliveryRow.digest_id == DigestRow.id)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .where(
            ProfileRow.name == profile,
            DeliveryRow.status == "sent",
            DeliveryRow.sent >= since,
            DeliveryRow.sent <= now,
            Item.id.not_in(voted),
        )
        .group_by(Item.id)
        .order_by(Item.id)
    ).all()
    return [Silence(_to_candidate(item), (now - _aware(sent)).total_seconds() / 86400) for item, sent in rows]


def _aware(moment: datetime) -> datetime:
    """An aggregate's datetime as UTC-aware (SQLite returns `min()` of a column naive or as text)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def text_embeddings(session: Session, texts: Iterable[str], model: str) -> dict[str, np.ndarray]:
    """Stored embeddings of free texts (thread descriptions), by text."""
    by_digest = {hashlib.sha256(t.encode()).hexdigest(): t for t in texts}
    if not by_digest:
        return {}
    rows = session.execute(
        select(TextEmbeddingRow.digest, TextEmbeddingRow.vector).where(
            TextEmbeddingRow.digest.in_(list(by_digest)), TextEmbeddingRow.model == model
        )
    )
    return {by_digest[d]: np.frombuffer(v, dtype=np.float32) for d, v in rows}


def save_text_embeddings(
    session: Session, vectors: Mapping[str, np.ndarray], model: str, now: datetime
) -> None:
    have = text_embeddings(session, vectors, model)
    for text, vec in vectors.items():
        if text not in have:
            session.add(
                TextEmbeddingRow(
                    digest=hashlib.sha256(text.encode()).hexdigest(),
                    model=model,
                    vector=np.asarray(vec, np.float32).tobytes(),
                    created=now,
                )
            )
    session.flush()


def cached_fulltext(session: Session, key: str) -> tuple[str, bytes, str] | None:
    """(kind, content, reason) of an item's stored full text, decompressed; None if never fetched."""
    row = session.execute(
        select(FullTextRow).join(Item, Item.id == FullTextRow.item_id).where(Item.key == key)
    ).scalar_one_or_none()
    if row is None:
        return None
    return row.kind, gzip.decompress(row.content) if row.content else b"", row.reason


def save_fulltext(session: Session, key: str, kind: str, content: bytes, reason: str, now: datetime) -> None:
    item_id = session.scalar(select(Item.id).where(Item.key == key))
    if item_id is None:
        raise LookupError(f"{key} is not in the store")
    row = session.get(FullTextRow, item_id)
    packed = gzip.compress(content, mtime=0) if content else b""
    if row is None:
        session.add(FullTextRow(item_id=item_id, kind=kind, content=packed, reason=reason, fetched=now))
    else:
        row.kind, row.content, row.reason, row.fetched = kind, packed, reason, now
    session.flush()


def latest_digest(session: Session, profile: str) -> Digest | None:
    """The profile's most recent digest, or None before the first."""
    row = session.scalar(
        select(DigestRow)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .where(ProfileRow.name == profile, DigestRow.span == "day")
        .order_by(DigestRow.day.desc())
        .limit(1)
    )
    return load_digest(session, row) if row is not None else None


def card_in_digests(session: Session, profile: str, key: str) -> Card | None:
    """The card an item had in the profile's latest digest that picked it."""
    data = session.scalar(
        select(EntryRow.card)
        .join(DigestRow, DigestRow.id == EntryRow.digest_id)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .join(Item, Item.id == EntryRow.item_id)
        .where(ProfileRow.name == profile, Item.key == key)
        .order_by(DigestRow.day.desc())
        .limit(1)
    )
    return card_from_json(data) if data is not None else None


def profile_config(session: Session, profile: str) -> dict[str, Any] | None:
    """The profile as last synced from the profile file (threads, send_at, timezone...)."""
    return session.scalar(select(ProfileRow.config).where(ProfileRow.name == profile))


def resolve_key(session: Session, profile: str, key_or_hash: str) -> str | None:
    """An item key from a button: the key itself, or the short SHA-1 prefix used when a key is too long
    for Telegram's 64-byte callback data, looked up among the items of the profile's digests."""
    keys = session.scalars(
        select(Item.key)
        .join(EntryRow, EntryRow.item_id == Item.id)
        .join(DigestRow, DigestRow.id == EntryRow.digest_id)
        .join(ProfileRow, ProfileRow.id == DigestRow.profile_id)
        .where(ProfileRow.name == profile)
    ).all()
    if key_or_hash in keys:
        return key_or_hash
    for key in keys:
        if hashlib.sha1(key.encode("utf-8")).hexdigest().startswith(key_or_hash):
            return key
    return None
