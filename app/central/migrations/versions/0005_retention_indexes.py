"""retention: indexes the retention duty's range deletes use (sessions by exit time, offline
gate decisions by decision time)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("parking_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_parking_sessions_exited_at"), ["exited_at"], unique=False
        )
    with op.batch_alter_table("offline_decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_offline_decisions_decided_at"), ["decided_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("offline_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_offline_decisions_decided_at"))
    with op.batch_alter_table("parking_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_parking_sessions_exited_at"))
