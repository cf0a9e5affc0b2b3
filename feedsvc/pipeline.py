"""The only place the stages are wired together: collect() runs the sources into the store, build_digests()
ranks, writes the cards and renders each profile's bundle.

Errors from one source are recorded on its run and never stop the others. Imports every stage; nothing
but the edges (cli, scheduler, web) imports this module.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from feedsvc.cards.extractive import build_card
from feedsvc.config import Settings
from feedsvc.models import Digest, Profile, Source, SourceError, SourceReport
from feedsvc.rank.ranker import Ranking, rank
from feedsvc.render.markdown import SOURCE_LABELS, render_markdown
from feedsvc.sources.arxiv import ArxivSource
from feedsvc.sources.http import SourceHttp, Validators
from feedsvc.store import queries
from feedsvc.store.db import session_scope

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunOutcome:
    source: str
    status: str  # ok | empty | failed
    scanned: int = 0
    fetched: int = 0
    new: int = 0
    error: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Built:
    profile: str
    day: date
    digest: Digest
    markdown: str
    path: Path | None
    existed: bool = False


def arxiv_categories(profiles: Sequence[Profile]) -> list[str]:
    cats: list[str] = []
    for p in profiles:
        cats += [c for c in p.arxiv_categories if c not in cats]
    return cats


def default_sources(settings: Settings, profiles: Sequence[Profile], validators: Validators) -> list[Source]:
    """The sources the profiles ask for. Each gets its own HTTP client (closed by `collect`)."""
    sources: list[Source] = []
    cats = arxiv_categories(profiles)
    if cats:
        sources.append(
            ArxivSource(settings, SourceHttp(settings, source="arxiv", validators=validators), cats)
        )
    return sources


SourcesFactory = Callable[[Settings, Sequence[Profile], Validators], list[Source]]


def collect(
    settings: Settings,
    factory: sessionmaker[Session],
    profiles: Sequence[Profile],
    *,
    now: datetime | None = None,
    make_sources: SourcesFactory = default_sources,
    progress: Progress | None = None,
) -> list[RunOutcome]:
    """Fetch every source into the store, one recorded run each."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=max((p.max_age_days for p in profiles), default=365))
    outcomes: list[RunOutcome] = []
    with session_scope(factory) as session:
        queries.sync_profiles(session, profiles, now)
        session.commit()
        sources = make_sources(settings, profiles, queries.StoreValidators(session, now))
        try:
            for source in sources:
                if progress:
                    progress(source.name)
                outcomes.append(_run_source(session, source, since, now))
        finally:
            for source in sources:
                close = getattr(getattr(source, "http", None), "close", None)
                if close:
                    close()
    return outcomes


def _run_source(session: Session, source: Source, since: datetime, now: datetime) -> RunOutcome:
    run_id = queries.start_run(session, source.name, now)
    session.commit()
    try:
        fetched = source.fetch(since)
        count, new = queries.upsert_candidates(session, fetched.candidates, run_id=run_id, now=now)
        outcome = RunOutcome(source.name, fetched.status, fetched.scanned, count, new, None, fetched.note)
    except SourceError as e:
        session.rollback()
        outcome = RunOutcome(source.name, "failed", error=e.cause)
        log.warning("%s", e)
    except Exception as e:  # a bug in one source must not stop the others; it is recorded, not hidden
        session.rollback()
        log.exception("source %s crashed", source.name)
        outcome = RunOutcome(source.name, "failed", error=f"unexpected {type(e).__name__}: {e}")
    queries.finish_run(
        session,
        run_id,
        status=outcome.status,
        now=datetime.now(UTC),
        scanned=outcome.scanned,
        fetched=outcome.fetched,
        new=outcome.new,
        error=outcome.error,
        note=outcome.note,
    )
    session.commit()
    return outcome


# --- digests -------------------------------------------------------------------------------------------


def digest_day(profile: Profile, now: datetime) -> date:
    return now.astimezone(ZoneInfo(profile.timezone)).date()


