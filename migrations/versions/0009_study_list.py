"""the study list: tags on library entries, pages of library papers

`library_items.tags` keeps the tags a library file gave an entry (BibTeX keywords, Zotero tags: e.g.
"canonical"); `paper_pages` keeps the breakdown page, difficulty and cited arXiv ids of a paper read for a
reader's study list (outside any digest).

Revision ID: 0009_study
Revises: 0008
Create Date: 2026-11-29 21:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009_study'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('library_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tags', sa.JSON(), nullable=False, server_default='[]'))
    op.create_table('paper_pages',
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('page', sa.JSON(), nullable=True),
    sa.Column('difficulty', sa.JSON(), nullable=False),
    sa.Column('cites', sa.JSON(), nullable=False),
    sa.Column('built', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_paper_pages_item_id_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('item_id', name=op.f('pk_paper_pages'))
    )


def downgrade() -> None:
    op.drop_table('paper_pages')
    with op.batch_alter_table('library_items', schema=None) as batch_op:
        batch_op.drop_column('tags')
