"""offline gate decisions reported by the edges

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offline_decisions",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("lot_id", sa.String(length=64), nullable=False),
        sa.Column("plate", sa.String(length=20), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("lists_etag", sa.String(length=80), nullable=True),
        sa.Column("lists_age_s", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name=op.f("fk_offline_decisions_camera_id_cameras")
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["lots.id"], name=op.f("fk_offline_decisions_lot_id_lots")
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_offline_decisions")),
    )
    with op.batch_alter_table("offline_decisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_offline_decisions_camera_decided", ["camera_id", "decided_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("offline_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_offline_decisions_camera_decided")
    op.drop_table("offline_decisions")
