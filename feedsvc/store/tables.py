"""SQLAlchemy 2.0 tables: items, sightings, source runs, HTTP validators, profiles, recipients, digests,
their entries, deliveries, subscriptions and their confirmation mails, and feedback.

The schema is the one Alembic migrates (`migrations/versions`); a test checks they never drift.
Only `feedsvc.store` imports this module.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, UTC-aware datetimes out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: feedsvc stores only timezone-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}


class Item(Base):
    """One paper, video or link, whatever source(s) saw it. `key` is the canonical identity."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(512), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list[Any]] = mapped_column(default=list)
    categories: Mapped[list[Any]] = mapped_column(default=list)
    url: Mapped[str] = mapped_column(Text)
    published: Mapped[datetime | None]
    updated: Mapped[datetime | None]
    version: Mapped[int | None]
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]

    __table_args__ = (Index("ix_items_published", "published"),)


class Sighting(Base):
    """A source saw an item at a time, with its source-specific fields (HN points, announce type, ...)."""

    __tablename__ = "sightings"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("source_runs.id", ondelete="SET NULL"))
    seen_at: Mapped[datetime]
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SourceRun(Base):
    """One fetch of one source: when, how it ended, what it brought."""

    __tablename__ = "source_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    started: Mapped[datetime]
    finished: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")  # running|ok|empty|failed
    scanned: Mapped[int] = mapped_column(default=0)
    fetched: Mapped[int] = mapped_column(default=0)
    new: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")
    units: Mapped[int] = mapped_column(default=0, server_default="0")  # API quota units spent (YouTube)
    retry_at: Mapped[datetime | None]  # a pause the source asked for (Retry-After) or earned (back-off)


class HttpValidator(Base):
    """ETag / Last-Modified of the last successful response per URL, for conditional GET."""

    __tablename__ = "http_validators"

    url: Mapped[str] = mapped_column(String(1024), primary_key=True)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    updated: Mapped[datetime]


class ProfileRow(Base):
    """A profile as last loaded from the TOML file (the file is the source of truth)."""

    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated: Mapped[datetime]


class RecipientRow(Base):
    """Somebody (a chat, an address, a directory) who receives a profile's digests on one channel."""

    __tablename__ = "recipients"

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(512))
    active: Mapped[bool] = mapped_column(default=True)
    created: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (UniqueConstraint("profile_id", "channel", "address", name="uq_recipients_address"),)


class DigestRow(Base):
    """One profile's bundle for one day (`span` "day"), or for the week ending that day ("week", a weekly
    recipient's own bundle); immutable once published."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    span: Mapped[str] = mapped_column(String(8), default="day", server_default="day")
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, default="")
    markdown: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)  # talk check, source reports, shortfall
    created: Mapped[datetime]

    __table_args__ = (UniqueConstraint("profile_id", "day", "span", name="uq_digests_profile_day_span"),)


class EntryRow(Base):
    """One card of a digest: which item, in which position, and the card's fields."""

    __tablename__ = "digest_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    thread: Mapped[str] = mapped_column(String(256), default="")
    score: Mapped[float] = mapped_column(Float, default=0.0)
    card: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # a paper pick's page (breakdown and formula notes, `feedsvc.cards.breakdown.page_data`), built with
    # the digest; NULL for other picks and for digests built before migration 0007
    page: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)

    __table_args__ = (UniqueConstraint("digest_id", "item_id", name="uq_digest_entries_item"),)


