"""source run quota units and retry_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('source_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('units', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('source_runs', schema=None) as batch_op:
        batch_op.drop_column('retry_at')
        batch_op.drop_column('units')

