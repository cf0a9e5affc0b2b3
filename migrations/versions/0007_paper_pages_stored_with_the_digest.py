"""paper pages stored with the digest

A paper pick's page (its breakdown and formula notes) is built once, with the digest, and kept in
`digest_entries.page` (JSON, NULL for other picks); the web's item page reads it from there. Added with a
plain ALTER TABLE (not a batch migration), so SQLite keeps migration 0006's search triggers on
`digest_entries`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 18:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('digest_entries', sa.Column('page', sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    op.drop_column('digest_entries', 'page')  # SQLite 3.35+ drops a column in place, triggers kept
