"""search index over items and cards; heartbeats

The web archive's full-text search. SQLite: two FTS5 tables kept in sync by triggers, so every writer
(the sources' upserts, save_digest) keeps the index current without knowing it exists:
`items_fts` (external content: `items`, columns title and text) and `cards_fts` (its own copy of each
card's title and prose, one row per `digest_entries` row). PostgreSQL: two GIN expression indexes with
title weighted A and body B; `feedsvc.store.archive` queries with exactly these expressions.

Neither shows in the ORM metadata (`feedsvc.store.archive.SEARCH_OBJECTS` names them; the no-drift test
leaves them out). A later batch migration that recreates `items` or `digest_entries` on SQLite drops the
triggers with the old table: it must create them again (copy them from here).

Also the `heartbeats` table the scheduler writes and /healthz reads.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 19:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOKENIZE = "tokenize = 'porter unicode61 remove_diacritics 2'"


def _card_body(card: str) -> str:
    """SQLite: a card's searchable prose (domain, thread, intuition, punch sentences, significance)."""
    fields = ("domain", "thread", "intuition", "punch_intro")
    parts = [f"coalesce(json_extract({card}, '$.{f}'), '')" for f in fields]
    parts.append(
        f"coalesce((SELECT group_concat(json_extract(p.value, '$.text'), ' ') FROM json_each({card}, '$.punch')"
        " AS p WHERE NOT json_extract(p.value, '$.is_math')), '')"
    )
    parts += [f"coalesce(json_extract({card}, '$.{f}'), '')" for f in ("significance", "talk_for")]
    return " || ' ' || ".join(parts)


def _card_row(alias: str) -> str:
    return f"{alias}.id, coalesce(json_extract({alias}.card, '$.title'), ''), {_card_body(f'{alias}.card')}"


SQLITE_UP = [
    f"CREATE VIRTUAL TABLE items_fts USING fts5(title, text, content = 'items', content_rowid = 'id', {TOKENIZE})",
    """CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN
        INSERT INTO items_fts (rowid, title, text) VALUES (new.id, new.title, new.text);
    END""",
    """CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN
        INSERT INTO items_fts (items_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);
    END""",
    """CREATE TRIGGER items_fts_update AFTER UPDATE OF title, text ON items BEGIN
        INSERT INTO items_fts (items_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);
        INSERT INTO items_fts (rowid, title, text) VALUES (new.id, new.title, new.text);
    END""",
    "INSERT INTO items_fts (items_fts) VALUES ('rebuild')",
    f"CREATE VIRTUAL TABLE cards_fts USING fts5(title, body, {TOKENIZE})",
    f"""CREATE TRIGGER cards_fts_insert AFTER INSERT ON digest_entries BEGIN
        INSERT INTO cards_fts (rowid, title, body) SELECT {_card_row('e')} FROM digest_entries AS e
        WHERE e.id = new.id;
    END""",
    """CREATE TRIGGER cards_fts_delete AFTER DELETE ON digest_entries BEGIN
        DELETE FROM cards_fts WHERE rowid = old.id;
    END""",
    f"""CREATE TRIGGER cards_fts_update AFTER UPDATE OF card ON digest_entries BEGIN
        DELETE FROM cards_fts WHERE rowid = old.id;
        INSERT INTO cards_fts (rowid, title, body) SELECT {_card_row('e')} FROM digest_entries AS e
        WHERE e.id = new.id;
    END""",
    f"INSERT INTO cards_fts (rowid, title, body) SELECT {_card_row('e')} FROM digest_entries AS e",
]

SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS cards_fts_update",
    "DROP TRIGGER IF EXISTS cards_fts_delete",
    "DROP TRIGGER IF EXISTS cards_fts_insert",
    "DROP TABLE IF EXISTS cards_fts",
    "DROP TRIGGER IF EXISTS items_fts_update",
    "DROP TRIGGER IF EXISTS items_fts_delete",
    "DROP TRIGGER IF EXISTS items_fts_insert",
    "DROP TABLE IF EXISTS items_fts",
]

# PostgreSQL: the same expressions as feedsvc.store.archive.PG_ITEM_VECTOR / PG_CARD_VECTOR (an expression
# index is used only by a query that repeats its expression).
PG_ITEM_VECTOR = (
    "setweight(to_tsvector('english'::regconfig, title), 'A') || "
    "setweight(to_tsvector('english'::regconfig, text), 'B')"
)
PG_CARD_VECTOR = (
    "setweight(to_tsvector('english'::regconfig, coalesce(card ->> 'title', '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, "
    "coalesce(card ->> 'domain', '') || ' ' || coalesce(card ->> 'thread', '') || ' ' || "
    "coalesce(card ->> 'intuition', '') || ' ' || coalesce(card ->> 'punch_intro', '') || ' ' || "
    "jsonb_path_query_array(card::jsonb, '$.punch[*] ? (@.is_math == false).text')::text || ' ' || "
    "coalesce(card ->> 'significance', '') || ' ' || coalesce(card ->> 'talk_for', '')), 'B')"
)


def upgrade() -> None:
    op.create_table('heartbeats',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('beat', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_heartbeats'))
    )
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for statement in SQLITE_UP:
            op.execute(statement)
    elif dialect == 'postgresql':
        op.execute(f"CREATE INDEX ix_items_search ON items USING gin (({PG_ITEM_VECTOR}))")
        op.execute(f"CREATE INDEX ix_digest_entries_search ON digest_entries USING gin (({PG_CARD_VECTOR}))")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for statement in SQLITE_DOWN:
            op.execute(statement)
    elif dialect == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_digest_entries_search")
        op.execute("DROP INDEX IF EXISTS ix_items_search")
    op.drop_table('heartbeats')
