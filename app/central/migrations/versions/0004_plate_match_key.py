"""plate match keys: look-alike characters (O/0, I/1, B/8, ...) are one for matching

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen here, as the rule stood when this revision was written (app.contract.plate_match_key):
# a migration must do the same thing whatever the code becomes later.
_KEY = str.maketrans({"O": "0", "D": "0", "Q": "0", "I": "1", "B": "8", "S": "5", "Z": "2",
                      "G": "6"})  # fmt: skip


def plate_match_key(plate_normalized: str) -> str:
    return plate_normalized.translate(_KEY)


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLES = ("parking_sessions", "list_entries", "subscriptions")


def upgrade() -> None:
    conn = op.get_bind()
    for name in _TABLES:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("plate_key", sa.String(length=16), nullable=True))
        table = sa.table(
            name, sa.column("id", sa.Integer), sa.column("plate_normalized", sa.String),
            sa.column("plate_key", sa.String),
        )  # fmt: skip
        rows = conn.execute(sa.select(table.c.id, table.c.plate_normalized)).all()
        if rows:
            conn.execute(
                table.update().where(table.c.id == sa.bindparam("row_id")),
                [{"row_id": i, "plate_key": plate_match_key(p)} for i, p in rows],
            )
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.alter_column("plate_key", existing_type=sa.String(length=16), nullable=False)
            batch_op.create_index(batch_op.f(f"ix_{name}_plate_key"), ["plate_key"], unique=False)


def downgrade() -> None:
    for name in _TABLES:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{name}_plate_key"))
            batch_op.drop_column("plate_key")