def build_digests(
    settings: Settings,
    factory: sessionmaker[Session],
    profiles: Sequence[Profile],
    *,
    day: date | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[Built]:
    """Rank, write cards and render each profile's digest for `day` (default: today in its timezone).

    A digest, once built, is immutable: asking again for the same profile and day returns it unchanged.
    With `dry_run` nothing is stored or written.
    """
    now = now or datetime.now(UTC)
    built: list[Built] = []
    with session_scope(factory) as session:
        queries.sync_profiles(session, profiles, now)
        for profile in profiles:
            the_day = day or digest_day(profile, now)
            existing = queries.find_digest(session, profile.name, the_day)
            if existing is not None and not dry_run:
                path = _digest_path(settings, profile.name, the_day)
                built.append(
                    Built(
                        profile.name,
                        the_day,
                        queries.load_digest(session, existing),
                        existing.markdown,
                        path if path.exists() else None,
                        existed=True,
                    )
                )
                continue
            digest = _make_digest(session, profile, the_day)
            rendered = render_markdown(digest)
            path = None
            if not dry_run:
                queries.save_digest(session, digest, rendered.body, now)
                path = _digest_path(settings, profile.name, the_day)
                write_atomically(path, rendered.body)
                session.commit()
            built.append(Built(profile.name, the_day, digest, rendered.body, path))
        if dry_run:
            session.rollback()
    return built


def _make_digest(session: Session, profile: Profile, day: date) -> Digest:
    tz = ZoneInfo(profile.timezone)
    end = datetime.combine(day, time.max, tz).astimezone(UTC)
    start = end - timedelta(days=profile.max_age_days)
    candidates = queries.items_published_between(session, start, end, kinds=("paper",))
    seed_keys = [f"arxiv:{s}" for t in profile.threads for s in t.seed_papers]
    seeds = queries.items_by_keys(session, seed_keys)
    sent = queries.sent_keys(session, profile.name, before=day)
    ranking = rank(profile, candidates, now=end, seeds=seeds, already_sent=sent)
    cards = tuple(build_card(s) for s in ranking.picks)
    return Digest(
        profile=profile.name,
        day=day,
        title=f"Daily Feed - {day.isoformat()}",
        summary=_summary(cards),
        cards=cards,
        papers_wanted=profile.papers,
        videos_wanted=profile.videos,
        talk_check=(
            "not run: this build has no YouTube source yet, so there are no video picks and no "
            "author-talk search for today's papers."
        ),
        sources=tuple(_source_reports(session, profile, ranking, len(seed_keys) - len(seeds))),
        shortfall=_shortfall(profile, ranking),
    )


def _summary(cards: Sequence) -> str:
    if not cards:
        return "No paper cleared today's bar for this profile."
    parts = [f"{c.title.rstrip('.')} ({c.thread})" for c in cards]
    return "Today's picks: " + "; ".join(parts) + "."


def _shortfall(profile: Profile, ranking: Ranking) -> str:
    n = len(ranking.picks)
    if n >= profile.papers:
        return ""
    return (
        f"{n} of {profile.papers} paper picks: of {ranking.eligible} eligible papers, "
        f"{ranking.below_bar} fell below the relevance bar, and weak picks are not used as padding."
    )


def _source_reports(
    session: Session, profile: Profile, ranking: Ranking, missing_seeds: int
) -> list[SourceReport]:
    reports: list[SourceReport] = []
    runs = queries.latest_runs(session)
    picked = len(ranking.picks)
    pool = (
        f"{ranking.considered} papers from the last {profile.max_age_days} days in the store, "
        f"{ranking.eligible} eligible"
    )
    excluded = []
    if ranking.vetoed:
        excluded.append(
            f"{ranking.vetoed} vetoed by exclude terms ("
            + ", ".join(f"'{t}' {n}" for t, n in sorted(ranking.vetoes.items()))
            + ")"
        )
    if ranking.already_sent:
        excluded.append(f"{ranking.already_sent} already sent")
    if excluded:
        pool += " after " + " and ".join(excluded)
    pool += f"; {ranking.below_bar} below the relevance bar; picked {picked}."
    if missing_seeds:
        pool += f" {missing_seeds} seed paper(s) of the profile are not in the store yet."
    for source, run in sorted(runs.items()):
        label = SOURCE_LABELS.get(source, source)
        if run.status == "failed":
            since = queries.failing_since(session, source) or run.started
            note = (
                f"failed since {since:%Y-%m-%d %H:%M} UTC ({run.error}); "
                f"picks come from what the store already had: {pool}"
            )
        elif run.status == "empty":
            note = f"{run.note or 'nothing new'} (checked {run.finished:%Y-%m-%d %H:%M} UTC). {pool}"
        else:
            note = (
                f"last fetch {run.finished:%Y-%m-%d %H:%M} UTC scanned {run.scanned} items, "
                f"kept {run.fetched} "
                f"in the configured categories ({run.new} new to the store). {pool}"
            )
        reports.append(
            SourceReport(
                source=label,
                status=run.status,
                scanned=run.scanned,
                eligible=ranking.eligible,
                picked=picked,
                note=note,
            )
        )
    if not runs:
        reports.append(
            SourceReport(
                source="arXiv",
                status="never run",
                scanned=0,
                eligible=ranking.eligible,
                picked=picked,
                note=f"never fetched (run `feedsvc fetch`). {pool}",
            )
        )
    return reports


def _digest_path(settings: Settings, profile: str, day: date) -> Path:
    return settings.digest_dir() / profile / f"{day.isoformat()}.md"


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees half a digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
