"""Which sources ran and what they brought: `collect` runs every registered source into the store, one
recorded run each, and `source_health` says what those runs add up to (failures, back-off, quota).

Errors from one source are recorded on its run and never stop the others. A source that keeps failing
waits: after the Retry-After it was given, and after two failures in a row for a back-off that doubles.
A source runs under its lock (`feedsvc.store.locks`), so two collects never fetch it at once: the later
one waits, then finds it fetched. A run left "running" by a process that died is recorded as failed
(`queries.INTERRUPTED`) by the next run of its source, or by a health read once it is older than
`source_run_stale_seconds`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from feedsvc.config import Settings
from feedsvc.identity import match_title, title_fingerprint
from feedsvc.models import Candidate, Profile, Source, SourceError
from feedsvc.pipeline.talks import NOTE as TALK_NOTE
from feedsvc.sources import SOURCES, build_sources
from feedsvc.sources.http import Validators
from feedsvc.sources.youtube import QuotaBudget
from feedsvc.store import queries
from feedsvc.store.db import session_scope
from feedsvc.store.locks import job_lock

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
SourcesFactory = Callable[[Settings, Sequence[Profile], Validators, QuotaBudget], list[Source]]
SOURCE_NAMES = tuple(SOURCES)
# the runs of the optional LLM card writer and judge (pipeline/digest.py): reported beside the sources,
# with the tokens of the day as their units, when an endpoint is configured
LLM = "llm"


@dataclass(frozen=True)
class RunOutcome:
    source: str
    status: str  # ok | empty | failed | disabled | backoff | fresh | busy
    scanned: int = 0
    fetched: int = 0
    new: int = 0
    error: str | None = None
    note: str = ""


def collect(
    settings: Settings,
    factory: sessionmaker[Session],
    profiles: Sequence[Profile],
    *,
    now: datetime | None = None,
    make_sources: SourcesFactory = build_sources,
    progress: Progress | None = None,
    fresh_for: timedelta | None = None,
) -> list[RunOutcome]:
    """Fetch every enabled source into the store, one recorded run each; a source that keeps failing
    waits (exponential back-off, or the Retry-After it was given) and says until when.

    A source fetched by another collect (in this process or another) since this one began is not fetched
    again ("fresh"), nor, with `fresh_for`, one whose last good run began less than `fresh_for` before
    `now`."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=max((p.max_age_days for p in profiles), default=365))
    outcomes: list[RunOutcome] = []
    with session_scope(factory) as session:
        queries.sync_profiles(session, profiles, now)
        session.commit()
        quota = queries.StoreQuota(session, "youtube", settings.youtube_daily_quota, now)
        sources = make_sources(settings, profiles, queries.StoreValidators(session, now), quota)
        round_ = _Round(settings, factory, session, since, now, fresh_for)
        seen = {source.name: round_.last_good(source.name) for source in sources}
        try:
            for source in sources:
                if progress:
                    progress(source.name)
                outcomes.append(_run_alone(round_, source, seen[source.name]))
        finally:
            for source in sources:
                source.close()
    return outcomes


@dataclass(frozen=True)
class _Round:
    """What the runs of one collect share."""

    settings: Settings
    factory: sessionmaker[Session]
    session: Session
    since: datetime
    now: datetime
    fresh_for: timedelta | None

    def last_good(self, source: str) -> int | None:
        """The id of `source`'s latest ok or empty run (talk searches aside)."""
        run = queries.last_good_run(self.session, source, exclude_notes=(TALK_NOTE,))
        return run.id if run else None


def _run_alone(round_: _Round, source: Source, seen: int | None) -> RunOutcome:
    """Run `source` unless it need not run now, holding its lock: a run of it still "running" then has no
    process behind it, and a good run newer than `seen` (its latest when the collect began) was made by
    another collect meanwhile."""
    settings, session, now = round_.settings, round_.session, round_.now
    skipped = _skipped(session, settings, source.name, now)
    if skipped:
        return skipped
    session.commit()  # no read snapshot held while waiting: what the lock's holder records is seen
    wait = settings.source_run_stale_seconds
    with job_lock(settings, round_.factory, f"source:{source.name}", wait=wait) as held:
        if not held:
            return RunOutcome(source.name, "busy", note=f"another process is fetching it (waited {wait:g} s)")
        queries.fail_interrupted_runs(session, datetime.now(UTC), source=source.name)
        session.commit()
        skipped = _skipped(session, settings, source.name, now) or _fresh(round_, source.name, seen)
        return skipped or _run(session, source, round_.since, now)


def _fresh(round_: _Round, source: str, seen: int | None) -> RunOutcome | None:
    """The outcome of a source fetched just now (by another process since the collect began, or within
    `fresh_for`); None when it is to run."""
    last = queries.last_good_run(round_.session, source, exclude_notes=(TALK_NOTE,))
    if last is None:
        return None
    if last.id != seen:
        return RunOutcome(source, "fresh", note="fetched by another collect while this one ran")
    fresh_for = round_.fresh_for
    if fresh_for is not None and last.started > round_.now - fresh_for:
        minutes = f"{fresh_for.total_seconds() / 60:g}"
        return RunOutcome(
            source,
            "fresh",
            note=f"fetched at {last.started:%H:%M} UTC, less than {minutes} min before this run",
        )
    return None


