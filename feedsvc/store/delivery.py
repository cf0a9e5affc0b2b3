"""Recipients, subscriptions and the outbox: the store's side of delivering digests exactly once, and of
the confirmation mails of email subscriptions (claimed, sent and retried the same way).

The outbox holds one row per (digest, channel, recipient). A worker *claims* due rows: the claim sets
status "sending", stamps the worker and moves `due` to the end of a lease, in a committed transaction of
its own, before anything is sent. The claim is one `UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING`:
on PostgreSQL the subquery locks its rows with `FOR UPDATE SKIP LOCKED`, so several workers share the
work without waiting on each other; on SQLite the statement runs under the database's single write lock.
Either way no two workers can take the same row. A worker killed after claiming leaves its rows "sending"
until the lease ends; they are then claimed again, and the one message that was in flight may be sent a
second time (one per worker: `feedsvc publish` runs a worker per SMTP connection and a Telegram crew).
That is the documented repeat; nothing is dropped.

Imports `feedsvc.models` and `feedsvc.store.tables` only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, delete, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session

from feedsvc.models import Recipient
from feedsvc.store.db import insert_or_skip
from feedsvc.store.tables import (
    CadenceRow,
    ConfirmationRow,
    DeliveryRow,
    DigestRow,
    EntryRow,
    ProfileRow,
    RecipientRow,
    SubscriptionRow,
)

CLAIMABLE = ("pending", "failed")
MAX_RETRY_WAIT = timedelta(days=1)


# --- recipients ----------------------------------------------------------------------------------------


def _recipient(row: RecipientRow, profile: str) -> Recipient:
    return Recipient(profile=profile, channel=row.channel, address=row.address, id=row.id)


def recipient_by_id(session: Session, recipient_id: int) -> tuple[Recipient, bool] | None:
    """The recipient and whether it is active, or None."""
    found = session.execute(
        select(RecipientRow, ProfileRow.name)
        .join(ProfileRow, ProfileRow.id == RecipientRow.profile_id)
        .where(RecipientRow.id == recipient_id)
    ).first()
    if found is None:
        return None
    row, profile = found
    return _recipient(row, profile), row.active


def recipients_at(
    session: Session, channel: str, address: str, *, active_only: bool = True
) -> list[Recipient]:
    """Every recipient (one per profile) at a chat id or address on a channel."""
    query = (
        select(RecipientRow, ProfileRow.name)
        .join(ProfileRow, ProfileRow.id == RecipientRow.profile_id)
        .where(RecipientRow.channel == channel, RecipientRow.address == address)
        .order_by(RecipientRow.id)
    )
    if active_only:
        query = query.where(RecipientRow.active.is_(True))
    return [_recipient(row, profile) for row, profile in session.execute(query)]


def active_recipients(session: Session, profile: str | None = None) -> list[Recipient]:
    query = (
        select(RecipientRow, ProfileRow.name)
        .join(ProfileRow, ProfileRow.id == RecipientRow.profile_id)
        .where(RecipientRow.active.is_(True))
        .order_by(RecipientRow.id)
    )
    if profile is not None:
        query = query.where(ProfileRow.name == profile)
    return [_recipient(row, name) for row, name in session.execute(query)]


def deactivate_recipient(session: Session, recipient_id: int, note: str, now: datetime) -> bool:
    """Stop delivering to a recipient, with the reason recorded; pending deliveries are cancelled.

    Returns False when it was already inactive (an unsubscribe link clicked twice is not an error).
    """
    row = session.get(RecipientRow, recipient_id)
    if row is None:
        raise LookupError(f"recipient {recipient_id} does not exist")
    was_active = row.active
    row.active = False
    row.note = f"{now.isoformat(timespec='seconds')}: {note}"
    session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.recipient_id == recipient_id, DeliveryRow.status.in_(CLAIMABLE))
        .values(status="cancelled", last_error=f"recipient deactivated: {note}")
    )
    session.flush()
    return was_active


def _activate(session: Session, profile_id: int, channel: str, address: str, now: datetime) -> RecipientRow:
    row = session.scalar(
        select(RecipientRow).where(
            RecipientRow.profile_id == profile_id,
            RecipientRow.channel == channel,
            RecipientRow.address == address,
        )
    )
    if row is None:
        row = RecipientRow(profile_id=profile_id, channel=channel, address=address, created=now, note="")
        session.add(row)
    else:
        row.active = True
        row.note = f"{now.isoformat(timespec='seconds')}: subscribed again"
    session.flush()
    return row


# --- subscriptions: Telegram one-time codes and email double opt-in ------------------------------------


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode("utf-8")).hexdigest()


def create_subscription(
    session: Session, profile: str, channel: str, code: str, now: datetime, ttl: timedelta, address: str = ""
) -> int:
    """A pending subscription redeemable once with `code` until `now + ttl`; only the code's hash is kept."""
    profile_id = session.scalar(select(ProfileRow.id).where(ProfileRow.name == profile))
    if profile_id is None:
        raise LookupError(f"profile {profile!r} is not in the store; run `feedsvc fetch` or `digest` first")
    row = SubscriptionRow(
        profile_id=profile_id,
        channel=channel,
        address=address,
        code_hash=code_hash(code),
        created=now,
        expires=now + ttl,
    )
    session.add(row)
    session.flush()
    return row.id


