"""The reader's papers by name: `import_library` makes a library file's papers seeds of a profile, and
`fetch_papers` (`feedsvc fetch --ids`) brings particular papers into the store by arXiv id."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from feedsvc.config import Settings
from feedsvc.identity import ItemKey, bare_arxiv_id
from feedsvc.models import Candidate, ConfigError, Profile, SourceError
from feedsvc.sources.arxiv import ArxivSource
from feedsvc.sources.fulltext_fetch import fetch_fulltext, paper_from_html
from feedsvc.sources.http import SourceHttp
from feedsvc.sources.library_file import LibraryEntry, read_library
from feedsvc.store import queries
from feedsvc.store.db import session_scope

Lookup = Callable[[Sequence[str]], list[Candidate]]


@dataclass(frozen=True)
class Imported:
    read: int
    added: int
    fetched: int
    problems: list[str]


def import_library(
    settings: Settings,
    factory: sessionmaker[Session],
    profiles: Sequence[Profile],
    profile: str,
    path: Path,
    *,
    thread: str = "",
    lookup: Lookup | None = None,
    now: datetime | None = None,
) -> Imported:
    """Add the papers in a library file to a profile's seeds (all threads, or `thread`), with the file's
    tags. Papers not in the store are fetched from arXiv by id; entries without an arXiv id, and those
    arXiv cannot be asked about (it is down) whose file gives a title and abstract, are kept as the file
    gives them. Every entry that cannot be imported is reported, and the rest are imported."""
    now = now or datetime.now(UTC)
    _check_target(profiles, profile, thread)
    read = read_library(path)
    problems = list(read.problems)
    with session_scope(factory) as session:
        queries.sync_profiles(session, profiles, now)
        known = queries.items_by_keys(session, [e.key for e in read.entries])
        missing = [e for e in read.entries if e.arxiv and e.key not in known]
        fetched, failed = _fetch_missing(settings, [e.arxiv for e in missing if e.arxiv], lookup)
        queries.upsert_candidates(session, fetched, run_id=None, now=now)
        got = {c.key for c in fetched}
        local = [_local_paper(e) for e in read.entries if not e.arxiv and e.key not in known]
        for e in missing:
            if e.key in got:
                continue
            if failed and e.title and e.abstract:
                local.append(_local_paper(e))
            else:
                problems.append(f"{e.label}: {failed or f'arXiv has no paper {e.arxiv}; skipped'}")
        queries.upsert_candidates(session, local, run_id=None, now=now)
        present = set(queries.items_by_keys(session, [e.key for e in read.entries]))
        keys = [e.key for e in read.entries if e.key in present]
        tags = {e.key: e.tags for e in read.entries if e.tags}
        added = queries.add_to_library(
            session, profile, keys, thread=thread, origin=str(path), now=now, tags=tags
        )
    return Imported(read=len(read.entries), added=added, fetched=len(fetched), problems=problems)


def _fetch_missing(
    settings: Settings, ids: Sequence[str], lookup: Lookup | None
) -> tuple[list[Candidate], str | None]:
    """The papers arXiv has of `ids`, or none and why when arXiv cannot be asked."""
    if not ids:
        return [], None
    try:
        return (lookup(ids) if lookup is not None else _lookup_arxiv(settings, ids)), None
    except SourceError as e:  # arXiv down: its entries are reported or kept as the file gives them
        return [], f"not imported: {e}"


def _check_target(profiles: Sequence[Profile], profile: str, thread: str) -> None:
    """ConfigError unless `profile` exists and has `thread` (when one is named)."""
    target = next((p for p in profiles if p.name == profile), None)
    if target is None:
        raise ConfigError(f"no profile named '{profile}'")
    if thread and thread not in {t.name for t in target.threads}:
        names = ", ".join(repr(t.name) for t in target.threads)
        raise ConfigError(f"profile '{profile}' has no thread {thread!r} (its threads: {names})")


def _lookup_arxiv(settings: Settings, ids: Sequence[str]) -> list[Candidate]:
    with SourceHttp(settings, source="arxiv") as http:
        return ArxivSource(settings, http, []).lookup(ids)


def _local_paper(e: LibraryEntry) -> Candidate:
    """A library entry as the file gives it (no arXiv id, or arXiv down)."""
    return Candidate(
        key=e.key,
        kind="paper",
        title=e.title,
        text=e.abstract,
        url=e.url
        or (f"https://doi.org/{e.doi}" if e.doi else "")
        or (f"https://arxiv.org/abs/{e.arxiv}" if e.arxiv else ""),
        source="library",
        authors=e.authors,
        published=datetime(e.year, 1, 1, tzinfo=UTC) if e.year else None,
    )


@dataclass(frozen=True)
class PapersFetched:
    from_api: int
    from_html: int
    problems: list[str]


def fetch_papers(
    settings: Settings, factory: sessionmaker[Session], ids: Sequence[str], *, now: datetime | None = None
) -> PapersFetched:
    """Fetch papers by arXiv id: from arXiv's API; those it cannot supply (unknown there, or the API down)
    from their arXiv HTML, whose title, authors and abstract are the paper's own (the HTML is kept as the
    paper's full text). Each id that neither has is reported."""
    now = now or datetime.now(UTC)
    bare = list(dict.fromkeys(bare_arxiv_id(i) for i in ids))
    problems: list[str] = []
    with session_scope(factory) as session, SourceHttp(settings, source="arxiv") as http:
        found: list[Candidate] = []
        try:
            found = ArxivSource(settings, http, []).lookup(bare)
        except SourceError as e:
            problems.append(f"arXiv API: {e.cause}; reading the papers' HTML instead")
        queries.upsert_candidates(session, found, run_id=None, now=now)
        got = {c.key for c in found}
        from_html = 0
        for arxiv_id in bare:
            if ItemKey.arxiv(arxiv_id) in got:
                continue
            raw = fetch_fulltext(settings, http, arxiv_id)
            paper = paper_from_html(arxiv_id, raw.content) if raw.kind == "html" else None
            if paper is None:
                problems.append(
                    f"{arxiv_id}: not found ({raw.reason or 'no HTML with a title and abstract'})"
                )
                continue
            queries.upsert_candidates(session, [paper], run_id=None, now=now)
            queries.save_fulltext(session, paper.key, raw.kind, raw.content, raw.reason, now)
            from_html += 1
    return PapersFetched(from_api=len(found), from_html=from_html, problems=problems)