def _skipped(session: Session, settings: Settings, source: str, now: datetime) -> RunOutcome | None:
    """The outcome of a source that does not run now (disabled, or backing off); None when it runs."""
    if source in settings.disabled_sources:
        return RunOutcome(source, "disabled", note="disabled by FEEDSVC_DISABLED_SOURCES")
    wait = backoff_until(session, settings, source, now)
    if wait is not None:
        return RunOutcome(source, "backoff", note=f"backing off until {wait:%Y-%m-%d %H:%M} UTC")
    return None


def backoff_until(session: Session, settings: Settings, source: str, now: datetime) -> datetime | None:
    """When `source` may run again, if not now: after the Retry-After it was given, and after two or more
    failures in a row, `backoff_minutes` doubling with each further failure (at most a day)."""
    streak = queries.failure_streak(session, source)
    if not streak:
        return None
    last = streak[0]
    until = last.retry_at
    if len(streak) >= 2 and last.finished is not None:
        pause = timedelta(minutes=settings.backoff_minutes * 2 ** (len(streak) - 2))
        until = max(filter(None, (until, last.finished + min(pause, timedelta(days=1)))))
    return until if until is not None and until > now else None


def _run(session: Session, source: Source, since: datetime, now: datetime) -> RunOutcome:
    """Run one source into the store and record the run: its counts, its error, the quota it spent."""
    run_id = queries.start_run(session, source.name, now)
    session.commit()
    spent_before = source.units_spent
    retry_at = None
    try:
        fetched = source.fetch(since)
        candidates = _attach_by_title(session, fetched.candidates, now)
        count, new = queries.upsert_candidates(session, candidates, run_id=run_id, now=now)
        outcome = RunOutcome(source.name, fetched.status, fetched.scanned, count, new, None, fetched.note)
    except SourceError as e:
        session.rollback()
        outcome = RunOutcome(source.name, "failed", error=e.cause)
        if e.retry_after:
            retry_at = now + timedelta(seconds=e.retry_after)
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
        retry_at=retry_at,
        units=source.units_spent - spent_before,
    )
    session.commit()
    return outcome


def _attach_by_title(session: Session, candidates: list[Candidate], now: datetime) -> list[Candidate]:
    """A story whose link is not a paper but whose title is a known paper's (or nearly) discusses it."""
    links = [c for c in candidates if c.kind == "link" and not c.meta.get("about")]
    if not links:
        return candidates
    index = {
        title_fingerprint(t): k for k, t in queries.titles_since(session, now - timedelta(days=730)).items()
    }
    out = []
    for c in candidates:
        if c.kind == "link" and not c.meta.get("about"):
            key = match_title(c.title, index)
            if key:
                c = replace(c, meta={**c.meta, "about": key, "matched_by": "title"})
        out.append(c)
    return out


# --- health --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """One source's health, as `feedsvc sources` and /healthz report it."""

    source: str
    enabled: bool
    last_status: str  # ok | empty | failed | never run
    last_run: datetime | None
    last_success: datetime | None
    failing_since: datetime | None
    failures: int
    next_try: datetime | None
    error: str | None
    note: str
    units_today: int = 0  # YouTube's quota units today; the LLM's tokens in the last 24 hours


def _units_today(session: Session, source: str, now: datetime) -> int:
    """YouTube's quota units of its Pacific-time day; the LLM's tokens of the last 24 hours; else 0."""
    if source == "youtube":
        return queries.StoreQuota(session, source, 0, now).used_before
    if source == LLM:
        return queries.units_since(session, source, now - timedelta(days=1))
    return 0


def source_health(
    settings: Settings, factory: sessionmaker[Session], now: datetime | None = None
) -> list[Health]:
    """What each source's recorded runs say: the truth, including failures and back-off, and the same for
    the LLM's runs when one is configured. A run still "running" after `source_run_stale_seconds` is first
    recorded as failed (interrupted)."""
    now = now or datetime.now(UTC)
    out = []
    with session_scope(factory) as session:
        stale = now - timedelta(seconds=settings.source_run_stale_seconds)
        if queries.fail_interrupted_runs(session, now, started_before=stale):
            session.commit()
        runs = queries.latest_runs(session, exclude_notes=(TALK_NOTE,))
        for name in SOURCE_NAMES + ((LLM,) if settings.llm_base_url else ()):
            run = runs.get(name)
            streak = queries.failure_streak(session, name)
            out.append(
                Health(
                    source=name,
                    enabled=name not in settings.disabled_sources,
                    last_status=run.status if run else "never run",
                    last_run=run.finished if run else None,
                    last_success=queries.last_success(session, name),
                    failing_since=streak[-1].started if streak else None,
                    failures=len(streak),
                    next_try=None if name == LLM else backoff_until(session, settings, name, now),
                    error=run.error if run and run.status == "failed" else None,
                    note=run.note if run else "",
                    units_today=_units_today(session, name, now),
                )
            )
    return out