@dataclass(frozen=True)
class Redeemed:
    recipient: Recipient
    new: bool  # False: the address was already subscribed and active


def redeem_subscription(
    session: Session, channel: str, code: str, now: datetime, address: str | None = None
) -> Redeemed:
    """Turn a valid code into an active recipient. `address` is the chat id for Telegram (the code
    carries none); for email the address stored with the code is used. Raises LookupError with a
    reader-facing reason for an unknown, used or expired code."""
    row = session.scalar(
        select(SubscriptionRow).where(
            SubscriptionRow.code_hash == code_hash(code), SubscriptionRow.channel == channel
        )
    )
    if row is None:
        raise LookupError("this code is not known; ask for a new one")
    if row.used is not None:
        raise LookupError("this code was already used; ask for a new one")
    if row.expires <= now:
        raise LookupError("this code has expired; ask for a new one")
    target = row.address or (address or "")
    if not target:
        raise LookupError("no address to subscribe")
    existing = session.scalar(
        select(RecipientRow).where(
            RecipientRow.profile_id == row.profile_id,
            RecipientRow.channel == channel,
            RecipientRow.address == target,
        )
    )
    already = existing is not None and existing.active
    recipient_row = _activate(session, row.profile_id, channel, target, now)
    row.used, row.recipient_id = now, recipient_row.id
    profile = session.scalar(select(ProfileRow.name).where(ProfileRow.id == row.profile_id))
    session.flush()
    return Redeemed(_recipient(recipient_row, profile or ""), new=not already)


# --- confirmation mails: the requests (the rate limits count them) and their outbox ---------------------

UNSENT = ("pending", "sending", "failed")
MAILED = (*UNSENT, "sent", "gave_up")  # requests that queued a mail; "repeat" and "cancelled" did not send


def pending_email_subscription(session: Session, profile: str, address: str, now: datetime) -> int | None:
    """The unused, unexpired email subscription of `address` (in any case) to `profile`, if any."""
    return session.scalar(
        select(SubscriptionRow.id)
        .join(ProfileRow, ProfileRow.id == SubscriptionRow.profile_id)
        .where(
            ProfileRow.name == profile,
            SubscriptionRow.channel == "email",
            func.lower(SubscriptionRow.address) == address.lower(),
            SubscriptionRow.used.is_(None),
            SubscriptionRow.expires > now,
        )
        .order_by(SubscriptionRow.id.desc())
        .limit(1)
    )


def set_code(session: Session, subscription_id: int, code: str) -> None:
    """Replace a subscription's code (only its hash is kept)."""
    session.execute(
        update(SubscriptionRow).where(SubscriptionRow.id == subscription_id).values(code_hash=code_hash(code))
    )


def extend_subscription(session: Session, subscription_id: int, expires: datetime) -> None:
    """Keep a pending subscription redeemable until at least `expires`."""
    row = session.get(SubscriptionRow, subscription_id)
    if row is not None and row.expires < expires:
        row.expires = expires
        session.flush()


def requests_by(session: Session, client: str, since: datetime) -> list[datetime]:
    """When `client` made the requests recorded after `since`, oldest first."""
    return list(
        session.scalars(
            select(ConfirmationRow.created)
            .where(ConfirmationRow.client == client, ConfirmationRow.created > since)
            .order_by(ConfirmationRow.created)
        )
    )


def mails_to(session: Session, address: str, since: datetime) -> list[datetime]:
    """When confirmation mails to `address` (in any case) were queued after `since`, oldest first."""
    return list(
        session.scalars(
            select(ConfirmationRow.created)
            .join(SubscriptionRow, SubscriptionRow.id == ConfirmationRow.subscription_id)
            .where(
                func.lower(SubscriptionRow.address) == address.lower(),
                ConfirmationRow.status.in_(MAILED),
                ConfirmationRow.created > since,
            )
            .order_by(ConfirmationRow.created)
        )
    )