class DeliveryRow(Base):
    """The outbox: one row per (digest, channel, recipient)."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sending|sent|failed|gave_up
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(256))
    created: Mapped[datetime]
    due: Mapped[datetime]
    sent: Mapped[datetime | None]
    progress: Mapped[int] = mapped_column(default=0)  # parts of a split message already delivered
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # the worker holding the lease, if any

    __table_args__ = (
        UniqueConstraint("digest_id", "channel", "recipient_id", name="uq_deliveries_target"),
        Index("ix_deliveries_status_due", "status", "due"),
    )


class SubscriptionRow(Base):
    """A pending subscription: a Telegram one-time code, or an email address awaiting its confirmation.

    `code` is stored as a SHA-256 hex digest, never in the clear. Confirming creates (or re-activates)
    the recipient and marks the row used; a code works once and expires.
    """

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(512), default="")
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime]
    expires: Mapped[datetime]
    used: Mapped[datetime | None]
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("recipients.id", ondelete="SET NULL"))


class ConfirmationRow(Base):
    """A request for an email subscription's confirmation mail, and that mail's place in the outbox.

    One row per accepted request: `client` is who asked (the socket peer; "" from the CLI), and the rows'
    timestamps are the rate limits' counters. `status` is pending|sending|sent|failed|gave_up like a
    delivery's, or "repeat" for a request inside the resend window, which sends nothing.
    """

    __tablename__ = "confirmations"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True
    )
    client: Mapped[str] = mapped_column(String(64), default="", index=True)
    created: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    due: Mapped[datetime]
    sent: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(64))


class FeedbackRow(Base):
    """A reader's vote on an item: up, down or less (less like this), from any channel."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), index=True)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("recipients.id", ondelete="SET NULL"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    vote: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(32))
    created: Mapped[datetime]


class EmbeddingRow(Base):
    """An item's sentence embedding (float32 bytes), computed once per item and model."""

    __tablename__ = "item_embeddings"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[datetime]


class LibraryRow(Base):
    """A paper a reader imported into a profile (BibTeX, arXiv ids, Zotero CSV): a seed for a thread, or for
    every thread when `thread` is empty."""

    __tablename__ = "library_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    thread: Mapped[str] = mapped_column(String(256), default="")
    origin: Mapped[str] = mapped_column(Text, default="")  # the file it came from
    added: Mapped[datetime]
    # the file's own tags for the entry (BibTeX keywords, Zotero tags), lower case: e.g. "canonical"
    tags: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")

    __table_args__ = (UniqueConstraint("profile_id", "item_id", "thread", name="uq_library_items_entry"),)


class TextEmbeddingRow(Base):
    """The embedding of a free text (a thread's description), keyed by the text's SHA-256."""

    __tablename__ = "text_embeddings"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[datetime]


class FullTextRow(Base):
    """A pick's full text as fetched (gzip-compressed HTML or e-print), or the reason there is none."""

    __tablename__ = "fulltexts"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # html | eprint | none
    content: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text, default="")
    fetched: Mapped[datetime]


# --- appended by the web archive (issue 7, migration 0006); the lead owns this file ----------------------


class HeartbeatRow(Base):
    """The last sign of life of a long-running process (the scheduler, a worker, the bot), for /healthz."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    beat: Mapped[datetime]
    detail: Mapped[str] = mapped_column(Text, default="")


# --- appended by the study list (issue 17, migration 0009_study) ------------------------------------------


class PaperPageRow(Base):
    """A paper read for a reader's study list, outside any digest: its page (breakdown and formula notes,
    `feedsvc.cards.breakdown.page_data`; NULL when it has no full text), its reading difficulty and the
    arXiv ids its full text cites."""

    __tablename__ = "paper_pages"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    page: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    difficulty: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cites: Mapped[list[Any]] = mapped_column(default=list)
    built: Mapped[datetime]


# --- appended for issue 17 (migration 0010_cadence) ------------------------------------------------------


class CadenceRow(Base):
    """A recipient's own cadence: daily, or weekly on `weekday` (0 = Monday), at `send_at` ("HH:MM") in
    `timezone`; `empty_note`: on a day nothing clears the bar, send one line saying so instead of nothing.
    A recipient without a row gets the profile's digest at the profile's time. `updated`: a send time
    before it is not owed (changing the cadence never sends a back bundle)."""

    __tablename__ = "cadences"

    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("recipients.id", ondelete="CASCADE"), primary_key=True
    )
    every: Mapped[str] = mapped_column(String(8), default="daily")  # daily | weekly
    weekday: Mapped[int] = mapped_column(default=0)
    send_at: Mapped[str] = mapped_column(String(5))
    timezone: Mapped[str] = mapped_column(String(64))
    empty_note: Mapped[bool] = mapped_column(default=False)
    updated: Mapped[datetime]
