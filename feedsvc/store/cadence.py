"""Recipients' own cadences (`cadences`), and the outbox's side of sending each at their time: which
bundle a recipient already has, what items they have had (the never-twice ledger of a weekly bundle), and
the delivery row of one recipient's bundle.

Imports `feedsvc.models` and `feedsvc.store.tables` only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from feedsvc.models import Cadence, Recipient
from feedsvc.store.db import insert_or_skip
from feedsvc.store.tables import CadenceRow, DeliveryRow, DigestRow, EntryRow, Item, ProfileRow, RecipientRow


def _cadence(row: CadenceRow) -> Cadence:
    return Cadence(row.every, row.weekday, row.send_at, row.timezone, row.empty_note)


def cadence_of(session: Session, recipient_id: int) -> Cadence | None:
    """The recipient's own cadence; None when they follow the profile's time."""
    row = session.get(CadenceRow, recipient_id)
    return _cadence(row) if row is not None else None


def set_cadence(session: Session, recipient_id: int, cadence: Cadence, now: datetime) -> None:
    """Store the recipient's cadence; a send time before `now` is not owed (no back bundle is sent)."""
    if session.get(RecipientRow, recipient_id) is None:
        raise LookupError(f"recipient {recipient_id} does not exist")
    row = session.get(CadenceRow, recipient_id)
    if row is None:
        row = CadenceRow(recipient_id=recipient_id)
        session.add(row)
    row.every, row.weekday, row.send_at = cadence.every, cadence.weekday, cadence.send_at
    row.timezone, row.empty_note, row.updated = cadence.timezone, cadence.empty_note, now
    session.flush()


@dataclass(frozen=True)
class Cadenced:
    """An active recipient with a cadence of their own, and when it was last set."""

    recipient: Recipient
    cadence: Cadence
    since: datetime


def cadenced(session: Session, profile: str | None = None) -> list[Cadenced]:
    query = (
        select(RecipientRow, ProfileRow.name, CadenceRow)
        .join(ProfileRow, ProfileRow.id == RecipientRow.profile_id)
        .join(CadenceRow, CadenceRow.recipient_id == RecipientRow.id)
        .where(RecipientRow.active.is_(True))
        .order_by(RecipientRow.id)
    )
    if profile is not None:
        query = query.where(ProfileRow.name == profile)
    return [
        Cadenced(Recipient(name, r.channel, r.address, r.id), _cadence(c), c.updated)
        for r, name, c in session.execute(query)
    ]


def has_bundle(session: Session, recipient_id: int, span: str, day: date) -> bool:
    """Has the recipient a delivery (in any state) of a `span` digest of `day` or later?"""
    return bool(
        session.scalar(
            select(
                exists()
                .where(DeliveryRow.recipient_id == recipient_id)
                .where(DeliveryRow.digest_id == DigestRow.id)
                .where(DigestRow.span == span, DigestRow.day >= day)
            )
        )
    )


def had_keys(session: Session, recipient_ids: Iterable[int]) -> set[str]:
    """The never-twice ledger of recipients: every item of a digest they were sent or are about to be."""
    ids = list(recipient_ids)
    if not ids:
        return set()
    return set(
        session.scalars(
            select(Item.key)
            .join(EntryRow, EntryRow.item_id == Item.id)
            .join(DeliveryRow, DeliveryRow.digest_id == EntryRow.digest_id)
            .where(DeliveryRow.recipient_id.in_(ids), DeliveryRow.status.not_in(("cancelled", "quiet")))
            .distinct()
        )
    )


def is_empty(session: Session, digest_id: int) -> bool:
    return not session.scalar(select(exists().where(EntryRow.digest_id == digest_id)))


def enqueue(
    session: Session, digest_id: int, recipient: Recipient, now: datetime, *, status: str = "pending"
) -> bool:
    """One delivery of a digest to one recipient, due now; False when it already exists. Status "quiet":
    a bundle without picks that the recipient did not ask to hear about, recorded as done, never sent."""
    insert = insert_or_skip(session, DeliveryRow.__table__).values(
        digest_id=digest_id,
        recipient_id=recipient.id,
        channel=recipient.channel,
        status=status,
        attempts=0,
        created=now,
        due=now,
    )
    return bool(session.execute(insert.on_conflict_do_nothing().returning(DeliveryRow.id)).first())
