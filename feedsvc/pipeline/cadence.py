"""Sending each recipient with a cadence of their own at their time (`send_due`, the scheduler's `cadence`
job, every minute).

For each active recipient with a cadence (`feedsvc.store.cadence`), the latest send time at or before
now is owed when it came after the cadence was set and the recipient has no delivery of that bundle yet:
the profile's daily digest of that day (in the profile's zone), or the weekly bundle of the week ending
that day, built here when it is not built yet. A weekly bundle is ranked from the week's candidates and
leaves out every item its recipients have had. A bundle without picks (nothing cleared the bar) goes
only to the readers who asked for the one-line note; the others get a delivery row marked "quiet", so
the day counts as done. The deliveries are due at once; the publish run that follows sends them.
`cadence_for` and `change_cadence` read and set a recipient's cadence for the CLI, the bot and the web.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from feedsvc.cadence import last_due, parse_cadence
from feedsvc.config import Settings
from feedsvc.models import Cadence, Profile, Recipient
from feedsvc.store import cadence as store
from feedsvc.store import delivery, queries
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


# --- reading and changing a recipient's cadence (the CLI, the bot's /settings, the web settings page) ----


def cadence_for(session: Session, recipient: Recipient) -> Cadence:
    """The recipient's own cadence, else the profile's daily time as the store last synced it."""
    own = store.cadence_of(session, recipient.id)
    if own is not None:
        return own
    config = queries.profile_config(session, recipient.profile) or {}
    return Cadence(send_at=str(config.get("send_at", "07:30")), timezone=str(config.get("timezone", "UTC")))


def change_cadence(session: Session, recipient: Recipient, words: Sequence[str], now: datetime) -> Cadence:
    """Apply `words` (see `feedsvc.cadence.parse_cadence`; ValueError on bad ones) to the recipient's
    cadence and store it; the next send time after `now` is the first one it governs."""
    new = parse_cadence(words, cadence_for(session, recipient))
    store.set_cadence(session, recipient.id, new, now)
    return new


def find_recipient(session: Session, profile: str, address: str, channel: str | None = None) -> Recipient:
    """The profile's active recipient at `address` (on `channel` when given); LookupError naming it."""
    found = [
        r
        for r in delivery.active_recipients(session, profile)
        if r.address == address and (channel is None or r.channel == channel)
    ]
    if len(found) != 1:
        what = "no active recipient" if not found else "several recipients (give --channel)"
        raise LookupError(f"profile {profile!r} has {what} at {address!r}")
    return found[0]
