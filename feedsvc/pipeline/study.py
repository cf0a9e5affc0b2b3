"""A reader's study list: `study_list` assembles it (imported papers, papers voted 👍, the profile's seed
papers; newest first, filtered by thread and tag), and `read_library_papers` reads the full text of a
bounded number of them per run (arXiv HTML, else the e-print, politely spaced), building each one's
breakdown page, reading difficulty and the arXiv ids it cites.

Tags: imported, liked, seed; the library file's own (e.g. canonical); and canonical when at least
`CANONICAL_CITED_BY` of the list's read papers cite it. Difficulty: `feedsvc.cards.difficulty`, from the
full text once read, from the abstract until then.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from feedsvc.cards.breakdown import breakdown, formula_notes, page_data
from feedsvc.cards.difficulty import difficulty, difficulty_from_data, from_abstract
from feedsvc.cards.fulltext import FullText
from feedsvc.cards.writer import parse_fulltext
from feedsvc.config import Settings
from feedsvc.identity import ItemKey
from feedsvc.models import Candidate, Profile, StudyEntry, StudyList
from feedsvc.sources.fulltext_fetch import fetch_fulltext
from feedsvc.sources.http import SourceHttp
from feedsvc.store import queries, study
from feedsvc.store.db import session_scope

CANONICAL_CITED_BY = 2  # read papers of the list citing a paper that make it canonical
SUMMARY_CHARS = 280  # about two lines of a page or a phone
MAX_CITES = 500
_CITED = re.compile(r"(?:arXiv\s*[:.]?\s*|arxiv\.org/(?:abs|pdf)/)(\d{4}\.\d{4,5})(?:v\d+)?", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")


def summary(abstract: str, limit: int = SUMMARY_CHARS) -> str:
    """The abstract's first sentences that fit in `limit` characters (at least the first, cut at a word)."""
    text = " ".join(abstract.split())
    out = ""
    for sentence in _SENTENCE.split(text):
        if out and len(out) + 1 + len(sentence) > limit:
            break
        out = f"{out} {sentence}".strip()
    if len(out) > limit:
        out = out[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"
    return out


def cited_ids(text: str, own: str | None = None) -> list[str]:
    """The arXiv ids a full text mentions (its references), in order, each once, its own left out."""
    found = dict.fromkeys(m.group(1) for m in _CITED.finditer(text))
    found.pop(own or "", None)
    return list(found)[:MAX_CITES]


def _entry(s: study.Shelved, cited_by: int) -> StudyEntry:
    item = s.item
    diff = difficulty_from_data(s.difficulty) if s.difficulty else from_abstract(item.text)
    tags = list(s.tags)
    if cited_by >= CANONICAL_CITED_BY and "canonical" not in tags:
        tags.append("canonical")
    return StudyEntry(
        key=item.key,
        title=item.title,
        authors=tuple(item.authors),
        year=item.published.year if item.published else None,
        abstract=item.text,
        summary=summary(item.text),
        url=item.url,
        added=s.added,
        threads=tuple(s.threads),
        tags=tuple(tags),
        difficulty=diff.level,
        difficulty_score=diff.score,
        difficulty_why=diff.explain(),
        breakdown=s.page,
        cited_by=cited_by,
    )


def study_list(session: Session, profile: str, *, thread: str = "", tag: str = "") -> StudyList | None:
    """The profile's study list, newest first, only `thread`'s papers (and those seeding every thread) and
    only those tagged `tag` when given; None when there is no such profile."""
    shelf = study.shelf(session, profile)
    if shelf is None:
        return None
    own = {a: s.item.key for s in shelf if (a := ItemKey(s.item.key).arxiv_id)}
    cited = Counter(own[i] for s in shelf for i in s.cites if i in own and own[i] != s.item.key)
    entries = [_entry(s, cited[s.item.key]) for s in shelf]
    shown = [
        e
        for e in entries
        if (not thread or thread in e.threads or "" in e.threads) and (not tag or tag in e.tags)
    ]
    return StudyList(
        profile=profile,
        entries=tuple(shown),
        total=len(entries),
        threads=tuple(sorted({t for e in entries for t in e.threads if t})),
        tags=tuple(sorted({t for e in entries for t in e.tags})),
    )


@dataclass
class LibraryReading:
    read: int = 0  # papers read (a page row written)
    pages: int = 0  # of which with a breakdown page (a full text)
    fetched: int = 0  # full texts fetched over the network
    waiting: int = 0  # papers left for a later run
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"library: {self.read} read ({self.pages} with a breakdown, {self.fetched} fetched), "
            f"{self.waiting} waiting"
        )


def _unread(session: Session, profiles: Sequence[Profile]) -> list[Candidate]:
    todo: dict[str, Candidate] = {}
    for p in profiles:
        for s in study.shelf(session, p.name) or []:
            if not s.read and s.item.kind == "paper":
                todo.setdefault(s.item.key, s.item)
    return list(todo.values())


def _fulltext(
    settings: Settings, session: Session, http: SourceHttp, c: Candidate, now: datetime, pause: bool
) -> tuple[FullText | None, bool]:
    """The paper's full text from the store, else fetched (after the arXiv pause when `pause`) and stored;
    and whether it was fetched."""
    arxiv = ItemKey(c.key).arxiv_id
    cached = queries.cached_fulltext(session, c.key)
    fetched = False
    if cached is None and arxiv is not None:
        if pause:
            time.sleep(settings.arxiv_delay_seconds)
        raw = fetch_fulltext(settings, http, arxiv)
        queries.save_fulltext(session, c.key, raw.kind, raw.content, raw.reason, now)
        cached, fetched = (raw.kind, raw.content, raw.reason), True
    if cached is None:
        return None, fetched
    kind, content, reason = cached
    return parse_fulltext(kind, content, c.text, reason, settings.fulltext_max_bytes), fetched


def _read_one(session: Session, c: Candidate, ft: FullText | None, now: datetime) -> bool:
    """Store what the full text gives: the page (None without one), the difficulty, the citations."""
    full = ft is not None and ft.source != "abstract"
    page = page_data(breakdown(c, ft), formula_notes(ft)) if full and ft is not None else None
    cites = cited_ids(ft.text, ItemKey(c.key).arxiv_id) if full and ft is not None else []
    study.save_page(session, c.key, page, difficulty(c.text, ft).as_data(), cites, now)
    return page is not None


def read_library_papers(
    settings: Settings,
    factory: sessionmaker[Session],
    profiles: Sequence[Profile],
    *,
    limit: int | None = None,
    now: datetime | None = None,
) -> LibraryReading:
    """Read up to `limit` (default `library_reads_per_run`) unread papers of the profiles' study lists:
    the stored full text, else arXiv's HTML or e-print, one request per `arxiv_delay_seconds`. Each
    paper is committed as it is read, so an interrupted run keeps what it did."""
    now = now or datetime.now(UTC)
    limit = settings.library_reads_per_run if limit is None else limit
    out = LibraryReading()
    with session_scope(factory) as session, SourceHttp(settings, source="arxiv-fulltext") as http:
        queries.sync_profiles(session, profiles, now)
        todo = _unread(session, profiles)
        out.waiting = max(0, len(todo) - limit)
        for c in todo[:limit]:
            ft, fetched = _fulltext(settings, session, http, c, now, pause=out.fetched > 0)
            out.fetched += fetched
            if ft is not None and ft.failed:
                out.problems.append(f"{c.key}: no full text ({ft.failed})")
            out.pages += _read_one(session, c, ft, now)
            out.read += 1
            session.commit()
    return out