def mail_queued(session: Session, subscription_id: int) -> tuple[datetime | None, bool]:
    """When the subscription's latest confirmation mail was queued, and whether one is still unsent."""
    last = session.scalar(
        select(func.max(ConfirmationRow.created)).where(
            ConfirmationRow.subscription_id == subscription_id, ConfirmationRow.status.in_(MAILED)
        )
    )
    unsent = session.scalar(
        select(
            exists().where(
                ConfirmationRow.subscription_id == subscription_id, ConfirmationRow.status.in_(UNSENT)
            )
        )
    )
    return last, bool(unsent)


def record_confirmation(
    session: Session, subscription_id: int, client: str, now: datetime, *, mail: bool
) -> None:
    """Record a request: with `mail`, a confirmation mail due now; otherwise a repeat that sends nothing."""
    session.add(
        ConfirmationRow(
            subscription_id=subscription_id,
            client=client[:64],
            created=now,
            status="pending" if mail else "repeat",
            attempts=0,
            due=now,
        )
    )
    session.flush()


@dataclass(frozen=True)
class ConfirmationJob:
    """A confirmation mail a worker holds, with the subscription it confirms."""

    id: int
    subscription_id: int
    address: str
    profile: str
    live: bool  # the subscription is still unused and unexpired: worth mailing


def claim_confirmations(
    session: Session, now: datetime, *, worker: str, lease: timedelta, limit: int = 100
) -> list[ConfirmationJob]:
    """Claim up to `limit` due confirmation mails for `worker`, as `claim_due` claims deliveries."""
    due = _claimable(now, ConfirmationRow)
    query = select(ConfirmationRow.id).where(due).order_by(ConfirmationRow.due, ConfirmationRow.id)
    taken = _claim(session, ConfirmationRow, query.limit(limit), worker=worker, until=now + lease)
    rows = session.execute(
        select(ConfirmationRow.id, SubscriptionRow, ProfileRow.name)
        .join(SubscriptionRow, SubscriptionRow.id == ConfirmationRow.subscription_id)
        .join(ProfileRow, ProfileRow.id == SubscriptionRow.profile_id)
        .where(ConfirmationRow.id.in_(taken))
        .order_by(ConfirmationRow.id)
    ).all()
    return [
        ConfirmationJob(cid, sub.id, sub.address, profile, sub.used is None and sub.expires > now)
        for cid, sub, profile in rows
    ]


def mark_confirmation(
    session: Session, confirmation_id: int, status: str, now: datetime, note: str = ""
) -> None:
    """Record a claimed confirmation mail as "sent", or "cancelled" (its subscription was used or expired)."""
    row = session.get(ConfirmationRow, confirmation_id)
    if row is None:
        return
    row.status, row.claimed_by, row.last_error = status, None, note or None
    if status == "sent":
        row.sent = now
        row.attempts += 1
    session.flush()


def mark_confirmation_failed(
    session: Session,
    confirmation_id: int,
    error: str,
    now: datetime,
    *,
    max_attempts: int,
    retry: timedelta,
    retry_after: float | None = None,
) -> str:
    """A failed attempt at a confirmation mail, retried as `mark_failed` retries a delivery."""
    row = session.get(ConfirmationRow, confirmation_id)
    if row is None:
        return "gone"
    return _failed(session, row, error, now, max_attempts=max_attempts, retry=retry, retry_after=retry_after)


def prune_confirmations(session: Session, before: datetime) -> int:
    """Forget the finished requests made before `before` (the limits only look back a day); how many."""
    done = ConfirmationRow.status.in_(("sent", "gave_up", "repeat", "cancelled"))
    result = session.execute(delete(ConfirmationRow).where(done, ConfirmationRow.created < before))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class ConfirmationState:
    id: int
    profile: str
    address: str
    client: str
    status: str
    attempts: int
    created: datetime
    due: datetime
    sent: datetime | None
    last_error: str


def confirmations(session: Session, *, limit: int = 200) -> list[ConfirmationState]:
    """The recorded confirmation requests and their mails, newest first."""
    query = (
        select(ConfirmationRow, SubscriptionRow.address, ProfileRow.name)
        .join(SubscriptionRow, SubscriptionRow.id == ConfirmationRow.subscription_id)
        .join(ProfileRow, ProfileRow.id == SubscriptionRow.profile_id)
        .order_by(ConfirmationRow.id.desc())
        .limit(limit)
    )
    return [
        ConfirmationState(
            c.id,
            profile,
            address,
            c.client,
            c.status,
            c.attempts,
            c.created,
            c.due,
            c.sent,
            c.last_error or "",
        )
        for c, address, profile in session.execute(query)
    ]


