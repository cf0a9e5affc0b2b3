"""cadence per recipient, and weekly digests

`cadences`: a recipient's own cadence (daily, or weekly on a day; a send time in a time zone; whether a day
with nothing above the bar sends a one-line note). `digests.span`: "day" for the profile's daily digest,
"week" for a weekly recipient's bundle of the week ending that day; the unique key becomes
(profile, day, span).

SQLite cannot change a table's unique constraint in place, and with foreign keys on (as feedsvc's engine
has them, and a PRAGMA cannot turn them off inside the migration's transaction) dropping `digests` would
cascade to its entries and deliveries. So on SQLite the children are copied aside and emptied, `digests`
is rebuilt under a new name and renamed back (the children's references name `digests` and are left
alone), and the children are copied back: the search index's triggers on `digest_entries` delete and
re-add their rows.

Revision ID: 0010_cadence
Revises: 0009_study
Create Date: 2026-11-29 21:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0010_cadence"
down_revision: str | None = "0009_study"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHILDREN = ("digest_entries", "deliveries")
COLUMNS = "id, profile_id, day, title, summary, markdown, data, created"


def _digests_table(name: str, span: bool) -> None:
    columns = [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("markdown", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    ]
    if span:
        columns.append(sa.Column("span", sa.String(length=8), server_default="day", nullable=False))
    unique = ("profile_id", "day", "span") if span else ("profile_id", "day")
    op.create_table(
        name,
        *columns,
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name="fk_digests_profile_id_profiles", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_digests"),
        sa.UniqueConstraint(
            *unique, name="uq_digests_profile_day_span" if span else "uq_digests_profile_day"
        ),
    )


def _rebuild_sqlite_digests(span: bool) -> None:
    for child in CHILDREN:
        op.execute(f"CREATE TEMP TABLE _keep_{child} AS SELECT * FROM {child}")
    _digests_table("_digests_0009", span)
    source = f"{COLUMNS}, 'day'" if span else COLUMNS
    target = f"{COLUMNS}, span" if span else COLUMNS
    where = "" if span else " WHERE span = 'day'"
    op.execute(f"INSERT INTO _digests_0009 ({target}) SELECT {source} FROM digests{where}")
    for child in CHILDREN:  # emptied first: DROP TABLE's own cascade, through the search triggers, fails
        op.execute(f"DELETE FROM {child}")
    op.execute("DROP TABLE digests")
    op.execute("ALTER TABLE _digests_0009 RENAME TO digests")
    for child in CHILDREN:
        op.execute(
            f"INSERT INTO {child} SELECT * FROM _keep_{child} WHERE digest_id IN (SELECT id FROM digests)"
        )
        op.execute(f"DROP TABLE _keep_{child}")


def upgrade() -> None:
    op.create_table(
        "cadences",
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("every", sa.String(length=8), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("send_at", sa.String(length=5), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("empty_note", sa.Boolean(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["recipients.id"],
            name=op.f("fk_cadences_recipient_id_recipients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("recipient_id", name=op.f("pk_cadences")),
    )
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_digests(span=True)
        return
    op.add_column("digests", sa.Column("span", sa.String(length=8), server_default="day", nullable=False))
    op.drop_constraint("uq_digests_profile_day", "digests", type_="unique")
    op.create_unique_constraint("uq_digests_profile_day_span", "digests", ["profile_id", "day", "span"])


def downgrade() -> None:
    """Weekly digests (and their deliveries) are dropped: the old schema has no place for them."""
    op.drop_table("cadences")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_digests(span=False)
        return
    op.execute("DELETE FROM digests WHERE span <> 'day'")
    op.drop_constraint("uq_digests_profile_day_span", "digests", type_="unique")
    op.create_unique_constraint("uq_digests_profile_day", "digests", ["profile_id", "day"])
    op.drop_column("digests", "span")
