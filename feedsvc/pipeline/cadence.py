"""Sending each recipient with a cadence of their own at their time (`send_due`, the scheduler's `cadence`
job, every minute).

For each active recipient with a cadence (`feedsvc.store.cadence`), the latest send time at or before
now is owed when it came after the cadence was set and the recipient has no delivery of that bundle yet:
the profile's daily digest of that day (in the profile's zone), or the weekly bundle of the week ending
that day, built here when it is not built yet. A weekly bundle is ranked from the week's candidates and
leaves out every item its recipients have had. A bundle without picks (nothing cleared the bar) goes
only to the readers who asked for the one-line note; the others get a delivery row marked "quiet", so
the day counts as done. The deliveries are due at once; the publish run that follows sends them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from feedsvc.cadence import last_due
from feedsvc.config import Settings
from feedsvc.models import Profile
from feedsvc.store import cadence as store
from feedsvc.store import queries
from feedsvc.store.db import session_scope

Bundle = tuple[str, str, date]  # (profile, span, day)


@dataclass
class CadenceRun:
    built: list[str] = field(default_factory=list)
    enqueued: int = 0
    quiet: int = 0

    def summary(self) -> str:
        if not self.built and not self.enqueued and not self.quiet:
            return "nothing due"
        return f"{self.enqueued} deliveries due, {self.quiet} quiet; bundles: {', '.join(self.built)}"


def owed(session: Session, profiles: Sequence[Profile], now: datetime) -> dict[Bundle, list[store.Cadenced]]:
    """The bundles owed now, each with the recipients owed it."""
    by_name = {p.name: p for p in profiles}
    out: dict[Bundle, list[store.Cadenced]] = {}
    for c in store.cadenced(session):
        profile = by_name.get(c.recipient.profile)
        if profile is None:
            continue
        due = last_due(c.cadence, now)
        if due <= c.since:  # the cadence was set after this send time: the next one is the first owed
            continue
        day = due.astimezone(ZoneInfo(profile.timezone)).date()
        if not store.has_bundle(session, c.recipient.id, c.cadence.span, day):
            out.setdefault((profile.name, c.cadence.span, day), []).append(c)
    return out


def send_due(
    settings: Settings,
    factory: sessionmaker[Session],
    profiles: Sequence[Profile],
    now: datetime,
    *,
    before_build: Callable[[], None] | None = None,
) -> CadenceRun:
    """Build what is owed now and queue each recipient's delivery; `before_build` runs first when
    something is owed (the scheduler's wait for a fresh store)."""
    from feedsvc.pipeline.digest import build_digests  # the ranking stack, loaded only when owed

    run = CadenceRun()
    with session_scope(factory) as session:
        bundles = owed(session, profiles, now)
    if bundles and before_build is not None:
        before_build()
    by_name = {p.name: p for p in profiles}
    for (name, span, day), members in bundles.items():
        with session_scope(factory) as session:
            had = store.had_keys(session, [m.recipient.id for m in members]) if span == "week" else set()
        build_digests(settings, factory, [by_name[name]], day=day, now=now, span=span, had=had)
        run.built.append(f"{name} {span} {day.isoformat()}")
        with session_scope(factory) as session:
            _enqueue(session, name, span, day, members, now, run)
            session.commit()
    return run


def _enqueue(
    session: Session,
    profile: str,
    span: str,
    day: date,
    members: Sequence[store.Cadenced],
    now: datetime,
    run: CadenceRun,
) -> None:
    row = queries.find_digest(session, profile, day, span)
    if row is None:  # a dry run or a failed build: nothing to send, tried again next minute
        return
    empty = store.is_empty(session, row.id)
    for m in members:
        if empty and not m.cadence.empty_note:
            run.quiet += store.enqueue(session, row.id, m.recipient, now, status="quiet")
        else:
            run.enqueued += store.enqueue(session, row.id, m.recipient, now)