# --- the outbox ----------------------------------------------------------------------------------------


def enqueue_latest(session: Session, now: datetime, profile: str | None = None) -> int:
    """Create the missing delivery rows: each active recipient without a cadence of their own gets its
    profile's latest daily digest once, unless nothing in it cleared the bar (a digest without cards).

    A recipient that already has a delivery of that digest, or of a later one, gets nothing new; a new
    subscriber thus receives the current bundle on the next publish, never the back catalogue. One
    INSERT ... SELECT ... ON CONFLICT DO NOTHING, so publishers starting together never collide.
    Recipients with a cadence get theirs at their time (`feedsvc.pipeline.cadence`).
    """
    daily = DigestRow.span == "day"
    latest = (
        select(DigestRow.profile_id, func.max(DigestRow.day).label("day"))
        .where(daily)
        .group_by(DigestRow.profile_id)
        .subquery()
    )
    earlier = DigestRow.__table__.alias("earlier")
    already = (
        select(DeliveryRow.id)
        .join(earlier, earlier.c.id == DeliveryRow.digest_id)
        .where(
            DeliveryRow.recipient_id == RecipientRow.id,
            earlier.c.day >= DigestRow.day,
            earlier.c.span == "day",
        )
    )
    own_time = select(CadenceRow.recipient_id).where(CadenceRow.recipient_id == RecipientRow.id)
    cards = select(EntryRow.id).where(EntryRow.digest_id == DigestRow.id)
    query = (
        select(
            DigestRow.id,
            RecipientRow.id,
            RecipientRow.channel,
            literal("pending"),
            literal(0),
            literal(now, DeliveryRow.created.type),
            literal(now, DeliveryRow.due.type),
        )
        .join(latest, and_(latest.c.profile_id == DigestRow.profile_id, latest.c.day == DigestRow.day))
        .join(
            RecipientRow, and_(RecipientRow.profile_id == DigestRow.profile_id, RecipientRow.active.is_(True))
        )
        .where(daily, ~exists(already), ~exists(own_time), exists(cards))
    )
    if profile is not None:
        query = query.join(ProfileRow, ProfileRow.id == DigestRow.profile_id).where(
            ProfileRow.name == profile
        )
    columns = ["digest_id", "recipient_id", "channel", "status", "attempts", "created", "due"]
    insert = insert_or_skip(session, DeliveryRow.__table__).from_select(columns, query)
    return len(session.execute(insert.on_conflict_do_nothing().returning(DeliveryRow.id)).all())


@dataclass(frozen=True)
class Claimed:
    """A delivery a worker holds: what to send where, and how far a split message already got."""

    id: int
    digest_id: int
    recipient: Recipient
    attempts: int
    progress: int


def _claimable(now: datetime, model: type[DeliveryRow | ConfirmationRow] = DeliveryRow):
    return or_(
        and_(model.status.in_(CLAIMABLE), model.due <= now),
        and_(model.status == "sending", model.due <= now),  # a dead worker's lease ran out
    )


def claim_due(
    session: Session,
    now: datetime,
    *,
    worker: str,
    lease: timedelta,
    limit: int = 100,
    channels: Sequence[str] = (),
    profile: str | None = None,
) -> list[Claimed]:
    """Claim up to `limit` due deliveries for `worker`. The caller commits before sending anything."""
    query = (
        select(DeliveryRow.id).where(_claimable(now)).order_by(DeliveryRow.due, DeliveryRow.id).limit(limit)
    )
    if channels:
        query = query.where(DeliveryRow.channel.in_(list(channels)))
    if profile is not None:
        query = query.where(
            DeliveryRow.recipient_id.in_(
                select(RecipientRow.id)
                .join(ProfileRow, ProfileRow.id == RecipientRow.profile_id)
                .where(ProfileRow.name == profile)
            )
        )
    taken = _claim(session, DeliveryRow, query, worker=worker, until=now + lease)
    if not taken:
        return []
    rows = session.execute(
        select(DeliveryRow, RecipientRow, ProfileRow.name)
        .join(RecipientRow, RecipientRow.id == DeliveryRow.recipient_id)
        .join(ProfileRow, ProfileRow.id == RecipientRow.profile_id)
        .where(DeliveryRow.id.in_(taken))
        .order_by(DeliveryRow.digest_id, DeliveryRow.id)
    ).all()
    return [
        Claimed(d.id, d.digest_id, _recipient(r, profile), d.attempts, d.progress) for d, r, profile in rows
    ]


