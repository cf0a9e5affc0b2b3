"""The study list's reads and writes: a reader's papers (imported, liked, the profile's seed papers) with
what the store knows of each, and the pages of library papers read outside any digest (`paper_pages`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from feedsvc.identity import ItemKey
from feedsvc.models import Candidate
from feedsvc.store.queries import _to_candidate
from feedsvc.store.tables import (
    DigestRow,
    EntryRow,
    FeedbackRow,
    FullTextRow,
    Item,
    LibraryRow,
    PaperPageRow,
    ProfileRow,
)

LIKED = ("up", "more")  # a vote that puts a paper on the study list ("more like this" counts as liked)


@dataclass
class Shelved:
    """One paper on a reader's study list, as stored."""

    item: Candidate
    added: datetime  # when it came to the list: imported, voted, or (a seed) first seen
    threads: list[str] = field(default_factory=list)  # "" = every thread; none: a vote outside a digest
    tags: list[str] = field(default_factory=list)  # imported, liked, seed, and the file's own tags
    page: bool = False  # a breakdown page exists (a digest's or the study list's)
    read: bool = False  # its full text was tried (a page row exists, with or without a page)
    difficulty: dict[str, Any] | None = None
    cites: list[str] = field(default_factory=list)  # arXiv ids its full text mentions
    fulltext: str | None = None  # the stored full text's kind (html, eprint, none), if fetched


def profile_id(session: Session, profile: str) -> int | None:
    return session.scalar(select(ProfileRow.id).where(ProfileRow.name == profile))


def _add(
    shelf: dict[str, Shelved], item: Item, added: datetime, thread: str | None, tags: Iterable[str]
) -> None:
    """Put `item` on the shelf (again): under `thread` ("" every thread, None none known), with `tags`."""
    entry = shelf.get(item.key)
    if entry is None:
        entry = shelf[item.key] = Shelved(item=_to_candidate(item), added=added)
    entry.added = max(entry.added, added)
    if thread is not None and thread not in entry.threads:
        entry.threads.append(thread)
    entry.tags.extend(t for t in tags if t not in entry.tags)


def _imported(session: Session, pid: int, shelf: dict[str, Shelved]) -> None:
    rows = session.execute(
        select(LibraryRow, Item).join(Item, Item.id == LibraryRow.item_id).where(LibraryRow.profile_id == pid)
    )
    for lib, item in rows:
        _add(shelf, item, lib.added, lib.thread, ["imported", *(lib.tags or ())])


def _liked(session: Session, pid: int, shelf: dict[str, Shelved]) -> None:
    latest: dict[int, FeedbackRow] = {}
    for fb in session.scalars(
        select(FeedbackRow).where(FeedbackRow.profile_id == pid).order_by(FeedbackRow.id)
    ):
        latest[fb.item_id] = fb
    liked = {i: fb for i, fb in latest.items() if fb.vote in LIKED}
    if not liked:
        return
    threads = dict(
        session.execute(
            select(EntryRow.item_id, EntryRow.thread)
            .join(DigestRow, DigestRow.id == EntryRow.digest_id)
            .where(DigestRow.profile_id == pid, EntryRow.item_id.in_(list(liked)))
        ).all()
    )
    for item in session.scalars(select(Item).where(Item.id.in_(list(liked)), Item.kind == "paper")):
        _add(shelf, item, liked[item.id].created, threads.get(item.id), ["liked"])


def _seeds(session: Session, config: dict[str, Any], shelf: dict[str, Shelved]) -> None:
    by_key: dict[str, list[str]] = {}
    for thread in config.get("threads", ()):
        for arxiv in thread.get("seed_papers", ()):
            by_key.setdefault(ItemKey.arxiv(arxiv), []).append(thread.get("name", ""))
    if not by_key:
        return
    for item in session.scalars(select(Item).where(Item.key.in_(list(by_key)))):
        for thread in by_key[item.key]:
            _add(shelf, item, item.first_seen, thread, ["seed"])


def _annotate(session: Session, shelf: dict[str, Shelved]) -> None:
    ids = {e.item.key: e for e in shelf.values()}
    if not ids:
        return
    item_ids = dict(session.execute(select(Item.id, Item.key).where(Item.key.in_(list(ids)))).all())
    for row in session.scalars(select(PaperPageRow).where(PaperPageRow.item_id.in_(list(item_ids)))):
        entry = ids[item_ids[row.item_id]]
        entry.read, entry.page = True, row.page is not None
        entry.difficulty, entry.cites = row.difficulty or None, list(row.cites or ())
    in_digests = session.scalars(
        select(EntryRow.item_id).where(EntryRow.item_id.in_(list(item_ids)), EntryRow.page.is_not(None))
    )
    for item_id in in_digests:
        ids[item_ids[item_id]].page = True
    for item_id, kind in session.execute(
        select(FullTextRow.item_id, FullTextRow.kind).where(FullTextRow.item_id.in_(list(item_ids)))
    ):
        ids[item_ids[item_id]].fulltext = kind


def shelf(session: Session, profile: str) -> list[Shelved] | None:
    """The profile's study list, newest first: its imported papers, the papers it voted 👍 (or "more like
    this") and its seed papers that are in the store; None when there is no such profile."""
    row = session.scalar(select(ProfileRow).where(ProfileRow.name == profile))
    if row is None:
        return None
    found: dict[str, Shelved] = {}
    _imported(session, row.id, found)
    _liked(session, row.id, found)
    _seeds(session, row.config or {}, found)
    _annotate(session, found)
    newest = sorted(found.values(), key=lambda e: (e.item.published or e.added, e.item.key), reverse=True)
    return sorted(newest, key=lambda e: e.added, reverse=True)  # stable: same day, newest paper first


def save_page(
    session: Session,
    key: str,
    page: dict[str, Any] | None,
    difficulty: dict[str, Any],
    cites: list[str],
    now: datetime,
) -> None:
    """Keep what reading a library paper gave: its page (None: no full text), difficulty and citations."""
    item_id = session.scalar(select(Item.id).where(Item.key == key))
    if item_id is None:
        raise LookupError(f"{key} is not in the store")
    row = session.get(PaperPageRow, item_id)
    if row is None:
        row = PaperPageRow(item_id=item_id, built=now)
        session.add(row)
    row.page, row.difficulty, row.cites, row.built = page, difficulty, cites, now
    session.flush()


def library_page(session: Session, key: str) -> tuple[datetime, dict[str, Any]] | None:
    """The page a library paper's reading stored: (when it was built, the page's data)."""
    row = session.execute(
        select(PaperPageRow.built, PaperPageRow.page)
        .join(Item, Item.id == PaperPageRow.item_id)
        .where(Item.key == key, PaperPageRow.page.is_not(None))
    ).first()
    return (row[0], row[1]) if row is not None else None