def _claim(
    session: Session,
    model: type[DeliveryRow | ConfirmationRow],
    query: Select[tuple[int]],
    *,
    worker: str,
    until: datetime,
) -> list[int]:
    """Mark the rows `query` selects (their ids) "sending" for `worker` until `until`; their ids."""
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # other workers' rows are skipped, not waited on
    # One statement: on SQLite it runs under the database's write lock, on PostgreSQL the subquery's rows
    # are locked; either way no two workers can take the same row.
    return list(
        session.scalars(
            update(model)
            .where(model.id.in_(query.scalar_subquery()))
            .values(status="sending", claimed_by=worker, due=until)
            .returning(model.id)
            .execution_options(synchronize_session=False)
        )
    )


def record_progress(session: Session, delivery_id: int, parts: int, external_id: str) -> None:
    """A split message got `parts` parts through: a retry resumes after them."""
    row = session.get(DeliveryRow, delivery_id)
    if row is None:
        return
    row.progress = parts
    row.external_id = ",".join(x for x in ((row.external_id or ""), external_id) if x)[:256]
    session.flush()


def mark_sent(session: Session, delivery_id: int, external_id: str, now: datetime) -> None:
    row = session.get(DeliveryRow, delivery_id)
    if row is None:
        return
    row.status, row.sent, row.claimed_by, row.last_error = "sent", now, None, None
    row.attempts += 1
    if external_id:
        row.external_id = external_id[:256]
    session.flush()


def mark_failed(
    session: Session,
    delivery_id: int,
    error: str,
    now: datetime,
    *,
    max_attempts: int,
    retry: timedelta,
    retry_after: float | None = None,
    progress: int | None = None,
) -> str:
    """Record a failed attempt: retried with doubling back-off, or given up after `max_attempts`.

    Returns the new status ("failed" or "gave_up").
    """
    row = session.get(DeliveryRow, delivery_id)
    if row is None:
        return "gone"
    if progress is not None:
        row.progress = max(row.progress, progress)
    return _failed(session, row, error, now, max_attempts=max_attempts, retry=retry, retry_after=retry_after)


def _failed(
    session: Session,
    row: DeliveryRow | ConfirmationRow,
    error: str,
    now: datetime,
    *,
    max_attempts: int,
    retry: timedelta,
    retry_after: float | None,
) -> str:
    """Count a failed attempt: retry with doubling back-off, or give up after `max_attempts`."""
    row.attempts += 1
    row.last_error = error[:2000]
    row.claimed_by = None
    if row.attempts >= max_attempts:
        row.status = "gave_up"
    else:
        wait = min(retry * (2 ** (row.attempts - 1)), MAX_RETRY_WAIT)
        if retry_after is not None:
            wait = max(wait, timedelta(seconds=retry_after))
        row.status, row.due = "failed", now + wait
    session.flush()
    return row.status


def release(session: Session, delivery_id: int, now: datetime) -> None:
    """Give a claimed delivery back untouched (graceful shutdown before it was sent)."""
    session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.id == delivery_id, DeliveryRow.status == "sending")
        .values(status="pending", claimed_by=None, due=now)
    )
    session.flush()


@dataclass(frozen=True)
class DeliveryState:
    id: int
    profile: str
    day: str
    channel: str
    address: str
    status: str
    attempts: int
    progress: int
    due: datetime
    sent: datetime | None
    last_error: str


def deliveries(session: Session, *, status: str | None = None, limit: int = 200) -> list[DeliveryState]:
    """The outbox, newest first, for `feedsvc deliveries` and the health page."""
    query = (
        select(DeliveryRow, DigestRow.day, RecipientRow.address, ProfileRow.name)
        .join(DigestRow, DigestRow.id == DeliveryRow.digest_id)
        .join(RecipientRow, RecipientRow.id == DeliveryRow.recipient_id)
        .join(ProfileRow, ProfileRow.id == RecipientRow.profile_id)
        .order_by(DeliveryRow.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(DeliveryRow.status == status)
    return [
        DeliveryState(
            d.id,
            profile,
            day.isoformat(),
            d.channel,
            address,
            d.status,
            d.attempts,
            d.progress,
            d.due,
            d.sent,
            d.last_error or "",
        )
        for d, day, address, profile in session.execute(query)
    ]


def pending_by_channel(session: Session) -> dict[str, int]:
    """Deliveries not yet sent (pending or to retry), per channel."""
    return dict(
        session.execute(
            select(DeliveryRow.channel, func.count())
            .where(DeliveryRow.status.in_(CLAIMABLE))
            .group_by(DeliveryRow.channel)
        ).all()
    )


def delivery_counts(session: Session) -> dict[str, int]:
    """How many deliveries are in each status."""
    return dict(session.execute(select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)).all())
